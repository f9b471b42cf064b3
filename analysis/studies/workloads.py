"""The workloads a study plan can declare, as the engine (analysis.studies.executors) sees them.

Each is a kind of work item, how a worker computes it and how its rows are stored; the executors
and the driver are shared. A plan's items are dreams (bias: dreamed and judged; sweep: dreamed
only) or channels (gallery: rendered by feature visualisation), kept as Parquet rows and
content-addressed PNGs in a results folder (analysis.studies.store). The unit atlas's example pass
is the other workload (analysis.atlas.AtlasWorkload), with its own store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analysis.studies.plan import ChannelItem, Item, Plan, expand
from analysis.studies.store import Writer
from analysis.studies.worker import ChannelRunner, ItemRunner
from analysis.zoo import LoadedModel


@dataclass(frozen=True)
class PlanWorkload:
    """A study plan's items: expand() lists them, an ItemRunner (bias, sweep: dreams; a sweep's plan has
    no judge, so its rows have no verdicts) or a ChannelRunner (gallery) computes them, a Writer keeps them."""

    plan: Plan

    @property
    def kind(self) -> str:
        return self.plan.workload

    @property
    def threads(self) -> int:
        return self.plan.threads

    def items(self) -> list[Item] | list[ChannelItem]:
        return expand(self.plan)

    def runner(self, device: str | None = None,
               load: Callable[[str], LoadedModel] | None = None) -> ItemRunner | ChannelRunner:
        if self.plan.workload == "gallery":
            return ChannelRunner(self.plan, device, load)
        return ItemRunner(self.plan, device, load)

    def store(self, folder: Path, planned: int, resume: bool) -> Writer:
        return Writer(folder, self.plan, planned, resume)


def workload_of(plan: Plan) -> PlanWorkload:
    return PlanWorkload(plan)
