"""Executors: who computes a workload's items. In this process (the default), or Ray actors on a cluster.

A workload is a kind of work: its items (each with a stable id), how a worker computes a batch
of them (a runner, built once per worker, that loads each model once), and where finished
items are kept (a store with one writer). Dreaming-and-judging a study plan (bias), a layer
sweep, a feature-visualisation gallery (analysis.studies.workloads) and the unit atlas's example
pass (analysis.atlas.AtlasWorkload) are each one workload; the executors and the driver below
know nothing of what an item is.

Either way one writer, in this process, commits the finished batches as they come back, so the
results folder has a single owner and every executor gives the same results. run_workload() is the
driver: list the items, skip what the store already holds, hand batches to the executor, commit.

Ray is imported only by RayExecutor, when a user asks for it. Its actors build the workload's
runner once (Runner.prepare, before their first batch, so a worker without the weights says so at
once) and ask for one GPU each when the cluster has GPUs, else for the workload's thread count in CPUs.
A worker that dies (its node removed, killed, out of memory) loses only its batch in flight,
which goes back to the queue for the others; when none are left, the run stops with one message
and --resume carries on.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from analysis.errors import ConfigError, LabError
from analysis.progress import OnStep, Relay, ShouldCancel
from analysis.studies.plan import Plan
from analysis.studies.workloads import workload_of
from analysis.zoo import LoadedModel

RAY_ADDRESS_ENV = "INCEPTIONISM_RAY_ADDRESS"
DEFAULT_BATCH = 4
"""Items per batch: a commit, a unit of work for an actor, and how far a cancel lets a run go on."""
REACH_TIMEOUT_S = 5.0
REPO_ROOT = Path(__file__).resolve().parents[2]

Load = Callable[[str], LoadedModel]
"""How a runner has a model by name: loaded by the worker itself (None), or the caller's own copy."""


class WorkItem(Protocol):
    id: str  # stable across runs and machines: what a store knows as done

    @property
    def units(self) -> int:
        """What progress counts this item as (a dream: 1; an atlas batch: its views)."""
        ...


class Result(Protocol):
    def skips(self) -> list[tuple[str, str]]:
        """(image, why) for each unreadable image this result had to leave out."""
        ...


class Runner(Protocol):
    def prepare(self) -> str:
        """Load what every item needs (models, judges) now; returns the host's name for the run record."""
        ...

    def run_batch(self, items: list[Any]) -> list[Any]:
        """Compute a batch of items: one result each, in order."""
        ...


class Store(Protocol):
    done: set[str]  # ids already kept

    def commit(self, results: list[Any]) -> int:
        """Keep a batch, all or nothing, leaving out ids already kept; returns how many were new."""
        ...

    def close(self) -> None:
        ...


class Workload(Protocol):
    """A kind of work item, how a worker computes it and how its results are stored. Picklable: Ray
    ships it to the actors, each of which builds its own runner from it."""

    kind: str
    threads: int  # torch threads per worker, fixed so every executor gives the same numbers

    def items(self) -> list[WorkItem]:
        ...

    def runner(self, device: str | None = None, load: Load | None = None) -> Runner:
        ...

    def store(self, folder: Path, planned: int, resume: bool) -> Store:
        ...


Deliver = Callable[[list[Any]], None]


class Executor(Protocol):
    name: str

    def ready(self) -> None:
        """Fail now, before the results folder is touched, when the executor cannot run at all."""
        ...

    def run(self, work: Workload, batches: list[list[WorkItem]], deliver: Deliver,
            should_cancel: ShouldCancel) -> bool:
        """Compute every batch, deliver each as it finishes; True when a cancel stopped it early."""
        ...


class ClusterError(LabError):
    """The Ray cluster cannot be reached, or its workers cannot run the plan."""


@dataclass
class InProcess:
    """Compute here, one batch after another: no extra process (the dashboard's and most tests' executor)."""

    device: str | None = None
    load: Load | None = field(default=None, repr=False)
    runner: Runner | None = field(default=None, repr=False)
    name: str = "in-process"
    _work: Workload | None = field(default=None, repr=False)  # the runner's, kept for the next run of the same

    def ready(self) -> None:
        """Nothing to check: this process is here."""

    def run(self, work: Workload, batches: list[list[WorkItem]], deliver: Deliver,
            should_cancel: ShouldCancel) -> bool:
        if self.runner is None or self._work != work:
            self.runner, self._work = work.runner(self.device, self.load), work
        for batch in batches:
            if should_cancel():
                return True
            deliver(self.runner.run_batch(batch))
        return False


# ---------------------------------------------------------------- Ray


class RayWorker:
    """The actor: one runner per worker process, so each model loads once per worker."""

    def __init__(self, work: Workload, device: str | None):
        self.runner = work.runner(device)

    def prepare(self) -> str:
        return self.runner.prepare()

    def run_batch(self, items: list[WorkItem]) -> list[Result]:
        return self.runner.run_batch(items)


def is_loopback(address: str | None) -> bool:
    """Ray started here (None) or a cluster on this machine: everything stays on 127.0.0.1."""
    return address is None or address.split("://")[-1].split(":")[0] in ("127.0.0.1", "localhost")


def ray_env(address: str | None = None) -> None:
    """Set before ray is first imported (Ray reads these at import): no usage report, our code importable
    by workers started here, and for a cluster on this machine, loopback only (without it Ray binds
    to the machine's outward address)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if is_loopback(address):
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])


def check_reachable(address: str) -> None:
    """A plain TCP connect first: ray.init on a dead address retries for minutes before it gives up."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"'{address}' is not a Ray address: write HOST:PORT (the head's GCS port, e.g. "
                           "127.0.0.1:6379).")
    try:
        with socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as err:
        raise ClusterError(f"No Ray cluster answers at {address} ({err.strerror or type(err).__name__}): start "
                           "its head ('ray start --head') or check the address.") from None


def _ray(address: str | None):
    ray_env(address)
    try:
        import ray
    except ImportError:
        raise ConfigError("Ray is not installed here: pip install ray, or run without --ray.") from None
    return ray


@dataclass
class RayExecutor:
    """Ray actors, on this machine (address None: Ray starts here and stops after) or on a cluster."""

    address: str | None = None
    num_cpus: int | None = None  # when starting Ray here: CPUs it may use (default: all)
    name: str = "ray"
    workers: list[str] = field(default_factory=list)  # the hosts that ran actors (for the run record)
    deaths: int = 0

    def ready(self) -> None:
        _ray(self.address)
        if self.address:
            check_reachable(self.address)

    @contextlib.contextmanager
    def session(self) -> Iterator[object]:
        """Ray connected (or started here) for the block, and left as found after it: several runs in the
        block (an atlas's models and layers) share one start."""
        ray = _ray(self.address)
        if ray.is_initialized():
            yield ray
            return
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False,
                         **({"_node_ip_address": "127.0.0.1"} if is_loopback(self.address) else {}))
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                         log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ClusterError(f"Ray could not start or connect ({str(err).splitlines()[0]}).") from None
        try:
            yield ray
        finally:
            ray.shutdown()

    def run(self, work: Workload, batches: list[list[WorkItem]], deliver: Deliver,
            should_cancel: ShouldCancel) -> bool:
        with self.session() as ray:
            return self._run(ray, work, batches, deliver, should_cancel)

    def _actors(self, ray, work: Workload, wanted: int) -> list:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus:
            options, count, device = {"num_gpus": 1, "num_cpus": 1}, gpus, "cuda"
        else:
            cpus = int(resources.get("CPU", 1))
            options, count, device = {"num_cpus": min(work.threads, cpus)}, max(1, cpus // work.threads), "cpu"
        actor = ray.remote(max_restarts=0, max_task_retries=0, **options)(RayWorker)
        return [actor.remote(work, device) for _ in range(max(1, min(count, wanted)))]

    def _run(self, ray, work: Workload, batches: list[list[WorkItem]], deliver: Deliver,
             should_cancel: ShouldCancel) -> bool:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

        lost = (RayActorError, ActorDiedError, ActorUnavailableError)
        if not batches:
            return False
        actors = self._actors(ray, work, len(batches))
        try:
            ready = {actor: actor.prepare.remote() for actor in actors}
            for actor, ref in list(ready.items()):
                try:
                    self.workers.append(ray.get(ref))
                except RayTaskError as err:
                    raise _cause(err) from None
                except lost:
                    actors.remove(actor)
                    self.deaths += 1
            queue, inflight, idle = deque(batches), {}, list(actors)
            cancelled = False
            while queue or inflight:
                if not cancelled and should_cancel():
                    cancelled = True
                    queue.clear()  # the batches in flight finish and are kept
                while idle and queue:
                    actor = idle.pop()
                    batch = queue.popleft()
                    inflight[actor.run_batch.remote(batch)] = (actor, batch)
                if not inflight:
                    raise ClusterError(f"Every Ray worker died ({self.deaths}): the finished batches are kept; "
                                       "run again with --resume.")
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
                for ref in done:
                    actor, batch = inflight.pop(ref)
                    try:
                        results = ray.get(ref)
                    except RayTaskError as err:
                        raise _cause(err) from None
                    except lost:
                        self.deaths += 1
                        actors.remove(actor)
                        queue.appendleft(batch)  # another worker computes it; nothing of it was written
                        continue
                    deliver(results)
                    idle.append(actor)
            return cancelled
        finally:
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor)


def _cause(err: Exception) -> Exception:
    """A worker's LabError (missing weights, bad image) as itself; anything else with its message."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, LabError):
        return type(cause)(f"On a Ray worker: {cause}")
    return ClusterError(f"A Ray worker failed: {str(err).strip().splitlines()[-1]}")


def executor_for(ray: str | None) -> Executor:
    """--ray absent: in-process; '--ray' alone: the INCEPTIONISM_RAY_ADDRESS cluster or Ray started here;
    '--ray ADDRESS': that cluster."""
    if ray is None:
        return InProcess()
    address = ray or os.environ.get(RAY_ADDRESS_ENV) or None
    return RayExecutor(address)


# ---------------------------------------------------------------- the driver


@dataclass
class RunSummary:
    planned: int
    done_before: int
    written: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # image -> why, once per image
    cancelled: bool = False
    seconds: float = 0.0
    executor: str = "in-process"

    @property
    def done(self) -> int:
        return self.done_before + self.written

    @property
    def per_second(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0


def run_workload(work: Workload, folder: Path | str, executor: Executor | None = None, resume: bool = False,
                 batch_size: int = DEFAULT_BATCH, on_step: OnStep | None = None,
                 should_cancel: ShouldCancel | None = None,
                 on_skip: Callable[[str, str], None] | None = None) -> RunSummary:
    """Run a workload into its store; committed batches survive any stop, and resume skips them.

    on_step(units done in this run, units this run set out to do, None): the existing progress style
    (a unit is an item's share of the work: one dream, one view of an atlas).
    on_skip(image, why): once per unreadable image (its results say so and it is not retried).
    A cancel lets the batch in progress finish and keeps it.
    """
    if not 1 <= batch_size <= 1000:
        raise ConfigError("Batch size must be 1 to 1000 items.")
    executor = executor or InProcess()
    executor.ready()
    items = work.items()
    started = time.perf_counter()
    store = work.store(Path(folder), len(items), resume)
    try:
        todo = [item for item in items if item.id not in store.done]
        summary = RunSummary(len(items), len(items) - len(todo), executor=executor.name)
        batches = [todo[k:k + batch_size] for k in range(0, len(todo), batch_size)]
        total_units = sum(item.units for item in todo)
        units_of = {item.id: item.units for item in todo}
        units_done = 0
        relay = Relay(on_step, total_units)
        relay.report(0)

        def deliver(results: list[Result]) -> None:
            nonlocal units_done
            before = set(store.done)
            summary.written += store.commit(results)
            units_done += sum(units_of.get(done, 0) for done in store.done - before)
            for result in results:
                for image, why in result.skips():
                    if image not in summary.skipped:
                        summary.skipped[image] = why
                        if on_skip is not None:
                            on_skip(image, why)
            relay.report(units_done)

        summary.cancelled = executor.run(work, batches, deliver, should_cancel or (lambda: False))
    finally:
        store.close()
    summary.seconds = time.perf_counter() - started
    return summary


def run(plan: Plan, folder: Path | str, executor: Executor | None = None, resume: bool = False,
        batch_size: int = DEFAULT_BATCH, on_step: OnStep | None = None, should_cancel: ShouldCancel | None = None,
        on_skip: Callable[[str, str], None] | None = None) -> RunSummary:
    """Run a study plan (its workload: bias, sweep or gallery) into a results folder; see run_workload."""
    return run_workload(workload_of(plan), folder, executor, resume, batch_size, on_step, should_cancel, on_skip)
