"""The forecast rows and the reasons table: which series get a forecast at the last sales day T, and why the
others do not.

A ticket type is forecast when its event is not cancelled, postponed or deleted, starts after T, the type is
active, its sale window runs past T, it has tickets left and it has sold at least one ticket (its sales so far
are the model's main input). Every other ticket type of every event, and every event without ticket types,
gets one row in demand_forecast_reasons: so each (event, ticket type) is in exactly one of the two tables."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from analytics_pipelines.predictions import demand_data as D
from analytics_pipelines.predictions import demand_model as M

FORECAST_COLUMNS = [
    "tenant_id",
    "venue_id",
    "event_id",
    "ticket_type_id",
    "day",
    "horizon_day",
    "tickets_p50",
    "tickets_p10",
    "tickets_p90",
    "model_version",
    "trained_at",
    "as_of",
    "category_id",
    "price_cents",
    "currency",
    "remaining_tickets",
    "capacity",
]
REASON_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "ticket_type_id": pl.String,
    "as_of": pl.Date,
    "reason": pl.String,
    "detail": pl.String,
}
REASONS = ("deleted", "cancelled", "postponed", "past", "inactive", "sale_ended", "sold_out", "no_sales_yet")


def reasons(inp: D.DemandInputs, grid: pl.DataFrame, through: date) -> pl.DataFrame:
    """One row per ticket type not forecast (first matching reason), and per event without ticket types."""
    sold = grid.group_by("ticket_type_id").agg(pl.col("tickets").sum().alias("sold"))
    s = inp.series.join(sold, on="ticket_type_id", how="left").with_columns(pl.col("sold").fill_null(0))
    status = pl.col("status").fill_null("")
    reason = (
        pl.when(pl.col("deleted").fill_null(False))
        .then(pl.lit("deleted"))
        .when(status == "cancelled")
        .then(pl.lit("cancelled"))
        .when((status == "postponed") | pl.col("cancelled_or_postponed").fill_null(False))
        .then(pl.lit("postponed"))
        .when(pl.col("event_day").is_null() | (pl.col("event_day") <= through))
        .then(pl.lit("past"))
        .when(~pl.col("is_active"))
        .then(pl.lit("inactive"))
        .when(pl.col("last_day") <= through)
        .then(pl.lit("sale_ended"))
        .when(pl.col("sold") >= pl.col("quantity"))
        .then(pl.lit("sold_out"))
        .when(pl.col("sold") == 0)
        .then(pl.lit("no_sales_yet"))
    )
    detail = (
        pl.when(reason == "past")
        .then(pl.format("the event started on {} (as of {})", pl.col("event_day"), pl.lit(through)))
        .when(reason == "sale_ended")
        .then(pl.format("sales ended on {}", pl.col("last_day")))
        .when(reason == "sold_out")
        .then(pl.format("{} of {} tickets sold", pl.col("sold"), pl.col("quantity")))
        .when(reason == "no_sales_yet")
        .then(pl.format("no ticket sold by {} (sale window opens {})", pl.lit(through), pl.col("first_day")))
        .otherwise(pl.format("event status {}", status))
    )
    typed = s.with_columns(reason.alias("reason"), detail.alias("detail")).filter(
        pl.col("reason").is_not_null()
    )
    out = typed.select(
        "tenant_id",
        "venue_id",
        "event_id",
        "ticket_type_id",
        pl.lit(through).alias("as_of"),
        "reason",
        "detail",
    )
    no_types = inp.events.select(
        "tenant_id",
        "venue_id",
        "event_id",
        pl.lit(None, pl.String).alias("ticket_type_id"),
        pl.lit(through).alias("as_of"),
        pl.lit("no_ticket_types").alias("reason"),
        pl.lit("the event has no ticket types").alias("detail"),
    )
    return pl.concat([out.cast(REASON_SCHEMA), no_types.cast(REASON_SCHEMA)]).sort(
        "event_id", "ticket_type_id"
    )


def forecast_rows(
    inp: D.DemandInputs,
    grid: pl.DataFrame,
    through: date,
    days: int,
    codes,
    model: M.DemandModel,
    reasons_df: pl.DataFrame,
    version: str,
    trained_at: datetime,
) -> pl.DataFrame:
    """The next `days` days' forecasts of every forecastable series (those without a reason)."""
    rows = D.feature_rows(inp, grid, [through], days, codes)
    rows = rows.join(reasons_df.select("ticket_type_id").drop_nulls(), on="ticket_type_id", how="anti")
    if rows.height == 0:
        return empty_forecast()
    fc = model.predict(rows)
    series = inp.series.select("ticket_type_id", "currency", pl.col("quantity").alias("capacity"))
    return (
        rows.with_columns(fc)
        .join(series, on="ticket_type_id", how="left")
        .select(
            "tenant_id",
            "venue_id",
            "event_id",
            "ticket_type_id",
            "day",
            pl.col("horizon_day").cast(pl.Int64),
            "tickets_p50",
            "tickets_p10",
            "tickets_p90",
            pl.lit(version).alias("model_version"),
            pl.lit(trained_at).alias("trained_at"),
            pl.lit(through).alias("as_of"),
            "category_id",
            pl.col("origin_price_cents").cast(pl.Int64).alias("price_cents"),
            "currency",
            pl.col("remaining").cast(pl.Int64).alias("remaining_tickets"),
            pl.col("capacity").cast(pl.Int64),
        )
        .sort("event_id", "ticket_type_id", "day")
    )


def empty_forecast() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "tenant_id": pl.String,
            "venue_id": pl.String,
            "event_id": pl.String,
            "ticket_type_id": pl.String,
            "day": pl.Date,
            "horizon_day": pl.Int64,
            "tickets_p50": pl.Float64,
            "tickets_p10": pl.Float64,
            "tickets_p90": pl.Float64,
            "model_version": pl.String,
            "trained_at": pl.Datetime("us", "UTC"),
            "as_of": pl.Date,
            "category_id": pl.String,
            "price_cents": pl.Int64,
            "currency": pl.String,
            "remaining_tickets": pl.Int64,
            "capacity": pl.Int64,
        }
    )
