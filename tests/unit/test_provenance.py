"""The run record: typed while the program runs, JSON only in a file, and read back from older PNGs."""

from __future__ import annotations

import io
import json

from PIL import Image, PngImagePlugin

from analysis.grids import GridItem, arrange
from analysis.pngmeta import METADATA_KEY, png_bytes, read_png_metadata, read_png_record
from analysis.provenance import RunRecord
from analysis.recipes import Recipe, replay_obstacle

RECIPE = {"recipe_version": 1, "model": "efficientnet_lite0", "objective": {"type": "layer", "layer": "_blocks.3"},
          "config": {"octaves": 1, "octave_scale": 1.4, "iterations": 2, "step_size": 0.01, "jitter": 4,
                     "normalization": "mean-abs", "clip": True, "seed": 7, "tile_size": 0},
          "image": {"kind": "noise", "size": [32, 32], "seed": 1}, "max_side": 32, "precision": "fp32"}
OLD_METADATA = {  # what dream.run_metadata wrote into every result PNG before the record was typed
    "model": "efficientnet_lite0", "training_data": "ImageNet", "layers": ["block3"],
    "objective": {"type": "layer", "layer": "_blocks.3"}, "objective_text": "L2 of block3", "config": RECIPE["config"],
    "seed": 7, "weights_sha256": "ab" * 32, "weights_layout": None,
    "input": {"channels": "RGB", "scale": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    "versions": {"inceptionism": "0.3.0", "torch": "2.14.1", "torchvision": "0.29.1", "python": "3.11.9"},
    "device": "cpu", "cpu": "Some CPU (AVX2)", "precision": "fp32", "seconds": 1.234, "steps": 2, "batch_size": 1,
    "recipe": RECIPE, "image": "noise", "study_item": "abc123"}


def _old_png(metadata: dict) -> bytes:
    """A PNG as the tool wrote it before: the metadata dict as JSON in the 'inceptionism' text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, json.dumps(metadata))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_an_older_png_reads_back_as_a_typed_record():
    record = read_png_record(_old_png(OLD_METADATA))
    assert record.model == "efficientnet_lite0" and record.training_data == "ImageNet"
    assert record.layers == ["block3"] and record.objective_text == "L2 of block3"
    assert record.seed == 7 and record.config == RECIPE["config"] and record.weights_sha256 == "ab" * 32
    assert record.weights_layout is None and record.input["channels"] == "RGB"
    assert record.versions["torch"] == "2.14.1" and record.device == "cpu" and record.cpu == "Some CPU (AVX2)"
    assert record.precision == "fp32" and record.seconds == 1.234 and record.steps == 2 and record.batch_size == 1
    assert Recipe.from_dict(record.recipe).to_dict() == RECIPE and replay_obstacle(record) is None
    assert record.extras == {"image": "noise", "study_item": "abc123"}  # what a kind of run adds stays, by name
    assert record.machine == "cpu fp32, CPU Some CPU (AVX2), torch 2.14.1, inceptionism 0.3.0"


def test_a_record_written_and_read_again_means_the_same_json():
    record = read_png_record(_old_png(OLD_METADATA))
    again = read_png_metadata(png_bytes(Image.new("RGB", (8, 8)), record))
    assert again == {k: v for k, v in OLD_METADATA.items() if v is not None}  # a null is an unknown value
    assert RunRecord.from_dict(again) == record


def test_values_that_are_not_a_runs_stay_in_extras_and_unknown_ones_are_none():
    grid = {"kind": "grid", "models": ["a", "b"], "training_data": ["ImageNet", "Places365"], "layers": ["x", "y"],
            "weights_sha256": {"a": "1" * 64}, "seeds": [1], "seed": True}
    record = RunRecord.from_dict(grid)
    assert record.training_data is None and record.weights_sha256 is None and record.seed is None
    assert record.layers == ["x", "y"]
    assert record.extras["training_data"] == ["ImageNet", "Places365"] and record.extras["seed"] is True
    assert record.to_dict() == grid
    assert RunRecord.from_dict({}) == RunRecord() and RunRecord().to_dict() == {}


def test_grid_labels_and_footnotes_read_an_older_pngs_record():
    first = read_png_record(_old_png(OLD_METADATA))
    second = read_png_record(_old_png({**OLD_METADATA, "layers": ["block9"], "objective_text": "L2 of block9"}))
    grid = arrange([GridItem(Image.new("RGB", (8, 8)), first, "a"), GridItem(Image.new("RGB", (8, 8)), second, "b")])
    assert grid.col_labels == ["block3", "block9"]
    assert "efficientnet_lite0 (ImageNet, weights sha256 abababababab)" in grid.footnote
    assert "longest side 32 px" in grid.footnote and "on cpu" in grid.footnote
    assert grid.recipe() is not None and grid.metadata()["layers"] == ["block3", "block9"]
