"""Atomic training checkpoints (full state, for exact resume)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """torch.save to a temp file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, device: torch.device) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=device, weights_only=False)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def read_export(path: str | Path, kind: str, config_type: type, own_config: Any,
                ) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """An exported generator to continue training from: (path, card, float32 weights). Refuses one whose
    model config differs from ``own_config``; compared through ``config_type``, so that cards written
    before a field existed compare by its default."""
    from audiogan import weights
    from audiogan.config import from_dict, to_dict

    wpath = weights.resolve(path, kind)
    card = weights.read_card(wpath)
    if to_dict(from_dict(config_type, card["config"])) != to_dict(own_config):
        raise ValueError(f"{wpath.name} was trained with a different model config than this recipe "
                         "(and, for a note model, its data's instruments)")
    return wpath, card, {k: v.float() for k, v in weights.read_weights(wpath).items()}


def continuation(card: dict[str, Any], wpath: Path) -> dict[str, Any]:
    """What a run that continues an export records of it: the next card states the whole cost, and the
    earlier phases' recipes stay on record beside the new one."""
    training = card["training"]
    return {"from": card.get("name", wpath.stem), "steps": training["steps"],
            "device_minutes": training["device_minutes"], "device": training.get("device", "unknown"),
            "recipe": training.get("recipe", {}),
            **({"earlier": training["continued_from"]} if "continued_from" in training else {})}
