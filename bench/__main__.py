"""python -m bench [--quick] [--only SECTION ...]: prints a table, writes bench/results/<date>-<machine>.json.

Every figure is a median over repeats after a warm-up; every comparison is a ratio of two
figures taken in the same run, so a busy machine skews both sides alike.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from analysis.dream import DreamConfig, dream, dream_batch
from analysis.objectives import LayerL2
from analysis.polyphase import use_native_gradients
from analysis.zoo import PRECISIONS, LayerInfo, LoadedModel, cpu_kind, load_model, pick_precision
from bench.dashboard import section_dashboard

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak_gflops(device: torch.device, repeats: int) -> float:
    """The machine's own float32 matrix-multiply rate: the yardstick for achieved GFLOP/s.
    The fastest of many runs: a peak, which a shared machine's noise can only lower."""
    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    fastest = min(median_seconds(lambda: a @ b, repeats=1, warmup=1 if i == 0 else 0) for i in range(max(30, repeats)))
    return 2 * n ** 3 / fastest / 1e9


def flops_per_step(model: LoadedModel, image: torch.Tensor, layer: str) -> float:
    """Forward + backward FLOPs of one step of the network as written: the work a step needs, not
    the work our path happens to do (the polyphase stem gradient multiplies some zero taps).
    FlopCounterMode needs .backward(), not autograd.grad."""
    x = image[None].to(model.device).requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        _truncated_activation(plain_model(model), x, layer, torch.contiguous_format).pow(2).mean().backward()
    return float(counter.get_total_flops())


_PLAIN: dict[str, LoadedModel] = {}


def plain_model(model: LoadedModel, memory_format: torch.memory_format = torch.contiguous_format) -> LoadedModel:
    """The network as DeepDream scripts hold it: as its authors wrote it (BatchNorms kept, its own
    input transform), NCHW, float32; with the preprocessing that goes with it."""
    key = f"{model.name}-{memory_format}"
    if key not in _PLAIN:
        plain = load_model(model.name, device=model.device, fast_paths=False)
        plain.module.to(memory_format=memory_format)
        _PLAIN[key] = plain
    return _PLAIN[key]


def full_network_dream(model: LoadedModel, image: torch.Tensor, layer: str, steps: int) -> torch.Tensor:
    """The usual DeepDream script: the whole network forward, a hook at the layer, one octave."""
    plain = plain_model(model)
    network, module = plain.module, plain.module.get_submodule(model.layer(layer).name)
    x = image[None].to(model.device).clone()
    store: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda _m, _i, out: store.__setitem__("act", out))
    try:
        for _ in range(steps):
            x.requires_grad_(True)
            network(plain.preprocess(x))
            loss = store["act"].pow(2).mean()
            (grad,) = torch.autograd.grad(loss, x)
            x = (x + 1.5 / 255 * grad / (grad.abs().mean() + 1e-8)).detach().clamp(0, 1)
    finally:
        handle.remove()
    return x


def torch_dreams_dream(model: LoadedModel, image_size: int, layer: str, steps: int) -> None:
    """torch-dreams' Dreamer.render on the same model, layer, size and number of steps."""
    from torch_dreams.dreamer import Dreamer

    plain = plain_model(model)
    module = plain.module.get_submodule(model.layer(layer).name)
    dreamer = Dreamer(torch.nn.Sequential(plain.preprocess, plain.module), quiet=True, device=str(model.device))
    dreamer.render(layers=[module], width=image_size, height=image_size, iters=steps)


def section_speed(models: dict[str, LoadedModel], sizes: list[int], steps: int, repeats: int, peak: float,
                  with_torch_dreams: bool) -> list[dict]:
    """Ours at fp32 and bf16; the baselines (float32, the network as written) in the default precision's row."""
    rows = []
    for name, model in models.items():
        for info in model.layers_spread(3):
            for size in sizes:
                for precision in PRECISIONS:
                    model.precision = precision
                    rows.append(_speed_row(name, model, info, size, steps, repeats, peak,
                                           baselines=precision == pick_precision(None, model.device),
                                           with_torch_dreams=with_torch_dreams))
                model.precision = pick_precision(None, model.device)
    return rows


def _speed_row(name: str, model: LoadedModel, info: LayerInfo, size: int, steps: int, repeats: int, peak: float,
               baselines: bool, with_torch_dreams: bool) -> dict:
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    one_octave = DreamConfig(octaves=1, iterations=steps, jitter=32)
    ours = median_seconds(lambda: dream(model, image, LayerL2(info.name), one_octave), repeats)
    flops = flops_per_step(model, image, info.name)
    row = {"model": name, "layer": info.alias, "depth": info.depth, "size": size,
           "precision": model.precision, "it_per_s": steps / ours, "gflops_per_s": flops * steps / ours / 1e9}
    row["share_of_matmul_peak"] = row["gflops_per_s"] / peak
    if size <= 512 and baselines:
        full = median_seconds(lambda: full_network_dream(model, image, info.name, steps), repeats)
        row["speedup_vs_full_network"] = full / ours
        if with_torch_dreams:
            theirs = median_seconds(lambda: torch_dreams_dream(model, size, info.name, steps), repeats)
            row["speedup_vs_torch_dreams"] = theirs / ours
    print(_fmt(row), flush=True)
    return row


def section_sweep(model: LoadedModel, size: int, count: int, repeats: int) -> dict:
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    layers = [info.name for info in model.layers_spread(count)]
    config = DreamConfig(octaves=2, iterations=5)
    batched = median_seconds(lambda: dream_batch(model, image[None].repeat(count, 1, 1, 1),
                                                 [LayerL2(n) for n in layers], config, batched=True), repeats)
    sequential = median_seconds(lambda: [dream(model, image, LayerL2(n), config) for n in layers], repeats)
    row = {"model": model.name, "layers": count, "size": size, "batched_s": batched, "sequential_s": sequential,
           "speedup": sequential / batched}
    print(_fmt(row), flush=True)
    return row


ALLOCATOR_CHILD = """
import statistics, sys, threading, time, torch
from analysis import allocator
if sys.argv[1] == "glibc":
    allocator.keep_freed_buffers = lambda: False  # glibc's own policy: mmap and unmap every block over 32 MB
from analysis.zoo import load_model
from analysis.dream import DreamConfig, dream, dream_batch
from analysis.objectives import LayerL2
model = load_model("efficientnet_lite0", device="cpu")
size, count, repeats = (int(v) for v in sys.argv[2:5])
image = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(0))
layers = [LayerL2(i.name) for i in model.layers_spread(count)] if count > 1 else [LayerL2("block8")]
run = lambda: dream_batch(model, image, layers, DreamConfig(octaves=1, iterations=3, jitter=0), batched=True)
times = []
def measure():
    run()
    for _ in range(repeats):
        start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
if sys.argv[5] == "thread":  # as the dashboard runs dreams
    worker = threading.Thread(target=measure); worker.start(); worker.join()
else:
    measure()
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
print(statistics.median(times), peak)
"""


def section_allocator(repeats: int) -> list[dict]:
    """analysis.allocator (freed big blocks kept for the next step) against glibc's own policy,
    each in a fresh process: a 1024 and a 2048 px dream, and a batched 6-layer sweep at 512 px, in the
    main thread (the CLI), and a 1024 px dream in a worker thread (the dashboard)."""
    rows = []
    for size, count, thread in ((1024, 1, "main"), (2048, 1, "main"), (512, 6, "main"), (1024, 1, "thread")):
        row: dict = {"model": "efficientnet_lite0", "size": size, "images": count, "steps": 3, "thread": thread}
        for policy in ("glibc", "kept"):
            done = subprocess.run([sys.executable, "-c", ALLOCATOR_CHILD, policy, str(size), str(count), str(repeats),
                                   thread],
                                  capture_output=True, text=True, cwd=ROOT.parent, timeout=1800)
            seconds, peak = (float(v) for v in done.stdout.split()[-2:])
            row[f"{policy}_s"], row[f"{policy}_peak_rss_mb"] = seconds, peak
        row["speedup"] = row["glibc_s"] / row["kept_s"]
        rows.append(row)
        print(_fmt(row), flush=True)
    return rows


class _Stop(Exception):
    pass


def _truncated_activation(network: LoadedModel, x: torch.Tensor, layer: str,
                          memory_format: torch.memory_format) -> torch.Tensor:
    """The layer's output from the network cut after it, input in the given layout."""
    store: dict[str, torch.Tensor] = {}

    def capture(_m: torch.nn.Module, _i: object, out: torch.Tensor) -> None:
        store["act"] = out
        raise _Stop

    handle = network.module.get_submodule(layer).register_forward_hook(capture)
    try:
        network.module(network.preprocess(x).contiguous(memory_format=memory_format))
    except _Stop:
        pass
    finally:
        handle.remove()
    return store["act"]


def _truncated_step(network: LoadedModel, image: torch.Tensor, layer: str,
                    memory_format: torch.memory_format) -> torch.Tensor:
    """One gradient of the network cut after the layer, input in the given layout."""
    x = image[None].to(network.device).requires_grad_(True)
    act = _truncated_activation(network, x, layer, memory_format)
    return torch.autograd.grad(LayerL2(layer).score({layer: act}).sum(), x)[0]


def _with_native_stem(model: LoadedModel) -> LoadedModel:
    """A copy whose polyphase stem convolutions are plain Conv2d again (same weights)."""
    native = copy.deepcopy(model.module)
    use_native_gradients(native)
    return dataclasses.replace(model, module=native)


def section_layout(models: dict[str, LoadedModel], size: int, repeats: int) -> list[dict]:
    """What load_model does to the network, one truncated step at a time at each depth: the
    network as written (NCHW), channels_last, folded (BatchNorms into convolutions, and GoogLeNet's
    transform_input into the preprocessing), then the polyphase stem (CPU; elsewhere the same as folded)."""
    rows = []
    for name, model in models.items():
        image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
        forms = [("as_written", plain_model(model), torch.contiguous_format),
                 ("channels_last", plain_model(model, torch.channels_last), torch.channels_last),
                 ("folded", _with_native_stem(model), torch.channels_last),
                 ("polyphase_stem", model, torch.channels_last)]
        for info in model.layers_spread(7):
            seconds = {form: median_seconds(lambda: _truncated_step(network, image, info.name, layout), repeats)
                       for form, network, layout in forms}
            row = {"model": name, "layer": info.alias, "depth": info.depth, "size": size,
                   **{f"{form}_s": value for form, value in seconds.items()},
                   "channels_last_speedup": seconds["as_written"] / seconds["channels_last"],
                   "folding_speedup": seconds["channels_last"] / seconds["folded"],
                   "polyphase_stem_speedup": seconds["folded"] / seconds["polyphase_stem"],
                   "speedup": seconds["as_written"] / seconds["polyphase_stem"]}
            rows.append(row)
            print(_fmt(row), flush=True)
    return rows


def section_compile(models: dict[str, LoadedModel], size: int, repeats: int) -> list[dict]:
    """torch.compile (inductor, static shapes) of the whole forward with a hook, the unused tail
    dropped by the compiler, against our eager truncated forward: one step, same image, both float32."""
    rows = []
    for name, model in models.items():
        model.precision = "fp32"  # the compiled forward runs without autocast: like against like
        image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0), device=model.device)
        for info in model.layers_spread(3):
            objective = LayerL2(info.name).bind(model)

            def step(score: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
                x = image.clone().requires_grad_(True)
                return torch.autograd.grad(score(x).sum(), x)[0]

            def eager_score(x: torch.Tensor) -> torch.Tensor:
                return objective.score(model.activations(x, objective.layers))

            store: dict[str, torch.Tensor] = {}
            handle = model.module.get_submodule(info.name).register_forward_hook(
                lambda _m, _i, out: store.__setitem__(info.name, out))

            def full_score(x: torch.Tensor) -> torch.Tensor:
                model.module(model.preprocess(x).contiguous(memory_format=torch.channels_last))
                return objective.score({info.name: store[info.name]})

            try:
                torch._dynamo.reset()
                compiled_score = torch.compile(full_score, dynamic=False)
                start = time.perf_counter()
                compiled_grad = step(compiled_score)
                compile_s = time.perf_counter() - start
                compiled = median_seconds(lambda: step(compiled_score), repeats)
            finally:
                handle.remove()
            eager_grad = step(eager_score)
            eager = median_seconds(lambda: step(eager_score), repeats)
            row = {"model": name, "layer": info.alias, "size": size, "eager_s": eager, "compiled_s": compiled,
                   "speedup": eager / compiled, "first_call_with_compile_s": compile_s,
                   "gradient_relative_difference": float((compiled_grad - eager_grad).norm() / eager_grad.norm())}
            rows.append(row)
            print(_fmt(row), flush=True)
        model.precision = pick_precision(None, model.device)
    return rows


def section_goal(model: LoadedModel, size: int, repeats: int) -> list[dict]:
    """The issue's GPU goal: a whole 4-octave x 10-step dream at 1024 px on a high GoogLeNet layer."""
    info = model.layers_spread(3)[2]
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    rows = []
    for precision in PRECISIONS:
        model.precision = precision
        seconds = median_seconds(lambda: dream(model, image, LayerL2(info.name), DreamConfig()), repeats)
        row = {"model": model.name, "layer": info.alias, "size": size, "precision": precision,
               "steps": DreamConfig().total_steps, "dream_s": seconds}
        rows.append(row)
        print(_fmt(row), flush=True)
    model.precision = pick_precision(None, model.device)
    return rows


def section_featviz(model: LoadedModel, channels: int, steps: int, size: int) -> dict:
    """Batched channels against lucent's render_vis one channel at a time (hooks it leaks removed)."""
    from lucent.optvis import objectives as lucent_objectives
    from lucent.optvis import param as lucent_param
    from lucent.optvis import render as lucent_render

    from analysis import featviz

    info = model.layers_spread(3)[1]
    config = featviz.FeatvizConfig(size=size, steps=steps)
    start = time.perf_counter()
    featviz.render_channels(model, info.name, list(range(channels)), config, cache=None)
    ours = time.perf_counter() - start
    lucent_layer = info.name.replace(".", "_")
    wrapped = torch.nn.Sequential()
    wrapped.add_module("pre", model.preprocess)
    wrapped.add_module("net", model.module)
    start = time.perf_counter()
    for channel in range(channels):
        before = {m: dict(m._forward_hooks) for m in wrapped.modules()}
        lucent_render.render_vis(wrapped, lucent_objectives.channel(f"net_{lucent_layer}", channel),
                                 lambda: lucent_param.image(size), thresholds=(steps,),
                                 show_image=False, progress=False, preprocess=False)
        for module, hooks in before.items():  # render_vis leaves its hooks behind
            for key in set(module._forward_hooks) - set(hooks):
                del module._forward_hooks[key]
    theirs = time.perf_counter() - start
    row = {"model": model.name, "layer": info.alias, "channels": channels, "steps": steps, "size": size,
           "ours_channels_per_min": channels / ours * 60, "lucent_channels_per_min": channels / theirs * 60,
           "speedup": theirs / ours}
    print(_fmt(row), flush=True)
    return row


def section_atlas(model: LoadedModel, views: int, size: int, repeats: int, steps: int, channels: int) -> dict:
    """The atlas's example pass (batched, truncated at the layer, gradient-free) against the usual way
    (the whole network as written, a hook at the layer, one image at a time); then MaCo against the
    FFT renderer at a deep layer, same steps and channels: time and the objective reached."""
    import tempfile

    from analysis import atlas, featviz

    middle = model.layer("block10")
    pictures = torch.stack([atlas.load_view(v, size) for v in atlas.sample_collection()[:views]])

    def ours() -> None:
        for start in range(0, views, atlas.DEFAULT_BATCH):
            atlas.unit_stats(model, middle.name, pictures[start:start + atlas.DEFAULT_BATCH])

    plain = plain_model(model)

    @torch.no_grad()
    def usual() -> None:
        captured = {}
        handle = plain.module.get_submodule(middle.name).register_forward_hook(
            lambda _m, _i, out: captured.update(out=out))
        try:
            for picture in pictures:
                plain.module(plain.preprocess(picture[None].to(plain.device)))
                out = captured["out"].flatten(2)
                out.max(2), out.mean(2)
        finally:
            handle.remove()

    ours_s, usual_s = median_seconds(ours, repeats), median_seconds(usual, repeats)
    with tempfile.TemporaryDirectory() as folder:  # the whole pass: decoding, statistics, storing, field measured
        start = time.perf_counter()
        here = _atlas_rate(model, middle.name, atlas.sample_collection()[:views], Path(folder) / "here", size)
        whole_s = time.perf_counter() - start
        on_ray = _atlas_on_ray(model, middle.name, atlas.sample_collection()[:views], Path(folder) / "ray", size)
    row = {"model": model.name, "layer": middle.alias, "views": views, "size": size,
           "ours_images_per_s": views / ours_s, "usual_images_per_s": views / usual_s, "speedup": usual_s / ours_s,
           "run_pass_images_per_s_incl_decode_and_field": views / whole_s,
           "run_pass_steady_images_per_s": here["steady"], "ray_run_pass_steady_images_per_s": on_ray["steady"],
           "ray_vs_in_process_steady": on_ray["steady"] / here["steady"],
           "ray_run_pass_images_per_s_incl_actor_and_model_load": on_ray["end_to_end"]}
    deep = model.layer("block15")
    for name in featviz.PARAMETERISATIONS:
        config = featviz.FeatvizConfig(size=128, steps=steps, parameterisation=name, batch=channels)
        start = time.perf_counter()
        result = featviz.render_channels(model, deep.name, list(range(channels)), config, cache=None)
        row[f"{name}_seconds"] = time.perf_counter() - start
        row[f"{name}_objective_last_step"] = statistics.mean(r.trace[-1] for r in result.renders)
        row[f"{name}_activation_final_picture"] = statistics.mean(r.activation for r in result.renders)
    row.update({"featviz_layer": deep.alias, "featviz_steps": steps, "featviz_channels": channels})
    print(_fmt(row), flush=True)
    return row


def _atlas_rate(model, layer: str, views: list, folder: Path, size: int, executor=None) -> dict:
    """One example pass: views/s end to end, and steady (after the first stored batch: no model load)."""
    from analysis import atlas

    marks: list[tuple[float, int]] = []
    start = time.perf_counter()
    atlas.run_pass(model, layer, views, folder, atlas.AtlasSettings(size), executor=executor,
                   on_step=lambda done, _total, _p: marks.append((time.perf_counter(), done)))
    end_to_end = len(views) / (time.perf_counter() - start)
    steady = ((marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])) if len(marks) > 1 else float("nan")
    return {"end_to_end": end_to_end, "steady": steady}


def _atlas_on_ray(model, layer: str, views: list, folder: Path, size: int) -> dict:
    """The same pass on Ray started here (loopback, all cores; started before the clock, as a cluster would be)."""
    from analysis.studies import executors

    executors.ray_env()
    import ray

    ray.init(num_cpus=torch.get_num_threads(), include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    try:
        return _atlas_rate(model, layer, views, folder, size, executors.RayExecutor())
    finally:
        ray.shutdown()


MEMORY_CHILD = """
import sys, torch
from analysis.zoo import load_model
from analysis.dream import DreamConfig, dream
from analysis.objectives import LayerL2
size, tile = int(sys.argv[1]), int(sys.argv[2])
model = load_model("efficientnet_lite0", device="cpu")
dream(model, torch.rand(3, size, size), LayerL2("block10"),
      DreamConfig(octaves=1, iterations=1, jitter=0, tile_size=tile))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so it would report the parent's peak
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
"""


def section_memory(sizes: list[int], tile: int, untiled_max: int) -> list[dict]:
    """Peak resident memory of a fresh process dreaming one step at each size."""
    rows = []
    for size in sizes:
        for tile_size in ([0] if size <= untiled_max else []) + [tile]:
            done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(size), str(tile_size)],
                                  capture_output=True, text=True, cwd=ROOT.parent, timeout=1800)
            peak = float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
            row = {"size": size, "tile": tile_size, "peak_rss_mb": peak, "ok": done.returncode == 0}
            rows.append(row)
            print(_fmt(row), flush=True)
    return rows


APP_CHILD = """
import time, torch
start = time.perf_counter()
from analysis.zoo import load_model
from analysis.images import load_image
from analysis.dream import dream, dream_batch, preset
from analysis.objectives import LayerL2
model = load_model("efficientnet_lite0")
cat = load_image("assets/samples/cat_chelsea.jpg", 512)
dream(model, cat, LayerL2("block10"), preset("google"))
first = time.perf_counter() - start
layers = model.layers_spread(6)
start = time.perf_counter()
dream_batch(model, cat[None].repeat(6, 1, 1, 1), [LayerL2(i.name) for i in layers], preset("google"))
print(first, time.perf_counter() - start)
"""


def section_app() -> dict:
    """Cold process start (imports, weights, first dream) to the first 512 px dream, then a 6-layer sweep."""
    done = subprocess.run([sys.executable, "-c", APP_CHILD], capture_output=True, text=True, cwd=ROOT.parent,
                          timeout=1800)
    first, sweep = (float(v) for v in done.stdout.split()[-2:])
    row = {"cold_start_to_first_dream_512_s": first, "six_layer_sweep_512_s": sweep}
    print(_fmt(row), flush=True)
    return row


def section_video(model: LoadedModel, size: tuple[int, int], frames: int, preset_name: str, repeats: int) -> dict:
    """Flow against per-frame dreaming and plain blending on a demo pan, at the same preset and layer.

    Flicker (0-255, every run's own figure) and seconds per frame after the first (flow, decode,
    carry and PNG included) against a still dream of the same size and the same short settings.
    Goals: flow at least 3x less flicker than per-frame dreaming; flow and blending within 1.3x
    the still dream.
    """
    import tempfile

    from analysis.dream import preset
    from analysis.labels import sample_images
    from analysis.pngmeta import png_bytes
    from analysis.video import (
        VideoSettings,
        carry,
        dream_video,
        flicker,
        motion_between,
        pan_clip,
        probe_video,
        read_frames,
        video_recipe,
    )

    config = preset(preset_name)
    objective = LayerL2(model.layer_at_depth(0.6).name)
    modes = {"flow (dis)": VideoSettings(),
             "flow (farneback)": VideoSettings(flow="farneback"),
             "plain blending": VideoSettings(flow="none"),
             "per-frame": VideoSettings(blend_moving=0.0, blend_static=0.0, steps_per_frame=config.iterations)}
    row: dict = {"model": model.name, "layer": model.layer(objective.layer).alias, "preset": preset_name,
                 "size": f"{size[0]}x{size[1]}", "frames": frames, "steps_per_frame": VideoSettings().steps_per_frame}
    with tempfile.TemporaryDirectory() as folder:
        photo = next(s.path for s in sample_images() if s.path.name == "astronaut.jpg")
        clip = pan_clip(Path(folder) / "pan.mp4", photo, frames=frames, size=size)
        info = probe_video(clip)
        for name, settings in modes.items():
            finished: list[float] = []

            def on_step(_step: int, _total: int, preview: object, finished: list[float] = finished) -> None:
                if preview is not None:  # a frame is done
                    finished.append(time.perf_counter())

            recipe = video_recipe(model, info, objective, config, settings, max(size))
            result = dream_video(model, clip, recipe, Path(folder) / name, on_step)
            row[f"{name} flicker"] = result.mean_flicker
            row[f"{name} s/frame"] = statistics.median(b - a for a, b in itertools.pairwise(finished))
            print(f"  {name}: flicker {result.mean_flicker:.3g}, {row[f'{name} s/frame']:.3g} s a frame", flush=True)
        (_, frame), (_, following) = read_frames(clip, (size[1], size[0]), range(2))
        short = dataclasses.replace(config, iterations=VideoSettings().steps_per_frame)
        row["still short dream s"] = median_seconds(lambda: dream(model, frame, objective, short), repeats, warmup=0)
        row["still full dream s"] = median_seconds(lambda: dream(model, frame, objective, config), repeats, warmup=0)

        def overhead() -> None:
            """What a flow frame does beside its short dream and its decoding: flow both ways, carry, flicker, PNG."""
            motion = motion_between(frame, following)
            carry(frame, frame, following, motion, VideoSettings())
            flicker(following, frame, motion)
            png_bytes(following, {})

        # short parts, many repeats: steadier on a busy machine than whole frames
        decode = median_seconds(lambda: list(read_frames(clip, (size[1], size[0]), range(frames))), repeats) / frames
        row["flow overhead s/frame"] = median_seconds(overhead, 10 * repeats) + decode
    row["flicker per-frame / flow (goal >= 3)"] = row["per-frame flicker"] / row["flow (dis) flicker"]
    row["flicker per-frame / blending"] = row["per-frame flicker"] / row["plain blending flicker"]
    row["flow s/frame / still short (goal <= 1.3)"] = row["flow (dis) s/frame"] / row["still short dream s"]
    row["blending s/frame / still short (goal <= 1.3)"] = row["plain blending s/frame"] / row["still short dream s"]
    row["per-frame s/frame / still full"] = row["per-frame s/frame"] / row["still full dream s"]
    row["flow frame / still short, from parts (goal <= 1.3)"] = \
        (row["still short dream s"] + row["flow overhead s/frame"]) / row["still short dream s"]
    print(_fmt(row), flush=True)
    return row


def _study_rate(plan, executor, folder: Path) -> dict:
    """One study run: items/s end to end (start, model loads, every item) and steady (after the first item)."""
    from analysis.studies import executors

    times: list[float] = []
    summary = executors.run(plan, folder, executor, batch_size=1,
                            on_step=lambda done, _total, _p: times.append(time.perf_counter()) if done else None)
    steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return {"items": summary.written, "end_to_end_items_per_s": summary.per_second, "steady_items_per_s": steady}


def section_study(items: int, sizes: list[int]) -> list[dict]:
    """Items per second of a study in-process vs on Ray started here (one actor with all cores), then on a
    simulated two-node cluster (two 1-CPU nodes on 127.0.0.1, one actor each, 1 thread per item)."""
    import tempfile

    from analysis.dream import preset
    from analysis.studies import executors
    from analysis.studies.plan import Plan

    executors.ray_env()  # before ray's first import
    import ray
    from ray.cluster_utils import Cluster

    threads = torch.get_num_threads()
    config = preset("quick", iterations=3)  # 2 octaves x 3 steps
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            plan = Plan(models=("efficientnet_lite0",), depths=(0.6,), noise_seeds=items, config=config, size=size,
                        threads=threads)
            here = _study_rate(plan, executors.InProcess(), Path(scratch) / f"here-{size}")
            ray.init(num_cpus=threads, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
            try:
                on_ray = _study_rate(plan, executors.RayExecutor(), Path(scratch) / f"ray-{size}")
            finally:
                ray.shutdown()
            row = {"size": size, "threads": threads, "in_process_steady": here["steady_items_per_s"],
                   "ray_steady": on_ray["steady_items_per_s"],
                   "ray_vs_in_process_steady": on_ray["steady_items_per_s"] / here["steady_items_per_s"],
                   "in_process_end_to_end": here["end_to_end_items_per_s"],
                   "ray_end_to_end": on_ray["end_to_end_items_per_s"]}
            print(_fmt(row), flush=True)
            rows.append(row)
        node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}
        plan = Plan(models=("efficientnet_lite0",), depths=(0.6,), noise_seeds=items, config=config, size=sizes[0],
                    threads=1)
        here = _study_rate(plan, executors.InProcess(), Path(scratch) / "here-1thread")
        cluster = Cluster(initialize_head=True, head_node_args=node)
        try:
            cluster.add_node(**node)
            ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
            two = _study_rate(plan, executors.RayExecutor(), Path(scratch) / "two-nodes")
        finally:
            ray.shutdown()
            cluster.shutdown()
        row = {"size": sizes[0], "threads": 1, "two_nodes": True, "in_process_steady": here["steady_items_per_s"],
               "ray_steady": two["steady_items_per_s"],
               "ray_vs_in_process_steady": two["steady_items_per_s"] / here["steady_items_per_s"],
               "in_process_end_to_end": here["end_to_end_items_per_s"], "ray_end_to_end": two["end_to_end_items_per_s"]}
        print(_fmt(row), flush=True)
        rows.append(row)
    return rows


def _fmt(row: dict) -> str:
    return "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def machine() -> dict:
    info = {"platform": platform.platform(), "cpu": cpu_kind(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


SECTIONS = ("speed", "sweep", "allocator", "layout", "compile", "goal", "featviz", "atlas", "memory", "app",
            "dashboard", "video", "study")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                        help=f"sections to run (default all): {' '.join(SECTIONS)}")
    args = parser.parse_args()
    repeats = 2 if args.quick else 3
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = {"efficientnet_lite0": load_model("efficientnet_lite0", device=device),
              "googlenet (random weights)": load_model("googlenet-untrained", device=device)}
    try:
        import torch_dreams  # noqa: F401
        with_torch_dreams = True
    except ImportError:
        with_torch_dreams = False
        print("torch-dreams not installed: `make bench` installs it from bench/requirements.txt")
    report: dict = {"date": datetime.date.today().isoformat(), "machine": machine(), "device": str(device)}
    report["matmul_peak_gflops"] = matmul_peak_gflops(device, repeats)
    print(f"float32 matmul peak: {report['matmul_peak_gflops']:.1f} GFLOP/s")
    if "speed" in args.only:
        sizes = [224, 512] if args.quick else [224, 512, 1024]
        report["speed"] = section_speed(models, sizes, 5, repeats, report["matmul_peak_gflops"], with_torch_dreams)
    if "sweep" in args.only:
        report["sweep"] = [section_sweep(models["efficientnet_lite0"], size, 6, repeats) for size in (224, 512)]
    if "allocator" in args.only:
        report["allocator"] = section_allocator(repeats)
    if "layout" in args.only:
        report["layout"] = section_layout(models, 512, repeats)
    if "compile" in args.only:
        report["compile"] = section_compile(models, 512, repeats)
    if "goal" in args.only:
        report["goal"] = section_goal(models["googlenet (random weights)"], 1024,
                                      repeats if device.type == "cuda" else 1)
    if "featviz" in args.only:
        report["featviz"] = section_featviz(models["efficientnet_lite0"], 8, 32, 96)
    if "atlas" in args.only:
        report["atlas"] = section_atlas(models["efficientnet_lite0"], 64 if args.quick else 128, 224, repeats,
                                        steps=64, channels=4)
    if "memory" in args.only:
        sizes = [512, 1024, 2048] if args.quick else [512, 1024, 2048, 4096]
        report["memory"] = section_memory(sizes, tile=512, untiled_max=2048)
    if "app" in args.only:
        report["app"] = section_app()
    if "video" in args.only:
        size, frames = ((128, 96), 6) if args.quick else ((256, 192), 16)
        report["video"] = section_video(models["efficientnet_lite0"], size, frames, "google", repeats)
    if "study" in args.only:
        report["study"] = section_study(4 if args.quick else 8, [256, 512])
    if "dashboard" in args.only:
        report["dashboard"] = section_dashboard(models["efficientnet_lite0"], 256, 1 if args.quick else repeats)
        print(_fmt(report["dashboard"]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{report['date']}-{platform.node() or 'machine'}-{device.type}.json"
    path = RESULTS / name
    earlier = json.loads(path.read_text()) if path.is_file() else {}  # a run of some sections keeps the others
    path.write_text(json.dumps({**earlier, **report}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
