"""Generate imagenet_groups.json and places365_groups.json from explicit lists.

Run from anywhere:  python assets/labels/make_groups.py

Everything below is spelled out as index ranges (ImageNet) or category names
(Places365) so that a reviewer can check each decision against the label files
that sit next to this script:

* imagenet_classes.txt        1000 ImageNet-1k names, index order (torchvision)
* categories_places365.txt    CSAIL's official Places365 list ("/a/airfield 0")
* IO_places365.txt            CSAIL's indoor (1) / outdoor (2) flag per category

The script checks that every class lands in exactly one group and spot-checks
names at the range boundaries, so an off-by-one fails loudly instead of
silently shifting a group.  Only the standard library is used.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _r(first: int, last: int) -> list[int]:
    """Inclusive integer range."""
    return list(range(first, last + 1))


# --------------------------------------------------------------------------
# ImageNet-1k
# --------------------------------------------------------------------------
# The 1000 classes follow the WordNet order of the ILSVRC-2012 synsets, so the
# animal groups are mostly contiguous ranges.  Objects (398-922) are
# alphabetical and therefore listed one by one for vehicles and buildings;
# whatever is left over is "other objects".

IMAGENET_GROUPS: dict[str, list[int]] = {
    # 151 Chihuahua .. 268 Mexican hairless: the 118 dog breeds.
    "dogs": _r(151, 268),
    "other mammals": (
        _r(101, 106)  # tusker, echidna, platypus, wallaby, koala, wombat
        + _r(269, 299)  # wolves, foxes, hyena, cats, big cats, bears, mongoose, meerkat
        + _r(330, 388)  # rabbits, rodents, hoofed animals, mustelids, primates, elephants, pandas
    ),
    "birds": (
        _r(7, 24)  # cock .. great grey owl
        + _r(80, 100)  # black grouse .. black swan
        + _r(127, 146)  # white stork .. albatross
    ),
    "reptiles and amphibians": _r(25, 68),  # salamanders, frogs, turtles, lizards, crocodilians, snakes
    "insects and spiders": (
        _r(69, 79)  # trilobite, harvestman, scorpion, spiders, tick, centipede
        + _r(300, 326)  # beetles, fly, bee, ant, grasshopper .. butterflies
    ),
    "sea life": (
        _r(0, 6)  # tench, goldfish, sharks, rays
        + _r(107, 126)  # jellyfish, anemone, coral, worms, molluscs, crabs, lobsters, isopod
        + _r(147, 150)  # grey whale, killer whale, dugong, sea lion (marine mammals)
        + _r(327, 329)  # starfish, sea urchin, sea cucumber
        + _r(389, 397)  # barracouta .. puffer (fish)
    ),
    "food": (
        [923]  # plate (a dish of food)
        + _r(924, 957)  # guacamole .. pomegranate: dishes, bread, vegetables, mushroom, fruit
        + _r(959, 969)  # carbonara .. eggnog (958 hay is animal fodder -> other objects)
    ),
    "vehicles": [
        403, 404, 405, 407, 408, 417, 436, 444, 450, 466, 468, 472, 484, 510,
        511, 537, 547, 554, 555, 561, 565, 569, 573, 575, 576, 586, 595, 603,
        609, 612, 625, 627, 628, 654, 656, 661, 665, 670, 671, 675, 690, 705,
        717, 724, 734, 751, 757, 779, 780, 802, 803, 812, 814, 817, 820, 829,
        833, 847, 856, 864, 866, 867, 870, 871, 874, 880, 895, 908, 913, 914,
    ],
    "buildings and structures": [
        406, 410, 415, 421, 424, 425, 437, 442, 449, 454, 460, 467, 483, 489,
        497, 498, 500, 509, 525, 536, 538, 540, 562, 580, 582, 624, 634, 646,
        649, 660, 663, 668, 672, 682, 698, 706, 716, 718, 727, 743, 755, 762,
        788, 807, 819, 821, 825, 832, 839, 853, 858, 860, 863, 865, 873, 884,
        888, 900, 912, 915,
    ],
    # "other objects" is filled in below with every index not listed above:
    # the remaining man-made objects (398-922), landscapes (970-980), people
    # (981-983), plants and fungi (984-998), hay (958) and toilet tissue (999).
    "other objects": [],
}

# (index, expected name) pairs at the edges of the ranges above.
IMAGENET_SPOT_CHECKS: list[tuple[int, str]] = [
    (0, "tench"), (6, "stingray"), (7, "cock"), (24, "great grey owl"),
    (25, "European fire salamander"), (68, "sidewinder"), (69, "trilobite"),
    (79, "centipede"), (80, "black grouse"), (100, "black swan"),
    (101, "tusker"), (106, "wombat"), (107, "jellyfish"), (126, "isopod"),
    (127, "white stork"), (146, "albatross"), (147, "grey whale"),
    (150, "sea lion"), (151, "Chihuahua"), (268, "Mexican hairless"),
    (269, "timber wolf"), (299, "meerkat"), (300, "tiger beetle"),
    (326, "lycaenid"), (327, "starfish"), (329, "sea cucumber"),
    (330, "wood rabbit"), (388, "giant panda"), (389, "barracouta"),
    (397, "puffer"), (398, "abacus"), (922, "menu"), (923, "plate"),
    (957, "pomegranate"), (958, "hay"), (959, "carbonara"), (969, "eggnog"),
    (970, "alp"), (999, "toilet tissue"),
    # a few of the hand-picked vehicles / structures
    (403, "aircraft carrier"), (417, "balloon"), (908, "wing"), (913, "wreck"),
    (914, "yawl"), (406, "altar"), (660, "mobile home"), (915, "yurt"),
]

IMAGENET_DESCRIPTION = (
    "Coarse semantic groups of the 1000 ImageNet-1k (ILSVRC-2012) classes, "
    "indices as in imagenet_classes.txt (torchvision order). Every index is in "
    "exactly one group. Built by assets/labels/make_groups.py from explicit "
    "index ranges that follow the WordNet order of the synsets. 'dogs' is "
    "exactly indices 151-268 (the 118 dog breeds). Choices worth knowing: "
    "marine mammals (147-150: whales, dugong, sea lion) are in 'sea life'; "
    "snails, slugs, worms, crayfish and other invertebrates 107-126 are in "
    "'sea life'; trilobite, harvestman, scorpion, tick and centipede are in "
    "'insects and spiders'; 'vehicles' means means of transport (land, rail, "
    "water, air, space, incl. aircraft wing, shipwreck and hot-air balloon), "
    "carts such as barrow and shopping cart are 'other objects'; shops, "
    "bridges, fences, roofs, tents and monuments are 'buildings and "
    "structures'; hay, landscapes (970-980), people (981-983), plants and "
    "fungi (984-998) are 'other objects'."
)


# --------------------------------------------------------------------------
# Places365
# --------------------------------------------------------------------------
# Indoor vs outdoor comes from CSAIL's IO_places365.txt (1 = indoor,
# 2 = outdoor).  The split of the outdoor categories into natural and
# man-made is a hand list (the official Places365 scene hierarchy is a
# Google Sheet that could not be obtained offline): a category is "outdoor
# natural" when its subject is a landform, water body, wild vegetation, ice
# or sky; anything built, cultivated or laid out by people (roads, farms and
# crop fields, gardens, parks, sports grounds, boats) is "outdoor man-made".

PLACES_OUTDOOR_NATURAL: list[str] = [
    "/b/badlands", "/b/bamboo_forest", "/b/beach", "/b/butte",
    "/c/canal/natural", "/c/canyon", "/c/cliff", "/c/coast", "/c/creek",
    "/c/crevasse", "/d/desert/sand", "/d/desert/vegetation", "/f/field/wild",
    "/f/forest/broadleaf", "/f/forest_path", "/g/glacier", "/g/grotto",
    "/h/hot_spring", "/i/ice_floe", "/i/ice_shelf", "/i/iceberg", "/i/islet",
    "/l/lagoon", "/l/lake/natural", "/m/marsh", "/m/mountain",
    "/m/mountain_path", "/m/mountain_snowy", "/o/ocean", "/p/pond",
    "/r/rainforest", "/r/river", "/r/rock_arch", "/s/sky", "/s/snowfield",
    "/s/swamp", "/s/swimming_hole", "/t/tundra", "/u/underwater/ocean_deep",
    "/v/valley", "/v/volcano", "/w/waterfall", "/w/watering_hole", "/w/wave",
]

# Corrections to IO_places365.txt, applied before the natural/man-made split.
# swimming_hole (a natural pool in a river or lake) is flagged 1 (indoor) there.
PLACES_IO_OVERRIDES: dict[str, int] = {"/s/swimming_hole": 2}

PLACES_DESCRIPTION = (
    "Places365 categories (indices as in categories_places365.txt) in three "
    "groups; every index in exactly one. Indoor vs outdoor: CSAIL's "
    "IO_places365.txt from github.com/CSAILVision/places365 (1 = indoor, "
    "2 = outdoor), with one correction: /s/swimming_hole is flagged indoor "
    "there and is treated as outdoor natural here. Natural vs man-made among "
    "the outdoor categories: a hand list in assets/labels/make_groups.py "
    "(the official Places365 scene hierarchy, a Google Sheet, was not "
    "available offline), so it approximates but is not the CSAIL hierarchy. "
    "Landforms, water bodies, wild vegetation, ice and sky are 'outdoor "
    "natural'; roads, farms and cultivated fields, gardens, parks, sports "
    "grounds and boats are 'outdoor man-made'. The official hierarchy lets a "
    "category belong to several groups; here each has exactly one."
)


def build_imagenet(names: list[str]) -> dict[str, object]:
    assert len(names) == 1000, len(names)
    for idx, expected in IMAGENET_SPOT_CHECKS:
        assert names[idx] == expected, (idx, names[idx], expected)
    groups = {k: sorted(v) for k, v in IMAGENET_GROUPS.items()}
    listed = [i for v in groups.values() for i in v]
    dupes = {i for i in listed if listed.count(i) > 1}
    assert not dupes, f"indices in more than one group: {sorted(dupes)}"
    groups["other objects"] = sorted(set(range(1000)) - set(listed))
    assert sorted(i for v in groups.values() for i in v) == list(range(1000))
    assert groups["dogs"] == list(range(151, 269)) and len(groups["dogs"]) == 118
    return {"description": IMAGENET_DESCRIPTION, "groups": groups}


def build_places(categories: list[str], io_flags: dict[str, int]) -> dict[str, object]:
    assert len(categories) == 365, len(categories)
    natural = set(PLACES_OUTDOOR_NATURAL)
    unknown = natural - set(categories)
    assert not unknown, f"not Places365 categories: {sorted(unknown)}"
    groups: dict[str, list[int]] = {"indoor": [], "outdoor natural": [], "outdoor man-made": []}
    for idx, cat in enumerate(categories):
        flag = PLACES_IO_OVERRIDES.get(cat, io_flags[cat])
        if flag == 1:
            assert cat not in natural, f"{cat} is indoor in IO_places365.txt"
            groups["indoor"].append(idx)
        elif cat in natural:
            groups["outdoor natural"].append(idx)
        else:
            groups["outdoor man-made"].append(idx)
    assert sorted(i for v in groups.values() for i in v) == list(range(365))
    return {"description": PLACES_DESCRIPTION, "groups": groups}


def read_places_file(path: Path) -> list[tuple[str, int]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            name, value = line.rsplit(" ", 1)
            rows.append((name, int(value)))
    return rows


def _dump(payload: dict[str, object]) -> str:
    """JSON with one line per group, so diffs stay readable."""
    groups = payload["groups"]
    assert isinstance(groups, dict)
    lines = ["{", f' "description": {json.dumps(payload["description"])},', ' "groups": {']
    items = list(groups.items())
    for n, (name, indices) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        lines.append(f"  {json.dumps(name)}: {json.dumps(indices)}{comma}")
    lines += [" }", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == payload
    return text


def main() -> None:
    names = (HERE / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()
    imagenet = build_imagenet(names)

    cat_rows = read_places_file(HERE / "categories_places365.txt")
    assert [i for _, i in cat_rows] == list(range(365))
    categories = [name for name, _ in cat_rows]
    io_rows = read_places_file(HERE / "IO_places365.txt")
    assert [name for name, _ in io_rows] == categories
    places = build_places(categories, dict(io_rows))

    for filename, payload in (("imagenet_groups.json", imagenet), ("places365_groups.json", places)):
        text = _dump(payload)
        (HERE / filename).write_text(text, encoding="utf-8")
        sizes = {k: len(v) for k, v in payload["groups"].items()}  # type: ignore[union-attr]
        print(f"{filename}: {sizes}")


if __name__ == "__main__":
    main()
