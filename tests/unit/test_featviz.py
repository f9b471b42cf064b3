"""Feature visualisation: batched channel renders that leave no hooks, rise, reproduce and cache."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from analysis import featviz, figures
from analysis.cli import main
from analysis.errors import ConfigError
from analysis.featviz import FeatvizConfig, RenderCache, render_channels, render_key
from analysis.objectives import parse_channels
from analysis.provenance import RunRecord
from analysis.zoo import LoadedModel, count_hooks, load_model

TINY = FeatvizConfig(size=64, steps=8, seed=3)


@pytest.fixture(scope="module")
def lite0_twin() -> LoadedModel:
    return load_model("efficientnet_lite0-untrained", device="cpu")


def test_no_hook_outlives_a_render_finished_or_cancelled(lite0):
    before = count_hooks(lite0.module)
    done = render_channels(lite0, "block3", [0, 1], TINY)
    assert count_hooks(lite0.module) == before
    assert not done.cancelled and all(r.complete for r in done.renders)

    steps: list[int] = []
    cancelled = render_channels(lite0, "block3", [0, 1], TINY, on_step=lambda s, t, p: steps.append(s),
                                should_cancel=lambda: len(steps) >= 3)
    assert count_hooks(lite0.module) == before
    assert cancelled.cancelled and steps == [1, 2, 3]
    assert [len(r.trace) for r in cancelled.renders] == [3, 3]
    assert not any(r.complete for r in cancelled.renders)


def test_each_batch_element_raises_its_own_channel(lite0):
    channels = [0, 7, 21]
    result = render_channels(lite0, "block5", channels, FeatvizConfig(size=64, steps=16, seed=0))
    assert [r.channel for r in result.renders] == channels
    for render in result.renders:
        assert len(render.trace) == 16
        assert np.mean(render.trace[-3:]) > render.trace[0] + 1.0, render.trace
        assert render.image.shape == (3, 64, 64) and 0 <= render.image.min() and render.image.max() <= 1
    # The picture made for channel 7 excites channel 7 more than the pictures made for the others do.
    means = [featviz.channel_means(lite0, "block5", r.image)[7].item() for r in result.renders]
    assert means[1] == max(means)


def test_a_channel_looks_the_same_in_any_batch_and_the_seed_matters(lite0):
    pair = render_channels(lite0, "block3", [4, 9], TINY).by_channel()
    alone = render_channels(lite0, "block3", [9], TINY).by_channel()
    other_seed = render_channels(lite0, "block3", [9], FeatvizConfig(size=64, steps=8, seed=4)).by_channel()
    assert (pair[9].image - alone[9].image).abs().max() <= 2 / 255
    assert (other_seed[9].image - alone[9].image).abs().mean() > 0.02


def test_a_render_leaves_the_global_random_streams_alone(lite0):
    np.random.seed(11)
    torch.manual_seed(11)
    expected = (np.random.rand(), torch.rand(1).item())
    np.random.seed(11)
    torch.manual_seed(11)
    render_channels(lite0, "block3", [0], TINY)
    assert (np.random.rand(), torch.rand(1).item()) == expected


def test_a_cache_hit_returns_the_identical_image_without_optimising(lite0, tmp_path):
    cache = RenderCache(tmp_path)
    first = render_channels(lite0, "block3", [2, 5], TINY, cache=cache)
    assert len(cache.files()) == 2 and not any(r.cached for r in first.renders)

    calls: list[int] = []
    again = render_channels(lite0, "block3", [5, 2], TINY, cache=cache, on_step=lambda s, t, p: calls.append(s))
    assert calls == []
    assert [r.channel for r in again.renders] == [5, 2] and all(r.cached for r in again.renders)
    for render in again.renders:
        assert torch.equal(render.image, first.by_channel()[render.channel].image)
        assert render.record.extras["channel"] == render.channel and render.record.extras["layer_module"] == "_blocks.3"

    # Only the new channel is optimised when a request mixes hits and misses.
    calls.clear()
    mixed = render_channels(lite0, "block3", [2, 6], TINY, cache=cache, on_step=lambda s, t, p: calls.append(t))
    assert [r.cached for r in mixed.renders] == [True, False] and set(calls) == {TINY.steps}


def test_a_cancelled_render_is_not_cached(lite0, tmp_path):
    cache = RenderCache(tmp_path)
    render_channels(lite0, "block3", [1], TINY, cache=cache, should_cancel=iter([False, False, True]).__next__)
    assert cache.files() == []


def test_the_key_separates_everything_that_changes_the_picture_but_not_the_batch(lite0, lite0_twin):
    key = render_key(lite0, "block3", 2, TINY)
    assert render_key(lite0, "_blocks.3", 2, FeatvizConfig(size=64, steps=8, seed=3, batch=2)) == key
    others = {render_key(lite0, "block4", 2, TINY), render_key(lite0, "block3", 3, TINY),
              render_key(lite0, "block3", 2, FeatvizConfig(size=64, steps=8, seed=4)),
              render_key(lite0, "block3", 2, FeatvizConfig(size=96, steps=8, seed=3)),
              render_key(lite0_twin, "block3", 2, TINY)}
    assert key not in others and len(others) == 5


def test_the_cache_is_bounded_least_recently_used_first_and_clears(tmp_path):
    picture = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    probe = RenderCache(tmp_path / "probe")
    probe.put("probe", picture, RunRecord())
    one_file = probe.size_bytes()
    cache = RenderCache(tmp_path / "lru", max_bytes=int(2.5 * one_file))
    cache.put("a", picture, RunRecord(extras={"n": 1}))
    cache.put("b", picture, RunRecord(extras={"n": 2}))
    old = time.time() - 100
    for name in ("a", "b"):
        os.utime(tmp_path / "lru" / f"{name}.png", (old, old))
    assert cache.get("a") is not None  # touching "a" makes "b" the least recently used
    cache.put("c", picture, RunRecord(extras={"n": 3}))
    assert sorted(p.stem for p in cache.files()) == ["a", "c"]
    assert cache.size_bytes() <= cache.max_bytes
    assert cache.clear() == 2 and cache.files() == [] and cache.get("a") is None


def test_a_damaged_cache_file_is_a_miss(tmp_path):
    cache = RenderCache(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert cache.get("broken") is None and not (tmp_path / "broken.png").exists()


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INCEPTIONISM_CACHE_DIR", str(tmp_path))
    assert RenderCache().folder == tmp_path / "featviz"


def test_channels_parse_and_impossible_ones_are_one_line():
    assert parse_channels("0-3, 7,2", 40) == [0, 1, 2, 3, 7]
    with pytest.raises(ConfigError, match="Channel 40 does not exist"):
        parse_channels("38-40", 40)
    with pytest.raises(ConfigError, match="'x' is not a channel"):
        parse_channels("1,x", 40)
    assert parse_channels("3; 17 ,40-42, 3", 50, "block5") == [3, 17, 40, 41, 42]  # the Dream page's spelling
    for text in ("5-2", "-", "1-2-3"):
        with pytest.raises(ConfigError, match="is not a channel number"):
            parse_channels(text, 40)
    with pytest.raises(ConfigError, match="Channel -1 does not exist: block5 has channels 0 to 39"):
        parse_channels("-1", 40, "block5")
    with pytest.raises(ConfigError, match="at least one channel"):
        parse_channels(" , ", 40)
    with pytest.raises(ConfigError, match="at most 2 channels"):
        parse_channels("0-2", 40, most=2)
    with pytest.raises(ConfigError, match="size must be 32 to 512"):
        FeatvizConfig(size=8).validate()


def test_the_image_side_sorts_pages_finds_top_images_and_maps_a_channel(lite0, cat_small):
    means = featviz.channel_means(lite0, "block5", cat_small)
    assert means.shape == (80,)
    order = featviz.channel_order(means, "excitation", 80)
    assert means[order[0]] == means.max() and sorted(order) == list(range(80))
    assert featviz.channel_order(means, "channel index", 80)[:3] == [0, 1, 2]
    assert featviz.page(order, 1, 24) == order[24:48]
    with pytest.raises(ConfigError, match="Page 5 does not exist"):
        featviz.page(order, 4, 24)

    grey = torch.full_like(cat_small, 0.5)
    table = featviz.channel_table(lite0, "block5", {"cat": cat_small, "grey": grey})
    assert len(table) == 160 and set(table.columns) == {"image", "channel", "activation"}
    best = order[0]
    top = featviz.top_images(table, best, k=2)
    assert top["image"].tolist()[0] == "cat" and top["rank"].tolist() == [1, 2]

    acts = featviz.layer_activations(lite0, "block5", cat_small)
    frame = featviz.map_frame(acts, best)
    assert acts.shape[0] == 80 and len(frame) == acts[best].numel()
    assert (frame["row"].max() + 1, frame["col"].max() + 1) == tuple(acts.shape[1:])
    assert np.isclose(frame["activation"].mean(), means[best].item(), atol=1e-5)
    fig = figures.activation_map(frame, "map")
    heat = next(t for t in fig.data if t.type == "heatmap")
    assert np.allclose(np.array(heat.z), acts[best].numpy(), atol=1e-6)


def test_logits_have_no_spatial_map(lite0, cat_small):
    with pytest.raises(ConfigError, match="no spatial map"):
        featviz.map_frame(featviz.layer_activations(lite0, "logits", cat_small), 3)


def test_contact_sheet_holds_every_render(lite0):
    result = render_channels(lite0, "block3", [0, 1, 2], FeatvizConfig(size=64, steps=2))
    sheet = featviz.contact_sheet(result)
    assert sheet.width > 2 * 64 and sheet.height > 2 * 64


def test_cli_writes_a_png_per_channel_and_reuses_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INCEPTIONISM_CACHE_DIR", str(tmp_path / "cache"))
    args = ["featviz", "--model", "efficientnet_lite0", "--device", "cpu", "--layer", "block3",
            "--channels", "0-1", "--size", "64", "--steps", "4"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["contact_sheet.png", "efficientnet_lite0_block3_c0000.png", "efficientnet_lite0_block3_c0001.png"]
    assert "(0 from the cache)" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert "(2 from the cache)" in capsys.readouterr().out
    assert (tmp_path / "a" / files[1]).read_bytes() == (tmp_path / "b" / files[1]).read_bytes()

    assert main(["featviz", "--layer", "block3", "--channels", "39-40", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Channel 40 does not exist") and err.count("\n") == 1
