"""Predictions (issue 16): the no-show model (docs/no-show.md).

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them. One asset,
`no_show_model` (the model artifact), writes the four tables; its performance rows join model_performance."""

from __future__ import annotations

from analytics_pipelines.registry.model import Check, Table

G = "predictions"
S = "analytics_pipelines.noshow.steps:"

TABLES: tuple[Table, ...] = (
    Table(
        name="no_show_model",
        group=G,
        description="The no-show model as a versioned artifact: a HistGradientBoosting classifier on per-ticket "
        "features (lead time, price paid and its place in the type's price range, the holder's attendance at "
        "events that ended before this one, category, resale/transfer, tickets held), calibrated on later "
        "events (isotonic or sigmoid), evaluated out of time beside the seed's rule; written to <data dir>/"
        "models/no_show/<version>.joblib. A model that does not beat the seed rule (and the minimum AUC) is "
        "refused: the previous predictions stay. Writes no_show_predictions, event_no_show_forecast, "
        "no_show_forecast_reasons and no_show_model_performance.",
        grain="one artifact per training",
        keys=(),
        upstream=(
            "stg_tickets",
            "stg_ticket_scans",
            "stg_events",
            "stg_event_schedules",
            "stg_ticket_types",
            "stg_event_categories",
            "price_history",
            "fct_orders",
            "fct_resales",
        ),
        build=S + "no_show_model",
        checks=(
            Check(
                "beats_seed_rule",
                "Out-of-time ROC AUC of the model above the seed rule's on the same held-out tickets and at "
                "least TT_NO_SHOW_MIN_AUC (0.70); warns when the holdout is too small to judge.",
                S + "check_beats_seed_rule",
                kind="invariants",
            ),
            Check(
                "valid_predictions",
                "Probabilities in [0, 1], never NULL or NaN; p10 <= expected <= p90 within [0, tickets]; each "
                "event's expected no-shows is the sum of its tickets' probabilities; every event not ended is "
                "forecast or has a reason; one row per ticket and per event; no_show_model_versions holds one row "
                "per version, at most one serving, and the published forecast is the serving version's.",
                S + "check_predictions",
                kind="invariants",
            ),
        ),
        stored="artifact",
        tenant_column=None,
        no_tenant_reason="a model file, not rows",
        produces=(
            "no_show_predictions",
            "event_no_show_forecast",
            "no_show_forecast_reasons",
            "no_show_model_performance",
            "no_show_model_versions",
        ),
        kinds=("scikit-learn",),
    ),
    Table(
        name="no_show_predictions",
        group=G,
        produced_by="no_show_model",
        grain="one row per sold ticket of an upcoming event",
        keys=("ticket_id",),
        serve=True,
        venue_column="venue_id",
        description="Per ticket of an upcoming event: the calibrated no-show probability, its risk band "
        "(low < 0.10 <= medium < 0.30 <= high), the seed rule's probability beside it, the main inputs "
        "and the model version.",
    ),
    Table(
        name="event_no_show_forecast",
        group=G,
        produced_by="no_show_model",
        grain="one row per upcoming event with sold tickets",
        keys=("event_id",),
        serve=True,
        venue_column="venue_id",
        description="Per upcoming event: tickets sold, expected no-shows (sum of the tickets' probabilities) "
        "with an 80 % interval (Poisson-binomial, normal approximation widened to whole tickets), expected "
        "attendance, high-risk tickets and the seed rule's expected no-shows.",
    ),
    Table(
        name="no_show_forecast_reasons",
        group=G,
        produced_by="no_show_model",
        grain="one row per event not ended and not forecast",
        keys=("event_id",),
        serve=True,
        venue_column="venue_id",
        description="Why an event that has not ended has no no-show forecast: no_tickets_sold, "
        "cancelled_or_postponed, in_progress, deleted, no_schedule or no_model (with the detail).",
    ),
    Table(
        name="no_show_model_performance",
        group=G,
        produced_by="no_show_model",
        grain="one row per model, evaluation, metric and bucket",
        keys=("model", "evaluation", "metric", "bucket"),
        tenant_column=None,
        no_tenant_reason="model evaluation metrics over all tenants' tickets",
        description="The no-show model's and the seed rule's metrics on the out-of-time holdout (and in "
        "sample): ROC AUC, Brier, precision/recall, reliability bins and deciles, per-event expected vs "
        "actual no-shows and interval coverage; with model version, training and test windows, features "
        "and status (accepted, accepted_unjudged, refused).",
    ),
    Table(
        name="no_show_model_versions",
        group=G,
        produced_by="no_show_model",
        grain="one row per fitted model version (kept across runs)",
        keys=("model_version",),
        tenant_column=None,
        no_tenant_reason="model versions fitted over all tenants' tickets",
        description="Every no-show model version fitted, across runs: trained_at, as_of, training window "
        "(event starts), features, the gate's holdout metrics (JSON), its AUC, whether it passed (NULL: too "
        "small a holdout to judge, the model is used) and its status: serving (its predictions are "
        "published; at most one), retired or refused (the serving version stays in use).",
    ),
)
