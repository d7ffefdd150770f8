"""Dagster asset backfills from the command line: the same object the UI's "Materialize partitions" creates.

`submit_backfill` records a backfill of a job's assets over a partition range in the instance; the daemon's
backfill loop launches its runs (each asset's backfill policy decides how many: ours are single-run, so a
year of days is one run per asset layer, not 365) and the UI shows its progress. Nothing runs in this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

TERMINAL = {
    BulkActionStatus.COMPLETED_SUCCESS: "succeeded",
    BulkActionStatus.COMPLETED_FAILED: "failed",
    BulkActionStatus.FAILED: "failed",
    BulkActionStatus.CANCELED: "canceled",
    BulkActionStatus.COMPLETED: "succeeded",
}


@dataclass(frozen=True)
class Submitted:
    backfill_id: str
    partitions: int
    assets: int


def submit_backfill(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    job_name: str,
    first: str,
    last: str,
    tags: dict[str, str] | None = None,
    title: str | None = None,
    groups: list[str] | None = None,
) -> Submitted:
    """Record an asset backfill of `job_name`'s assets (only those of `groups`, when given) over partitions
    [first, last] for the daemon."""
    job = defs.resolve_job_def(job_name)
    keys = job.partitions_def.get_partition_keys()
    if first not in keys or last not in keys or keys.index(first) > keys.index(last):
        raise ValueError(f"{job_name} partitions run from {keys[0]} to {keys[-1]}; got {first}..{last}")
    names = keys[keys.index(first) : keys.index(last) + 1]
    selection = sorted(job.asset_layer.selected_asset_keys)
    if groups:
        graph = defs.resolve_asset_graph()
        in_job = {graph.get(k).group_name for k in selection}
        unknown = sorted(set(groups) - in_job)
        if unknown:
            raise ValueError(
                f"{job_name} has no asset in group(s) {', '.join(unknown)}; its groups: "
                f"{', '.join(sorted(in_job))}"
            )
        selection = [k for k in selection if graph.get(k).group_name in groups]
    backfill_id = make_new_backfill_id()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=defs.resolve_asset_graph(),
        partition_names=names,
        asset_selection=selection,
        backfill_timestamp=time.time(),
        tags=tags or {},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=title or f"{job_name}{' ' + '+'.join(groups) if groups else ''} {first}..{last}",
        description=f"analytics-pipelines backfill --job {job_name} --from {first} --to {last}"
        + "".join(f" --group {g}" for g in groups or []),
        run_config=None,
    )
    instance.add_backfill(backfill)
    return Submitted(backfill_id, len(names), len(selection))


def backfill_state(instance: dg.DagsterInstance, backfill_id: str) -> tuple[str, list[str]]:
    """('requested' | 'succeeded' | 'failed' | 'canceled', run ids launched so far)."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise KeyError(f"no backfill {backfill_id}")
    runs = instance.get_run_ids(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    return TERMINAL.get(backfill.status, "requested"), list(runs)


def wait_for_backfill(
    instance: dg.DagsterInstance, backfill_id: str, timeout: float, poll: float = 2.0, progress=None
) -> tuple[str, list[str]]:
    """Poll until the backfill is terminal (the daemon must be running); `progress(state, runs)` each poll."""
    deadline = time.monotonic() + timeout
    while True:
        state, runs = backfill_state(instance, backfill_id)
        if progress is not None:
            progress(state, runs)
        if state != "requested":
            return state, runs
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} still {state} after {timeout:.0f} s (runs: {runs})")
        time.sleep(poll)
