"""The results folder: what a study has finished, kept so that no stop loses it and no row is written twice.

    RESULTS/plan.json                 the plan, as given
    RESULTS/study.json                items planned, when it began
    RESULTS/parts/part-000001-*.parquet  one file per committed batch: one row per finished item
    RESULTS/dreams/ab/abcd....png     the dreams (a gallery's renders), named by the sha256 of their bytes
    RESULTS/.writer.lock              held (flock) by the one process writing

A batch is committed by writing its dreams, then its Parquet part under a temporary name,
flushing it to disk and renaming it into parts/: a rename is atomic, so a stop at any moment
(Ctrl-C, kill -9, a lost node, a full disk) leaves either the whole batch or none of it. A
resumed run reads the ids of the rows present and redoes only the others. Orphan PNGs of a
batch that never committed are harmless: the same dream has the same bytes and the same name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import labels as label_files
from analysis import zoo
from analysis.errors import LabError
from analysis.studies.plan import Plan
from analysis.studies.worker import ItemResult, judge_column, share_column

PLAN_FILE, MANIFEST, PARTS, DREAMS, LOCK = "plan.json", "study.json", "parts", "dreams", ".writer.lock"


class StoreError(LabError):
    """The results folder cannot be used or written (another writer, another plan, a full disk)."""


GALLERY_FIELDS = [("item", pa.string()), ("model", pa.string()), ("training_data", pa.string()),
                  ("control", pa.bool_()), ("depth", pa.float64()), ("layer", pa.string()),
                  ("layer_depth", pa.float64()), ("channel", pa.int64()), ("seed", pa.int64()),
                  ("status", pa.string()), ("error", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                  ("activation", pa.float64()), ("seconds", pa.float64()), ("device", pa.string()),
                  ("threads", pa.int64()), ("host", pa.string()), ("dream_sha256", pa.string())]
"""A gallery's rows: one per rendered channel; dream_sha256 names its render's PNG (as a dream's)."""


def schema(plan: Plan) -> pa.Schema:
    """The columns of a plan's rows: fixed fields, then each judge's group shares and verdicts (a sweep has
    none); a gallery's are GALLERY_FIELDS."""
    if plan.workload == "gallery":
        return pa.schema(GALLERY_FIELDS)
    fields = [("item", pa.string()), ("model", pa.string()), ("training_data", pa.string()),
              ("control", pa.bool_()), ("depth", pa.float64()), ("layer", pa.string()),
              ("layer_depth", pa.float64()), ("image", pa.string()), ("image_kind", pa.string()),
              ("seed", pa.int64()), ("status", pa.string()), ("error", pa.string()), ("width", pa.int64()),
              ("height", pa.int64()), ("pixel_change", pa.float64()), ("seconds", pa.float64()),
              ("device", pa.string()), ("threads", pa.int64()), ("host", pa.string()), ("dream_sha256", pa.string())]
    for judge in plan.judges:
        groups = label_files.class_groups(zoo.get_spec(judge).labels)
        for stage in ("original", "dream"):
            fields += [(share_column(stage, judge, group), pa.float64()) for group in groups]
        fields += [(judge_column("original_top", judge), pa.string()), (judge_column("dream_top", judge), pa.string()),
                   (judge_column("dream_top_p", judge), pa.float64()), (judge_column("emergent", judge), pa.string())]
    return pa.schema(fields)


def _disk_message(folder: Path, err: OSError) -> str:
    why = "the disk is full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else (err.strerror or type(err).__name__)
    return (f"Could not write to {folder} ({why}): the batch in flight was not kept, every batch before it was. "
            "Free space and run again with --resume.")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Results:
    """A results folder, read-only: what the page and the report open, finished or still running."""

    folder: Path

    @classmethod
    def open(cls, folder: Path | str) -> Results:
        folder = Path(folder)
        if not (folder / PLAN_FILE).is_file():
            raise StoreError(f"{folder} is not a study's results folder (no {PLAN_FILE}).")
        return cls(folder)

    def plan(self) -> Plan:
        return Plan.from_json((self.folder / PLAN_FILE).read_bytes())

    def planned(self) -> int:
        """Items the run set out to do (0 before a run began)."""
        path = self.folder / MANIFEST
        return int(json.loads(path.read_text()).get("items", 0)) if path.is_file() else 0

    def parts(self) -> list[Path]:
        folder = self.folder / PARTS
        return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []

    def table(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Every committed row, in commit order."""
        parts = self.parts()
        if not parts:
            return schema(self.plan()).empty_table().to_pandas() if columns is None else pd.DataFrame(columns=columns)
        return pa.concat_tables([pq.read_table(p, columns=columns) for p in parts]).to_pandas()

    def done_ids(self) -> set[str]:
        return set(self.table(["item"])["item"]) if self.parts() else set()

    def dream_path(self, sha256: str) -> Path:
        return self.folder / DREAMS / sha256[:2] / f"{sha256}.png"

    def running(self) -> bool:
        """Whether a writer holds the folder now (its lock is released when it ends, even by kill -9)."""
        path = self.folder / LOCK
        if not path.is_file():
            return False
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False


class Writer(Results):
    """The single writer of a results folder: holds its lock, commits batches atomically."""

    def __init__(self, folder: Path, plan: Plan, planned: int, resume: bool):
        super().__init__(Path(folder))
        self._plan_schema = schema(plan)
        self._handle = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._check_plan(plan, resume)
            self._write_atomic(self.folder / MANIFEST, json.dumps(
                {"items": planned, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())
            (self.folder / PARTS).mkdir(exist_ok=True)
            (self.folder / DREAMS).mkdir(exist_ok=True)
        except OSError as err:
            self.close()
            raise StoreError(_disk_message(self.folder, err)) from None
        except BaseException:
            self.close()
            raise
        self.done = self.done_ids()
        self._next = len(self.parts()) + 1

    def _lock(self) -> None:
        self._handle = open(self.folder / LOCK, "a+")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            self._handle = None
            raise StoreError(f"Another study is writing to {self.folder} now: wait for it, or choose another "
                             "folder.") from None

    def _check_plan(self, plan: Plan, resume: bool) -> None:
        path = self.folder / PLAN_FILE
        if path.is_file():
            try:
                kept = Plan.from_json(path.read_bytes())
            except LabError:
                raise StoreError(f"{path} is not a readable plan: choose another results folder.") from None
            if kept.to_dict() != plan.to_dict():
                raise StoreError(f"{self.folder} holds results of another plan: choose another folder "
                                 "(or run that folder's own plan.json).")
            rows = len(self.parts())
            if rows and not resume:
                raise StoreError(f"{self.folder} already holds results of this plan: add --resume to carry on "
                                 "(only the missing items are dreamed).")
        elif any(self.folder.iterdir()) and not (set(os.listdir(self.folder)) <= {LOCK}):
            raise StoreError(f"{self.folder} is not empty and holds no study: choose an empty or new folder.")
        else:
            self._write_atomic(path, plan.to_json().encode())

    def _write_atomic(self, path: Path, data: bytes) -> None:
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def commit(self, results: Iterable[ItemResult]) -> int:
        """Write a batch: its dreams, then its rows as one part (all or nothing). Returns rows written."""
        fresh = [r for r in results if r.row["item"] not in self.done]
        if not fresh:
            return 0
        try:
            for result in fresh:
                if result.png is not None:
                    path = self.dream_path(result.row["dream_sha256"])
                    if not path.is_file():
                        path.parent.mkdir(exist_ok=True)
                        self._write_atomic(path, result.png)
            table = pa.Table.from_pylist([r.row for r in fresh], schema=self._plan_schema)
            name = f"part-{self._next:06d}-{uuid.uuid4().hex[:8]}.parquet"
            temporary = self.folder / PARTS / f".{name}.tmp"
            try:
                pq.write_table(table, temporary)
                with open(temporary, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(temporary, self.folder / PARTS / name)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
            _fsync_dir(self.folder / PARTS)
        except OSError as err:
            raise StoreError(_disk_message(self.folder, err)) from None
        self._next += 1
        self.done.update(r.row["item"] for r in fresh)
        return len(fresh)

    def close(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
