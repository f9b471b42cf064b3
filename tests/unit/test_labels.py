"""Label files, class groups and bundled samples (needs only pillow and pytest)."""

from __future__ import annotations

import pytest
from PIL import Image

from analysis import labels
from analysis.errors import ConfigError


def test_imagenet_has_1000_unique_names() -> None:
    names = labels.imagenet_classes()
    assert len(names) == 1000
    assert len(set(names)) == 1000
    assert names[0] == "tench"
    assert names[151] == "Chihuahua"
    assert names[268] == "Mexican hairless"
    assert names[999] == "toilet tissue"


def test_places365_has_365_clean_names() -> None:
    names = labels.places365_classes()
    assert len(names) == 365
    assert len(set(names)) == 365
    assert names[0] == "airfield"
    assert names[8] == "apartment building/outdoor"
    assert names[364] == "zen garden"
    assert all(not n.startswith("/") and "_" not in n for n in names)


def test_places365_file_keeps_the_csail_format() -> None:
    lines = (labels.LABELS_DIR / "categories_places365.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 365
    assert lines[0] == "/a/airfield 0"
    assert lines[-1] == "/z/zen_garden 364"


def test_places205_has_205_names() -> None:
    names = labels.places205_classes()
    assert len(names) == 205
    assert names[0] == "abbey"
    assert names[204] == "yard"


def test_dog_group_is_exactly_the_118_breeds() -> None:
    dogs = labels.class_groups("ImageNet")["dogs"]
    assert dogs == list(range(151, 269))
    assert len(dogs) == 118


@pytest.mark.parametrize(("dataset", "n_classes"), [("ImageNet", 1000), ("Places365", 365)])
def test_every_class_in_exactly_one_group(dataset: str, n_classes: int) -> None:
    groups = labels.class_groups(dataset)
    flat = sorted(i for indices in groups.values() for i in indices)
    assert flat == list(range(n_classes))
    assert all(indices for indices in groups.values())


def test_imagenet_group_names() -> None:
    assert set(labels.class_groups("ImageNet")) == {
        "dogs", "other mammals", "birds", "reptiles and amphibians", "insects and spiders",
        "sea life", "food", "vehicles", "buildings and structures", "other objects",
    }


def test_places_group_names() -> None:
    assert set(labels.class_groups("Places365")) == {"indoor", "outdoor natural", "outdoor man-made"}


def test_group_of_matches_class_groups() -> None:
    per_class = labels.group_of("ImageNet")
    assert len(per_class) == 1000
    assert per_class[151] == per_class[268] == "dogs"
    assert per_class[150] != "dogs" and per_class[269] != "dogs"
    places = labels.group_of("Places365")
    assert len(places) == 365
    names = labels.places365_classes()
    assert places[names.index("bedroom")] == "indoor"
    assert places[names.index("mountain")] == "outdoor natural"
    assert places[names.index("skyscraper")] == "outdoor man-made"


def test_dataset_name_is_case_insensitive_and_unknown_is_refused() -> None:
    assert labels.class_groups("imagenet") == labels.class_groups("ImageNet")
    with pytest.raises(ConfigError):
        labels.class_groups("COCO")


def test_returned_lists_are_copies() -> None:
    labels.imagenet_classes().clear()
    labels.class_groups("ImageNet")["dogs"].clear()
    assert len(labels.imagenet_classes()) == 1000
    assert len(labels.class_groups("ImageNet")["dogs"]) == 118


def test_samples_open_and_the_cat_is_there() -> None:
    samples = labels.sample_images()
    assert len(samples) >= 4
    for sample in samples:
        assert sample.path.parent == labels.ASSETS_DIR / "samples"
        assert sample.title and sample.licence
        with Image.open(sample.path) as image:
            image.verify()
        with Image.open(sample.path) as image:
            assert image.mode == "RGB"
            assert max(image.size) <= 512
    cats = [s for s in samples if s.subject == "cat"]
    assert len(cats) == 1
    assert cats[0].path.name == "cat_chelsea.jpg"
