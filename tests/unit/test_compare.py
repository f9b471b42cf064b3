"""Two models side by side: matched layers, identical settings and jitter, each model's own labels."""

from __future__ import annotations

import pytest
import torch

from analysis import compare
from analysis.dream import DreamConfig
from analysis.errors import ConfigError
from analysis.recipes import ImageSource
from analysis.zoo import load_model

FAST = DreamConfig(octaves=1, iterations=2, jitter=8, seed=3)


@pytest.fixture(scope="module")
def twin():
    return load_model("efficientnet_lite0-untrained", device="cpu")


def test_the_same_model_twice_gives_identical_rows(lite0, cat_path):
    """Same image, seed (so the same jitter sequence) and settings: only the network may differ."""
    columns = compare.match_by_depth(lite0, lite0, [0.3, 0.7])
    result = compare.compare(lite0, lite0, ImageSource.sample(cat_path.name), 96, columns, FAST)
    for a, b in zip(result.a.results, result.b.results):
        assert torch.equal(a.image, b.image)
        assert a.record.config == b.record.config
    assert not torch.equal(result.a.results[0].image, result.a.results[1].image)


def test_layers_match_by_relative_depth(lite0, twin):
    columns = compare.match_by_depth(lite0, twin, [0.2, 0.5, 0.8])
    assert [c.layer_a.alias for c in columns] == [lite0.layer_at_depth(d).alias for d in (0.2, 0.5, 0.8)]
    assert [c.layer_a.alias for c in columns] == [c.layer_b.alias for c in columns]
    assert [c.label for c in columns] == ["depth 0.20", "depth 0.50", "depth 0.80"]
    chosen = compare.match_by_name(lite0, twin, ["block2", "head"], ["block9", "block3"])
    assert [(c.layer_a.alias, c.layer_b.alias) for c in chosen] == [("block2", "block9"), ("head", "block3")]
    with pytest.raises(ConfigError, match="as many layers"):
        compare.match_by_name(lite0, twin, ["block2"], [])


def test_comparison_reads_each_dream_with_its_own_labels_and_progress_counts_both(lite0, twin, cat_small, cat_path):
    steps = []
    columns = compare.match_by_depth(lite0, twin, [0.5])
    result = compare.compare(lite0, twin, ImageSource.sample(cat_path.name), 96, columns, FAST, "cat",
                             on_step=lambda s, t, p: steps.append((s, t)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert 281 <= result.a.top_original[0][0] <= 285  # ImageNet reads the cat as a cat
    assert all(len(top) == compare.TOP_CLASSES for top in result.a.top_dreams + result.b.top_dreams)
    meta = result.metadata()
    assert meta["models"] == ["efficientnet_lite0", "efficientnet_lite0-untrained"]
    assert meta["training_data"] == ["ImageNet", "untrained"]
    assert meta["columns"] == [{"depth": 0.5, "layer_a": columns[0].layer_a.alias, "layer_b": columns[0].layer_b.alias}]
    grid = compare.grid(result)
    assert grid.width > 2 * cat_small.shape[-1] and grid.height > 2 * cat_small.shape[-2]


def test_cancel_during_a_skips_b_and_keeps_a(lite0, twin, cat_path):
    steps = []
    columns = compare.match_by_depth(lite0, twin, [0.5])
    result = compare.compare(lite0, twin, ImageSource.sample(cat_path.name), 96, columns, FAST,
                             on_step=lambda s, t, p: steps.append(s),
                             should_cancel=lambda: len(steps) >= 1)
    assert result.cancelled and result.a.results[0].cancelled and result.b.results == []
    assert compare.grid(result).width > 0


def test_depth_lists_and_sweeps():
    assert compare.parse_depths("0.2, 0.5,0.8") == [0.2, 0.5, 0.8]
    assert compare.sweep_depths(3) == [0.1, 0.5, 0.9]
    assert len(compare.sweep_depths(6)) == 6
    for bad in ("1.5", "a,b", "", "0.1,0.2,0.3,0.4,0.5,0.6,0.7"):
        with pytest.raises(ConfigError):
            compare.parse_depths(bad)


def test_default_pair_works_offline_and_places_pairs_come_first_when_present(tmp_path, monkeypatch):
    assert compare.suggested_pairs(tmp_path) == [compare.DEFAULT_PAIR]
    for name in ("resnet50-0676ba61.pth", "resnet50_places365.pth.tar"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-hub"))
    assert compare.suggested_pairs(tmp_path) == [("resnet50", "resnet50_places365"), compare.DEFAULT_PAIR]


def test_bvlc_against_places_googlenet_is_offered_first(tmp_path, monkeypatch):
    """The same Caffe GoogLeNet trained on ImageNet and on Places: the original DeepDream gallery's pair."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-hub"))
    for name in ("resnet50-0676ba61.pth", "resnet50_places365.pth.tar", "bvlc_googlenet-1f25f8c8778a8802.pth"):
        (tmp_path / name).write_bytes(b"x")
    assert compare.suggested_pairs(tmp_path)[0] == ("resnet50", "resnet50_places365")  # no Places GoogLeNet yet
    (tmp_path / "googlenet_places365.pth").write_bytes(b"x")  # ProGamerGov's name: any layout's file counts
    assert compare.suggested_pairs(tmp_path)[:2] == [("bvlc_googlenet", "googlenet_places365"),
                                                    ("resnet50", "resnet50_places365")]
    (tmp_path / "googlenet_places205-b57a3fc7a34557585.pth").write_bytes(b"x")
    assert compare.suggested_pairs(tmp_path)[:2] == [("bvlc_googlenet", "googlenet_places205"),
                                                    ("bvlc_googlenet", "googlenet_places365")]
