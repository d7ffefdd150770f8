"""Alerting: rules over kpi_snapshots metrics, persisted instances, notifications (no Dagster here).

`rules` is pure (validation, schedule, aggregation, conditions); `engine` works on the operational
database (analytics_pipelines.ops): create/seed rules, evaluate, acknowledge, resolve; `notifier` delivers
the actions of new instances."""

from analytics_pipelines.alerting.engine import (
    DEFAULT_RULES,
    NOT_SEEDED,
    EvaluationSummary,
    acknowledge,
    create_rule,
    evaluate,
    get_instance,
    get_rule,
    resolve,
    seed_default_rules,
    update_rule,
)
from analytics_pipelines.alerting.notifier import Notifier
from analytics_pipelines.alerting.rules import KPI_METRICS, RuleError, validate_rule

__all__ = [
    "DEFAULT_RULES",
    "KPI_METRICS",
    "NOT_SEEDED",
    "EvaluationSummary",
    "Notifier",
    "RuleError",
    "acknowledge",
    "create_rule",
    "evaluate",
    "get_instance",
    "get_rule",
    "resolve",
    "seed_default_rules",
    "update_rule",
    "validate_rule",
]
