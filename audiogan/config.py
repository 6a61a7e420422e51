"""Typed configs: dataclasses built from YAML with unknown keys rejected."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or dict does not match its dataclass."""


def _build(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed size: tuple[float, float]
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_build(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        built = [_build(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(built) if origin is tuple else built
    if tp in (int, float) and isinstance(value, bool):  # bool is an int subclass: refuse `batch_size: true`
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    if tp is float and isinstance(value, int):
        return float(value)
    if tp is float and isinstance(value, str) and _finite_number(value):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; nobody means the text
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses and lists are typed too."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {k: _build(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def is_int(value: object) -> bool:
    """A Python or numpy integer, not a bool (an int subclass) nor a float that happens to be whole."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A Python or numpy int or float, not a bool: "1.2" from a form or None compared as a number failed
    deep in the work with a message about '<=' instead of naming the argument."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_run_numbers(section: Any, nonzero: tuple[str, ...] = ("batch_size", "max_steps", "learning_rate",
                                                                  "log_every")) -> None:
    """A training section's numbers: none is meaningful below zero, and a run cannot use a zero ``nonzero``
    (``max_steps=-1`` would export an untrained model as if it had trained; ``batch_size=0`` fails deep in an FFT)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value < 0 or (value == 0 and f.name in nonzero):
            least = "above 0" if f.name in nonzero else "0 or more"
            raise ConfigError(f"{type(section).__name__}.{f.name} = {value}: must be {least}")


def override(obj: T, assignment: str) -> T:
    """A copy of dataclass ``obj`` with one ``KEY=VALUE`` (VALUE parsed as YAML) applied and type-checked;
    a dotted KEY reaches into nested dataclasses (``spectral.frequency_scale=mel``)."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {assignment!r} is not KEY=VALUE")
    head, dot, rest = key.partition(".")
    inner = getattr(obj, head, None)
    if dot and dataclasses.is_dataclass(inner):
        return dataclasses.replace(obj, **{head: override(inner, f"{rest}={value}")})  # type: ignore[type-var]
    return from_dict(type(obj), {**to_dict(obj), key: yaml.safe_load(value)}, where=type(obj).__name__)


def override_recipe(recipe: T, assignment: str, default: str = "train") -> T:
    """Apply ``SECTION.KEY=VALUE`` to a recipe's section (``data.augment_speeds=[0.9,1.1]``); a bare
    ``KEY=VALUE`` goes to the ``default`` section, the one a run's knobs live in."""
    key = assignment.partition("=")[0]
    section, dot, _ = key.partition(".")
    sections = {f.name for f in dataclasses.fields(recipe) if dataclasses.is_dataclass(getattr(recipe, f.name))}  # type: ignore[arg-type]
    if dot and section not in sections:
        raise ConfigError(f"override {assignment!r}: no section {section!r}; sections: {sorted(sections)}")
    name, rest = (section, assignment[len(section) + 1:]) if dot else (default, assignment)
    return dataclasses.replace(recipe, **{name: override(getattr(recipe, name), rest)})  # type: ignore[type-var]


def to_dict(obj: Any) -> dict[str, Any]:
    """The config as JSON and YAML hold it: fixed-size tuples (``betas``) as lists, as cards store them."""
    return _plain(dataclasses.asdict(obj))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_yaml(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    if path.is_dir():  # "not found" sent the user looking for a file that was there
        raise ConfigError(f"config {path} is a folder; name a .yaml file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not a YAML config: {exc}") from None
    if not isinstance(data, dict):  # a stray text or audio file parses as one string
        raise ConfigError(f"{path} holds a {type(data).__name__}, not a YAML mapping of settings")
    return from_dict(cls, data, where=path.name)
