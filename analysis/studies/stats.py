"""Statistics a researcher can cite: bootstrap 95% intervals for a class group's share ratio.

The effect is the ratio of the group's mean share in the dreams to its mean share in the originals
(a ratio of means, as analysis.bias.summary: one image whose original share is near zero cannot
dominate it). Its uncertainty comes from a percentile bootstrap over the units it was measured on:
images (each image's share averaged over its seeds first) or seeds (each seed averaged over the
images). A paired difference resamples the same units for both models (same image, seed and
settings), and the untrained twin is the control: when the interval of the difference between a
model and its twin holds zero, the effect cannot be told apart from what the architecture and the
optimisation do without any training data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import labels as label_files
from analysis import zoo
from analysis.bias import COLUMNS
from analysis.studies.judging import is_control, twin_of
from analysis.studies.plan import Plan
from analysis.studies.worker import judge_column, share_column
from analysis.wording import model_label, times

RESAMPLES = 2000
LEVEL = 0.95
CHUNK_DRAWS = 2_000_000
"""Unit indices drawn and gathered at once (16 MB of int64): a 100,000-image table's 2,000 resamples
go through in chunks of 20 resamples instead of one 200-million-entry matrix."""
UNITS = {"images": "image", "seeds": "seed"}
TIDY_EXTRA = ["seed", "item", "dream_sha256"]


def tidy(rows: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """A results table (one row per item) as analysis.bias's tidy table: one row per item, judge and group.

    Skipped items (unreadable images) have no shares and are left out. The columns are
    analysis.bias.COLUMNS plus seed, item and dream_sha256, so bias.summary, reading,
    group_shares and emergent_counts read a study's results.
    """
    done = rows[rows["status"] == "done"]
    parts = []
    for judge in plan.judges:
        dataset = zoo.get_spec(judge).labels
        for group, indices in label_files.class_groups(dataset).items():
            original = done[share_column("original", judge, group)].astype(float)
            dream = done[share_column("dream", judge, group)].astype(float)
            parts.append(pd.DataFrame({
                "model": done["model"], "training_data": done["training_data"], "control": done["control"],
                "depth": done["depth"], "layer": done["layer"], "layer_depth": done["layer_depth"],
                "image": done["image"], "image_kind": done["image_kind"], "judge": judge, "judge_data": dataset,
                "group": group, "group_classes": len(indices), "share_original": original, "share_dream": dream,
                "ratio": dream / original.clip(lower=1e-12), "pixel_change": done["pixel_change"],
                "original_top": done[judge_column("original_top", judge)],
                "dream_top": done[judge_column("dream_top", judge)],
                "dream_top_p": done[judge_column("dream_top_p", judge)],
                "emergent": done[judge_column("emergent", judge)], "seed": done["seed"], "item": done["item"],
                "dream_sha256": done["dream_sha256"]}))
    if not parts or done.empty:
        return pd.DataFrame(columns=COLUMNS + TIDY_EXTRA)
    return pd.concat(parts, ignore_index=True)[COLUMNS + TIDY_EXTRA]


# ---------------------------------------------------------------- the bootstrap


def _unit_means(rows: pd.DataFrame, over: str) -> pd.DataFrame:
    """Each unit's mean shares (an image over its seeds, or a seed over its images), sorted by unit."""
    if over not in UNITS:
        raise ValueError(f"over must be one of {', '.join(UNITS)}")
    return rows.groupby(UNITS[over], sort=True)[["share_original", "share_dream"]].mean()


def _draws(count: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """(resamples, count) unit indices drawn with replacement, a few resamples (rows) at a time: the same
    draws for every cell of a table. One generator draws the chunks in turn, so they are, row for row, the
    draws of one (resamples, count) call (numpy's bounded integers consume the stream per value)."""
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_DRAWS // max(count, 1))
    for start in range(0, resamples, rows):
        yield rng.integers(0, count, size=(min(rows, resamples - start), count))


def _bootstrap(statistic: Callable[[np.ndarray], np.ndarray], count: int, resamples: int, seed: int) -> np.ndarray:
    """statistic(draws) -> one value per resample, over every resample, holding about CHUNK_DRAWS draws at once."""
    return np.concatenate([statistic(draws) for draws in _draws(count, resamples, seed)])


def _ratios(means: pd.DataFrame, draws: np.ndarray) -> np.ndarray:
    original = means["share_original"].to_numpy()[draws].mean(axis=1)
    dream = means["share_dream"].to_numpy()[draws].mean(axis=1)
    return dream / np.maximum(original, 1e-12)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _select(table: pd.DataFrame, group: str, judge: str | None) -> pd.DataFrame:
    judge = judge or (table["judge"].iloc[0] if len(table) else None)
    return table[(table["judge"] == judge) & (table["group"] == group)]


def ratio_intervals(table: pd.DataFrame, group: str, judge: str | None = None, over: str = "images",
                    resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> pd.DataFrame:
    """Per model and depth: the dream/original ratio of the group's mean share and its bootstrap interval.

    Columns: judge, group, model, training_data, control, depth, layer, over, units, share_original,
    share_dream, ratio, low, high. With one unit the interval is the point itself (nothing to resample).
    """
    sel = _select(table, group, judge)
    out = []
    for (model, depth), rows in sel.groupby(["model", "depth"], sort=False):
        means = _unit_means(rows, over)
        point = means["share_dream"].mean() / max(means["share_original"].mean(), 1e-12)
        low, high = _interval(_bootstrap(lambda draws, m=means: _ratios(m, draws), len(means), resamples, seed),
                              level)
        first = rows.iloc[0]
        out.append({"judge": first["judge"], "group": group, "model": model, "training_data": first["training_data"],
                    "control": bool(first["control"]), "depth": depth, "layer": first["layer"], "over": over,
                    "units": len(means), "share_original": float(means["share_original"].mean()),
                    "share_dream": float(means["share_dream"].mean()), "ratio": float(point), "low": low,
                    "high": high})
    columns = ["judge", "group", "model", "training_data", "control", "depth", "layer", "over", "units",
               "share_original", "share_dream", "ratio", "low", "high"]
    return pd.DataFrame(out, columns=columns).sort_values(["model", "depth"], kind="stable").reset_index(drop=True)


def paired_difference(table: pd.DataFrame, group: str, model_a: str, model_b: str, judge: str | None = None,
                      over: str = "images", resamples: int = RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> pd.DataFrame:
    """Per depth: ratio of A minus ratio of B, the same units resampled for both (paired), with its interval.

    Only the units both models dreamed (same image or seed) count. Columns: depth, model_a, model_b,
    units, ratio_a, ratio_b, difference, low, high.
    """
    sel = _select(table, group, judge)
    out = []
    depths_a, depths_b = (set(sel.loc[sel["model"] == m, "depth"]) for m in (model_a, model_b))
    for depth in sorted(depths_a & depths_b):
        a = _unit_means(sel[(sel["model"] == model_a) & (sel["depth"] == depth)], over)
        b = _unit_means(sel[(sel["model"] == model_b) & (sel["depth"] == depth)], over)
        shared = a.index.intersection(b.index)
        if shared.empty:
            continue
        a, b = a.loc[shared], b.loc[shared]
        differences = _bootstrap(lambda draws, a=a, b=b: _ratios(a, draws) - _ratios(b, draws), len(shared),
                                 resamples, seed)
        low, high = _interval(differences, level)
        ratio_a = a["share_dream"].mean() / max(a["share_original"].mean(), 1e-12)
        ratio_b = b["share_dream"].mean() / max(b["share_original"].mean(), 1e-12)
        out.append({"depth": depth, "model_a": model_a, "model_b": model_b, "units": len(shared),
                    "ratio_a": float(ratio_a), "ratio_b": float(ratio_b), "difference": float(ratio_a - ratio_b),
                    "low": low, "high": high})
    return pd.DataFrame(out, columns=["depth", "model_a", "model_b", "units", "ratio_a", "ratio_b", "difference",
                                      "low", "high"])


def control_differences(table: pd.DataFrame, group: str, judge: str | None = None, over: str = "images",
                        resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Each trained model against its untrained twin (when the study has it), depth by depth."""
    names = set(table["model"])
    parts = [paired_difference(table, group, name, twin_of(name), judge, over, resamples, seed)
             for name in dict.fromkeys(table["model"]) if not is_control(name) and twin_of(name) in names]
    return pd.concat(parts, ignore_index=True) if parts else paired_difference(table, group, "", "", judge, over)


# ---------------------------------------------------------------- the reading


def _span(low: float, high: float, unit: str = "x") -> str:
    if unit == "x":
        return f"{times(low)} to {times(high)}"
    return f"{low:+.2g} to {high:+.2g}"


@dataclass(frozen=True)
class Reading:
    lines: list[str]
    intervals: pd.DataFrame
    controls: pd.DataFrame


def reading(table: pd.DataFrame, group: str, judge: str | None = None, over: str = "images",
            resamples: int = RESAMPLES, seed: int = 0) -> Reading:
    """Sentences that quote the intervals, and say plainly when an effect cannot be told from the control."""
    intervals = ratio_intervals(table, group, judge, over, resamples, seed)
    controls = control_differences(table, group, judge, over, resamples, seed)
    if intervals.empty:
        return Reading(["No finished dreams yet: nothing to read."], intervals, controls)
    unit = UNITS[over]
    lines = []
    for model in intervals.loc[~intervals["control"], "model"].unique():
        rows = intervals[intervals["model"] == model]
        best = rows.loc[rows["ratio"].idxmax()]
        units = int(best["units"])
        text = (f"At depth {best['depth']:g} ({best['layer']}), {model_label(model, best['training_data'])}'s dreams "
                f"carry '{group}' {times(best['ratio'])} the originals' share")
        text += (f" (95% CI {_span(best['low'], best['high'])}, over {units} {over})" if units > 1
                 else f" (one {unit} only: no interval)")
        twin = intervals[(intervals["model"] == twin_of(model)) & (intervals["depth"] == best["depth"])]
        if not twin.empty:
            t = twin.iloc[0]
            text += f"; its untrained twin {times(t['ratio'])}"
            text += f" ({_span(t['low'], t['high'])})" if int(t["units"]) > 1 else ""
        lines.append(text + ".")
        diff = controls[(controls["model_a"] == model) & (controls["depth"] == best["depth"])]
        if not diff.empty and units > 1:
            d = diff.iloc[0]
            if d["low"] > 0 or d["high"] < 0:
                lines.append(f"Against the control the ratio differs by {d['difference']:+.2g} (95% CI "
                             f"{_span(d['low'], d['high'], '')}): the interval excludes zero, so the effect comes "
                             "from the training data, not from the architecture or the optimisation alone.")
            else:
                lines.append(f"Against the control the ratio differs by {d['difference']:+.2g} (95% CI "
                             f"{_span(d['low'], d['high'], '')}): the interval holds zero, so at this depth the "
                             "effect cannot be told apart from the control.")
        if len(rows) > 1:
            lines.append(f"{model} by depth: " + ", ".join(
                f"{r.depth:g} → {times(r.ratio)}" + (f" [{_span(r.low, r.high)}]" if r.units > 1 else "")
                for r in rows.sort_values("depth").itertuples()) + ".")
    for model in intervals.loc[intervals["control"], "model"].unique():
        trained = model.removesuffix(zoo.UNTRAINED_SUFFIX)
        if trained not in set(intervals["model"]):
            rows = intervals[intervals["model"] == model]
            best = rows.loc[rows["ratio"].idxmax()]
            lines.append(f"{model} (control) at most {times(best['ratio'])} (depth {best['depth']:g}).")
    trained = list(intervals.loc[~intervals["control"], "model"].unique())
    for a, b in itertools.pairwise(trained):
        pair = paired_difference(table, group, a, b, judge, over, resamples, seed)
        if not pair.empty and int(pair["units"].max()) > 1:
            top = pair.loc[pair["difference"].abs().idxmax()]
            holds = top["low"] <= 0 <= top["high"]
            lines.append(f"{a} minus {b} at depth {top['depth']:g}: {top['difference']:+.2g} (95% CI "
                         f"{_span(top['low'], top['high'], '')}, paired over {int(top['units'])} {over})"
                         + (": the two cannot be told apart." if holds else "."))
    count = int(table[UNITS[over]].nunique())
    if count < 3:
        lines.append(f"From {count} {unit}{'s' if count > 1 else ''} only: an anecdote, not a measurement. "
                     f"Add {over}.")
    return Reading(lines, intervals, controls)
