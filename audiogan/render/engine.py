"""Render a manifest: plan length-sorted batches per model, run them, write outputs, report.

The local engine overlaps the three stages on one machine: worker threads prepare the next batch and
encode/write the last while the model renders the current one. The Ray engine (``ray_engine``) sends
the same batches to model-holding actors; both use ``plan_batches`` and ``render_batch``, so they
write byte-identical files.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from audiogan.render.choices import ENGINES
from audiogan.render.joblog import labelled_records, working_on
from audiogan.render.kinds import Rendered, Renderer, make_renderers
from audiogan.render.manifest import Job, ManifestError, beside
from audiogan.render.output import DiskFullError, OutputDir, encode_file
from audiogan.vocoder.inference import pick_device

log = logging.getLogger("audiogan.render")


@dataclass
class Batch:
    kind: str
    group: str
    jobs: list[Job]


@dataclass
class Outcome:
    """One job's result: file bytes and audio seconds, or the reason it failed."""

    job: Job
    data: bytes = b""
    seconds: float = 0.0
    error: str = ""
    sidecars: dict[str, bytes] = field(default_factory=dict)  # output-relative path -> bytes


@dataclass
class Summary:
    jobs: int = 0
    rendered: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.by_kind.items())) or "none"
        text = (f"{self.jobs} jobs: {self.rendered} rendered ({kinds}), {self.skipped} already done, "
                f"{self.failed} failed; {_duration(self.audio_seconds)} of audio in {self.wall_seconds:.1f} s")
        if self.rendered and self.audio_seconds and self.wall_seconds:  # a speed of nothing rendered means nothing
            text += f" = {self.audio_seconds / self.wall_seconds:.1f}x real time"
        return text


def _duration(seconds: float) -> str:
    """Audio length in the unit that shows it: a short run's seconds read '0.000 h' in hours."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _failed(out: OutputDir, summary: Summary, job: Job, reason: str) -> None:
    summary.failed += 1
    out.error(job.line, job.output, job.kind, reason)
    log.warning("line %d (%s) failed: %s", job.line, job.output, reason)


def job_key(job: Job, renderer: Renderer) -> str:
    """The resume key: the job's parameters and seed plus the identity of the weights that render it, and how
    its noise is drawn where that changed."""
    return f"{job.key}:{renderer.model_id(renderer.group(job))}{renderer.seeding(job)}"


def check_settings(batch_size: int, workers: int, engine: str = "local", cpus_per_actor: float = 1.0) -> None:
    """Refuse settings that would render nothing or hang: a batch size below 0 (0 means each kind's
    default) once made ``range`` yield no batches, so a run reported 0 rendered and succeeded; Ray actors
    of 0 CPUs divided by zero."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: {' or '.join(ENGINES)}")
    if not 0 < cpus_per_actor < math.inf:
        raise ValueError(f"CPUs per Ray actor must be a finite number above 0, not {cpus_per_actor}")
    if batch_size < 0:
        raise ValueError(f"batch size must be 0 (each kind's default) or more, not {batch_size}")
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, not {workers}")


def plan_batches(jobs: Iterable[Job], renderers: dict[str, Renderer], sizes: dict[str, int]) -> list[Batch]:
    """Group by kind and model, sort by length (then output, for determinism), cut into batches of
    ``sizes[kind]`` jobs (each at least 1)."""
    for kind, size in sizes.items():
        if size < 1:  # range(0, n, size) would silently drop every job of the kind
            raise ValueError(f"batch size of {kind!r} jobs must be 1 or more, not {size}")
    groups: dict[tuple[str, str], list[tuple[int, str, Job]]] = {}
    for job in jobs:
        renderer = renderers[job.kind]
        try:
            length = renderer.length(job)
        except Exception:  # unreadable input: fails in prepare, with its reason
            length = 0
        groups.setdefault((job.kind, renderer.group(job)), []).append((length, job.output, job))
    batches = []
    for (kind, group), items in sorted(groups.items()):
        items.sort(key=lambda t: (t[0], t[1]))
        size = sizes[kind]
        for start in range(0, len(items), size):
            batches.append(Batch(kind, group, [job for _, _, job in items[start:start + size]]))
    return batches


def _prepare(renderer: Renderer, jobs: list[Job]) -> list[Any | Exception]:
    prepared: list[Any | Exception] = []
    for job in jobs:
        try:
            with working_on([job]):
                prepared.append(renderer.prepare(job))
        except Exception as exc:
            prepared.append(exc)
    return prepared


def _forward(renderer: Renderer, batch: Batch,
             prepared: list[Any | Exception]) -> list[torch.Tensor | Rendered | Exception]:
    """The batched pass; if it fails, each item alone, so one bad job cannot sink its batch."""
    ready = [(i, item) for i, item in enumerate(prepared) if not isinstance(item, Exception)]
    results: list[torch.Tensor | Rendered | Exception] = [item if isinstance(item, Exception) else RuntimeError()
                                                          for item in prepared]
    if not ready:
        return results
    try:
        with torch.inference_mode(), working_on([batch.jobs[i] for i, _ in ready]):
            for (i, _), wave in zip(ready, renderer.render(batch.group, [x for _, x in ready]), strict=True):
                results[i] = wave
    except Exception as exc:
        if len(ready) == 1:  # alone already: a second try would only fail again, after as long
            results[ready[0][0]] = exc
            return results
        for i, item in ready:
            try:
                with torch.inference_mode(), working_on([batch.jobs[i]]):
                    results[i] = renderer.render(batch.group, [item])[0]
            except Exception as exc:
                results[i] = exc
    return results


def _encode(renderer: Renderer, batch: Batch, waves: list[torch.Tensor | Rendered | Exception]) -> list[Outcome]:
    try:
        rate = renderer.sample_rate(batch.group)
    except Exception as exc:  # the group's model does not load: its jobs fail (with the reason), not the run
        return [Outcome(job, error=_reason(wave if isinstance(wave, Exception) else exc))
                for job, wave in zip(batch.jobs, waves, strict=True)]
    outcomes = []
    for job, wave in zip(batch.jobs, waves, strict=True):
        if isinstance(wave, Exception):
            outcomes.append(Outcome(job, error=_reason(wave)))
            continue
        rendered = wave if isinstance(wave, Rendered) else Rendered(wave)
        sidecars = {beside(job.output, suffix): data for suffix, data in rendered.sidecars.items()}
        try:
            with working_on([job]):
                data, seconds = encode_file(rendered.wave, rate, job.params.get("sample_rate"),
                                            PurePosixPath(job.output).suffix)
            outcomes.append(Outcome(job, data, seconds, sidecars=sidecars))
        except Exception as exc:
            outcomes.append(Outcome(job, error=_reason(exc)))
    return outcomes


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def render_batch(renderer: Renderer, batch: Batch) -> list[Outcome]:
    """Prepare, render and encode one batch in this process (what a Ray actor runs)."""
    return _encode(renderer, batch, _forward(renderer, batch, _prepare(renderer, batch.jobs)))


class Progress:
    """tqdm with per-kind counts; records outcomes in the output folder and the summary."""

    def __init__(self, out: OutputDir, summary: Summary, total: int, keys: dict[str, str], show: bool) -> None:
        self.out, self.summary, self.keys = out, summary, keys
        self.bar = tqdm(total=total, unit="job", disable=not show, dynamic_ncols=True)
        self.lock = threading.Lock()
        self.stopped: DiskFullError | None = None  # the engines render no more batches once it is set
        # A log line written while the bar is drawn lands in the middle of it: go through tqdm.write instead.
        self.redirect = contextlib.ExitStack()
        if show and _logs_to_console():
            self.redirect.enter_context(logging_redirect_tqdm())

    def record(self, outcome: Outcome) -> None:
        """Write one job's files and count it; DiskFullError (then again for every later job) stops the run."""
        with self.lock:
            if self.stopped:
                raise self.stopped
            try:
                self._record(outcome)
            except DiskFullError as exc:
                self.stopped = exc
                raise

    def _record(self, outcome: Outcome) -> None:
        job = outcome.job
        if not outcome.error:
            try:
                self.out.write(job.output, self.keys[job.output], outcome.data, outcome.sidecars)
            except (OSError, ValueError) as exc:  # ValueError: a path that resolves outside --out
                outcome.error = f"cannot write {job.output}: {exc}"
        if outcome.error:
            _failed(self.out, self.summary, job, outcome.error)
        else:
            self.summary.rendered += 1
            self.summary.by_kind[job.kind] += 1
            self.summary.audio_seconds += outcome.seconds
        self.bar.set_postfix({**self.summary.by_kind, "failed": self.summary.failed}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        self.redirect.close()


def _logs_to_console() -> bool:
    """Whether the root logger prints to the terminal; where it does not, the bar needs no redirect (one would
    add a handler and print what was not printed before)."""
    return any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
               for h in logging.root.handlers)


def render_local(batches: list[Batch], progress: Progress, renderers: dict[str, Renderer],
                 workers: int = 2) -> None:
    """Prepare batch i+1 and encode/write earlier batches on worker threads while batch i runs on the model."""
    if not batches:
        return
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="render-io") as pool:
        def prepare(b: Batch) -> Future[list[Any | Exception]]:
            return pool.submit(_prepare, renderers[b.kind], b.jobs)

        def finish(batch: Batch, waves: list[torch.Tensor | Exception]) -> None:
            for outcome in _encode(renderers[batch.kind], batch, waves):
                progress.record(outcome)

        writes: collections.deque[Future[None]] = collections.deque()
        prepared = prepare(batches[0])
        for i, batch in enumerate(batches):
            if progress.stopped:  # the disk is full: what is rendered now could not be written
                break
            following = prepare(batches[i + 1]) if i + 1 < len(batches) else None
            waves = _forward(renderers[batch.kind], batch, prepared.result())
            writes.append(pool.submit(finish, batch, waves))
            while len(writes) > 2 * workers:  # bound the audio held in memory when encoding lags
                writes.popleft().result()
            if following is not None:
                prepared = following
        for w in writes:
            w.result()


def run(jobs: list[Job], out_dir: str, *, engine: str = "local", batch_size: int = 0, device: str = "auto",
        workers: int = 2, progress: bool = True, ray_address: str | None = None,
        ray_cpus_per_actor: float = 1.0, phase_iterations: int | None = None,
        phase: str | None = None, invalid: Sequence[ManifestError] = (), threads: int = 0) -> Summary:
    """Render ``jobs`` into ``out_dir``, skipping those already done with the same key.

    ``invalid`` (the manifest lines skipped as invalid) are listed in errors.jsonl with this run's failures.
    ``threads`` (0: each engine's own choice) is what Ray actors compute with; the caller sets this process's.

    ``batch_size`` 0 picks each kind's ``cpu_batch_size`` on CPU (1 for speech, where batching the vocoder
    gained nothing on 2 cores and padding cost up to 30 %; 64 for notes) and 32 on CUDA.
    ``phase`` and ``phase_iterations`` override where the vocoders' phase comes from and its refinement;
    outputs rendered with another setting are re-rendered.
    Raises ValueError, before touching ``out_dir``, for ``batch_size`` < 0, ``workers`` < 1 or
    ``ray_cpus_per_actor`` not above 0; on Ray, for an actor size or ``threads`` no node can hold.
    Raises DiskFullError, its ``summary`` what was done, at the first write that finds no room: the run
    stops there (a rerun resumes).
    """
    check_settings(batch_size, workers, engine, ray_cpus_per_actor)
    with labelled_records():
        return _run(jobs, out_dir, engine, batch_size, device, workers, progress, ray_address, ray_cpus_per_actor,
                    phase_iterations, phase, invalid, threads)


def _run(jobs: list[Job], out_dir: str, engine: str, batch_size: int, device: str, workers: int, progress: bool,
         ray_address: str | None, ray_cpus_per_actor: float, phase_iterations: int | None, phase: str | None,
         invalid: Sequence[ManifestError], threads: int) -> Summary:
    start = time.perf_counter()
    summary = Summary(jobs=len(jobs))
    out: OutputDir | None = None
    bar: Progress | None = None
    cluster = None
    # The device first: a mistyped one once made --out and moved errors.jsonl aside before it was refused.
    if engine == "ray":
        from audiogan.render.ray_engine import check_device, connect, render_ray

        check_device(device)
    else:
        device = str(pick_device(device))
    try:
        out = OutputDir(out_dir)
        # On Ray this driver only plans and keys the jobs, which loads no model (the actors load theirs).
        renderers = make_renderers("cpu" if engine == "ray" else device, phase_iterations, phase)
        out.invalid(invalid)
        keys: dict[str, str] = {}
        todo = []
        for job in jobs:
            try:
                for name in job.files:
                    out.path(name)  # a symlink inside --out may lead outside it: refuse before rendering
                keys[job.output] = job_key(job, renderers[job.kind])
                done = out.is_done(job.output, keys[job.output])
            except Exception as exc:  # one job's unusable weights or path must not sink the others
                _failed(out, summary, job, _reason(exc))
                continue
            if done:
                summary.skipped += 1
            else:
                todo.append(job)
        if summary.skipped:
            log.info("%d of %d jobs already rendered with the same parameters: skipped", summary.skipped, len(jobs))
        if engine == "ray" and todo:  # keys come from weight files: a rerun with nothing to do needs no cluster
            cluster = connect(ray_address, device)
            device = cluster.device
        sizes = {kind: batch_size or (r.cpu_batch_size if device == "cpu" else 32) for kind, r in renderers.items()}
        batches = plan_batches(todo, renderers, sizes)
        bar = Progress(out, summary, len(todo), keys, progress)
        if cluster:
            render_ray(batches, bar, cluster, cpus_per_actor=ray_cpus_per_actor, phase_iterations=phase_iterations,
                       phase=phase, threads=threads)
        else:
            render_local(batches, bar, renderers, workers)
    except DiskFullError as exc:
        exc.summary = summary
        raise
    finally:
        if bar is not None:
            bar.close()
        if out is not None:
            out.close()
        if cluster:
            cluster.close()
        summary.wall_seconds = time.perf_counter() - start
    return summary
