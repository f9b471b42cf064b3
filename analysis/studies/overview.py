"""A results folder read for people: how far it is, its intervals and reading, a gallery sample.

What the report command prints and the Bias page draws, from one call. Reading a folder never
loads its dreams: the gallery is a sample of rows whose PNG paths are handed over, so a folder of
10,000 dreams opens as fast as one of ten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import bias
from analysis.errors import ConfigError
from analysis.images import load_image
from analysis.pngmeta import read_png_metadata
from analysis.studies import stats as study_stats
from analysis.studies.judging import DEFAULT_GROUP
from analysis.studies.plan import Plan, expand
from analysis.studies.store import Results


@dataclass(frozen=True)
class Picture:
    path: Path
    caption: str


@dataclass
class Overview:
    folder: Path
    plan: Plan
    rows: int
    planned: int
    state: str  # "running" | "stopped" | "finished"
    skipped: list[str]  # unreadable images
    table: pd.DataFrame  # analysis.bias's tidy table (+ seed, item, dream_sha256)
    judge: str
    group: str
    groups: list[str]
    over: str
    reading: study_stats.Reading

    def emergent(self) -> pd.DataFrame:
        return bias.emergent_counts(self.table, self.judge)

    def gallery(self, count: int = 12, seed: int = 0) -> list[Picture]:
        """count dreams sampled from the rows (the same sample for the same rows), with their verdicts."""
        rows = self.table[(self.table["judge"] == self.judge) & (self.table["group"] == self.group)]
        picks = rows.sample(min(count, len(rows)), random_state=seed) if len(rows) else rows
        results = Results(self.folder)
        return [Picture(results.dream_path(r.dream_sha256),
                        f"{r.image} · {r.model} · depth {r.depth:g} ({r.layer}) · seed {r.seed}  \n"
                        f"**{r.dream_top}** {r.dream_top_p:.0%} · {self.group} {r.share_dream:.1%} "
                        f"(original {r.share_original:.1%})")
                for r in picks.sort_values(["image", "model", "depth", "seed"]).itertuples()]


def overview(folder: Path | str, group: str | None = None, judge: str | None = None, over: str = "images",
             resamples: int = study_stats.RESAMPLES) -> Overview:
    """Open a results folder (finished or still being written) and read it for one judge and group."""
    results = Results.open(folder)
    plan = results.plan()
    rows = results.table()
    table = study_stats.tidy(rows, plan)
    judge = judge or plan.judges[0]
    if judge not in plan.judges:
        raise ConfigError(f"The plan's judges are {', '.join(plan.judges)}, not {judge}.")
    groups = bias.groups_in(table, judge)
    dataset = table.loc[table["judge"] == judge, "judge_data"]
    group = group or (DEFAULT_GROUP[dataset.iloc[0]] if len(dataset) else bias.DOGS)
    if len(table) and group not in groups:
        raise ConfigError(f"The judge {judge} has no group '{group}'. Groups: {', '.join(groups)}.")
    planned = results.planned()
    state = "running" if results.running() else "finished" if len(rows) >= planned else "stopped"
    skipped = sorted(set(rows.loc[rows["status"] == "skipped", "image"]))
    return Overview(Path(folder), plan, len(rows), planned, state, skipped, table, judge, group, groups, over,
                    study_stats.reading(table, group, judge, over, resamples))


def load_study(folder: Path | str) -> bias.Study:
    """A small results folder as an in-memory bias.Study: every dream and original loaded, for the page's
    gallery tabs and the labelled gallery grid. A dream is keyed by model, depth and image, so a plan of
    one seed is meant (the first seed's dream stands for the others); a large folder is read by overview()."""
    results = Results.open(folder)
    plan = results.plan()
    rows = results.table()
    table = study_stats.tidy(rows, plan)
    items = {item.id: item for item in expand(plan)}
    dreams, originals, metadata = {}, {}, {}
    for row in table.drop_duplicates("item").sort_values("seed", kind="stable").itertuples():
        key = (row.model, row.depth, row.image)
        if key in dreams:
            continue
        path = results.dream_path(row.dream_sha256)
        dreams[key] = load_image(path)
        metadata[key] = {**read_png_metadata(path), "image": row.image, "study_depth": row.depth}
        if row.image not in originals:
            originals[row.image] = items[row.item].image.load(plan.size)[0]
    planned = results.planned()
    return bias.Study(table, dreams, originals, plan.config, metadata,
                      cancelled=len(rows) < planned and not results.running(), planned=planned)
