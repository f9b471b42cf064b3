"""The study engine: plans and item ids, the results store (atomic, resumable, locked), the in-process
executor, skipped images, a driver killed with SIGKILL, the bootstrap against a hand computation, the CLI."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import bias, figures
from analysis.cli import main
from analysis.dream import preset
from analysis.errors import ConfigError, ImageError
from analysis.pngmeta import read_png_metadata
from analysis.studies import executors, store
from analysis.studies import stats as study_stats
from analysis.studies.plan import Plan, expand
from analysis.studies.store import Results, StoreError, Writer

ROOT = Path(__file__).resolve().parents[2]
TINY = preset("quick", octaves=1, iterations=2)
VOLATILE = ["seconds"]  # the only field that differs between two runs of one item on one machine


def tiny_plan(**changes: object) -> Plan:
    """Lite0 and its twin at one depth, a photo and a noise seed, two seeds: 8 dreams of 2 steps at 64 px."""
    plan = Plan(models=("efficientnet_lite0", "efficientnet_lite0-untrained"), depths=(0.6,), images=("coffee",),
                noise_seeds=1, seeds=(0, 1), config=TINY, preset="quick", size=64, threads=1)
    return replace(plan, **changes).validate()


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=VOLATILE).sort_values("item").reset_index(drop=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Plan, Path, executors.RunSummary]:
    """The tiny plan, run uninterrupted in this process: the reference every other run must equal."""
    plan, folder = tiny_plan(), tmp_path_factory.mktemp("study") / "results"
    return plan, folder, executors.run(plan, folder, batch_size=3)


# ---------------------------------------------------------------- plans


def test_a_plan_round_trips_through_json_and_its_ids_are_stable(tmp_path: Path) -> None:
    plan = tiny_plan()
    again = Plan.from_json(plan.to_json())
    assert again == plan
    items = expand(plan)
    assert len(items) == 2 * 1 * 2 * 2 and len({i.id for i in items}) == len(items)
    assert [i.id for i in expand(again)] == [i.id for i in items]
    changed = expand(tiny_plan(size=72))
    assert not {i.id for i in changed} & {i.id for i in items}  # another setting: other dreams
    more = expand(tiny_plan(seeds=(0, 1, 2)))
    assert {i.id for i in items} < {i.id for i in more}  # a seed added: the old items keep their ids
    layers = expand(tiny_plan(depths=(), layers=("block10",)))
    assert {(i.layer_alias, i.depth) for i in layers} == {("block10", 0.588)}


def test_images_come_from_folders_globs_files_and_samples(tmp_path: Path, cat_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/one.jpg", "a/deep/two.jpg", "a/notes.txt", "b.jpg"):
        (tmp_path / name).write_bytes(cat_path.read_bytes() if name.endswith(".jpg") else b"text")
    plan = tiny_plan(images=(str(tmp_path / "a"), str(tmp_path / "*.jpg"), "coffee", "samples"), noise_seeds=2,
                     models=("efficientnet_lite0",), seeds=(0,))
    names = [i.image.name for i in expand(plan)]
    assert names[:4] == ["deep/two.jpg", "one.jpg", "b.jpg", "coffee"]
    assert names[-2:] == ["noise seed 0", "noise seed 1"]
    assert names.count("coffee") == 1 and "cat_chelsea" in names and "astronaut" in names


@pytest.mark.parametrize(("change", "message"), [
    ({"models": ()}, "at least one model"),
    ({"models": ("nonet",)}, "nonet"),
    ({"depths": (1.5,)}, "Depth 1.5 is out of range"),
    ({"images": (), "noise_seeds": 0}, "Choose images"),
    ({"seeds": (1, 1)}, "distinct"),
    ({"judges": ("efficientnet_lite0-untrained",)}, "random weights"),
    ({"objective": "channels"}, "Unknown objective"),
    ({"size": 8}, "out of range"),
])
def test_bad_plans_are_one_line_errors(change: dict, message: str) -> None:
    with pytest.raises((ConfigError, ImageError), match=message):
        tiny_plan(**change)


def test_bad_plan_files_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    for text, message in [("{", "not valid JSON"), ("[]", "not a study plan"),
                          (json.dumps({"models": ["efficientnet_lite0"], "speed": 3}), "Unknown plan field"),
                          (json.dumps({"models": ["efficientnet_lite0"], "size": "big", "depths": [0.5],
                                       "noise_seeds": 1}), "malformed")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            Plan.load(path)
    with pytest.raises(ConfigError, match="No plan file"):
        Plan.load(tmp_path / "missing.json")
    with pytest.raises(ImageError, match="No bundled sample 'nothing'"):
        expand(tiny_plan(images=("nothing",)))


# ---------------------------------------------------------------- running and the store


def test_every_item_has_one_row_its_dream_and_the_judges_shares(finished) -> None:
    plan, folder, summary = finished
    results = Results.open(folder)
    table = results.table()
    items = expand(plan)
    assert summary.done == summary.written == summary.planned == len(items) == len(table) == results.planned()
    assert sorted(table["item"]) == sorted(i.id for i in items)
    assert len(results.parts()) == 3  # 8 items in batches of 3
    assert set(table["status"]) == {"done"} and set(table["threads"]) == {1}
    assert Plan.from_json((folder / store.PLAN_FILE).read_text()) == plan
    groups = [c for c in table.columns if c.startswith("dream:efficientnet_lite0:")]
    assert len(groups) == 10 and table[groups].sum(axis=1).sub(1).abs().lt(1e-4).all()
    row = table.iloc[0]
    png = results.dream_path(row["dream_sha256"]).read_bytes()
    metadata = read_png_metadata(png)
    assert metadata["study_item"] == row["item"] and metadata["recipe"]["max_side"] == 64
    assert not results.running()


def test_results_read_as_the_bias_tidy_table(finished) -> None:
    plan, folder, _ = finished
    table = study_stats.tidy(Results.open(folder).table(), plan)
    assert list(table.columns) == bias.COLUMNS + study_stats.TIDY_EXTRA
    assert len(table) == 8 * 10  # items x ImageNet groups
    assert set(table.loc[table["group"] == "dogs", "group_classes"]) == {118}
    summary = bias.summary(table, "dogs")
    assert set(summary["model"]) == {"efficientnet_lite0", "efficientnet_lite0-untrained"}
    assert bias.reading(table, "dogs")[0].startswith("At depth 0.6 (block10), efficientnet_lite0 (ImageNet)")


def test_a_rerun_needs_resume_and_another_plan_needs_another_folder(finished) -> None:
    plan, folder, _ = finished
    with pytest.raises(StoreError, match="add --resume"):
        executors.run(plan, folder)
    again = executors.run(plan, folder, resume=True)
    assert again.written == 0 and again.done_before == 8
    with pytest.raises(StoreError, match="another plan"):
        executors.run(tiny_plan(seeds=(5,)), folder, resume=True)


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    plan = tiny_plan()
    with Writer(tmp_path / "r", plan, 8, resume=False) as writer:
        assert Results.open(tmp_path / "r").running()
        with pytest.raises(StoreError, match="Another study is writing"):
            Writer(tmp_path / "r", plan, 8, resume=True)
    assert not writer.running()
    with Writer(tmp_path / "r", plan, 8, resume=True):
        pass


def test_cancel_keeps_the_batch_in_progress_and_resume_finishes_the_same_table(finished, tmp_path: Path) -> None:
    plan, reference, _ = finished
    folder, seen = tmp_path / "r", []
    first = executors.run(plan, folder, batch_size=3, on_step=lambda done, total, _p: seen.append((done, total)),
                          should_cancel=lambda: len(seen) > 1)  # after the first batch
    assert first.cancelled and first.written == 3 and seen == [(0, 8), (3, 8)]
    rest = executors.run(plan, folder, resume=True, batch_size=3)
    assert rest.done_before == 3 and rest.written == 5 and not rest.cancelled
    pd.testing.assert_frame_equal(comparable(Results.open(folder).table()), comparable(Results.open(reference).table()))


def test_a_full_disk_keeps_every_batch_before_it(finished, tmp_path: Path, monkeypatch) -> None:
    plan, reference, _ = finished
    folder, writes = tmp_path / "r", []
    real = store.pq.write_table

    def write_until_full(table, where, *args, **kwargs):
        writes.append(where)
        if len(writes) == 2:
            Path(where).write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(store.pq, "write_table", write_until_full)
    with pytest.raises(StoreError, match="the disk is full.*--resume"):
        executors.run(plan, folder, batch_size=3)
    assert len(Results.open(folder).parts()) == 1 and not list((folder / store.PARTS).glob(".*"))
    assert len(Results.open(folder).table()) == 3 and not Results.open(folder).running()
    monkeypatch.setattr(store.pq, "write_table", real)
    executors.run(plan, folder, resume=True, batch_size=3)
    pd.testing.assert_frame_equal(comparable(Results.open(folder).table()), comparable(Results.open(reference).table()))


def test_unreadable_images_are_skipped_once_each_and_counted(tmp_path: Path, cat_path: Path) -> None:
    images = tmp_path / "photos"
    images.mkdir()
    (images / "cat.jpg").write_bytes(cat_path.read_bytes())
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (images / "empty.png").write_bytes(b"")
    plan = tiny_plan(images=(str(images),), noise_seeds=0, models=("efficientnet_lite0",), seeds=(0, 1))
    lines: list[str] = []
    summary = executors.run(plan, tmp_path / "r", on_skip=lambda image, why: lines.append(f"{image}: {why}"))
    assert sorted(summary.skipped) == ["broken.jpg", "empty.png"] and len(lines) == 2
    assert "broken.jpg is not a readable image" in " ".join(lines)
    table = Results.open(tmp_path / "r").table()
    assert len(table) == 6 and (table["status"] == "skipped").sum() == 4  # 3 images x 2 seeds; 2 bad images
    assert len(study_stats.tidy(table, plan)["item"].unique()) == 2


# ---------------------------------------------------------------- a driver killed with SIGKILL


def test_a_driver_killed_mid_way_resumes_to_the_same_table(finished, tmp_path: Path) -> None:
    plan, reference, _ = finished
    plan_file, folder = tmp_path / "plan.json", tmp_path / "r"
    plan_file.write_text(plan.to_json())
    command = [sys.executable, "-m", "analysis", "study", "run", str(plan_file), "--out", str(folder), "--batch", "1"]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(Results.open(folder).parts() if (folder / store.PLAN_FILE).is_file() else []) < 2:
            assert driver.poll() is None and time.monotonic() < deadline, "the driver ended before two batches"
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        driver.wait(timeout=60)
    assert driver.returncode == -signal.SIGKILL
    kept = len(Results.open(folder).table())
    assert 2 <= kept < 8 and not Results.open(folder).running()  # the lock died with the driver
    assert main(["study", "run", str(plan_file), "--out", str(folder), "--resume", "--batch", "1"]) == 0
    final = Results.open(folder).table()
    assert final["item"].is_unique and len(final) == 8
    pd.testing.assert_frame_equal(comparable(final), comparable(Results.open(reference).table()))


# ---------------------------------------------------------------- statistics


def fixed_table() -> pd.DataFrame:
    """Four images, two seeds, a model and its twin at one depth: dog shares chosen by hand."""
    rows = []
    originals = {"a": 0.10, "b": 0.20, "c": 0.05, "d": 0.15}
    for image, original in originals.items():
        for seed in (0, 1):
            for model, gain in (("m", 3.0 + seed), ("m-untrained", 1.0 + 0.1 * seed)):
                rows.append({"model": model, "training_data": "Untrained" if "untrained" in model else "ImageNet",
                             "control": "untrained" in model, "depth": 0.6, "layer": "block10", "image": image,
                             "seed": seed, "judge": "j", "group": "dogs", "share_original": original,
                             "share_dream": min(1.0, original * gain * (1 + 0.1 * ord(image[0]) % 3))})
    return pd.DataFrame(rows)


def hand_bootstrap(rows: pd.DataFrame, unit: str, resamples: int, seed: int) -> tuple[float, float, float]:
    means = {}
    for key in sorted(set(rows[unit])):
        part = rows[rows[unit] == key]
        means[key] = (sum(part["share_original"]) / len(part), sum(part["share_dream"]) / len(part))
    keys = sorted(means)
    rng = np.random.default_rng(seed)
    ratios = []
    for draw in rng.integers(0, len(keys), size=(resamples, len(keys))):
        original = sum(means[keys[k]][0] for k in draw) / len(draw)
        dream = sum(means[keys[k]][1] for k in draw) / len(draw)
        ratios.append(dream / original)
    ratios.sort()
    point = sum(m[1] for m in means.values()) / sum(m[0] for m in means.values())

    def percentile(q: float) -> float:  # numpy's default: linear between the closest ranks
        position = q / 100 * (len(ratios) - 1)
        low = int(position)
        return ratios[low] + (ratios[min(low + 1, len(ratios) - 1)] - ratios[low]) * (position - low)

    return point, percentile(2.5), percentile(97.5)


@pytest.mark.parametrize("over", ["images", "seeds"])
def test_intervals_equal_a_hand_computed_bootstrap(over: str) -> None:
    table = fixed_table()
    got = study_stats.ratio_intervals(table, "dogs", "j", over=over, resamples=500, seed=7).set_index("model")
    for model in ("m", "m-untrained"):
        point, low, high = hand_bootstrap(table[table["model"] == model], study_stats.UNITS[over], 500, 7)
        assert got.loc[model, "ratio"] == pytest.approx(point, rel=1e-12)
        assert got.loc[model, "low"] == pytest.approx(low, rel=1e-12)
        assert got.loc[model, "high"] == pytest.approx(high, rel=1e-12)
        assert got.loc[model, "units"] == (4 if over == "images" else 2)


def test_the_paired_difference_resamples_the_same_images_for_both_models() -> None:
    table = fixed_table()
    diff = study_stats.paired_difference(table, "dogs", "m", "m-untrained", "j", resamples=400, seed=3).iloc[0]
    sel = table.groupby(["model", "image"])[["share_original", "share_dream"]].mean()
    draws = np.random.default_rng(3).integers(0, 4, size=(400, 4))
    ratios = {}
    for model in ("m", "m-untrained"):
        part = sel.loc[model].sort_index()
        dreams, originals = part["share_dream"].to_numpy(), part["share_original"].to_numpy()
        ratios[model] = dreams[draws].mean(1) / originals[draws].mean(1)
    low, high = np.percentile(ratios["m"] - ratios["m-untrained"], [2.5, 97.5])
    assert (diff["low"], diff["high"]) == pytest.approx((low, high), rel=1e-12)
    assert diff["difference"] == pytest.approx(diff["ratio_a"] - diff["ratio_b"])


def test_the_bootstrap_draws_in_chunks_and_gives_exactly_the_same_intervals(monkeypatch) -> None:
    """A 100,000-image table must not hold (resamples x images) draws at once; chunks of resamples drawn
    from one generator in turn are the draws of one call, so the numbers do not move."""
    table = fixed_table()
    whole = study_stats.ratio_intervals(table, "dogs", "j", resamples=501, seed=7)
    pair = study_stats.paired_difference(table, "dogs", "m", "m-untrained", "j", resamples=501, seed=3)
    shapes = []
    real = study_stats._ratios
    monkeypatch.setattr(study_stats, "_ratios", lambda means, draws: shapes.append(draws.shape) or real(means, draws))
    monkeypatch.setattr(study_stats, "CHUNK_DRAWS", 9)  # two resamples of the four images at a time
    chunked = study_stats.ratio_intervals(table, "dogs", "j", resamples=501, seed=7)
    assert set(shapes) == {(2, 4), (1, 4)} and len(shapes) == 2 * 251  # 250 chunks of two and one of one
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
    pd.testing.assert_frame_equal(study_stats.paired_difference(table, "dogs", "m", "m-untrained", "j", resamples=501,
                                                                seed=3), pair, check_exact=True)
    draws = np.concatenate(list(study_stats._draws(5, 33, seed=1)))  # an odd count of values per chunk too
    np.testing.assert_array_equal(draws, np.random.default_rng(1).integers(0, 5, size=(33, 5)))


def test_the_reading_quotes_the_interval_and_the_control() -> None:
    table = fixed_table()
    lines = study_stats.reading(table, "dogs", "j", resamples=300).lines
    assert lines[0].startswith("At depth 0.6 (block10), m (ImageNet)'s dreams carry 'dogs' ")
    assert "(95% CI " in lines[0] and "over 4 images" in lines[0] and "its untrained twin" in lines[0]
    assert "excludes zero" in lines[1]
    same = table.assign(model=table["model"].str.replace("m-untrained", "x"))
    same = pd.concat([same, same[same["model"] == "m"].assign(model="m-untrained", control=True)])
    lines = study_stats.reading(same, "dogs", "j", resamples=300).lines
    assert "cannot be told apart from the control" in lines[1]


def test_the_interval_figure_draws_each_model_with_its_error_bars() -> None:
    intervals = study_stats.ratio_intervals(fixed_table(), "dogs", "j", resamples=200)
    fig = figures.study_ratio_depth(intervals)
    assert [t.name for t in fig.data] == ["m (ImageNet)", "m-untrained · control"]
    first = intervals.iloc[0]
    assert fig.data[0].error_y.array[0] == pytest.approx(first["high"] - first["ratio"])
    assert fig.data[1].line.dash == "dash"


# ---------------------------------------------------------------- the command line


def test_study_plan_run_and_report_from_the_command_line(finished, tmp_path: Path, capsys) -> None:
    plan, reference, _ = finished
    plan_file = tmp_path / "plan.json"
    assert main(["study", "plan", "--model", "efficientnet_lite0", "--depths", "0.6", "--images", "coffee",
                 "--noise-seeds", "1", "--seeds", "0,1", "--size", "64", "--preset", "quick", "--octaves", "1",
                 "--iterations", "2", "--threads", "1", "--out", str(plan_file)]) == 0
    assert "8 items" in capsys.readouterr().out
    assert Plan.load(plan_file) == plan
    assert main(["study", "report", str(reference), "--out", str(tmp_path / "r.html"), "--json",
                 "--resamples", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "finished" and report["rows"] == 8 and report["group"] == "dogs"
    assert {r["model"] for r in report["intervals"]} == set(plan.models)
    assert report["reading"][0].startswith("At depth 0.6 (block10)")
    assert (tmp_path / "r.html").read_text().count('class="plotly-graph-div"') == 2


def test_study_command_errors_are_one_line(finished, tmp_path: Path, capsys) -> None:
    plan, reference, _ = finished
    assert main(["study", "run", str(tmp_path / "none.json"), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == f"error: No plan file at {tmp_path / 'none.json'}."
    assert main(["study", "plan", "--seeds", "0,x", "--images", "coffee", "--out", str(tmp_path / "p.json")]) == 2
    assert "not a list of seeds" in capsys.readouterr().err
    assert main(["study", "report", str(tmp_path)]) == 2
    assert "is not a study's results folder" in capsys.readouterr().err
    (tmp_path / "p.json").write_text(plan.to_json())
    assert main(["study", "run", str(tmp_path / "p.json"), "--out", str(reference)]) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main(["study", "run", str(tmp_path / "p.json"), "--out", str(tmp_path / "x"), "--ray", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No Ray cluster answers at 127.0.0.1:1") and err.count("\n") == 1


@pytest.mark.parametrize("field, value, words", [("size", 100.5, "size is not a whole number"),
                                                 ("seeds", [0, True], "is not a whole number"),
                                                 ("noise_seeds", float("nan"), "noise_seeds"),
                                                 ("depths", [1.5], "depth")])
def test_a_plan_file_is_read_through_the_schema_layer_not_rounded(field, value, words):
    """A plan is a file a user hands in: strict like a recipe (100.5 px was cut to 100 px without a word)."""
    with pytest.raises(ConfigError, match=words):
        Plan.from_dict({"models": ["efficientnet_lite0"], "depths": [0.5], field: value})


# ---------------------------------------------------------------- the sweep and gallery workloads


def test_a_sweep_dreams_every_image_at_each_layer_without_a_judge(tmp_path: Path, cat_path: Path, capsys) -> None:
    import hashlib
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(cat_path, folder / "cat.png")
    plan_file, results = tmp_path / "sweep.json", tmp_path / "sweep"
    argv = ["study", "plan", "--workload", "sweep", "--model", "efficientnet_lite0", "--no-control", "--depths",
            "0.3,0.6", "--images", str(folder), "--images", "coffee", "--size", "48", "--preset", "quick",
            "--octaves", "1", "--iterations", "2", "--threads", "1"]
    assert main([*argv, "--out", str(plan_file)]) == 0
    assert "4 items" in capsys.readouterr().out and Plan.load(plan_file).judges == ()
    assert main(["study", "run", str(plan_file), "--out", str(results)]) == 0
    rows = Results.open(results).table()
    assert len(rows) == 4 and rows["item"].is_unique and (rows["status"] == "done").all()
    assert sorted(zip(rows["image"], rows["layer"])) == [("cat.png", "block10"), ("cat.png", "block5"),
                                                           ("coffee", "block10"), ("coffee", "block5")]
    assert not [c for c in rows.columns if ":" in c]  # no judge, no verdict columns
    for sha in rows["dream_sha256"]:
        data = Results.open(results).dream_path(sha).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha
        assert read_png_metadata(data)["recipe"]["model"] == "efficientnet_lite0"
    capsys.readouterr()
    assert main(["study", "report", str(results), "--out", str(tmp_path / "sheet.html"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["workload"] == "sweep" and report["state"] == "finished" and report["rows"] == 4
    assert [(r["layer"], r["items"]) for r in report["layers"]] == [("block5", 2), ("block10", 2)]
    page = (tmp_path / "sheet.html").read_text()
    assert page.count("<img src='data:image/png;base64,") == 4 and "<th>cat.png · seed 0</th>" in page
    assert main([*argv, "--judge", "efficientnet_lite0", "--out", str(plan_file)]) == 2
    assert "A sweep has no judge" in capsys.readouterr().err


def test_a_gallery_renders_each_channel_once_and_a_cancelled_one_resumes_to_the_same_pictures(
        tmp_path: Path, capsys) -> None:
    plan_file = tmp_path / "gallery.json"
    assert main(["study", "plan", "--workload", "gallery", "--model", "efficientnet_lite0", "--no-control",
                 "--layers", "block1", "--channels", "0-5", "--featviz-steps", "2", "--size", "32", "--threads", "1",
                 "--out", str(plan_file)]) == 0
    assert "6 renders" in capsys.readouterr().out
    plan = Plan.load(plan_file)
    items = expand(plan)
    assert [item.channel for item in items] == list(range(6)) and plan.featviz_config(0).steps == 2
    whole = executors.run(plan, tmp_path / "whole", batch_size=3)
    assert whole.written == 6
    steps = []
    part = executors.run(plan, tmp_path / "part", batch_size=3, on_step=lambda done, total, _p: steps.append(done),
                         should_cancel=lambda: len(steps) >= 2)
    assert part.cancelled and part.written == 3  # the batch in progress was finished and kept, no more
    rest = executors.run(plan, tmp_path / "part", resume=True, batch_size=3)
    assert rest.done_before == 3 and rest.written == 3
    a, b = Results.open(tmp_path / "whole").table(), Results.open(tmp_path / "part").table()
    pd.testing.assert_frame_equal(comparable(a), comparable(b))
    assert sorted(a["channel"]) == list(range(6)) and a["activation"].notna().all()
    for sha in a["dream_sha256"]:
        meta = read_png_metadata(Results.open(tmp_path / "part").dream_path(sha).read_bytes())
        assert meta["kind"] == "featviz" and meta["layers"] == ["block1"]
    assert main(["study", "report", str(tmp_path / "part"), "--out", str(tmp_path / "g.html")]) == 0
    assert "6 of 6 items (finished)" in capsys.readouterr().out
    assert (tmp_path / "g.html").read_text().count("<img ") == 6
    with pytest.raises(ConfigError, match="has channels 0 to"):
        expand(replace(plan, channels=(100_000,)))
    with pytest.raises(ConfigError, match="takes no images"):
        replace(plan, images=("coffee",)).validate()
