"""``--engine ray``: the same batches on a Ray cluster, one model-holding actor per GPU or per N CPUs.

Actors rather than Ray Data: a render job is "load a model once, then run many small batches", which is
exactly an actor's lifetime, and the batches are already planned (length-sorted, per model) by
``plan_batches``, so Ray Data's repartitioning would only undo that. Actors return the encoded file
bytes; the driver writes them, so output paths, atomic writes, resume state and errors.jsonl behave as
with the local engine and no shared filesystem is needed for outputs.
"""

from __future__ import annotations

import logging

import torch

from audiogan.render.engine import Batch, Outcome, Progress, render_batch
from audiogan.render.kinds import make_renderers

log = logging.getLogger("audiogan.render")


class RenderActor:
    def __init__(self, device: str, threads: int, phase_iterations: int | None, phase: str | None) -> None:
        torch.set_num_threads(threads)
        self.renderers = make_renderers(device, phase_iterations, phase)

    def run(self, batch: Batch) -> list[Outcome]:
        return render_batch(self.renderers[batch.kind], batch)


def render_ray(batches: list[Batch], progress: Progress, *, device: str = "cpu", address: str | None = None,
               cpus_per_actor: float = 1.0, phase_iterations: int | None = None,
               phase: str | None = None) -> None:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise SystemExit("--engine ray needs Ray: pip install 'audiogan[ray]'") from None
    if not batches:
        return
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if device != "cpu" else 0
        count = gpus or max(1, int(resources.get("CPU", 1) // cpus_per_actor))
        count = min(count, len(batches))
        actor = ray.remote(num_cpus=cpus_per_actor, num_gpus=1 if gpus else 0)(RenderActor)
        threads = max(1, int(cpus_per_actor))
        actors = [actor.remote("cuda" if gpus else "cpu", threads, phase_iterations, phase)
                  for _ in range(count)]
        log.info("ray: %d actor(s) on %s", count, f"{gpus} GPU(s)" if gpus else f"{resources.get('CPU', 0):g} CPUs")
        for outcomes in ActorPool(actors).map_unordered(lambda a, b: a.run.remote(b), batches):
            for outcome in outcomes:
                progress.record(outcome)
    finally:
        if started_here:
            ray.shutdown()
