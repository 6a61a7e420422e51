"""The files a render batch reads, carried from the Ray driver to nodes that cannot see them.

A manifest's paths are the driver's. A Ray actor on another machine may have no such path, or another file
under it, so the driver puts each file's bytes in Ray's object store beside their SHA-256, and an actor
reads the driver's path only where it holds the same bytes there (a shared filesystem, or the driver's own
machine); elsewhere it writes a copy of its own and renders from that.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from audiogan import weights
from audiogan.audio.io import write_atomic
from audiogan.render.engine import Batch
from audiogan.render.manifest import Job


@dataclass(frozen=True)
class Carried:
    """One file as the driver has it."""

    path: str
    digest: str  # SHA-256 of its bytes
    data: Any  # a Ray ObjectRef of the bytes (whatever ``put`` returned)


@dataclass(frozen=True)
class Unit:
    """The files one job field reads, which must sit side by side: an input, or weights with their card."""

    field: str
    files: tuple[Carried, ...]
    kept: bool  # weights stay for the actor's life; inputs go after their batch


def _fields(job: Job) -> Iterator[tuple[str, list[Path], bool]]:
    for name in job.inputs:
        yield name, [Path(job.params[name])], False
    for name in job.weights:
        try:
            path = weights.resolve_any(job.params[name])
        except FileNotFoundError:  # the actor's loader fails the job with its own reason
            continue
        yield name, [path, path.with_suffix(".json")], True


class Shipper:
    """The driver's side. ``put`` stores bytes where actors can get them (``ray.put``); weights are put
    once a run, inputs once a batch (a run's inputs may not fit in memory at once)."""

    def __init__(self, put: Callable[[bytes], Any]) -> None:
        self.put = put
        self.kept: dict[Path, Carried] = {}

    def units(self, batch: Batch) -> dict[str, list[Unit]]:
        """Each job's units, by its output. A file the driver cannot read is left out: the actor then
        reports it missing, as a local run would."""
        shipped: dict[Path, Carried] = {}
        units: dict[str, list[Unit]] = {}
        for job in batch.jobs:
            units[job.output] = []
            for name, paths, kept in _fields(job):
                files = [f for path in paths if (f := self._carry(path, kept, shipped))]
                if len(files) == len(paths):
                    units[job.output].append(Unit(name, tuple(files), kept))
        return units

    def _carry(self, path: Path, kept: bool, shipped: dict[Path, Carried]) -> Carried | None:
        if found := (self.kept if kept else shipped).get(path):
            return found
        try:
            data = path.read_bytes()
        except OSError:
            return None
        carried = Carried(str(path), hashlib.sha256(data).hexdigest(), self.put(data))
        (self.kept if kept else shipped)[path] = carried
        return carried


class NodeFiles:
    """An actor's side: ``fetch`` gets bytes back from what ``put`` returned (``ray.get``)."""

    def __init__(self, fetch: Callable[[Any], bytes]) -> None:
        self.fetch = fetch
        self.root = Path(tempfile.mkdtemp(prefix="audiogan-render-"))
        self.here: dict[tuple[str, str], bool] = {}  # (driver's path, digest) -> this node has those bytes there

    def localise(self, batch: Batch, units: dict[str, list[Unit]], group: Callable[[Job], str]) -> Batch:
        """The batch with each file at a path of this node; ``group`` names the model group of the
        rewritten jobs (it holds weights paths)."""
        jobs = []
        for job in batch.jobs:
            params = dict(job.params)
            for unit in units.get(job.output, []):
                if not all(self._here(f) for f in unit.files):
                    params[unit.field] = str(self._copy(unit))
            jobs.append(replace(job, params=params) if params != job.params else job)
        return Batch(batch.kind, group(jobs[0]), jobs)

    def drop_inputs(self) -> None:
        shutil.rmtree(self.root / "inputs", ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _here(self, carried: Carried) -> bool:
        key = (carried.path, carried.digest)
        if key not in self.here:
            try:
                self.here[key] = weights.file_digest(Path(carried.path)) == carried.digest
            except OSError:
                self.here[key] = False
        return self.here[key]

    def _copy(self, unit: Unit) -> Path:
        """The unit's files in a folder named by their content, under their own names (weights find their card
        beside them); the first file's path."""
        name = hashlib.sha256("".join(f.digest for f in unit.files).encode()).hexdigest()[:16]
        folder = self.root / ("weights" if unit.kept else "inputs") / name
        for carried in unit.files:
            target = folder / Path(carried.path).name
            if not target.is_file():
                write_atomic(target, self.fetch(carried.data))
        return folder / Path(unit.files[0].path).name
