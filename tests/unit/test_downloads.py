"""Downloads through INCEPTIONISM_WEIGHTS_MIRROR from a local server: complete, cut, or not the published file."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from analysis import zoo
from analysis.cli import main
from analysis.errors import Cancelled, ConfigError, WeightsMissingError
from analysis.zoo.weights import downloads
from tests.weights_server import CUT, weights_mirror

CONTENT = bytes(range(256)) * 5000  # 1.28 MB: more than one chunk


def _hashed_spec(content: bytes) -> zoo.ModelSpec:
    """A zoo spec whose file name carries the sha256 prefix of content, torch.hub's way."""
    spec = zoo.get_spec("googlenet")
    name = f"tiny-{hashlib.sha256(content).hexdigest()[:12]}.pth"
    return replace(spec, weights=replace(spec.weights, filename=name))


@pytest.fixture
def mirror(monkeypatch):
    with weights_mirror() as served:
        monkeypatch.setenv(downloads.MIRROR_ENV, served.url)
        yield served


def test_a_complete_download_is_checked_moved_into_place_and_recorded(mirror, tmp_path):
    spec = _hashed_spec(CONTENT)
    mirror.serve(spec.weights.filename, CONTENT)
    progress = []
    done = downloads.download_weights(spec, tmp_path, on_bytes=lambda got, total: progress.append((got, total)))
    assert done.path == tmp_path / spec.weights.filename and done.path.read_bytes() == CONTENT
    assert done.sha256 == hashlib.sha256(CONTENT).hexdigest() and done.size == len(CONTENT)
    assert done.published_sha256 == done.sha256[:12] and done.url == f"{mirror.url}/{spec.weights.filename}"
    assert progress[-1] == (len(CONTENT), len(CONTENT)) and len(progress) >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([spec.weights.filename, downloads.SUMS_FILE])
    assert (tmp_path / downloads.SUMS_FILE).read_text() == f"{done.sha256}  {spec.weights.filename}\n"
    downloads.download_weights(spec, tmp_path)  # again: still one line for the file
    assert (tmp_path / downloads.SUMS_FILE).read_text() == f"{done.sha256}  {spec.weights.filename}\n"


def test_a_file_without_a_published_digest_still_has_its_sha256_recorded(mirror, tmp_path):
    spec = zoo.get_spec("resnet18_places365")
    mirror.serve(spec.weights.filename, CONTENT)
    done = downloads.download_weights(spec, tmp_path)
    assert done.published_sha256 is None and "publishes none" in done.describe()
    assert zoo.weights_present(spec, tmp_path)
    assert done.sha256 in (tmp_path / downloads.SUMS_FILE).read_text()


@pytest.mark.parametrize("case", ["cut", "wrong checksum", "missing on the mirror"])
def test_a_failed_download_leaves_the_weights_folder_clean(case, mirror, tmp_path):
    spec = _hashed_spec(CONTENT)
    if case == "cut":
        mirror.serve(spec.weights.filename, CONTENT, CUT)
    elif case == "wrong checksum":
        mirror.serve(spec.weights.filename, CONTENT[::-1])
    with pytest.raises(WeightsMissingError) as err:
        downloads.download_weights(spec, tmp_path)
    message = str(err.value)
    expected = {"cut": f"cut off after {len(CONTENT) // 2} of {len(CONTENT)} bytes",
                "wrong checksum": "is not the published file", "missing on the mirror": "answered 404"}[case]
    assert expected in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_cancelled_download_leaves_nothing(mirror, tmp_path):
    spec = _hashed_spec(CONTENT)
    mirror.serve(spec.weights.filename, CONTENT)
    with pytest.raises(Cancelled, match="cancelled"):
        downloads.download_weights(spec, tmp_path, should_cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_the_mirror_replaces_every_source_and_must_be_an_address(monkeypatch):
    monkeypatch.setenv(downloads.MIRROR_ENV, "https://mirror.example/w/")
    for name in ("googlenet", "resnet18_places365", "bvlc_googlenet", "inceptionv1_lucent"):
        spec = zoo.get_spec(name)
        assert downloads.source_url(spec) == "https://mirror.example/w/" + spec.weights.filename
    monkeypatch.setenv(downloads.MIRROR_ENV, "mirror.example")
    with pytest.raises(ConfigError, match="not an http"):
        downloads.source_url(zoo.get_spec("googlenet"))
    monkeypatch.delenv(downloads.MIRROR_ENV)
    assert downloads.source_url(zoo.get_spec("googlenet")).startswith("https://download.pytorch.org/")
    assert downloads.published_sha256(zoo.get_spec("bvlc_googlenet")) == "1f25f8c8778a8802"
    with pytest.raises(ConfigError, match="no download address"):
        downloads.source_url(zoo.get_spec("efficientnet_lite0"))


def test_the_cli_download_uses_the_same_path(mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path))
    spec = zoo.get_spec("inceptionv1_lucent")
    mirror.serve(spec.weights.filename, CONTENT, CUT)
    assert main(["download", "inceptionv1_lucent"]) == 2
    err = capsys.readouterr().err  # the progress bar's line, then one error line of its own
    assert err.count("error: ") == 1 and err.splitlines()[-1].startswith("error: Download of")
    assert err.endswith("nothing was kept. Try again.\n") and list(tmp_path.iterdir()) == []
    mirror.serve(spec.weights.filename, CONTENT)
    assert main(["download", "inceptionv1_lucent"]) == 0
    out = capsys.readouterr().out
    assert f"saved {tmp_path / spec.weights.filename}" in out and hashlib.sha256(CONTENT).hexdigest() in out


def test_the_cli_says_an_embedded_or_untrained_model_has_nothing_to_download(capsys):
    for name in ("efficientnet_lite0", "efficientnet_lite0-untrained"):
        assert main(["download", name]) == 2
        err = capsys.readouterr().err  # one line, no empty progress bar before it
        assert err.count("\n") == 1 and err.startswith(f"error: {name} has no download address")
        assert err.endswith("nothing to download.\n") and "efficientnet." not in err
