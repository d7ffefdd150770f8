"""Predictions (issue 16): demand forecast and its backtest (docs/predictions.md).

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them."""

from __future__ import annotations

from analytics_pipelines.registry.model import Check, Table

S = "analytics_pipelines.predictions.steps:"
G = "predictions"

TABLES: tuple[Table, ...] = (
    Table(
        name="demand_forecast",
        group=G,
        description="Daily tickets per event and ticket type for the next N days (TT_DEMAND_FORECAST_DAYS, "
        "default 30, at most 365) after the last sales day, for the ticket types on sale with sales so far: "
        "p10/p50/p90 of a HistGradientBoosting Poisson regressor with a negative binomial around it, on sales so far, days to event, "
        "category, venue, weekday, season and price. Validated by a rolling-origin backtest against the "
        "weekly seasonal naive and the old service's heuristic (demand_model_performance); a model that "
        "does not beat both keeps the previous forecast. Also writes `demand_forecast_reasons`.",
        grain="one row per ticket type and forecast day",
        keys=("ticket_type_id", "day"),
        upstream=(
            "fct_orders",
            "stg_order_items",
            "stg_ticket_types",
            "stg_events",
            "stg_event_schedules",
            "stg_event_categories",
            "stg_venues",
            "price_history",
        ),
        build=S + "demand_forecast",
        produces=("demand_forecast_reasons", "demand_model_performance", "demand_model_versions"),
        serve=True,
        venue_column="venue_id",
        kinds=("scikit-learn",),
        checks=(
            Check(
                "beats_baselines",
                "The new model's backtest MASE is below the weekly seasonal naive's and the seed "
                "heuristic's; otherwise the previous forecast stays (it is not rewritten).",
                S + "check_beats_baselines",
                kind="invariants",
            ),
            Check(
                "valid_forecast",
                "Quantiles finite, >= 0 and ordered (p10 <= p50 <= p90); horizon days 1..N; every ticket "
                "type in exactly one of demand_forecast and demand_forecast_reasons; demand_model_versions "
                "holds one row per version, at most one serving, and the forecast is the serving version's.",
                S + "check_forecast",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="demand_forecast_reasons",
        group=G,
        produced_by="demand_forecast",
        grain="one row per ticket type not forecast (ticket_type_id NULL: an event without ticket types)",
        keys=("event_id", "ticket_type_id"),
        serve=True,
        venue_column="venue_id",
        description="Why a ticket type has no demand forecast: deleted, cancelled, postponed, past (the event "
        "started), inactive, sale_ended, sold_out, no_sales_yet, or no_ticket_types (the event has none).",
    ),
    Table(
        name="demand_model_performance",
        group=G,
        produced_by="demand_forecast",
        grain="one row per model, evaluation, metric and bucket",
        keys=("model", "evaluation", "metric", "bucket"),
        tenant_column=None,
        no_tenant_reason="model evaluation metrics over all tenants' sales",
        description="The demand model's rolling-origin backtest (MASE, MAE, bias, 80 % interval coverage and "
        "width) beside the weekly seasonal naive and the seed heuristic on the same rows, pooled (bucket "
        "NULL) and per origin; model version, trained_at, training window and features.",
    ),
    Table(
        name="demand_model_versions",
        group=G,
        produced_by="demand_forecast",
        grain="one row per fitted model version (kept across runs)",
        keys=("model_version",),
        tenant_column=None,
        no_tenant_reason="model versions fitted over all tenants' sales",
        description="Every demand model version fitted, across runs: trained_at, as_of, training window, "
        "features, the backtest metrics of the model and its baselines (JSON), the gate's MASE, whether it "
        "passed and its status: serving (its forecast is published; at most one), retired (replaced by a "
        "later accepted version) or refused (failed the gate; the serving version stays in use).",
    ),
)
