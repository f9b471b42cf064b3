"""The study engine on Ray: a simulated two-node cluster on this machine (loopback only), started once.

Every node is on 127.0.0.1 with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 and no usage report or dashboard,
and the cluster is shut down in finally. Plans are a handful of 64 px, 2-step dreams.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from analysis.dream import preset
from analysis.studies import executors
from analysis.studies.plan import Plan, expand
from analysis.studies.store import Results

executors.ray_env()  # before ray's first import: Ray reads the loopback switch when it is imported
import ray
from ray.cluster_utils import Cluster

NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}
WEIGHTS_ENV = "INCEPTIONISM_WEIGHTS_DIR"
FAST_FAILURE = {"health_check_period_ms": 500, "health_check_failure_threshold": 2}


def plan(**changes: object) -> Plan:
    base = Plan(models=("efficientnet_lite0", "efficientnet_lite0-untrained"), depths=(0.6,), images=("coffee",),
                noise_seeds=1, seeds=(0,), config=preset("quick", octaves=1, iterations=2), preset="quick", size=64,
                threads=1)
    return replace(base, **changes).validate()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and one worker node, 1 CPU each (so one actor each), the driver connected to the head.
    The nodes see an empty weights folder: only the embedded EfficientNet-Lite weights are there."""
    assert ray.util.get_node_ip_address() == "127.0.0.1"  # never the machine's outward address
    weights = os.environ.get(WEIGHTS_ENV)
    os.environ[WEIGHTS_ENV] = str(tmp_path_factory.mktemp("no-weights"))
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "_system_config": FAST_FAILURE})
    try:
        cluster.add_node(**NODE)
        ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if weights is None:
            os.environ.pop(WEIGHTS_ENV, None)
        else:
            os.environ[WEIGHTS_ENV] = weights


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["seconds"]).sort_values("item").reset_index(drop=True)


def test_in_process_and_ray_give_the_same_rows_and_pixels(cluster, tmp_path: Path) -> None:
    small = plan()
    executors.run(small, tmp_path / "here")
    on_ray = executors.RayExecutor()
    summary = executors.run(small, tmp_path / "ray", on_ray, batch_size=1)
    assert summary.executor == "ray" and summary.written == len(expand(small)) == 4
    assert len(on_ray.workers) == 2 and on_ray.deaths == 0  # an actor on each node
    here, there = Results.open(tmp_path / "here"), Results.open(tmp_path / "ray")
    pd.testing.assert_frame_equal(comparable(here.table()), comparable(there.table()))
    for sha in here.table()["dream_sha256"]:
        assert here.dream_path(sha).read_bytes() == there.dream_path(sha).read_bytes()


def test_a_node_removed_mid_study_loses_no_item_and_doubles_none(cluster, tmp_path: Path) -> None:
    node = cluster.add_node(**NODE)
    work = plan(models=("efficientnet_lite0",), seeds=(0, 1, 2))  # 6 items
    on_ray, removed = executors.RayExecutor(), []

    def remove_after_the_first_batch(done: int, _total: int, _preview: object) -> None:
        if done >= 1 and not removed:
            cluster.remove_node(node)
            removed.append(node)

    summary = executors.run(work, tmp_path / "r", on_ray, batch_size=1, on_step=remove_after_the_first_batch)
    table = Results.open(tmp_path / "r").table()
    assert removed and on_ray.deaths == 1
    assert summary.written == 6 and len(table) == 6 and table["item"].is_unique
    assert sorted(table["item"]) == sorted(item.id for item in expand(work))


def test_a_worker_without_the_weights_says_so(cluster, tmp_path: Path) -> None:
    from analysis.errors import WeightsMissingError

    with pytest.raises(WeightsMissingError, match="On a Ray worker: .*googlenet"):
        executors.run(plan(models=("googlenet",)), tmp_path / "r", executors.RayExecutor())
    assert Results.open(tmp_path / "r").table().empty


def test_the_atlas_pass_gives_the_same_numbers_in_process_and_on_ray(cluster, tmp_path: Path) -> None:
    """Seven views in batches of two: four items over two actors (one per node), each loading Lite0 once."""
    import numpy as np

    from analysis import atlas
    from analysis.zoo import load_model

    model = load_model("efficientnet_lite0", device="cpu")
    views = atlas.sample_collection(scales=((1.0, 1), (0.5, 2)))[:7]
    settings = atlas.AtlasSettings(side=48, batch=2)
    here = atlas.run_pass(model, "block3", views, tmp_path / "here", settings, threads=1)
    on_ray = executors.RayExecutor()
    there = atlas.run_pass(model, "block3", views, tmp_path / "ray", settings, executor=on_ray, threads=1)
    assert here.complete and there.complete and there.batches_done == 4
    assert len(on_ray.workers) == 2 and on_ray.deaths == 0
    a, b = atlas.load_atlas(tmp_path / "here"), atlas.load_atlas(tmp_path / "ray")
    for name in ("maximum", "mean", "row", "col"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.manifest == b.manifest and a.grid == b.grid


def test_a_gallery_gives_the_same_rows_and_renders_on_ray(cluster, tmp_path: Path) -> None:
    """Four channels of block1 in batches of two: each actor renders one batched optimisation."""
    from analysis.featviz import FeatvizConfig

    gallery = plan(workload="gallery", models=("efficientnet_lite0",), depths=(), layers=("block1",), images=(),
                   noise_seeds=0, judges=(), channels=(0, 1, 2, 3), size=32, featviz=FeatvizConfig(steps=2))
    executors.run(gallery, tmp_path / "here", batch_size=2)
    on_ray = executors.RayExecutor()
    summary = executors.run(gallery, tmp_path / "ray", on_ray, batch_size=2)
    assert summary.written == 4 and len(on_ray.workers) == 2 and on_ray.deaths == 0
    here, there = Results.open(tmp_path / "here"), Results.open(tmp_path / "ray")
    pd.testing.assert_frame_equal(comparable(here.table()), comparable(there.table()))
    for sha in here.table()["dream_sha256"]:
        assert here.dream_path(sha).read_bytes() == there.dream_path(sha).read_bytes()


def test_the_atlas_command_with_ray_stores_what_it_stores_in_process(cluster, tmp_path: Path, capsys) -> None:
    import numpy as np

    from analysis import atlas
    from analysis.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for sample in atlas.label_files.sample_images()[:3]:
        (photos / sample.path.name).write_bytes(sample.path.read_bytes())
    argv = ["atlas", "--layer", "block3", "--images", str(photos), "--size", "48", "--batch", "1", "--judge", "none",
            "--threads", "1", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "here")]) == 0
    assert main([*argv, "--ray", cluster.address, "--out", str(tmp_path / "ray")]) == 0
    assert "on Ray" in capsys.readouterr().out
    here, there = (atlas.load_atlas(atlas.atlas_folders(tmp_path / name)[0]) for name in ("here", "ray"))
    for name in ("maximum", "mean", "row", "col"):
        np.testing.assert_array_equal(getattr(here, name), getattr(there, name))
    assert ray.is_initialized()  # the command joined the driver's connection and left it as it found it
