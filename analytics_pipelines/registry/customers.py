"""Registry entries of the customer analytics (docs/customers.md) and the models' performance table."""

from __future__ import annotations

from analytics_pipelines.registry import cubes_customers as cubes
from analytics_pipelines.registry.model import Check, Table

S = "analytics_pipelines.customers.steps:"
RECONCILES = "reconciles_to_staging"
G = "customers"
#: the marts whose step peaks at several GB at `large` (1M customers, 10.5M tickets; in its own process
#: customer_360 5.8 GB, customer_attendance with its check ~6 GB): the multiprocess executor runs one at a time
HIGH_MEMORY = frozenset(
    {
        "customer_attendance",
        "customer_rfm_scores",
        "customer_churn_model",
        "customer_lifetime_value",
        "customer_segments",
        "customer_cohorts",
        "customer_360",
    }
)


def _t(
    name: str,
    description: str,
    grain: str,
    keys: tuple[str, ...],
    upstream: tuple[str, ...],
    check: Check | None = None,
    **kw,
) -> Table:
    return Table(
        name=name,
        group=G,
        description=description,
        grain=grain,
        keys=keys,
        upstream=upstream,
        build=kw.pop("build", S + name),
        checks=((check,) if check else ()) + kw.pop("checks", ()),
        memory="high" if name in HIGH_MEMORY else "normal",
        **kw,
    )


TABLES: tuple[Table, ...] = (
    _t(
        "customer_attendance",
        "Per ticket holder (tickets.user_id, else original_purchaser_id) and day an event ended: sold tickets of "
        "ended events and how many never had a valid scan (the no_shows mart's rules), as of the run's time. Read "
        "by the churn model and the customer 360.",
        "one row per tenant, holder and day an event ended",
        ("tenant_id", "user_id", "ended_day"),
        (
            "stg_tickets",
            "stg_ticket_scans",
            "stg_events",
            "stg_event_schedules",
            "stg_ticket_types",
            "stg_event_categories",
        ),
        Check(
            RECONCILES,
            "Tickets of ended events and no-shows add up to an independent count over the staging "
            "tickets with a holder; one row per holder and day; no-shows within 0 and the tickets.",
            S + "check_attendance",
        ),
    ),
    _t(
        "customer_rfm_scores",
        "RFM per customer as of the end of each day (UTC), per venue, per tenant and platform-wide (`scope`): "
        "recency days, frequency (orders), monetary (gross cents), quintile scores 1-5, code, total and one of 11 "
        "segments. One partition per day, kept for 35 days, and every Sunday's forever (the weekly history that "
        "segment transitions are reported from). Incremental: a day is the stored settled state "
        "(`customer_rfm_state`) plus the last nine days' orders; `full_refresh` recomputes from all of fct_orders.",
        "one row per as-of date, scope and customer",
        ("as_of", "scope", "scope_id", "user_id"),
        ("fct_orders",),
        Check(
            RECONCILES,
            "Per as-of date and scope, customers, orders and monetary equal an independent staging "
            "count (to the cent); one row per customer and scope; scores 1-5; one of 11 segments.",
            S + "check_rfm",
        ),
        partitioning="daily",
        partition_column="as_of",
        serve=True,
        venue_column="venue_id",
        cube=cubes.RFM_SCORES,
        incremental=True,
        produces=("customer_rfm_state",),
    ),
    Table(
        name="customer_rfm_state",
        group=G,
        produced_by="customer_rfm_scores",
        grain="one row per state day, scope and customer",
        keys=("state_day", "scope", "scope_id", "tenant_id", "venue_id", "user_id"),
        partitioning="daily",
        partition_column="state_day",
        description="The cumulative RFM aggregates per scope and customer (first and last purchase, orders, "
        "tickets, monetary cents) as of a settled day, 8 days before the last RFM day built (its "
        "orders are final: fct_orders' lookback is 7 days). The newest two partitions are kept: "
        "the next daily run starts from the newest (customers/rfm_history.py). Platform rows have no tenant.",
    ),
    _t(
        "customer_segment_transitions",
        "Customers moving between RFM segments from each as-of date of customer_rfm_scores to the next, per scope, "
        "with the revenue they added in between ('(new)' = first purchase in between). Incremental: pairs of "
        "weeks not rewritten since the last build are kept.",
        "one row per pair of as-of dates, scope and segment pair",
        ("from_as_of", "to_as_of", "scope", "scope_id", "from_segment", "to_segment"),
        ("customer_rfm_scores",),
        Check(
            RECONCILES,
            "Per later as-of date and scope, the transitions count every RFM customer exactly once.",
            S + "check_transitions",
        ),
        incremental=True,
        serve=True,
        venue_column="venue_id",
    ),
    _t(
        "customer_churn_model",
        "The churn model as a versioned artifact: logistic regression on features as of (last sales day - 90 d), "
        "label = no purchase in the next 90 days, validated on a holdout; written to <data dir>/models/"
        "customer_churn/churn-<as_of>-<sha256>.joblib. Also writes `customer_churn_scores` and "
        "`churn_model_performance`.",
        "one artifact per training",
        (),
        ("fct_orders", "fct_refunds", "fct_resales", "customer_attendance", "stg_users"),
        Check(
            "beats_seed_rules",
            "Holdout ROC AUC of the model is above both old rule scores'.",
            S + "check_churn_beats_rules",
            kind="invariants",
            why_not_blocking="short or tiny histories can legitimately fall short; the scores are still written "
            "beside the old rule scores, and the metric is in model_performance",
        ),
        checks=(
            Check(
                "valid_scores",
                "customer_churn_scores: probabilities in [0, 1], one row per tenant and customer, no NaN.",
                S + "check_churn_scores",
                kind="invariants",
            ),
        ),
        stored="artifact",
        tenant_column=None,
        no_tenant_reason="a model file, not rows",
        produces=("customer_churn_scores", "churn_model_performance"),
        kinds=("scikit-learn",),
    ),
    Table(
        name="customer_churn_scores",
        group=G,
        produced_by="customer_churn_model",
        grain="one row per tenant and customer",
        keys=("tenant_id", "user_id"),
        serve=True,
        description="Today's churn probability per customer (the model), beside the old service's rule scores.",
    ),
    Table(
        name="churn_model_performance",
        group="models",
        produced_by="customer_churn_model",
        grain="one row per model, evaluation, metric and bucket",
        keys=("model", "evaluation", "metric", "bucket"),
        tenant_column=None,
        no_tenant_reason="model evaluation metrics over all tenants' customers",
        description="The churn model's and the old rules' holdout metrics (ROC AUC, precision/recall, Brier, "
        "reliability bins).",
    ),
    _t(
        "customer_lifetime_value",
        "Per customer and venue as of the last sales day: the old service's historic value beside BG/NBD + "
        "Gamma-Gamma predictions (P(alive), expected purchases, 12- and 24-month CLV) and the churn probability. "
        "Fitted per venue, else per tenant, else platform-wide (`fit_scope`, fits in `customer_clv_fits`).",
        "one row per customer and venue",
        ("venue_id", "user_id"),
        ("fct_orders", "customer_churn_model"),
        Check(
            RECONCILES,
            "Per venue, customers, orders and historic value equal an independent staging count (to "
            "the cent); one row per customer and venue; probabilities in [0, 1]; CLV >= 0.",
            S + "check_clv",
        ),
        checks=(
            Check(
                "valid_fits",
                "customer_clv_fits: parameters finite and positive where converged, one row per "
                "fit; every CLV row's fit exists.",
                S + "check_clv_fits",
                kind="invariants",
            ),
        ),
        produces=("customer_clv_fits", "clv_model_performance"),
        kinds=("numpy",),
        serve=True,
        venue_column="venue_id",
    ),
    Table(
        name="customer_clv_fits",
        group=G,
        produced_by="customer_lifetime_value",
        grain="one row per fit",
        keys=("fit_id",),
        tenant_column=None,
        no_tenant_reason="pending: platform fits pool every tenant",
        description="BG/NBD and Gamma-Gamma parameters per fit (venue, tenant or platform) with convergence.",
    ),
    Table(
        name="clv_model_performance",
        group="models",
        produced_by="customer_lifetime_value",
        grain="one row per model, evaluation, metric and bucket",
        keys=("model", "evaluation", "metric", "bucket"),
        tenant_column=None,
        no_tenant_reason="model evaluation metrics over all tenants' customers",
        description="Calibration/holdout validation of the CLV models (last 90 days held out).",
    ),
    _t(
        "customer_segments",
        "Per scope (venue, tenant, platform) and RFM segment at the latest as-of date: customers, revenue, orders, "
        "average order value, average purchase frequency, average predicted 12-month CLV and shares.",
        "one row per scope and segment",
        ("scope", "scope_id", "segment"),
        ("customer_rfm_scores", "customer_lifetime_value"),
        Check(
            RECONCILES,
            "Per scope, segment customers and revenue add up to an independent staging count at the "
            "as-of date; all 11 segments listed for every scope.",
            S + "check_segments",
        ),
        serve=True,
        venue_column="venue_id",
        cube=cubes.CUSTOMER_SEGMENTS,
    ),
    _t(
        "customer_cohorts",
        "Monthly acquisition cohorts x months since the first purchase, per scope: cohort size, active customers, "
        "retention %, revenue and cumulative revenue per customer.",
        "one row per scope, cohort month and months since first",
        ("scope", "scope_id", "cohort_month", "months_since_first"),
        ("fct_orders",),
        Check(
            RECONCILES,
            "Per scope, cohort sizes and revenue add up to an independent staging count (to the "
            "cent); retention 0-100 %, 100 % in month 0.",
            S + "check_cohorts",
        ),
        serve=True,
        venue_column="venue_id",
    ),
    _t(
        "customer_360",
        "One row per customer: tenure, orders, tickets, spend, refunds, last purchase, venues, resales, favourite "
        "category, no-show rate, platform RFM segment, summed venue CLV, P(alive) and churn probability. Customer "
        "ids only: no names, emails or phones.",
        "one row per tenant and customer (a person's activity is never summed across tenants)",
        ("tenant_id", "user_id"),
        (
            "fct_orders",
            "fct_refunds",
            "fct_resales",
            "stg_users",
            "customer_attendance",
            "stg_event_categories",
            "customer_rfm_scores",
            "customer_lifetime_value",
            "customer_churn_model",
        ),
        Check(
            RECONCILES,
            "One row per customer; buyers, orders and spend equal an independent staging count (to "
            "the cent); no personal-data columns.",
            S + "check_customer_360",
        ),
        serve=True,
    ),
    _t(
        "customer_email_keys",
        "The keyed pseudonym of each customer's e-mail (landing's HMAC, TT_LANDING_PSEUDONYM_KEY; never an address) "
        "per (tenant, customer) of customer_360: how the API's customer search finds a customer by e-mail. "
        "Read by the API only through that search, never returned (customers/email_keys.py).",
        "one row per tenant and customer with a keyed e-mail",
        ("tenant_id", "user_id"),
        ("raw_users", "customer_360"),
        Check(
            "valid_keys",
            "One row per (tenant, customer), each a customer_360 row; every pseudonym 64 lower-case hex.",
            "analytics_pipelines.customers.email_keys:check_email_keys",
            kind="invariants",
        ),
        build="analytics_pipelines.customers.email_keys:customer_email_keys",
        serve=True,
        admin_only=True,
    ),
    _t(
        "customer_ticket_events",
        "The tickets and scans of each customer's journey, per day: `ticket` (a ticket with a purchaser created "
        "that day, for its purchaser, amount = its price) and `scan` (a scan that day of a ticket with a holder, "
        "for the holder: tickets.user_id, else original_purchaser_id; the scan result as detail). Orders, "
        "refunds and resales are the facts' (customers/ticket_events.py).",
        "one row per ticket issued or scan",
        ("event_type", "ref_id"),
        ("stg_tickets", "stg_ticket_scans", "stg_events"),
        Check(
            RECONCILES,
            "Per day, ticket and scan rows equal independent counts over the staging tickets (with a purchaser) "
            "and scans (of a ticket with a holder); one row per type and id.",
            "analytics_pipelines.customers.ticket_events:check_ticket_events",
        ),
        build="analytics_pipelines.customers.ticket_events:customer_ticket_events",
        partitioning="daily",
        partition_column="day",
        serve=True,
        serve_order="user_id",
        venue_column="venue_id",
    ),
    Table(
        name="model_performance",
        group="models",
        grain="one row per model family, model, evaluation, metric and bucket",
        keys=("model_family", "model", "evaluation", "metric", "bucket"),
        tenant_column=None,
        no_tenant_reason="model evaluation metrics; served to analytics.admin only",
        upstream=(
            "churn_model_performance",
            "clv_model_performance",
            "no_show_model_performance",
            "demand_model_performance",
            "pricing_model_performance",
            "attribution_model_performance",
            "sellout_model_performance",
        ),
        build="analytics_pipelines.models.performance:model_performance",
        serve=True,
        description="Every model family's validation metrics in one table (the union of the "
        "`<family>_model_performance` tables).",
        checks=(
            Check(
                "valid_metrics",
                "One row per family, model, metric and bucket; values finite; AUC, Brier, "
                "precision, recall and coverage within [0, 1].",
                "analytics_pipelines.models.performance:check_performance",
                kind="invariants",
            ),
        ),
    ),
)
