"""Atomic training checkpoints (full state, for exact resume)."""

from __future__ import annotations

import contextlib
import logging
import random
import reprlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiogan.audio.io import write_atomic

log = logging.getLogger(__name__)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """torch.save through ``write_atomic``: a crash never leaves half a file, and a power cut right after
    does not lose the rename (the folder is synced too). A failed write says which checkpoint it was: torch's
    zip writer reports a full disk as "unexpected pos 2957504 vs 2957392", naming no file."""
    try:
        with interrupts_deferred():
            return write_atomic(path, lambda f: torch.save(state, f))
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).split("\n")[0]
        # An OSError says its cause (a read-only folder is no full disk); torch's writer says none.
        hint = "." if isinstance(exc, OSError) else ": is the disk full?"
        raise OSError(f"could not write the checkpoint of step {state.get('step')} to {path} ({reason}){hint} "
                      f"A checkpoint written there before is still whole") from exc


@contextlib.contextmanager
def interrupts_deferred(then_raise: bool = True) -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the checkpoint being written, then take effect as usual. Raised inside
    torch's zip writer, the interrupt came out as "RuntimeError: unexpected pos 46 vs 0" (3 of 12 signals
    sent during a 200 MB save): the run ended on an error, with no checkpoint of its last steps.
    ``then_raise=False`` drops them instead, for a block that ends on an interrupt anyway."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.getsignal(s) for s in signals]
    if threading.current_thread() is not threading.main_thread() or None in previous:
        yield  # handlers can be set in the main thread only, and one set outside Python cannot be put back
        return
    caught: list[int] = []
    for s in signals:
        signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s, handler in zip(signals, previous, strict=True):
            signal.signal(s, handler)
    if caught and then_raise:
        signal.raise_signal(caught[0])


# What each trainer's checkpoint always holds: resume and export read these unconditionally.
CHECKPOINT_KEYS = {
    "vocoder": ("generator", "discriminators", "opt_g", "opt_d", "step", "device_minutes", "rng", "data_rng",
                "config"),
    "tts": ("model", "opt", "step", "device_minutes", "rng", "data_rng", "config", "stats", "symbols"),
    "timbre": ("generator", "discriminator", "opt_g", "opt_d", "step", "device_minutes", "rng", "data_rng",
               "config"),
}


def load_checkpoint(path: str | Path, device: torch.device, kind: str | None = None) -> dict[str, Any]:
    """A training checkpoint; with ``kind``, refused unless it holds what that trainer's checkpoints hold."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is a folder, not a checkpoint file" if path.is_dir()
                                else f"checkpoint not found: {path}")
    why = ("it is an export; training continues from one with --init-generator" if path.suffix == ".safetensors"
           else "corrupt or partial?")
    try:
        ck = torch.load(path, map_location=device, weights_only=False)
    except OSError:
        raise
    except Exception as exc:  # unpickling junk raises nearly anything: UnpicklingError, EOFError, RuntimeError...
        first = str(exc).split(". ", 1)[0]  # torch's zip reader goes on for a paragraph
        raise ValueError(f"{path} is not a training checkpoint ({why}): {first}") from exc
    if not isinstance(ck, dict):
        raise ValueError(f"{path} is not a training checkpoint: it holds a {type(ck).__name__}")
    missing = [k for k in CHECKPOINT_KEYS.get(kind, ()) if k not in ck]
    if missing:
        other = _written_by(ck)
        looks = f"; it looks like a {other} checkpoint" if other and other != kind else ""
        raise ValueError(f"{path} is not a {kind} training checkpoint: it lacks {', '.join(missing)}{looks}")
    return ck


def _written_by(ck: dict[str, Any]) -> str | None:
    """Which trainer a checkpoint seems to come from, by the key only that one writes ("model" first: the TTS
    trainer's optional mel critic is a "discriminator" too)."""
    for kind, key in (("tts", "model"), ("vocoder", "discriminators"), ("timbre", "discriminator")):
        if key in ck:
            return kind
    return None


def check_model_config(source: str, saved: dict[str, Any], config_type: type, own: Any) -> None:
    """Refuse weights trained with another model config than ``own`` (the recipe's): training on would
    mislabel them, and the exported card with them. Compared through ``config_type``, so that a config
    written before a field existed compares by its default; the error names the keys that differ."""
    from audiogan.config import from_dict, to_dict

    theirs, ours = _flat(to_dict(from_dict(config_type, saved))), _flat(to_dict(own))
    if differing := _differences(theirs, ours, theirs.keys() | ours.keys()):
        raise ValueError(f"{source} was trained with a different model config than this recipe "
                         f"({differing}); use the recipe it was trained with")


# Recipe fields that change how long a run goes on, how often it reports, or where it caches: a resume may
# change them and still go on exactly as the checkpoint's run would have.
BOOKKEEPING = {"max_steps", "max_minutes", "log_every", "validate_every_minutes", "checkpoint_every_minutes",
               "snapshot_every_minutes", "diversity_every", "cache_dir"}


def note_recipe_changes(source: str, saved: dict[str, Any], own: Any) -> None:
    """Warn, naming the fields, when a resume's train: or data: section differs from the checkpoint's (the
    model's is refused by :func:`check_model_config`): with another batch size, learning rate or data split
    the run goes on, but not as it would have, which "continue exactly" promises otherwise."""
    from audiogan.config import to_dict

    ours = to_dict(own)
    theirs, mine = ({k: v for section in ("train", "data") for k, v in _flat(tree.get(section, {}), f"{section}.")
                     .items()} for tree in (saved, ours))
    # Fields only one side has (a config from another version) are not a change the user made.
    if differing := _differences(theirs, mine, {k for k in theirs.keys() & mine.keys()
                                                if k.rsplit(".", 1)[-1] not in BOOKKEEPING}):
        log.warning("%s: resuming with a changed recipe (%s): the run goes on from the checkpoint, but not as "
                    "it would have on its own recipe", source, differing)


def _differences(theirs: dict[str, Any], ours: dict[str, Any], keys: set[str]) -> str:
    """The keys whose values differ, as "key: A there, B here; ..." (six at most), or ""."""
    differing = sorted(k for k in keys if theirs.get(k) != ours.get(k))
    shown = "; ".join(f"{k}: {reprlib.repr(theirs.get(k))} there, {reprlib.repr(ours.get(k))} here"
                      for k in differing[:6])
    return shown + (f" and {len(differing) - 6} more" if len(differing) > 6 else "")


def _flat(tree: dict[str, Any], prefix: str = "model.") -> dict[str, Any]:
    """Nested config dicts as {"model.mel.sample_rate": 16000, ...}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


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
    """An exported generator to continue training from: (path, card, float32 weights). Refuses another kind
    of model, and one whose model config differs from ``own_config`` (:func:`check_model_config`)."""
    from audiogan import weights

    wpath = weights.resolve(path, kind)
    card = weights.read_card(wpath, kind)
    check_model_config(wpath.name, card["config"], config_type, own_config)
    return wpath, card, {k: v.float() for k, v in weights.read_weights(wpath).items()}


def continuation(card: dict[str, Any], wpath: Path) -> dict[str, Any]:
    """What a run that continues an export records of it: the next card states the whole cost, and the
    earlier phases' recipes stay on record beside the new one."""
    training = card["training"]
    return {"from": card.get("name", wpath.stem), "steps": training["steps"],
            "device_minutes": training["device_minutes"], "device": training.get("device", "unknown"),
            "recipe": training.get("recipe", {}),
            **({"earlier": training["continued_from"]} if "continued_from" in training else {})}
