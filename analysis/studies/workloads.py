"""The workloads a study plan can declare, as the engine (analysis.studies.executors) sees them.

Each is a kind of work item, how a worker computes it and how its rows are stored; the executors
and the driver are shared. A plan's items are dreams (bias: dreamed and judged), kept as Parquet
rows and content-addressed PNGs in a results folder (analysis.studies.store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analysis.models import LoadedModel
from analysis.studies.plan import Item, Plan, expand
from analysis.studies.store import Writer
from analysis.studies.worker import ItemRunner


@dataclass(frozen=True)
class PlanWorkload:
    """A study plan's dreams: expand() gives the items, an ItemRunner computes them, a Writer keeps them."""

    plan: Plan
    kind: str = "bias"

    @property
    def threads(self) -> int:
        return self.plan.threads

    def items(self) -> list[Item]:
        return expand(self.plan)

    def runner(self, device: str | None = None, load: Callable[[str], LoadedModel] | None = None) -> ItemRunner:
        return ItemRunner(self.plan, device, load)

    def store(self, folder: Path, planned: int, resume: bool) -> Writer:
        return Writer(folder, self.plan, planned, resume)


def workload_of(plan: Plan) -> PlanWorkload:
    return PlanWorkload(plan)
