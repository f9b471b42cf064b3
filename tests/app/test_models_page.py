"""The Models page in AppTest: the zoo table, how to add missing weights, the layer browser."""

from __future__ import annotations

from analysis import zoo


def test_zoo_table_and_missing_weights(open_page, no_extra_weights):
    at = open_page("models")
    assert not at.error
    zoo_table = at.dataframe[0].value
    assert len(zoo_table) == len(zoo.model_names())
    lite0 = zoo_table[zoo_table["name"] == "efficientnet_lite0"].iloc[0]
    assert lite0["weights"].startswith("✓") and lite0["trained on"] == "ImageNet"
    assert zoo_table[zoo_table["name"] == "googlenet"].iloc[0]["weights"] == "✗ missing"
    missing = at.dataframe[1].value
    row = missing[missing["model"] == "GoogLeNet (Inception v1)"].iloc[0]
    assert row["file name"] == "googlenet-1378be20.pth"
    assert row["download from"].startswith("https://download.pytorch.org/")
    assert str(no_extra_weights) in " ".join(m.value for m in at.markdown)


def test_layer_browser_follows_the_sidebar_model(open_page):
    at = open_page("models")
    layers = at.dataframe[2].value
    assert layers["layer"].tolist()[:2] == ["block0", "block1"] and layers["layer"].iloc[-1] == "logits"
    assert layers["depth"].iloc[0] == 0.0 and layers["depth"].iloc[-1] == 1.0
    assert len(at.get("plotly_chart")) == 1
    at.selectbox(key="keep.model").set_value("googlenet_places365").run()  # shapes need no weights
    assert not at.exception and not at.error
    layers = at.dataframe[2].value
    assert "inception_4c/output" in layers["layer"].tolist()
    assert layers[layers["layer"] == "logits"].iloc[0]["shape"] == "365"


def test_a_missing_model_downloads_from_its_button_through_the_mirror(open_page, no_extra_weights, monkeypatch):
    import hashlib

    from analysis.zoo.weights import downloads
    from tests.weights_server import CUT, weights_mirror

    content = b"weights" * 100000
    spec = zoo.get_spec("inceptionv1_lucent")
    with weights_mirror() as mirror:
        monkeypatch.setenv(downloads.MIRROR_ENV, mirror.url)
        mirror.serve(spec.weights.filename, content, CUT)
        at = open_page("models")
        assert "inception5h.pth" in at.button(key="models.download.inceptionv1_lucent").help
        at.button(key="models.download.inceptionv1_lucent").click().run()
        assert not at.exception and len(at.error) == 1 and "cut off" in at.error[0].value
        assert list(no_extra_weights.iterdir()) == []
        mirror.serve(spec.weights.filename, content)
        at.button(key="models.download.inceptionv1_lucent").click().run()
    assert not at.exception and not at.error
    assert hashlib.sha256(content).hexdigest() in at.success[0].value
    zoo_table = at.dataframe[0].value
    assert zoo_table[zoo_table["name"] == "inceptionv1_lucent"].iloc[0]["weights"].startswith("✓")
    assert "models.download.inceptionv1_lucent" not in [b.key for b in at.button]


def test_a_mistyped_mirror_is_one_line_and_offers_no_download(open_page, monkeypatch):
    from analysis.zoo.weights import downloads

    monkeypatch.setenv(downloads.MIRROR_ENV, "mirror.example/weights")
    at = open_page("models")
    assert len(at.error) == 1 and downloads.MIRROR_ENV in at.error[0].value
    assert not [b for b in at.button if b.key.startswith("models.download.")]
    assert len(at.dataframe) == 3  # the zoo, the missing files and the layer browser still show
