"""The Dream page in AppTest: dream, cancel, replay, and every user mistake as one st.error line."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from analysis.pngmeta import png_bytes
from analysis.zoo import count_hooks
from dashboard import results, state
from tests.app.conftest import finish_job

SLOT, RESULT = "dream.job", "dream.result"


def small(at, size: int = 64, preset: str = "quick"):
    """Smallest settings: seconds on a CPU."""
    at.slider(key="keep.dream.size").set_value(size)
    at.selectbox(key="keep.dream.preset").set_value(preset)
    return at.run()


def detailed(at, **values):
    at.toggle(key="keep.dream.detailed").set_value(True).run()
    preset = at.selectbox(key="keep.dream.preset").value
    for name, value in values.items():
        widget = at.get_by_key(f"keep.dream.{preset}.{name}") if hasattr(at, "get_by_key") else None
        (widget or at.number_input(key=f"keep.dream.{preset}.{name}")).set_value(value)
    return at.run()


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_dream_of_the_cat_shows_result_trace_top5_and_downloads(open_page):
    at = small(open_page("dream"))
    assert not at.error
    at.button(key="dream.run").click().run()
    assert not at.exception and not errors(at)
    at = finish_job(at, SLOT)
    assert not at.exception and not errors(at)
    run = at.session_state[RESULT]
    assert not run.result.cancelled and len(run.result.trace) == 10
    assert max(run.result.image.shape[1:]) == 64
    captions = [c for img in at.image for c in img.captions]
    assert "Original: Chelsea the cat" in captions
    assert any(c.startswith("Dream: EfficientNet-Lite0, L2 of block10") for c in captions)
    assert len(at.get("plotly_chart")) == 1
    assert [len(df.value) for df in at.dataframe] == [5, 5]
    assert at.dataframe[0].value["class"].iloc[0] in {"Egyptian cat", "tiger cat", "tabby"}
    assert len(at.get("download_button")) == 2
    assert at.session_state[results.RESULTS_KEY][-1].record.recipe["model"] == "efficientnet_lite0"


def test_cancel_stops_early_and_keeps_the_partial_dream(open_page):
    at = detailed(small(open_page("dream")), octaves=2, iterations=500)
    at.button(key="dream.run").click().run()
    assert not at.exception and not errors(at)
    at.button(key=f"{SLOT}:cancel").click().run()  # Cancel is drawn by the live panel
    at = finish_job(at, SLOT)
    run = at.session_state[RESULT]
    assert run.result.cancelled
    assert 0 < run.result.record.steps < 1000
    assert max(run.result.image.shape[1:]) == 64  # partial dream at full size
    assert any("Cancelled after" in w.value for w in at.warning)
    assert not errors(at)


def test_corrupt_upload_is_one_error_line(open_page):
    at = open_page("dream")
    at.radio(key="keep.dream.image_kind").set_value("My image").run()
    at.file_uploader(key="dream.upload").set_value(("broken.png", b"\x89PNG not really", "image/png")).run()
    assert not at.exception
    assert errors(at) == ["broken.png is not a readable image (UnidentifiedImageError)."]
    assert at.button(key="dream.run").disabled  # said once, under the uploader; nothing to dream
    assert SLOT not in at.session_state


def test_upload_is_dreamed_with_exif_rotation(open_page):
    picture = Image.new("RGB", (80, 40), (200, 30, 30))
    exif = picture.getexif()
    exif[0x0112] = 6  # rotate 90: the dream must be portrait
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", exif=exif)
    at = small(open_page("dream"))
    at.radio(key="keep.dream.image_kind").set_value("My image").run()
    at.file_uploader(key="dream.upload").set_value(("wide.jpg", buffer.getvalue(), "image/jpeg")).run()
    assert not errors(at)
    at.button(key="dream.run").click().run()
    at = finish_job(at, SLOT)
    run = at.session_state[RESULT]
    assert tuple(run.result.image.shape[1:]) == (64, 32)
    assert run.recipe.image.kind == "file" and run.recipe.image.name == "wide.jpg"


def test_no_upload_yet_is_one_error_line(open_page):
    at = open_page("dream")
    at.radio(key="keep.dream.image_kind").set_value("My image").run()
    at.button(key="dream.run").click().run()
    assert errors(at) == ["No image uploaded yet: drop a PNG, JPEG or WebP file on the uploader."]


def test_recipe_of_an_upload_replays_only_with_that_file(open_page):
    picture = Image.new("RGB", (60, 40), (30, 160, 60))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    at = small(open_page("dream"))
    at.radio(key="keep.dream.image_kind").set_value("My image").run()
    at.file_uploader(key="dream.upload").set_value(("green.png", buffer.getvalue(), "image/png")).run()
    at.button(key="dream.run").click().run()
    at = finish_job(at, SLOT)
    first = at.session_state[RESULT]
    recipe = first.recipe.to_json().encode()
    at.session_state["dream.upload_data"] = ("other.png", _png_claiming(8, 8))  # a different file now
    at.file_uploader(key="dream.recipe_upload").set_value(("green.recipe.json", recipe, "application/json")).run()
    at.button(key="dream.replay").click().run()
    assert errors(at) == ["This recipe dreams your file 'green.png': choose 'My image', upload that same file, "
                          "then replay."]
    at.session_state["dream.upload_data"] = ("green.png", buffer.getvalue())
    at.button(key="dream.replay").click().run()
    at = finish_job(at, SLOT)
    assert not errors(at)
    assert torch.equal(at.session_state[RESULT].result.image, first.result.image)


def test_model_without_weights_says_which_file_and_cannot_run(open_page):
    at = open_page("dream")
    at.selectbox(key="keep.model").set_value("googlenet").run()
    assert not at.exception
    (message,) = errors(at)
    assert message.startswith("googlenet: weight file 'googlenet-1378be20.pth' not found")
    assert "download.pytorch.org" in message
    assert at.button(key="dream.run").disabled
    at.toggle(key="keep.twin").set_value(True).run()  # its untrained twin needs no file
    assert not errors(at) and not at.button(key="dream.run").disabled


@pytest.mark.parametrize("setup, expected", [
    (lambda at: detailed(at, tile_size=32), "Invalid setting: tile size must be 0 (off) or 64 to 4096 px."),
    (lambda at: (at.radio(key="keep.dream.objective").set_value("Channels").run(),
                 at.text_input(key="keep.dream.channels").set_value("3, 999").run())[-1],
     "Channel 999 does not exist: block10 has channels 0 to 111."),
    (lambda at: (at.radio(key="keep.dream.objective").set_value("Channels").run(),
                 at.text_input(key="keep.dream.channels").set_value("three").run())[-1],
     "'three' is not a channel number: write numbers such as 3, 17, 40-42."),
    (lambda at: at.radio(key="keep.dream.objective").set_value("Class").run(),
     "Choose at least one class to dream towards."),
])
def test_impossible_settings_are_one_error_line(open_page, setup, expected):
    at = setup(small(open_page("dream")))
    at.button(key="dream.run").click().run()
    assert not at.exception
    assert errors(at) == [expected]
    assert SLOT not in at.session_state


@pytest.mark.parametrize("objective", ["Class", "Guide image", "Channels"])
def test_every_objective_dreams(open_page, objective):
    at = small(open_page("dream"))
    at.radio(key="keep.dream.image_kind").set_value("Noise").run()
    at.radio(key="keep.dream.objective").set_value(objective).run()
    if objective == "Class":
        at.multiselect(key="keep.dream.classes.ImageNet").set_value([207]).run()
    if objective == "Channels":
        at.text_input(key="keep.dream.channels").set_value("0-3, 7").run()
    at.button(key="dream.run").click().run()
    at = finish_job(at, SLOT)
    assert not at.exception and not errors(at)
    run = at.session_state[RESULT]
    expected = {"Class": "class", "Guide image": "guide", "Channels": "channels"}[objective]
    assert run.recipe.objective["type"] == expected
    assert run.recipe.image.kind == "noise"


@pytest.mark.parametrize("form", ["recipe JSON", "result PNG"])
def test_recipe_download_replays_to_the_same_pixels(open_page, form):
    at = small(open_page("dream"))
    at.button(key="dream.run").click().run()
    at = finish_job(at, SLOT)
    first = at.session_state[RESULT]
    if form == "recipe JSON":
        upload = ("cat.recipe.json", first.recipe.to_json().encode(), "application/json")
    else:  # the PNG the page offers: its metadata carries the recipe
        registered = at.session_state[results.RESULTS_KEY][-1]
        upload = ("cat.png", png_bytes(registered.image, registered.record), "image/png")
    at.file_uploader(key="dream.recipe_upload").set_value(upload)
    at.run()
    at.button(key="dream.replay").click().run()
    assert not errors(at)
    at = finish_job(at, SLOT)
    replay = at.session_state[RESULT]
    assert replay is not first and replay.replayed
    assert torch.equal(replay.result.image, first.result.image)
    said = "Replayed from a recipe JSON" if form == "recipe JSON" else "Replayed from a dream PNG: identical pixels"
    assert any(said in i.value for i in at.info)


@pytest.mark.parametrize("content, expected", [
    (b"{not json", "The recipe is not valid JSON (JSONDecodeError)."),
    (json.dumps({"hello": 1}).encode(), "This is not a dream recipe (no 'model')."),
    (json.dumps({"model": "efficientnet_lite0", "objective": {"type": "layer"}, "image": {"kind": "noise"}}).encode(),
     "The recipe's objective is malformed (KeyError: 'layer')."),
])
def test_bad_recipe_is_one_error_line(open_page, content, expected):
    at = open_page("dream")
    at.file_uploader(key="dream.recipe_upload").set_value(("bad.json", content, "application/json")).run()
    at.button(key="dream.replay").click().run()
    assert not at.exception
    assert errors(at) == [expected]


def test_two_sessions_dreaming_at_once_get_the_results_they_would_get_alone(open_page):
    """The device lock serialises runs from different sessions; no hook outlives them."""
    sessions = [small(open_page("dream")) for _ in range(2)]
    sessions[1].selectbox(key="keep.layer.efficientnet_lite0").set_value("_blocks.4").run()
    for at in sessions:
        at.button(key="dream.run").click().run()
    runs = [finish_job(at, SLOT).session_state[RESULT] for at in sessions]
    model = state._cached_model("efficientnet_lite0", "cpu", "fp32")
    assert count_hooks(model.module) == 0
    assert runs[0].result.record.layers == ["block10"] and runs[1].result.record.layers == ["block4"]
    from analysis.recipes import run_recipe
    for run in runs:  # each equals the same recipe dreamed alone
        alone = run_recipe(run.recipe, model)
        assert torch.equal(alone.image, run.result.image)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize("side, expected", [
    ((9000, 8000), "huge.png is 9000x8000 pixels; the limit is 64 megapixels."),
    ((20000, 20000), "huge.png is too large to decode safely."),
])
def test_huge_image_is_refused_in_one_line(open_page, side, expected):
    at = open_page("dream")
    at.radio(key="keep.dream.image_kind").set_value("My image").run()
    at.file_uploader(key="dream.upload").set_value(("huge.png", _png_claiming(*side), "image/png")).run()
    assert not at.exception
    assert errors(at) == [expected]
    assert at.button(key="dream.run").disabled and SLOT not in at.session_state


def test_the_sidebar_precision_choice_dreams_in_bf16_and_says_so(open_page):
    """bf16 is opt-in on the CPU (faster only where it has bf16 units); the result records it."""
    at = small(open_page("dream"))
    at.session_state[state.PRECISION_KEY] = "bf16"  # the sidebar's picker (drawn by dashboard/app.py)
    at.button(key="dream.run").click().run()
    at = finish_job(at, SLOT)
    assert not at.exception and not errors(at)
    assert at.session_state[RESULT].result.record.precision == "bf16"
