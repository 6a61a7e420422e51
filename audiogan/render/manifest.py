"""Render manifests: one job per JSONL line or CSV row, every line checked before any work starts."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from audiogan.tts import ssml

AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    help: str
    required: bool = False
    is_input_path: bool = False  # resolved against the manifest's folder and checked to exist
    check: Callable[[Any], str | None] | None = None  # returns a reason when the value is bad


@dataclass(frozen=True)
class KindSpec:
    name: str
    help: str
    params: tuple[Param, ...]
    exactly_one_of: tuple[str, ...] = ()


@dataclass
class Job:
    line: int
    kind: str
    output: str
    params: dict[str, Any]
    seed: int = 0
    key: str = ""

    def __post_init__(self) -> None:
        canonical = json.dumps({"kind": self.kind, "output": self.output, "params": self.params, "seed": self.seed},
                               sort_keys=True)
        self.key = hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def files(self) -> list[str]:
        """Every file the job writes: its output, then its timings beside it if it asks for them."""
        timings = self.params.get("timings")
        return [self.output, *([beside(self.output, "." + timings)] if timings else [])]


def beside(output: str, suffix: str) -> str:
    """The path of a file written next to an output: 'book/ch1.wav', '.vtt' -> 'book/ch1.vtt'."""
    return str(PurePosixPath(output).with_suffix(suffix))


@dataclass
class ManifestError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class Manifest:
    path: Path
    jobs: list[Job] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)


def _range(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"{v} is out of range {lo:g}..{hi:g}"


def _text(v: str) -> str | None:
    if not v.strip():
        return "is empty"
    return ssml.problem(v) if ssml.is_ssml(v) else None


def _positive(v: Any) -> str | None:
    return None if v > 0 else f"{v} must be > 0"


SAMPLE_RATE = Param("sample_rate", int, "output sample rate in Hz (default: the model's)", check=_range(8000, 96000))
SEED = Param("seed", int, "random seed (default: derived from the output path)", check=_range(0, 2**63 - 1))


def kind_specs() -> dict[str, KindSpec]:
    specs = [
        KindSpec("vocode", "a log-mel (.npy [n_mels, frames]) or a recording (copy-synthesis) through a vocoder",
                 (Param("mel", str, "path of a .npy log-mel", is_input_path=True),
                  Param("audio", str, "path of an audio file to copy-synthesize", is_input_path=True),
                  Param("vocoder", str, "bundled vocoder name or .safetensors path (default: 'default')"),
                  SAMPLE_RATE, SEED),
                 exactly_one_of=("mel", "audio")),
        KindSpec("tts", "text through a TTS voice",
                 (Param("text", str, "the text, or SSML starting with <speak>", required=True, check=_text),
                  Param("voice", str, "voice name"), Param("speed", float, "0.25..4", check=_range(0.25, 4)),
                  Param("pitch_shift", float, "semitones", check=_range(-12, 12)),
                  Param("speaker", int, "a multi-speaker voice's speaker (default 0)", check=_range(0, 2**31 - 1)),
                  Param("lexicon", str, "a file of your pronunciations, lines 'WORD respelling' or 'WORD /phonemes/'",
                        is_input_path=True),
                  Param("timings", str, "also write when each sentence and word is said, beside the output: "
                                        "json, vtt or srt (captions)",
                        check=lambda v: None if v in ("json", "vtt", "srt") else f"{v!r} is not json, vtt or srt"),
                  SAMPLE_RATE, SEED)),
        KindSpec("notes", "one instrument note",
                 (Param("pitch", int, "MIDI note number", required=True, check=_range(0, 127)),
                  Param("instrument", str, "instrument name", required=True),
                  Param("model", str, "timbre model name or .safetensors path (default: 'default')"),
                  Param("velocity", int, "1..127", check=_range(1, 127)),
                  Param("seconds", float, "note length", check=_positive), SAMPLE_RATE, SEED)),
        KindSpec("convert", "a recording re-rendered with another timbre",
                 (Param("input", str, "audio file", required=True, is_input_path=True),
                  Param("to", str, "target instrument", required=True),
                  Param("model", str, "timbre model name or .safetensors path (default: 'default')"),
                  Param("flat", bool, "notes as the model plays them (default false: follow the recording's "
                        "pitch and loudness within each note)"),
                  SAMPLE_RATE, SEED)),
        KindSpec("midi", "a MIDI file rendered with the timbre model",
                 (Param("input", str, "MIDI file", required=True, is_input_path=True),
                  Param("instrument", str, "timbre at the start", required=True),
                  Param("to", str, "timbre at the end (the piece morphs from instrument to this)"),
                  Param("model", str, "timbre model name or .safetensors path (default: 'default')"),
                  SAMPLE_RATE, SEED)),
    ]
    return {s.name: s for s in specs}


def check_output(output: Any) -> str | None:
    """Outputs stay inside --out: relative, no '..', an audio suffix."""
    if not isinstance(output, str) or not output.strip():
        return "output: missing (a relative path such as 'speech/line1.wav')"
    path = PurePosixPath(output.replace("\\", "/"))
    if path.is_absolute() or output.startswith(("/", "\\")) or (len(output) > 1 and output[1] == ":"):
        return f"output: {output!r} is absolute; outputs must be relative to --out"
    if ".." in path.parts:
        return f"output: {output!r} leaves the output folder ('..' is refused)"
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        return f"output: {output!r} must end in {' or '.join(AUDIO_SUFFIXES)}"
    return None


def _coerce(param: Param, value: Any, from_csv: bool) -> tuple[Any, str | None]:
    if from_csv and isinstance(value, str) and param.type is bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if value.strip().lower() not in words:
            return value, f"{param.name}: {value!r} is not true or false"
        value = words[value.strip().lower()]
    elif from_csv and isinstance(value, str) and param.type is not str:
        try:
            value = param.type(value)
        except ValueError:
            return value, f"{param.name}: {value!r} is not a {param.type.__name__}"
    if param.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, param.type) or (isinstance(value, bool) and param.type is not bool):
        return value, f"{param.name}: expected {param.type.__name__}, got {json.dumps(value)}"
    if param.check and (reason := param.check(value)):
        return value, f"{param.name}: {reason}"
    return value, None


def _job(record: dict[str, Any], line: int, base: Path, from_csv: bool) -> Job | ManifestError:
    specs = kind_specs()
    kind = record.get("kind")
    if kind not in specs:
        return ManifestError(line, f"kind: {kind!r} is not one of {', '.join(specs)}")
    spec = specs[kind]
    if reason := check_output(record.get("output")):
        return ManifestError(line, reason)
    known = {p.name: p for p in spec.params}
    given = {k: v for k, v in record.items() if k not in ("kind", "output") and not (from_csv and v in ("", None))}
    unknown = sorted(set(given) - set(known))
    if unknown:
        return ManifestError(line, f"unknown field(s) {unknown} for kind {kind!r}; known: {sorted(known)}")
    params: dict[str, Any] = {}
    for name, value in given.items():
        value, reason = _coerce(known[name], value, from_csv)
        if reason:
            return ManifestError(line, reason)
        if known[name].is_input_path:
            path = Path(value) if Path(value).is_absolute() else base / value
            if not path.is_file():
                return ManifestError(line, f"{name}: file not found: {path}")
            value = str(path)
        params[name] = value
    missing = [p.name for p in spec.params if p.required and p.name not in params]
    if missing:
        return ManifestError(line, f"missing required field(s) {missing} for kind {kind!r}")
    if spec.exactly_one_of and sum(n in params for n in spec.exactly_one_of) != 1:
        return ManifestError(line, f"kind {kind!r} needs exactly one of {list(spec.exactly_one_of)}")
    output = str(PurePosixPath(record["output"].replace("\\", "/")))
    # Deterministic per job: the same line renders the same audio on any engine, any machine, any order.
    seed = params.pop("seed", None)
    if seed is None:
        seed = int.from_bytes(hashlib.sha256(output.encode()).digest()[:8], "little") >> 1
    return Job(line, kind, output, params, seed)


def _records(path: Path) -> tuple[list[tuple[int, dict[str, Any] | str]], bool]:
    """(line number, record or parse error) for each job line; CSV when the suffix says so."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        rows: list[tuple[int, dict[str, Any] | str]] = []
        for row in reader:
            if None in row:
                rows.append((reader.line_num, "more values than header columns"))
            else:
                rows.append((reader.line_num, dict(row)))
        return rows, True
    records: list[tuple[int, dict[str, Any] | str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            records.append((number, f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        records.append((number, record if isinstance(record, dict) else "a job must be a JSON object"))
    return records, False


def read_manifest(path: str | Path,
                  unavailable: Callable[[str, dict[str, Any]], str | None] | None = None) -> Manifest:
    """Parse and check every line; bad lines become ``errors`` (line number and reason), never exceptions.

    ``unavailable(kind, params)`` says why a job cannot run here (its model is not installed), or None.
    """
    if unavailable is None:
        from audiogan.render.kinds import unavailable_reason as unavailable
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    manifest = Manifest(path)
    records, from_csv = _records(path)
    seen: dict[str, int] = {}
    for line, record in records:
        job = ManifestError(line, record) if isinstance(record, str) else _job(record, line, path.parent, from_csv)
        if isinstance(job, Job):
            clash = next((f for f in job.files if f in seen), None)
            if clash:
                job = ManifestError(line, f"output: {clash!r} is also written by line {seen[clash]}")
            elif reason := unavailable(job.kind, job.params):
                job = ManifestError(line, f"kind {job.kind!r} cannot run here: {reason}")
        if isinstance(job, ManifestError):
            manifest.errors.append(job)
        else:
            seen.update(dict.fromkeys(job.files, line))
            manifest.jobs.append(job)
    return manifest


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one manifest line, generated from the kind specs."""
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    variants = []
    for spec in kind_specs().values():
        props: dict[str, Any] = {"kind": {"const": spec.name},
                                 "output": {"type": "string", "pattern": r"^(?!/)(?!.*(^|/)\.\.(/|$)).*\.(wav|flac)$",
                                            "description": "path relative to --out"}}
        for p in spec.params:
            props[p.name] = {"type": names[p.type], "description": p.help}
        variant: dict[str, Any] = {"title": spec.name, "description": spec.help, "type": "object",
                                   "properties": props, "additionalProperties": False,
                                   "required": ["kind", "output", *(p.name for p in spec.params if p.required)]}
        if spec.exactly_one_of:
            variant["oneOf"] = [{"required": [n]} for n in spec.exactly_one_of]
        variants.append(variant)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "audiogan-render-manifest-line",
            "title": "audiogan render manifest line", "oneOf": variants}
