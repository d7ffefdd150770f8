"""Invariant checks of the customer models' outputs (no staging totals: rules any correct frame obeys).
Each returns the CheckOutcome of the marts' checks: passed, and metadata with the row count and a
`violations_<rule>` count per broken rule."""

from __future__ import annotations

import polars as pl

from analytics_pipelines.customers.evaluation import EVALUATIONS
from analytics_pipelines.marts.reconcile import CheckOutcome, _combine

CLV_PARAMETERS = ["r", "alpha_weeks", "a", "b", "p", "q", "v_cents"]
PERFORMANCE_KEY = ["model_family", "model", "metric", "bucket", "evaluation"]
UNIT_METRICS = [
    "roc_auc",
    "brier",
    "average_precision",
    "base_rate",
    "precision",
    "recall",
    "f1",
    "flagged_share",
]


def _duplicates(df: pl.DataFrame, keys: list[str]) -> int:
    return df.height - df.select(keys).unique().height


def _non_finite(df: pl.DataFrame, columns: list[str]) -> int:
    """Rows with a NaN or an infinite value in one of `columns` (NULL is not counted)."""
    if not df.height:
        return 0
    return df.filter(pl.any_horizontal(~pl.col(c).cast(pl.Float64).is_finite() for c in columns)).height


def check_churn_scores(df: pl.DataFrame) -> CheckOutcome:
    """customer_churn_scores: one row per (as_of, user_id), one as-of date, a user for every row; the churn
    probability within [0, 1], never NaN, NULL only when every row's is (no model: rule scores only) and the
    flag NULL exactly where the probability is; rule scores present, finite, within 0-100 and [0, 1]."""
    p = pl.col("churn_probability")
    rules_only = df.height > 0 and df["churn_probability"].null_count() == df.height
    return _combine(
        metadata={"rows": df.height, "mode": "rules only" if rules_only else "model"},
        extra_failures={
            "duplicate_customers": _duplicates(df, ["as_of", "user_id"]),
            "several_as_of_dates": max(0, df["as_of"].n_unique() - 1),
            "missing_user": df["user_id"].null_count(),
            "probability_nan": df.filter(p.is_nan()).height,
            "probability_out_of_range": df.filter(~p.is_between(0, 1)).height,
            "probability_missing": 0 if rules_only else df["churn_probability"].null_count(),
            "flag_not_with_probability": df.filter(p.is_null() != pl.col("churn_flag").is_null()).height,
            "rule_scores_missing_or_not_finite": df.filter(
                pl.any_horizontal(
                    ~pl.col(c).is_finite().fill_null(False) for c in ("seed_risk_score", "seed_profile_churn")
                )
            ).height,
            "rule_scores_out_of_range": df.filter(
                ~pl.col("seed_risk_score").is_between(0, 100) | ~pl.col("seed_profile_churn").is_between(0, 1)
            ).height,
        },
    )


def check_clv_fits(fits: pl.DataFrame, clv: pl.DataFrame) -> CheckOutcome:
    """customer_clv_fits and customer_lifetime_value together: one row per fit (fit_scope, fit_id); every
    fit is a converged one, so its parameters are finite and > 0 (Gamma-Gamma q > 1), with repeat buyers;
    every CLV row with a fit names one in the fits (and a row without one has fit_scope 'none', NULL
    predictions); every fit is used by some CLV row."""
    used = clv.filter(pl.col("fit_id").is_not_null()).select("fit_scope", "fit_id").unique()
    none = clv.filter(pl.col("fit_id").is_null())
    return _combine(
        metadata={"fits": fits.height, "clv_rows": clv.height, "clv_rows_without_fit": none.height},
        extra_failures={
            "duplicate_fits": _duplicates(fits, ["fit_scope", "fit_id"]),
            "duplicate_fit_ids": _duplicates(fits, ["fit_id"]),
            "fit_id_missing": fits["fit_id"].null_count(),
            "parameters_not_finite": _non_finite(fits, CLV_PARAMETERS)
            + fits.filter(pl.any_horizontal(pl.col(c).is_null() for c in CLV_PARAMETERS)).height,
            "parameters_not_positive": fits.filter(
                pl.any_horizontal(pl.col(c) <= 0 for c in CLV_PARAMETERS)
            ).height,
            "gamma_gamma_q_not_above_1": fits.filter(pl.col("q") <= 1).height,
            "fits_without_repeat_buyers": fits.filter(~(pl.col("repeat_buyers") > 0)).height,
            "clv_fit_not_in_fits": used.join(fits, on=["fit_scope", "fit_id"], how="anti").height,
            "fits_not_used": fits.join(used, on=["fit_scope", "fit_id"], how="anti").height,
            "rows_without_fit_not_none": none.filter(pl.col("fit_scope") != "none").height,
            "rows_without_fit_with_predictions": none.filter(pl.col("clv_12m_cents").is_not_null()).height,
        },
    )


def check_model_performance(df: pl.DataFrame) -> CheckOutcome:
    """model_performance: one row per (model_family, model, metric, bucket, evaluation); evaluation one of
    in_sample / out_of_time / in_time_holdout; values finite (NULL allowed: e.g. precision with nothing
    flagged); AUC, Brier and the other shares within [0, 1]; n >= 0."""
    unit = df.filter(pl.col("metric").is_in(UNIT_METRICS) | pl.col("metric").str.starts_with("reliability_"))
    return _combine(
        metadata={"rows": df.height, "null_values": df["value"].null_count()},
        extra_failures={
            "duplicate_rows": _duplicates(df, PERFORMANCE_KEY),
            "evaluation_unknown": df.filter(
                ~pl.col("evaluation").is_in(EVALUATIONS) | pl.col("evaluation").is_null()
            ).height,
            "values_not_finite": _non_finite(df, ["value"]),
            "shares_out_of_range": unit.filter(~pl.col("value").is_between(0, 1)).height,
            "negative_n": df.filter(pl.col("n") < 0).height,
        },
    )
