"""What a training run records: metrics.jsonl, TensorBoard (when installed) and a log line per row."""

from __future__ import annotations

import functools
import gc
import json
import logging
import math
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from audiogan.audio.io import naming, write_atomic
from audiogan.train.checkpoint import interrupts_deferred
from audiogan.train.distributed import unwrap

log = logging.getLogger(__name__)
Fit = TypeVar("Fit", bound=Callable[..., Any])


class RunLog:
    """Owned by rank 0. Keys starting with ``valid_`` go under TensorBoard's ``valid/``, others ``train/``."""

    def __init__(self, run_dir: Path, resumed_at: int | None = None) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "metrics.jsonl"
        self.dropped: list[dict[str, Any]] = []
        if resumed_at is not None:
            self._forget_after(resumed_at)
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            log.warning("tensorboard not installed: logging to metrics.jsonl only")

    def _forget_after(self, step: int) -> None:
        """Drop the rows a run logged past the checkpoint it is resumed from (it was killed after logging
        them): the resumed run logs those steps again, and each step should be in the log once."""
        if not self.path.is_file():
            return
        lines = len(self.path.read_text().splitlines())
        rows = read_rows(self.path)
        kept = [row for row in rows if row.get("step", 0) <= step]  # a line cut short goes too
        self.dropped = [row for row in rows if row.get("step", 0) > step]
        if len(kept) < lines:
            write_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept).encode())
            log.info("%s: dropped %d rows logged after step %d, the checkpoint's", self.path, lines - len(kept), step)

    def minutes_after(self, checkpoint: str | Path, minutes: float) -> float:
        """The device minutes a run killed after its last checkpoint spent past it, as its log shows them:
        each row it logged after the checkpoint's step (dropped on resume) carries the device minutes run
        by then, so the last of them is a truthful lower bound. The time after that last row (at most a log
        interval) is not on record and stays uncounted. Only for the run folder's own checkpoint: any later
        checkpoint of this run would have replaced it, so the rows past it are this run's lost time."""
        if not self.dropped or Path(checkpoint).resolve() != (self.path.parent / "checkpoint.pt").resolve():
            return 0.0
        last = max(self.dropped, key=lambda row: float(row.get("device_minutes", minutes)))
        lost = float(last.get("device_minutes", minutes)) - minutes
        if lost <= 0:
            return 0.0
        log.info("%s: added %.2f device minutes to the run's cost: it ran them after its checkpoint, up to the "
                 "step %d it logged before it was stopped", self.path.parent, lost, last["step"])
        return lost

    def row(self, step: int, row: dict[str, Any]) -> None:
        row = measured(row)
        with naming(self.path), self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.writer:
            for k, v in row.items():
                if isinstance(v, float):
                    self.writer.add_scalar(f"valid/{k[6:]}" if k.startswith("valid_") else f"train/{k}", v, step)
            self.writer.flush()
        log.info("step %d  %s", step, "  ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))

    def spectrogram_image(self, tag: str, spec: torch.Tensor, step: int) -> None:
        """[frequency, time] (a mel, a log-magnitude) as a greyscale image, min to max."""
        # Empty: a free-running acoustic model that predicts no frames (a young or a diverging one).
        if self.writer and spec.numel():
            m = spec.float().cpu().nan_to_num()
            m = (m - m.min()) / (m.max() - m.min() + 1e-8)
            self.writer.add_image(tag, m.flip(0).unsqueeze(0), step)  # low frequencies at the bottom

    def audio(self, tag: str, wave: torch.Tensor, step: int, sample_rate: int) -> None:
        if self.writer:
            self.writer.add_audio(tag, wave.float().cpu(), step, sample_rate)


class NonFiniteSteps:
    """Skipped (non-finite) updates, counted on the device with no host sync per step; ``check``, at a log
    step, stops the run after ``patience`` of them in a row and warns about the others."""

    def __init__(self, patience: int, device: torch.device) -> None:
        self.patience = patience
        self.streak = self.worst = torch.zeros((), device=device)

    def add(self, skipped: torch.Tensor) -> None:
        """One step's 0/1 ``skipped``."""
        self.streak = (self.streak + skipped) * skipped
        self.worst = torch.maximum(self.worst, self.streak)

    def check(self, step: int, skipped: float) -> None:
        """``skipped``: the updates skipped since the last check."""
        if self.worst.item() >= self.patience:
            raise FloatingPointError(f"{int(self.worst.item())} non-finite steps in a row at step {step}; "
                                     "stopping (lower the learning rate or check the data)")
        if skipped:
            log.warning("step %d: skipped %d non-finite updates", step, int(skipped))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl, without a last line a killed run cut short."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def validation_at(metrics_file: Path, step: int, prefix: str = "valid") -> dict[str, Any]:
    """A model card's validation: the last figures logged at or before ``step`` (keys starting with
    ``prefix``), with the step they were measured at, which may be older than the weights. The run folder's
    log may go on past the checkpoint (a run that continued, or rows left from before a resume), and those
    figures are not this checkpoint's."""
    found: dict[str, Any] = {}
    if metrics_file.is_file():
        for row in read_rows(metrics_file):
            figures = {k: v for k, v in row.items() if k.startswith(prefix)}
            if figures and row.get("step", step + 1) <= step:
                found = {"step": row["step"], **figures}
    return found


def measured(row: dict[str, Any]) -> dict[str, Any]:
    """The row without NaN (a trainer's mark for a figure not measured in its window, the discriminator's
    before it joins) or infinity (a diverged loss, which the row's "skipped" counts). Strict JSON readers
    refuse both, in metrics.jsonl and in model cards alike."""
    return {k: v for k, v in row.items() if not (isinstance(v, float) and not math.isfinite(v))}


def finish_run(trainer: Any, row: dict[str, Any], validate: bool = True) -> dict[str, Any]:
    """The end of ``fit`` shared by the trainers: every rank says where it stopped; rank 0 runs a final
    validation (logged as the ``final`` row), writes the checkpoint and exports the inference weights;
    then all ranks leave together."""
    dist = trainer.dist
    if dist.world > 1:
        log.info("rank %d of %d finished at step %d", dist.rank, dist.world, trainer.step)
    if dist.main:
        if validate:
            row.update(trainer.validate())
            trainer.runlog.row(trainer.step, {**row, "final": True})
        trainer.checkpoint()
        trainer.export(trainer.run_dir / f"{trainer.cfg.name}.safetensors", measured(row))
    if dist.world > 1:
        # Leave together and close the process group: a rank that exits while another still works tears
        # gloo down under it ("terminate called without an active exception", SIGABRT).
        torch.distributed.barrier()
        _unwrap_ddp(trainer)
        torch.distributed.destroy_process_group()
    return row


def _unwrap_ddp(trainer: Any) -> None:
    """Let go of the DDP wrappers before the process group closes: their reducers hold the group, whose
    gloo threads were otherwise torn down during interpreter exit. Measured on 2-rank CPU runs of the tiny
    note recipe under load: 2 of 81 ranks aborted after "finished" (SIGABRT) before, 0 of 120 after."""
    for name, value in list(vars(trainer).items()):
        if isinstance(value, torch.nn.Module) and unwrap(value) is not value:
            setattr(trainer, name, unwrap(value))
    gc.collect()  # the wrappers' reference cycles go now, not at exit


def checkpoint_on_interrupt(fit: Fit) -> Fit:
    """For a trainer's ``fit``: on Ctrl-C or SIGTERM, rank 0 writes a checkpoint of the steps done so far
    before the interrupt goes on, so that --resume loses at most the step it cut short (whose partial update,
    say the discriminator's, the checkpoint keeps; its step is not counted). SIGTERM is how docker stop,
    Slurm preemption and a lease's end say stop."""

    @functools.wraps(fit)
    def run(trainer: Any, *args: Any, **kwargs: Any) -> Any:
        main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
        previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
        try:
            return fit(trainer, *args, **kwargs)
        except KeyboardInterrupt:
            if trainer.dist.main:
                # A second Ctrl-C (an impatient user) would otherwise cut the line saying how to go on; the
                # run is stopping already, so it has nothing left to do.
                with interrupts_deferred(then_raise=False):
                    path = trainer.checkpoint()
                    log.warning("interrupted at step %d: wrote %s (continue with --resume %s)", trainer.step, path,
                                path)
            raise
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)

    return run  # type: ignore[return-value]


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
