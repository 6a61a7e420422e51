"""``--engine ray``: the same batches on a Ray cluster, one model-holding actor per GPU or per N CPUs.

Actors rather than Ray Data: a render job is "load a model once, then run many small batches", which is
exactly an actor's lifetime, and the batches are already planned (length-sorted, per model) by
``plan_batches``, so Ray Data's repartitioning would only undo that. Actors return the encoded file
bytes; the driver writes them, so output paths, atomic writes, resume state and errors.jsonl behave as
with the local engine and no shared filesystem is needed for outputs. Nor for inputs and weights files:
the driver sends those too (:mod:`audiogan.render.shipping`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch

from audiogan.render.engine import Batch, Outcome, Progress, render_batch
from audiogan.render.kinds import make_renderers
from audiogan.render.shipping import NodeFiles, Shipper, Unit

log = logging.getLogger("audiogan.render")


class RenderActor:
    def __init__(self, device: str, threads: int, phase_iterations: int | None, phase: str | None) -> None:
        import ray

        torch.set_num_threads(threads)
        self.renderers = make_renderers(device, phase_iterations, phase)
        self.files = NodeFiles(ray.get)

    def run(self, batch: Batch, units: dict[str, list[Unit]]) -> list[Outcome]:
        """Render with the files at this node's paths; the outcomes name the driver's jobs."""
        renderer = self.renderers[batch.kind]
        try:
            try:
                local = self.files.localise(batch, units, renderer.group)
            except Exception as exc:  # the files could not come here (a full disk): the batch fails, not the run
                return [Outcome(job, error=f"cannot copy its files to this Ray node: {exc}") for job in batch.jobs]
            outcomes = render_batch(renderer, local)
        finally:
            self.files.drop_inputs()
        for outcome, job in zip(outcomes, batch.jobs, strict=True):
            outcome.job = job
        return outcomes

    def close(self) -> None:
        self.files.close()


@dataclass
class Cluster:
    """The Ray cluster a render runs on, and the device its actors use."""

    device: str
    gpus: int
    cpus: float
    started_here: bool
    nodes: list[tuple[float, float]] = field(default_factory=list)  # (CPUs, GPUs) of each live node

    def slots(self, cpus_per_actor: float) -> int:
        """How many actors of ``cpus_per_actor`` CPUs (and a GPU each on a GPU cluster) the nodes hold at once:
        an actor lives on one node, and one that fits on none waits for ever (a run once hung at 0/N)."""
        if not cpus_per_actor > 0:
            raise ValueError(f"--cpus-per-actor must be above 0, not {cpus_per_actor}")
        per_node = (int(cpus / cpus_per_actor + 1e-9) for cpus, _ in self.nodes)  # 1 / 0.1 is 9.999...
        if self.gpus:
            per_node = (min(n, int(gpus)) for n, (_, gpus) in zip(per_node, self.nodes, strict=True))
        return sum(per_node)

    def check_fits(self, cpus_per_actor: float, threads: int) -> int:
        """The number of actors to start, or a ValueError saying why none can run."""
        slots = self.slots(cpus_per_actor)
        largest = max((cpus for cpus, gpus in self.nodes if gpus >= 1 or not self.gpus), default=0.0)
        if not slots:
            raise ValueError(f"--cpus-per-actor {cpus_per_actor:g}: no node of the Ray cluster can hold an actor "
                             f"(the largest{' with a GPU' if self.gpus else ''} has {largest:g} CPUs)")
        if threads > largest:  # more threads than a node has CPUs only stalls it
            raise ValueError(f"--threads {threads}: no node of the Ray cluster has more than {largest:g} CPUs")
        return slots

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
        # Without --address: $RAY_ADDRESS, else a Ray of our own. Never ray.init()'s own choice, the cluster
        # a `ray start` last began on this machine, which it waits on for long when that one has died.
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    check_device(device)
    if device == "cuda" and not gpus:
        raise SystemExit("--device cuda: the Ray cluster has no GPUs")
    chosen = "cpu" if device == "cpu" or not gpus else "cuda"
    nodes = [(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
             for n in ray.nodes() if n.get("Alive")]
    return Cluster(chosen, gpus if chosen == "cuda" else 0, cpus, started_here, nodes)


def render_ray(batches: list[Batch], progress: Progress, cluster: Cluster, *, cpus_per_actor: float = 1.0,
               phase_iterations: int | None = None, phase: str | None = None, threads: int = 0) -> None:
    """``threads`` per actor, else one per CPU it holds: the same count as a local run gives the same
    float sums, so byte-identical files."""
    import ray
    from ray.util import ActorPool

    if not batches:
        return
    count = min(cluster.check_fits(cpus_per_actor, threads), len(batches))
    actor = ray.remote(num_cpus=cpus_per_actor, num_gpus=1 if cluster.gpus else 0)(RenderActor)
    threads = threads or max(1, int(cpus_per_actor))
    actors = [actor.remote(cluster.device, threads, phase_iterations, phase) for _ in range(count)]
    log.info("ray: %d actor(s) on %s", count, f"{cluster.gpus} GPU(s)" if cluster.gpus else f"{cluster.cpus:g} CPUs")
    shipper = Shipper(ray.put)  # the pool calls this as an actor comes free, so inputs are put a batch at a time
    try:
        for outcomes in ActorPool(actors).map_unordered(lambda a, b: a.run.remote(b, shipper.units(b)), batches):
            for outcome in outcomes:
                progress.record(outcome)
    finally:
        ray.wait([a.close.remote() for a in actors], num_returns=len(actors), timeout=30)
