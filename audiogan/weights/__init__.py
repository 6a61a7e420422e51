"""Bundled model weights (safetensors) with a JSON model card beside each file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from audiogan.audio.io import write_atomic

WEIGHTS_DIR = Path(__file__).parent
DEFAULTS = {"vocoder": "vocoder-16k-vector", "tts": "tts-lj-16k", "timbre": "timbre-gm-16k"}


def resolve(name_or_path: str | Path, kind: str) -> Path:
    """A bundled name ('default', 'tts-lj-16k') or a path to a .safetensors file."""
    name = DEFAULTS[kind] if str(name_or_path) == "default" else str(name_or_path)
    path = Path(name)
    candidates = [path, path.with_suffix(".safetensors"), WEIGHTS_DIR / f"{name}.safetensors"]
    for c in candidates:
        if c.is_file() and c.suffix == ".safetensors":
            return c
    raise FileNotFoundError(f"no {kind} weights at {name_or_path!r}; bundled: {bundled(kind) or 'none'}")


def resolve_any(name_or_path: str | Path) -> Path:
    """Like :func:`resolve` for a model of any kind: the first kind whose bundled name or path fits."""
    for kind in DEFAULTS:
        try:
            return resolve(name_or_path, kind)
        except FileNotFoundError:
            continue
    known = ", ".join(n for k in DEFAULTS for n in bundled(k))
    raise FileNotFoundError(f"no model at {name_or_path!r}; bundled: {known}")


def bundled(kind: str) -> list[str]:
    """Names of the bundled models of one kind (the card says which kind)."""
    names = []
    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        card = path.with_suffix(".json")
        if card.is_file() and json.loads(card.read_text()).get("kind") == kind:
            names.append(path.stem)
    return names


def headline(card: dict[str, Any]) -> str:
    """The measured figures a person compares models by, from a card (blank where none were judged)."""
    kind, val = card.get("kind"), card.get("validation", {})
    if kind == "vocoder" and "pesq_wb" in val:
        mos = f", DNSMOS {val['dnsmos_ovrl']:.2f}" if "dnsmos_ovrl" in val else ""
        return f"PESQ-wb {val['pesq_wb']:.3f}, STOI {val['stoi']:.3f}{mos} on {val.get('clips', '?')} held-out clips"
    if kind == "tts" and "intelligibility" in card:
        judged = card["intelligibility"]
        own = next((v for k, v in judged.items() if k.startswith("own_sentences")), {})
        human = next((v for k, v in judged.items() if k.startswith("human")), {})
        if own:
            mos = (f"; DNSMOS {own['dnsmos_ovrl_mos']:.2f} (recordings {human['dnsmos_ovrl_mos']:.2f})"
                   if "dnsmos_ovrl_mos" in own and "dnsmos_ovrl_mos" in human else "")
            return f"WER {own['wer_sentence_lm']:.3f} (sentence LM), {own['wer_general_lm']:.3f} (general LM){mos}"
    if kind == "timbre" and "judged" in val:
        judged = val["judged"]
        return (f"pitch {judged['pitch_within_50_cents']:.1%} within 50 cents, instrument identity "
                f"{judged['instrument_identity']:.1%} (real notes {judged['instrument_identity_real_ceiling']:.1%})")
    return ""


def describe(path: Path) -> dict[str, Any]:
    """One row about a model: what it is, how it was trained, how good it measured."""
    card = read_card(path)
    training = card.get("training", {})
    return {"name": card.get("name", path.stem), "kind": card.get("kind", "?"),
            "default": DEFAULTS.get(card.get("kind", "")) == path.stem and path.parent == WEIGHTS_DIR,
            "parameters": card.get("parameters"), "megabytes": round(path.stat().st_size / 2**20, 1),
            "steps": training.get("steps"), "segments": segments(training), "measured": headline(card),
            "path": str(path), "problem": weights_problem(path),
            # A warm start's minutes are not in device_minutes; a continuation's are.
            "warm_started": bool(training.get("warm_start"))}


def segments(training: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a model's steps and device minutes went, one entry per device in the order used: a run that
    continued an export records the export's totals and device (``continued_from``, nested)."""
    chain, link = [training], training.get("continued_from")
    while link:
        chain.insert(0, link)
        link = link.get("earlier")
    out: list[dict[str, Any]] = []
    steps, minutes = 0, 0.0
    for link in chain:
        if "device" not in link and link is not training:
            continue  # older cards did not record the device: its minutes count with the next link's
        device = link.get("device", "?")
        delta = {"steps": link.get("steps", 0) - steps, "minutes": link.get("device_minutes", 0.0) - minutes}
        if out and out[-1]["device"] == device:
            out[-1] = {"device": device, **{k: out[-1][k] + delta[k] for k in delta}}
        else:
            out.append({"device": device, **delta})
        steps, minutes = link.get("steps", 0), link.get("device_minutes", 0.0)
    return out


def read_card(weights: Path, kind: str | None = None) -> dict[str, Any]:
    """The model card beside ``weights``; with ``kind``, refused if the card says it is another kind of model
    (its config would otherwise fail to parse with a confusing error about unknown keys)."""
    card_path = weights.with_suffix(".json")
    if not card_path.is_file():
        raise FileNotFoundError(f"model card {card_path} missing beside {weights.name}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"model card {card_path} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise ValueError(f"model card {card_path} holds a {type(card).__name__}, not a JSON object")
    found = card.get("kind", kind)  # hand-written cards may not say
    if kind is not None and found != kind:
        raise ValueError(f"{weights.name} is a {found} model, not a {kind} model")
    return card


def write_weights(path: Path, state: dict[str, torch.Tensor], card: dict[str, Any], dtype: torch.dtype) -> Path:
    """Write ``path`` (.safetensors) and its card (.json), each atomically and durably (``write_atomic``):
    a failure leaves each file whole, old or new; one between the two leaves the new weights beside the old
    card."""
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in state.items()}
    _check_finite(path, state, tensors)
    write_atomic(path, save(tensors, metadata={"format": "pt"}))
    write_atomic(path.with_suffix(".json"), (json.dumps(card, indent=2) + "\n").encode())
    return path


def _check_finite(path: Path, state: dict[str, torch.Tensor], written: dict[str, torch.Tensor]) -> None:
    """Refuse weights that are not all finite as written: every output of such a model is NaN, and a run
    whose weights grew past float16's range (a diverging one) gave no sign of it until the export."""
    bad = [k for k, v in written.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if not bad:
        return
    more = f" and {len(bad) - 1} other tensor(s)" if len(bad) > 1 else ""
    if all(torch.isfinite(state[k]).all() for k in bad):
        largest = max(float(state[k].abs().max()) for k in bad)
        why = (f"exceed {str(written[bad[0]].dtype).removeprefix('torch.')}'s range (largest magnitude "
               f"{largest:.3g}): training diverged; a float32 export keeps them as they are")
    else:
        why = "hold NaN or infinity: training diverged"
    raise ValueError(f"{path} not written: {bad[0]}{more} {why}")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:  # hashlib.file_digest is 3.11+; the project supports 3.10
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identity(path: Path) -> str:
    """The file's name and a hash of its bytes: outputs made by other weights under the same name differ."""
    return f"{path.name}:{file_digest(path)[:16]}"


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except SafetensorError as exc:  # its message names neither the file nor the likely cause
        raise ValueError(f"{path}: {_UNREADABLE}: {exc}") from None


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path,
              skip: tuple[str, ...] = ()) -> None:
    """``state`` into ``module``, or a ValueError naming ``source`` and how the two differ in a few names:
    weights beside another model's card would otherwise fail with every key of the model listed. Tensors
    of ``module`` under a ``skip`` prefix may be absent (parts that exports leave out)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(skip)]
    unexpected = [k for k in state if k not in own]
    reshaped = [f"{k} {tuple(state[k].shape)} where the model has {tuple(v.shape)}"
                for k, v in own.items() if k in state and state[k].shape != v.shape]
    differences = [f"{len(keys)} {what} ({_few(keys)})" for what, keys in
                   (("missing", missing), ("unknown to the model", unexpected), ("of another shape", reshaped))
                   if keys]
    if differences:
        raise ValueError(f"{source} does not fit the model its card describes; tensors: {', '.join(differences)}")
    module.load_state_dict(state, strict=not skip)


def _few(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f", ... {len(names) - shown} more" if len(names) > shown else "")


def weights_problem(path: Path) -> str | None:
    """Why ``path`` cannot load (cut short in a copy, not safetensors at all), or None: from its header and
    size alone, so a whole folder of models is checked at once."""
    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
    except SafetensorError as exc:
        return f"{_UNREADABLE}: {exc}"
    return None


_UNREADABLE = "unreadable .safetensors weights (corrupt or partial?)"
