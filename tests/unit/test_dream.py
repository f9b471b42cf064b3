"""The dream engine on the real embedded weights: it dreams, reproduces, cancels, leaves no hooks."""

from __future__ import annotations

import pytest
import torch

from analysis.dream import PRESETS, DreamConfig, dream, dream_batch, laplacian_normalize, octave_sizes, preset
from analysis.errors import ConfigError
from analysis.images import load_image
from analysis.objectives import Channels, ClassLogit, Guide, LayerL2, Objective, objective_from_dict
from analysis.zoo import count_hooks

QUICK = DreamConfig(octaves=2, iterations=4, jitter=8)
DOGS = slice(151, 269)


def test_dreaming_raises_the_objective(lite0, cat_small):
    result = dream(lite0, cat_small, LayerL2("block6"), QUICK)
    assert len(result.trace) == QUICK.total_steps
    assert result.trace[-1] > result.trace[0]
    assert result.image.shape == cat_small.shape
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert not torch.equal(result.image, cat_small)


def test_high_layer_dreams_dogs_into_the_cat_low_layer_does_not(lite0, cat_path):
    """The dog effect, measured: 118 of ImageNet's 1000 classes are dog breeds.

    block10 (depth 0.59) is where EfficientNet-Lite0's dog effect peaks; block3 (0.18) draws strokes.
    """
    cat = load_image(cat_path, 320)
    config = preset("google")
    dog_share = lambda image: float(lite0.probabilities(image)[0, DOGS].sum())  # noqa: E731
    baseline = dog_share(cat)
    high = dog_share(dream(lite0, cat, LayerL2("block10"), config).image) / baseline
    low = dog_share(dream(lite0, cat, LayerL2("block3"), config).image) / baseline
    assert high >= 10, high
    assert low < 3 and low < high / 5, (low, high)


def test_same_seed_same_pixels_other_seed_other_pixels(lite0, cat_small):
    a = dream(lite0, cat_small, LayerL2("block5"), QUICK)
    b = dream(lite0, cat_small, LayerL2("block5"), QUICK)
    c = dream(lite0, cat_small, LayerL2("block5"), DreamConfig(**{**QUICK.to_dict(), "seed": 1}))
    assert torch.equal(a.image, b.image) and a.trace == b.trace
    assert not torch.equal(a.image, c.image)


def test_cancel_stops_within_one_iteration_and_keeps_the_partial_dream(lite0, cat_small):
    steps = []
    result = dream(lite0, cat_small, LayerL2("block5"), QUICK,
                   on_step=lambda step, total, preview: steps.append(step),
                   should_cancel=lambda: len(steps) >= 3)
    assert result.cancelled and steps == [1, 2, 3] and len(result.trace) == 3
    assert result.image.shape == cat_small.shape and not torch.equal(result.image, cat_small)
    assert count_hooks(lite0.module) == 0


class _Exploding(Objective):
    layers = ("_blocks.4",)

    def score(self, acts):
        raise RuntimeError("boom")


def test_no_hook_survives_a_failed_dream(lite0, cat_small):
    with pytest.raises(RuntimeError, match="boom"):
        dream(lite0, cat_small, _Exploding(), QUICK)
    assert count_hooks(lite0.module) == 0


def test_on_step_reports_progress_and_small_previews(lite0, cat_small):
    calls = []
    dream(lite0, cat_small, LayerL2("block5"), QUICK, on_step=lambda s, t, p: calls.append((s, t, p)))
    assert [c[0] for c in calls] == list(range(1, QUICK.total_steps + 1))
    assert all(c[1] == QUICK.total_steps for c in calls)
    previews = [c[2] for c in calls if c[2] is not None]
    assert previews and calls[-1][2] is not None and previews[0].shape[0] == 3


@pytest.mark.parametrize("objective", [
    Channels("block8", [3, 17]),
    ClassLogit([207]),  # golden retriever: "make it more dog"
    LayerL2("block4") + 0.5 * Channels("block9", [0]),
])
def test_every_objective_kind_rises(lite0, cat_small, objective):
    result = dream(lite0, cat_small, objective, QUICK)
    assert result.trace[-1] > result.trace[0]
    rebuilt = objective_from_dict(result.record.objective)
    assert rebuilt.to_dict() == result.record.objective


@pytest.mark.parametrize("objective", [LayerL2("act"), Channels("act", [1, 3])])
def test_layer_objectives_score_the_mean_per_image_and_keep_channels_last(objective):
    """The network runs channels_last; a gradient handed back as a dense NCHW tensor makes every
    elementwise backward below it mix layouts (bench/: a 512 px conv1 step took 2.6x as long).
    Channels last, or a broadcast that takes the layout of whatever it meets, is fine."""
    act = torch.rand(2, 6, 9, 7).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    picked = act if isinstance(objective, LayerL2) else act[:, [1, 3]]
    expected = (picked.square() if isinstance(objective, LayerL2) else picked).flatten(1).mean(1)
    score = objective.score({"act": act})
    torch.testing.assert_close(score, expected)
    (grad,) = torch.autograd.grad(score.sum(), act)
    assert grad.is_contiguous(memory_format=torch.channels_last) or 0 in grad.stride()


def test_guide_objective_moves_toward_the_guide(lite0, cat_small):
    guide_image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))
    result = dream(lite0, cat_small, Guide("block6", guide_image), QUICK)
    assert result.trace[-1] > result.trace[0]
    assert objective_from_dict(result.record.objective).layer == "_blocks.6"
    assert result.record.objective_text == "guide image at block6"  # the name the user chose, not the module path


def test_layer_sweep_on_the_cpu_gives_each_layer_its_single_dream(lite0, cat_small):
    """On the CPU a sweep runs one layer after another: the pixels a single dream (or a replay) gives."""
    layers = ["block2", "block7", "block12"]
    config = DreamConfig(octaves=2, iterations=3)
    steps = []
    sweep = dream_batch(lite0, cat_small[None].repeat(3, 1, 1, 1), [LayerL2(n) for n in layers], config,
                        on_step=lambda step, total, preview: steps.append((step, total)))
    assert steps == [(k, 3 * config.total_steps) for k in range(1, 3 * config.total_steps + 1)]
    for layer, swept in zip(layers, sweep):
        assert torch.equal(swept.image, dream(lite0, cat_small, LayerL2(layer), config).image)


def test_batched_layer_sweep_matches_separate_dreams_within_float_tolerance(lite0, cat_small):
    """The batched fast path (the GPU default) keeps the plain path's step.

    One step, not a whole dream: gradient ascent is chaotic (a 1e-6 nudge to the photo moves
    a 10-step quick dream by 12/255 on average), so any change in float rounding shows up
    after a few steps however exact each one is. In float64 on its twin, so that float32's
    rounding, which differs between CPU kinds, cannot flip a gate in one path and not the other.
    """
    layers = ["block2", "block7", "block12"]
    config = DreamConfig(octaves=1, iterations=1, jitter=0)
    exact = lite0.as_float64()  # the batching logic, free of float32 rounding (tests/numerics.py)
    batch = dream_batch(exact, cat_small[None].repeat(3, 1, 1, 1), [LayerL2(n) for n in layers], config,
                        batched=True)
    for layer, batched in zip(layers, batch):
        alone = dream(exact, cat_small, LayerL2(layer), config)
        # results come back in float32: one float32 ulp at 1.0 is the most the last cast can add
        torch.testing.assert_close(batched.image, alone.image, atol=torch.finfo(torch.float32).eps, rtol=0)


def test_cancelled_sweep_keeps_finished_layers_and_returns_every_image(lite0, cat_small):
    config = DreamConfig(octaves=1, iterations=3)
    steps = []
    sweep = dream_batch(lite0, cat_small[None].repeat(3, 1, 1, 1), [LayerL2(n) for n in ("block2", "block5", "block8")],
                        config, on_step=lambda s, t, p: steps.append(s), should_cancel=lambda: len(steps) >= 4)
    assert [r.cancelled for r in sweep] == [False, True, True] and len(sweep[1].trace) == 1
    assert torch.equal(sweep[2].image, cat_small)
    assert count_hooks(lite0.module) == 0


def test_tiled_dream_covers_the_whole_image_in_bounded_pieces(lite0, cat_path):
    image = load_image(cat_path, 200)
    config = DreamConfig(octaves=1, iterations=3, jitter=0, tile_size=64)
    result = dream(lite0, image, LayerL2("block5"), config)
    changed = (result.image - image).abs().sum(0) > 1e-4
    assert result.trace[-1] > result.trace[0]
    assert changed.float().mean() > 0.95  # no tile left undreamed
    assert count_hooks(lite0.module) == 0


def test_result_metadata_says_how_it_was_made(lite0, cat_small):
    meta = dream(lite0, cat_small, LayerL2("block5"), QUICK).record
    assert meta.model == "efficientnet_lite0" and meta.layers == ["block5"]
    assert meta.seed == QUICK.seed and meta.config == QUICK.to_dict()
    assert len(meta.weights_sha256) == 64 and meta.versions["torch"] == torch.__version__
    assert meta.device == "cpu" and meta.seconds > 0


def test_octaves_go_small_to_large_and_end_at_full_size():
    sizes = octave_sizes(300, 200, 4, 1.4)
    assert sizes[-1] == (300, 200) and sizes == sorted(sizes)


def test_laplacian_normalisation_equalises_scale():
    grad = torch.randn(2, 3, 64, 64) * torch.tensor([1.0, 100.0]).view(2, 1, 1, 1)
    out = laplacian_normalize(grad)
    assert out.shape == grad.shape
    ratio = out[1].abs().mean() / out[0].abs().mean()
    assert 0.5 < ratio < 2


@pytest.mark.parametrize("bad", [{"octaves": 0}, {"iterations": 10_000}, {"step_size": -1}, {"jitter": 999},
                                 {"normalization": "l7"}, {"tile_size": 8}, {"octave_scale": 1.0}])
def test_impossible_settings_are_clear_errors(bad):
    with pytest.raises(ConfigError, match="Invalid setting"):
        DreamConfig(**bad).validate()


def test_presets_are_valid_and_described():
    assert {"google", "tensorflow", "gentle", "deep"} <= set(PRESETS)
    for item in PRESETS.values():
        item.config.validate()
        assert item.description
    with pytest.raises(ConfigError, match="Unknown preset"):
        preset("psychedelic")


@pytest.mark.parametrize("bad", [{"type": "layer"}, {"type": "channels", "layer": "block3", "channels": "ab"},
                                 {"type": "sum", "terms": [{"weight": 1}]}, {"type": "spell"}])
def test_malformed_recipe_objectives_are_clear_errors(bad):
    with pytest.raises(ConfigError):
        objective_from_dict(bad)
