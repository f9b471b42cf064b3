"""A results folder read for people: how far it is, its intervals and reading, a gallery sample.

What the report command prints and the Bias page draws, from one call. Reading a folder never
loads its dreams: the gallery is a sample of rows whose PNG paths are handed over, so a folder of
10,000 dreams opens as fast as one of ten.

A sweep or a gallery (no judge, so no intervals) is read as a sheet: its progress, a line per model
and layer, and a contact sheet (a sweep: image by layer; a gallery: each layer's channels) as one
offline HTML page with at most a stated number of pictures.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import bias
from analysis.errors import ConfigError
from analysis.images import load_image
from analysis.labels import DOGS
from analysis.pngmeta import read_png_record
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
    if plan.workload != "bias":
        raise ConfigError(f"{folder} holds a {plan.workload}, which has no judge and no intervals: read it with "
                          f"'study report {folder}' (its contact sheet).")
    rows = results.table()
    table = study_stats.tidy(rows, plan)
    judge = judge or plan.judges[0]
    if judge not in plan.judges:
        raise ConfigError(f"The plan's judges are {', '.join(plan.judges)}, not {judge}.")
    groups = bias.groups_in(table, judge)
    dataset = table.loc[table["judge"] == judge, "judge_data"]
    group = group or (DEFAULT_GROUP[dataset.iloc[0]] if len(dataset) else DOGS)
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
    dreams, originals, records = {}, {}, {}
    for row in table.drop_duplicates("item").sort_values("seed", kind="stable").itertuples():
        key = (row.model, row.depth, row.image)
        if key in dreams:
            continue
        path = results.dream_path(row.dream_sha256)
        dreams[key] = load_image(path)
        records[key] = read_png_record(path).with_extras(image=row.image, study_depth=row.depth)
        if row.image not in originals:
            originals[row.image] = items[row.item].image.load(plan.size)[0]
    planned = results.planned()
    return bias.Study(table, dreams, originals, plan.config, records,
                      cancelled=len(rows) < planned and not results.running(), planned=planned)


# ---------------------------------------------------------------- sweeps and galleries

SHEET_LIMIT = 400
"""Pictures a contact sheet embeds at most (a 10,000-dream sweep still makes a page a browser opens)."""


@dataclass
class Sheet:
    """A sweep's or a gallery's results folder: its rows and how far it is."""

    folder: Path
    plan: Plan
    rows: pd.DataFrame
    planned: int
    state: str  # "running" | "stopped" | "finished"
    skipped: list[str]

    def summary(self) -> pd.DataFrame:
        """One line per model and layer: items done and the mean pixel change (sweep) or activation (gallery)."""
        done = self.rows[self.rows["status"] == "done"]
        measure = "activation" if self.plan.workload == "gallery" else "pixel_change"
        if done.empty:
            return pd.DataFrame(columns=["model", "depth", "layer", "items", measure])
        return (done.groupby(["model", "depth", "layer"], sort=False)
                .agg(items=("item", "size"), **{measure: (measure, "mean")}).reset_index())

    def pictures(self, limit: int = SHEET_LIMIT) -> list[tuple[str, str, Path, str]]:
        """(row label, column label, PNG path, caption) for at most `limit` pictures, in plan order: a sweep's
        rows are images (and seeds), its columns models at layers; a gallery's rows are models at layers."""
        done = self.rows[self.rows["status"] == "done"]
        results = Results(self.folder)
        out = []
        if self.plan.workload == "gallery":
            for r in done.sort_values(["model", "depth", "seed", "channel"], kind="stable").head(limit).itertuples():
                out.append((f"{r.model} · {r.layer} (depth {r.depth:g}) · seed {r.seed}", f"channel {r.channel}",
                            results.dream_path(r.dream_sha256), f"channel {r.channel} · {r.activation:.3g}"))
        else:
            for r in done.head(limit).itertuples():
                out.append((f"{r.image} · seed {r.seed}", f"{r.model} · {r.layer} (depth {r.depth:g})",
                            results.dream_path(r.dream_sha256), f"change {r.pixel_change:.3f}"))
        return out


def sheet(folder: Path | str) -> Sheet:
    """Open a sweep's or a gallery's results folder, finished or still being written."""
    results = Results.open(folder)
    plan = results.plan()
    if plan.workload == "bias":
        raise ConfigError(f"{folder} holds a bias study: read it with its intervals (overview).")
    rows = results.table()
    planned = results.planned()
    state = "running" if results.running() else "finished" if len(rows) >= planned else "stopped"
    skipped = sorted(set(rows.loc[rows["status"] == "skipped", "image"])) if "image" in rows else []
    return Sheet(Path(folder), plan, rows, planned, state, skipped)


def _img(path: Path, caption: str) -> str:
    try:
        data = base64.b64encode(path.read_bytes()).decode()
    except OSError:  # a PNG removed by hand: say so in its cell, keep the page
        return f"<figure><figcaption>{html.escape(caption)} (PNG missing)</figcaption></figure>"
    return (f"<figure style='margin:2px;display:inline-block;text-align:center'><img src='data:image/png;base64,"
            f"{data}' style='width:128px;image-rendering:pixelated'><figcaption style='font-size:11px'>"
            f"{html.escape(caption)}</figcaption></figure>")


def sheet_html(view: Sheet, limit: int = SHEET_LIMIT) -> str:
    """The contact sheet as one self-contained HTML page (PNGs inlined): a sweep as a table of images by
    layers, a gallery as each layer's channels in a row of pictures."""
    pictures = view.pictures(limit)
    kind = "Layer sweep" if view.plan.workload == "sweep" else "Feature-visualisation gallery"
    title = f"{kind} {view.folder.name}"
    notes = [f"{len(view.rows)} of {view.planned} items ({view.state}).",
             f"Showing {len(pictures)} of {int((view.rows['status'] == 'done').sum())} pictures (at most {limit})."]
    if view.skipped:
        notes.append(f"{len(view.skipped)} unreadable image(s) skipped: {', '.join(view.skipped)}.")
    if view.plan.workload == "gallery":
        sections: dict[str, list[str]] = {}
        for row, _column, path, caption in pictures:
            sections.setdefault(row, []).append(_img(path, caption))
        body = "".join(f"<h2>{html.escape(row)}</h2><div>{''.join(cells)}</div>" for row, cells in sections.items())
    else:
        rows = list(dict.fromkeys(p[0] for p in pictures))
        columns = list(dict.fromkeys(p[1] for p in pictures))
        cell = {(p[0], p[1]): _img(p[2], p[3]) for p in pictures}
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        lines = "".join(f"<tr><th>{html.escape(r)}</th>" + "".join(f"<td>{cell.get((r, c), '')}</td>" for c in columns)
                        + "</tr>" for r in rows)
        body = f"<table><tr><th></th>{head}</tr>{lines}</table>"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in notes)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;margin:1em'><h1>{html.escape(title)}</h1><ul>{items}</ul>"
            f"{body}</body></html>")
