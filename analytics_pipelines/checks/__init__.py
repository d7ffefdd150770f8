"""Asset checks that are not a table's own (those come from the registry): the marts' freshness checks."""

from analytics_pipelines.checks.freshness import freshness_checks

checks = [*freshness_checks]
