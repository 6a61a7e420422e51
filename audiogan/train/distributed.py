"""torchrun support: the same trainer runs on one process or many, with no code change."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> tuple[Dist, torch.device]:
    """Read torchrun's environment; pick the process's device ('auto', 'cpu', 'cuda')."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(f"cuda:{local}") if device == "cuda" else torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local), dev


def all_reduce_mean(t: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.world > 1:
        dist.all_reduce(t)
        t /= d.world
    return t


def rank0_decides(flag: bool, d: Dist, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank, so that all ranks leave a loop at the same step."""
    t = torch.tensor(float(flag), device=device)
    if d.world > 1:
        dist.broadcast(t, 0)
    return bool(t.item())


def mean_row(acc: torch.Tensor, n: int, names: tuple[str, ...], d: Dist) -> dict[str, float]:
    """Summed per-step statistics -> their mean over steps and ranks, by name (one host sync)."""
    return dict(zip(names, (all_reduce_mean(acc.clone(), d) / n).tolist(), strict=True))


def unwrap(m: nn.Module) -> nn.Module:
    """The model inside torch.compile's and DDP's wrappers: what is saved, exported and inspected."""
    m = getattr(m, "_orig_mod", m)
    return m.module if isinstance(m, DDP) else m
