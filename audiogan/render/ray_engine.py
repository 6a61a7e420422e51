"""``--engine ray``: the same batches on a Ray cluster, one model-holding actor per GPU or per N CPUs.

Actors rather than Ray Data: a render job is "load a model once, then run many small batches", which is
exactly an actor's lifetime, and the batches are already planned (length-sorted, per model) by
``plan_batches``, so Ray Data's repartitioning would only undo that. Actors return the encoded file
bytes; the driver writes them, so output paths, atomic writes, resume state and errors.jsonl behave as
with the local engine and no shared filesystem is needed for outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


@dataclass
class Cluster:
    """The Ray cluster a render runs on, and the device its actors use."""

    device: str
    gpus: int
    cpus: float
    started_here: bool

    def close(self) -> None:
        if self.started_here:
            import ray

            ray.shutdown()


def check_device(device: str) -> None:
    """Refuse a device the actors cannot take, before any work (the cluster is joined only when there is some)."""
    if device not in ("auto", "cpu", "cuda"):
        raise SystemExit(f"--engine ray takes --device auto, cpu or cuda (actors choose their GPU), not {device!r}")


def connect(address: str | None, device: str) -> Cluster:
    """Join (or start) Ray and pick the actors' device from the cluster, not from this driver: a head node
    without a GPU still sends work to the workers' GPUs. ``device`` auto takes GPUs where the cluster has any."""
    try:
        import ray
    except ImportError:
        raise SystemExit("--engine ray needs Ray: pip install 'audiogan[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    check_device(device)
    if device == "cuda" and not gpus:
        raise SystemExit("--device cuda: the Ray cluster has no GPUs")
    chosen = "cpu" if device == "cpu" or not gpus else "cuda"
    return Cluster(chosen, gpus if chosen == "cuda" else 0, cpus, started_here)


def render_ray(batches: list[Batch], progress: Progress, cluster: Cluster, *, cpus_per_actor: float = 1.0,
               phase_iterations: int | None = None, phase: str | None = None, threads: int = 0) -> None:
    """``threads`` per actor, else one per CPU it holds: the same count as a local run gives the same
    float sums, so byte-identical files."""
    import ray
    from ray.util import ActorPool

    if not batches:
        return
    count = min(cluster.gpus or max(1, int(cluster.cpus // cpus_per_actor)), len(batches))
    actor = ray.remote(num_cpus=cpus_per_actor, num_gpus=1 if cluster.gpus else 0)(RenderActor)
    threads = threads or max(1, int(cpus_per_actor))
    actors = [actor.remote(cluster.device, threads, phase_iterations, phase) for _ in range(count)]
    log.info("ray: %d actor(s) on %s", count, f"{cluster.gpus} GPU(s)" if cluster.gpus else f"{cluster.cpus:g} CPUs")
    for outcomes in ActorPool(actors).map_unordered(lambda a, b: a.run.remote(b), batches):
        for outcome in outcomes:
            progress.record(outcome)
