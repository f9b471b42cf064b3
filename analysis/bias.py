"""Dataset bias: what a network's dreams are judged to be, class group by class group.

"ImageNet networks dream of dogs" is folklore with a plausible cause: 118 of ImageNet's
1000 classes are dog breeds. A study measures it instead of asserting it: every image is
dreamed at several relative depths by every model (Google's whole-layer L2 objective), and
a judge classifier scores the original and the dream. Each class group's share of the
judge's probability is recorded, with the classes that emerged.

The judge is itself trained on a dataset, so it is never trusted alone: the originals'
share is the baseline (a ratio, not an absolute share, is the effect), and the untrained
twin of each model (same architecture, random weights) is the control that separates what
the training data put in from what the architecture and the optimisation do anyway.

This module reads a study's tidy table (one row per model x depth x image x judge x group):
its summary, group shares, emergent classes, the reading and the labelled gallery. The study
engine (analysis.studies) dreams and judges, and hands its results over as this table
(analysis.studies.stats.tidy); the judge itself lives in analysis.studies.judging.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from analysis.drawing import caption_cell
from analysis.dream import DreamConfig
from analysis.errors import ConfigError
from analysis.grids import Grid, GridItem, settings_footnote
from analysis.images import tensor_to_pil
from analysis.labels import DOGS
from analysis.provenance import RunRecord
from analysis.wording import model_label, percent, times
from analysis.zoo import UNTRAINED_SUFFIX

DEFAULT_DEPTHS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
"""0.6 is where EfficientNet-Lite0's dog effect peaks (block10: x47 on the cat photo at 320 px)."""
UNCHANGED_PIXELS = 0.002
"""Mean absolute pixel change (0-1 scale) under which a dream left its image as it was."""

COLUMNS = ["model", "training_data", "control", "depth", "layer", "layer_depth", "image", "image_kind",
           "judge", "judge_data", "group", "group_classes", "share_original", "share_dream", "ratio",
           "pixel_change", "original_top", "dream_top", "dream_top_p", "emergent"]


@dataclass
class Study:
    """A study's tidy table (one row per model x depth x image x judge x group) and its pictures
    (analysis.studies.overview.load_study reads a small results folder into one)."""

    table: pd.DataFrame
    dreams: dict[tuple[str, float, str], torch.Tensor]  # (model, depth, image) -> (3, H, W)
    originals: dict[str, torch.Tensor]  # image name -> (3, H, W)
    config: DreamConfig
    records: dict[tuple[str, float, str], RunRecord] = field(default_factory=dict)  # each dream's run record
    cancelled: bool = False
    planned: int = 0  # dreams the study set out to make (model x depth x image)

    @property
    def done(self) -> int:
        return len(self.dreams)


# ---------------------------------------------------------------- summaries


def groups_in(table: pd.DataFrame, judge: str | None = None) -> list[str]:
    """The groups a study measured (for one judge), in the judge's order."""
    sel = table if judge is None else table[table["judge"] == judge]
    return list(dict.fromkeys(sel["group"]))


def _select(table: pd.DataFrame, group: str, judge: str | None) -> pd.DataFrame:
    judge = judge or (table["judge"].iloc[0] if len(table) else None)
    sel = table[(table["judge"] == judge) & (table["group"] == group)]
    if len(table) and sel.empty:
        raise ConfigError(f"The judge {judge} has no group '{group}'. Groups: {', '.join(groups_in(table, judge))}.")
    return sel


def summary(table: pd.DataFrame, group: str = DOGS, judge: str | None = None) -> pd.DataFrame:
    """Per model and depth: mean share of the group for originals and dreams, and their ratio.

    The ratio is of the means over images (not a mean of ratios), so one image whose
    original share is near zero cannot dominate it.
    """
    sel = _select(table, group, judge)
    keys = ["judge", "model", "training_data", "control", "depth", "layer", "layer_depth"]
    out = (sel.groupby(keys, sort=False)
           .agg(share_original=("share_original", "mean"), share_dream=("share_dream", "mean"),
                pixel_change=("pixel_change", "mean"), images=("image", "nunique"))
           .reset_index())
    out.insert(keys.index("layer_depth") + 1, "group", group)
    out["ratio"] = out["share_dream"] / out["share_original"].clip(lower=1e-12)
    return out


def group_shares(table: pd.DataFrame, depth: float, judge: str | None = None) -> pd.DataFrame:
    """Every group's mean share at one depth, per model: what each model dreams of."""
    judge = judge or (table["judge"].iloc[0] if len(table) else None)
    sel = table[(table["judge"] == judge) & (table["depth"] == depth)]
    return (sel.groupby(["model", "control", "group"], sort=False)
            .agg(share_original=("share_original", "mean"), share_dream=("share_dream", "mean"))
            .reset_index())


def emergent_counts(table: pd.DataFrame, judge: str | None = None, top: int = 8) -> pd.DataFrame:
    """Per model, the classes that most often emerged in its dreams (count of dreams)."""
    judge = judge or (table["judge"].iloc[0] if len(table) else None)
    per_dream = table[table["judge"] == judge].drop_duplicates(["model", "depth", "image"])
    per_dream = per_dream.assign(emerged=per_dream["emergent"].str.split("; ")).explode("emerged")
    per_dream = per_dream[per_dream["emerged"].fillna("") != ""]
    counts = (per_dream.groupby(["model", "control", "emerged"], sort=False).size()
              .rename("dreams").reset_index().rename(columns={"emerged": "class_name"}))
    counts = counts.sort_values(["model", "dreams", "class_name"], ascending=[True, False, True], kind="stable")
    return counts.groupby("model", sort=False).head(top).reset_index(drop=True)


# ---------------------------------------------------------------- the reading


def _how_often(ratio: float) -> str:
    if ratio >= 1.5:
        return f"{times(ratio)} as often as the originals"
    if ratio > 1 / 1.5:
        return f"about as often as the originals ({times(ratio)})"
    return f"less often than the originals ({times(ratio)})"


def reading(table: pd.DataFrame, group: str = DOGS, judge: str | None = None) -> list[str]:
    """A few honest sentences computed from the numbers: the effect, its control, the caveats."""
    if table.empty:
        return ["No finished dreams yet: nothing to read."]
    s = summary(table, group, judge)
    judge = s["judge"].iloc[0]
    per_image = _select(table, group, judge)
    lines = []
    for model in s.loc[~s["control"], "model"].unique():
        rows = s[s["model"] == model]
        best = rows.loc[rows["ratio"].idxmax()]
        twin = s[(s["model"] == model + UNTRAINED_SUFFIX) & (s["depth"] == best["depth"])]
        text = (f"At depth {best['depth']:g} ({best['layer']}), {model_label(model, best['training_data'])}'s dreams "
                f"are judged {group} {_how_often(best['ratio'])} ({percent(best['share_dream'])} of the judge's "
                f"probability vs {percent(best['share_original'])})")
        if not twin.empty:
            text += f"; its untrained twin's {times(twin['ratio'].iloc[0])}"
        lines.append(text + ".")
        images = per_image[(per_image["model"] == model) & (per_image["depth"] == best["depth"])]
        if len(images) > 1:
            most = images.loc[images["ratio"].idxmax()]
            lines.append(f"At that depth the {group} share rose in {int((images['ratio'] > 1).sum())} of {len(images)} "
                         f"images (most on {most['image']}: {times(most['ratio'])}).")
        if len(rows) > 1:
            lines.append(f"{model} by depth: " + ", ".join(
                f"{r.depth:g} → {times(r.ratio)}" for r in rows.sort_values("depth").itertuples()) + ".")
    for model in s.loc[s["control"], "model"].unique():
        rows = s[s["model"] == model]
        if model[: -len(UNTRAINED_SUFFIX)] not in set(s["model"]):
            best = rows.loc[rows["ratio"].idxmax()]
            lines.append(f"{model} (control) at most {times(best['ratio'])} (depth {best['depth']:g}).")
        if rows["pixel_change"].max() < UNCHANGED_PIXELS:
            lines.append(f"{model} barely changed the pixels (mean change {rows['pixel_change'].max() * 100:.2g}%): "
                         "its ratio shows an image left as it was, not a dream of something else.")
    images = int(table["image"].nunique())
    if images < 3:
        lines.append(f"From {images} image{'s' if images > 1 else ''} only: an anecdote, not a measurement. "
                     "Add photos or noise seeds.")
    if judge in set(s["model"]):
        lines.append(f"The judge, {judge}, is also a dreamer here: it may recognise its own patterns. "
                     "Another judge is a stricter test.")
    return lines


# ---------------------------------------------------------------- the gallery


def gallery(study: Study, group: str = DOGS, judge: str | None = None) -> Grid:
    """The dreams as a labelled grid: a row per image and model, the original then each depth,
    with the judge's top label and the group's share under every picture."""
    sel = _select(study.table, group, judge)
    judge = judge or (sel["judge"].iloc[0] if len(sel) else "")
    depths = sorted(sel["depth"].unique())
    rows: list[list[GridItem | None]] = []
    labels: list[str] = []
    for image in dict.fromkeys(sel["image"]):
        for k, model in enumerate(dict.fromkeys(sel.loc[sel["image"] == image, "model"])):
            part = sel[(sel["image"] == image) & (sel["model"] == model)].set_index("depth")
            first = part.iloc[0]
            original = GridItem(caption_cell(tensor_to_pil(study.originals[image]),
                                             [first["original_top"], f"{group} {percent(first['share_original'])}"]),
                                title=f"{image} · original") if k == 0 else None
            cells: list[GridItem | None] = [original]
            for depth in depths:
                row = part.loc[depth]
                key = (model, depth, image)
                cells.append(GridItem(
                    caption_cell(tensor_to_pil(study.dreams[key]), [f"{row['dream_top']} {row['dream_top_p']:.0%}",
                                                                   f"{group} {percent(row['share_dream'])}"]),
                    study.records.get(key, RunRecord()), f"{image} · {model} · depth {depth:g} ({row['layer']})"))
            rows.append(cells)
            labels.append(f"{image} · {model}")
    return Grid(rows, labels, ["original"] + [f"depth {d:g}" for d in depths],
                f"What {judge} sees in the dreams: its top label and the '{group}' share",
                settings_footnote(list(study.records.values())))
