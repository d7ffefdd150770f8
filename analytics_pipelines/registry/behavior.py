"""Behavior (issue 18): MongoDB behavioral data, funnel, attribution, campaigns.

The domain's registry entries (see docs/adding-a-mart.md and docs/behavior.md); default_registry() includes
them. Builders: analytics_pipelines/behavior/steps.py."""

from __future__ import annotations

from analytics_pipelines.registry import cubes_customers as cubes
from analytics_pipelines.registry.model import Check, Table

_S = "analytics_pipelines.behavior.steps"
_DAILY = dict(group="behavior", partitioning="daily", partition_column="day", kinds=("polars",))


def _out(name: str, producer: str, description: str, grain: str, keys: tuple[str, ...], **kw) -> Table:
    return Table(
        name=name, description=description, grain=grain, keys=keys, produced_by=producer, **{**_DAILY, **kw}
    )


TABLES: tuple[Table, ...] = (
    Table(
        name="raw_behavior_events",
        description="Behavioral events from MongoDB (user_behavior page views, raw_analytics web events, "
        "analytics_events mobile events; files or TT_MONGO_URL), one normalization for both spellings of "
        "every field, daily partitions by event time (an explicit event-time field wins over `timestamp`, "
        "which some writers overwrote with the write time). Quarantine and ledger beside it.",
        grain="one row per accepted behavioral document",
        keys=("doc_id",),
        venue_column="venue_id",
        upstream=("stg_venues",),
        build=f"{_S}:ingest_behavior",
        produces=(
            "raw_campaign_touchpoints",
            "raw_campaign_performance",
            "behavior_quarantine",
            "behavior_ledger",
        ),
        checks=(
            Check(
                "ledger_accounts_for_every_document",
                "Documents read = accepted + quarantined, and the tables hold exactly the accepted ones.",
                f"{_S}:check_ledger",
                kind="invariants",
            ),
            Check(
                "behavior_fresh",
                "The newest event is recent and no day of the run is empty (TTLs 90/180 days at the source).",
                f"{_S}:check_freshness",
                kind="invariants",
                why_not_blocking="a late or empty day must not stop the runs that would ingest it; the "
                "failure is the alert (a day missed beyond the source's TTL is lost)",
            ),
        ),
        **_DAILY,
    ),
    _out(
        "raw_campaign_touchpoints",
        "raw_behavior_events",
        "Campaign touchpoints (impression, click, visit, conversion) per customer (hashed id), channel and "
        "campaign, by event time; channel spellings repaired, unknown channels quarantined.",
        "one row per accepted touchpoint document",
        ("doc_id",),
        venue_column="venue_id",
    ),
    _out(
        "raw_campaign_performance",
        "raw_behavior_events",
        "Daily campaign metrics as the ad platforms reported them: impressions, clicks, last-touch "
        "conversions and revenue, spend in cents (negative spend quarantined).",
        "one row per campaign and day",
        ("campaign_id", "day"),
        serve=True,
        venue_column="venue_id",
    ),
    _out(
        "behavior_quarantine",
        "raw_behavior_events",
        "Behavioral documents not used, with a reason (no_event_time, unparseable, late_write, missing_id, "
        "unknown_channel, unknown_action, unknown_event_type, unknown_venue, negative_spend, duplicate) "
        "and the projected document as Extended JSON.",
        "one row per rejected document",
        (),
        tenant_column="tenant_id",
    ),
    _out(
        "behavior_ledger",
        "raw_behavior_events",
        "Per day and collection: documents placed in the day, accepted, quarantined, repaired.",
        "one row per day and collection",
        ("day", "collection"),
        tenant_column=None,
        no_tenant_reason="counts documents across tenants (an unknown venue has no tenant)",
    ),
    Table(
        name="raw_campaigns",
        group="behavior",
        kinds=("polars",),
        description="Campaigns of every CampaignType (email, sms, push, social, display, search, "
        "multi_channel) with status, budget, dates and channels; a snapshot each run.",
        grain="one row per campaign",
        keys=("campaign_id",),
        venue_column="venue_id",
        upstream=("stg_venues",),
        build=f"{_S}:campaigns",
    ),
    Table(
        name="conversion_funnel",
        description="Sessions -> event page views -> cart -> checkout -> purchase per venue, event, day, "
        "channel and device, with step conversion and drop-off (nested steps; NULL ratios on zero "
        "denominators). Purchases reconciled to fct_orders in funnel_order_reconciliation.",
        grain="one row per venue, event, day, channel and device with sessions",
        keys=("tenant_id", "venue_id", "event_id", "day", "channel", "device"),
        serve=True,
        venue_column="venue_id",
        cube=cubes.CONVERSION_FUNNEL,
        upstream=("raw_behavior_events", "fct_orders"),
        build=f"{_S}:funnel",
        produces=("funnel_order_reconciliation",),
        checks=(
            Check(
                "funnel_reconciles_to_orders",
                "Steps never grow down the funnel; matched + untracked = paid online orders and matched + "
                "unmatched = tracked purchases per venue and day.",
                f"{_S}:check_funnel",
            ),
        ),
        **_DAILY,
    ),
    _out(
        "funnel_order_reconciliation",
        "conversion_funnel",
        "Per venue and day: behavioral purchase events against recognized online orders (web, mobile_app) "
        "of fct_orders: matched, untracked orders, unmatched purchase events, tracking coverage.",
        "one row per venue and day",
        ("tenant_id", "venue_id", "day"),
        serve=True,
        venue_column="venue_id",
    ),
    Table(
        name="campaign_attribution",
        description="Attributed revenue of every recognized order with a conversion touchpoint under five "
        "models (first_touch, last_touch, linear, time_decay 2^(-days/7), data_driven Shapley), per channel "
        "and campaign, configurable lookback (TT_ATTRIBUTION_LOOKBACK_DAYS); integer cents summing exactly "
        "to the order's revenue.",
        grain="one row per order, model, channel and campaign",
        keys=("order_id", "model", "channel", "campaign_id"),
        serve=True,
        venue_column="venue_id",
        upstream=("raw_campaign_touchpoints", "fct_orders"),
        build=f"{_S}:attribution",
        produces=(
            "attribution_channel_effects",
            "campaign_attribution_exclusions",
            "attribution_model_performance",
        ),
        checks=(
            Check(
                "attribution_sums_to_order_revenue",
                "For every order and model the attributed cents sum to the order's revenue and credits to 1.",
                f"{_S}:check_attribution",
            ),
            Check(
                "beats_constant_rate_baseline",
                "Per tenant, the data-driven model's holdout Brier score is below the constant-rate baseline's; "
                "when it is not, the run rewrites none of the attribution's partitions (the stored ones stay "
                "readable; its evaluation is written) and the campaign tables below are not rebuilt.",
                f"{_S}:check_beats_baseline",
                kind="invariants",
            ),
        ),
        **_DAILY,
    ),
    _out(
        "attribution_channel_effects",
        "campaign_attribution",
        "The data-driven model per tenant: each channel's estimated incremental effect on conversion "
        "(Shapley value of the fitted conversion-rate game), its rank, and the seed's fixed-weight ranking "
        "for comparison; training window, version, trained_at.",
        "one row per tenant, channel and training day",
        ("tenant_id", "channel", "day"),
        serve=True,  # the marketing what-if reads it (POST /v1/predictions/what-if)
    ),
    _out(
        "attribution_model_performance",
        "campaign_attribution",
        "The data-driven attribution model's holdout evaluation per tenant (bucket) and training day (the "
        "run's last day, as_of): Brier score and ROC AUC of the fitted conversion-rate game on a held-out "
        "fifth of the training paths, beside the constant-rate baseline's; model version, trained_at, "
        "training window, features. Written even when the gate refuses the model (the refusal is on "
        "record). model_performance takes its latest training day.",
        "one row per model, metric, tenant and training day",
        ("model", "metric", "bucket", "day"),
        tenant_column=None,
        no_tenant_reason="model evaluation metrics; the tenant is the bucket (the model_performance layout)",
    ),
    _out(
        "campaign_attribution_exclusions",
        "campaign_attribution",
        "Conversions not attributed, with the reason (order_not_recognized: no recognized order in "
        "fct_orders; duplicate_conversion).",
        "one row per excluded conversion",
        (),
    ),
    Table(
        name="campaign_roi",
        group="behavior",
        kinds=("polars",),
        description="Per campaign and attribution model: real spend, impressions, clicks, the platform's "
        "conversions, attributed conversions and revenue, ROI %, CPA (cents) and ROAS; NULL ratios on zero "
        "spend or zero conversions.",
        grain="one row per campaign and model",
        keys=("campaign_id", "model"),
        serve=True,
        venue_column="venue_id",
        upstream=("campaign_attribution", "raw_campaign_performance", "raw_campaigns"),
        build=f"{_S}:roi",
        produces=("campaign_channels",),
    ),
    Table(
        name="campaign_channels",
        group="behavior",
        kinds=("polars",),
        description="Per venue, model and channel: attributed conversions and revenue, spend (multi-channel "
        "campaigns split evenly), ROI, CPA, ROAS (NULL on zero spend or conversions).",
        grain="one row per venue, model and channel",
        keys=("tenant_id", "venue_id", "model", "channel"),
        serve=True,
        venue_column="venue_id",
        produced_by="campaign_roi",
    ),
)
