"""Pricing (issue 16): price elasticity, pricing recommendations (docs/pricing.md).

The domain's registry entries (see docs/adding-a-mart.md); default_registry() includes them. The group
"pricing" is materialized by `pricing_job` (jobs/data.py)."""

from __future__ import annotations

from analytics_pipelines.registry.model import Check, Table

S = "analytics_pipelines.pricing.steps:"
G = "pricing"

TABLES: tuple[Table, ...] = (
    Table(
        name="price_elasticity",
        group=G,
        grain="one row per tenant, scope ('category' or 'category_venue'), category and venue (NULL for "
        "scope 'category')",
        keys=("tenant_id", "scope", "category", "venue_id"),
        upstream=(
            "stg_ticket_types",
            "stg_events",
            "stg_event_schedules",
            "stg_event_categories",
            "stg_order_items",
            "fct_orders",
            "price_history",
        ),
        build=S + "price_elasticity",
        produces=("pricing_exclusions", "pricing_model_performance"),
        kinds=("numpy", "polars"),
        serve=True,
        venue_column="venue_id",
        description="Price elasticity of demand per category and per category at a venue: a log-log demand "
        "model (Poisson PML, ticket-type fixed effects; controls days to event, sales-window share, weekday) "
        "over the daily tickets of every ticket type around its real price changes, cluster-robust (event) "
        "standard errors and 95 % intervals. Fewer than TT_PRICING_MIN_PRICE_CHANGES changes (or all in one "
        "event): status 'insufficient_data' with the count. Validated on held-out events' price changes "
        "against the seed's fixed -1.5; a candidate worse than that keeps the previous table.",
        checks=(
            Check(
                "valid_estimates",
                "One row per key; estimated rows finite with ci_low <= elasticity <= ci_high and a positive "
                "standard error; insufficient rows carry a reason and no estimate; no NaN.",
                S + "check_price_elasticity",
                kind="invariants",
            ),
            Check(
                "no_worse_than_baseline",
                "Out-of-sample demand error (WAPE over held-out price changes) of the model is no worse "
                "than with the seed's fixed elasticity -1.5.",
                S + "check_beats_baseline",
                kind="invariants",
            ),
        ),
    ),
    Table(
        name="pricing_exclusions",
        group=G,
        produced_by="price_elasticity",
        grain="one row per ticket type and reason",
        keys=("ticket_type_id", "reason"),
        venue_column="venue_id",
        description="Ticket types (or some of their days) the elasticity model could not use, and why: "
        "cancelled/postponed event, a currency other than the venue's, free ticket, price changed to 0, no "
        "full day on sale, one price only (controls only).",
    ),
    Table(
        name="pricing_model_performance",
        group=G,
        produced_by="price_elasticity",
        grain="one row per model, evaluation, metric and bucket",
        keys=("model", "evaluation", "metric", "bucket"),
        tenant_column=None,
        no_tenant_reason="model evaluation metrics over all tenants' price changes",
        description="The elasticity model's and the seed's fixed -1.5's holdout demand error (WAPE, MAE, "
        "Poisson deviance) over held-out events' price changes, with model version, training window, "
        "features.",
    ),
    Table(
        name="pricing_recommendations",
        group=G,
        grain="one row per ticket type on sale at the run's time",
        keys=("ticket_type_id",),
        upstream=(
            "price_elasticity",
            "stg_ticket_types",
            "stg_event_schedules",
            "stg_ticket_price_history",
            "stg_order_items",
            "fct_orders",
            "price_history",
        ),
        build=S + "pricing_recommendations",
        kinds=("polars",),
        serve=True,
        venue_column="venue_id",
        description="Per ticket type on sale: the revenue-maximizing price within the guard rails (max change "
        "per day, floor/ceiling x face value, never below face value, nothing after doors open), expected "
        "revenue change with its interval from the elasticity's, demand score, confidence from the interval "
        "width, reasoning JSON; or status 'no_change' with the reason. Recommendations are published to the "
        "ops store's pending_price_changes (change_id) for approval.",
        checks=(
            Check(
                "within_guard_rails",
                "Recommended prices within face value..ceiling and the max change per day; revenue interval "
                "ordered; confidence and demand score in range; no NaN; every recommendation pending in the "
                "ops store; every other row has a reason.",
                S + "check_recommendations",
                kind="invariants",
            ),
        ),
    ),
)
