"""The Models page in AppTest: the zoo table, how to add missing weights, the layer browser."""

from __future__ import annotations

from analysis import models


def test_zoo_table_and_missing_weights(open_page, no_extra_weights):
    at = open_page("models")
    assert not at.error
    zoo = at.dataframe[0].value
    assert len(zoo) == len(models.model_names())
    lite0 = zoo[zoo["name"] == "efficientnet_lite0"].iloc[0]
    assert lite0["weights"].startswith("✓") and lite0["trained on"] == "ImageNet"
    assert zoo[zoo["name"] == "googlenet"].iloc[0]["weights"] == "✗ missing"
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
