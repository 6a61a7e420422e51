"""Render manifests: one job per JSONL line or CSV row, every line checked before any work starts."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from audiogan.audio.io import NAME_MAX
from audiogan.timbre.choices import MODES, SEED_MAX, seed_problem
from audiogan.tts import ssml
from audiogan.weights import file_digest

AUDIO_SUFFIXES = (".wav", ".flac")
# The output rules, shared by check_output and the schema's pattern so the two cannot drift. Written for
# ECMA-262 as well as Python (JSON Schema's regex dialect has no inline flags, hence the spelled-out case).
_ABSOLUTE = r"[/\\]|[A-Za-z]:"  # matched at the start: '/x', '\\x', 'C:x'
_PARENT = r"(^|[/\\])\.\.([/\\]|$)"  # a '..' part, with either separator
_AUDIO = r"[^/\\]\.([wW][aA][vV]|[fF][lL][aA][cC])$"  # a named .wav or .flac file, any case
# Control characters (C0, DEL, C1) and line separators in a file name: a NUL cannot be opened and a newline
# slipped past '$' (Python's matches before a last '\n'); both once failed only at render time.
_CONTROL = r"[\u0000-\u001f\u007f-\u009f\u2028\u2029]"  # U+2028/9: line breaks to ECMA's '.', not Python's
_NO_CONTROL = rf"(?!.*{_CONTROL})"  # '.' stops at a newline, where the class matches it
OUTPUT_PATTERN = rf"^(?!{_ABSOLUTE})(?!.*{_PARENT}){_NO_CONTROL}.*{_AUDIO}"
_NON_BLANK = r"\S"
PATH_PATTERN = rf"^{_NO_CONTROL}.*{_NON_BLANK}"  # input and weights paths: non-blank, no control characters


@dataclass(frozen=True)
class Param:
    """One field of a kind. The bounds are declarative so that the validator (``_bounds``) and the JSON
    Schema (``json_schema``) read the same ones; ``check`` is for what a schema cannot say (SSML).
    Strings are never blank."""
    name: str
    type: type
    help: str
    required: bool = False
    is_input_path: bool = False  # resolved against the manifest's folder and checked to exist
    is_weights: bool = False  # a bundled model name, or a .safetensors path relative to the manifest's folder
    check: Callable[[Any], str | None] | None = None  # returns a reason when the value is bad
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    enum: tuple[str, ...] = ()


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
    inputs: dict[str, str] = field(default_factory=dict)  # input-file field -> sha256 of the file
    weights: tuple[str, ...] = ()  # fields naming a weights file by path (resolved against the manifest)
    key: str = ""

    def __post_init__(self) -> None:
        # Input files count by content, not path: the key survives another spelling of the manifest's path,
        # and a replaced input is another rendering. Weights files count in the resume key's model part
        # (their name and content), so their absolute path must not move the key either.
        params = {**self.params, **{name: f"sha256:{digest}" for name, digest in self.inputs.items()},
                  **{name: "file:" + Path(self.params[name]).name for name in self.weights}}
        canonical = json.dumps({"kind": self.kind, "output": self.output, "params": params, "seed": self.seed},
                               sort_keys=True)
        self.key = hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def files(self) -> list[str]:
        """Every file the job writes: its output, then its timings beside it if it asks for them."""
        timings = self.params.get("timings")
        return [self.output, *([beside(self.output, "." + timings)] if timings else [])]


TIMINGS_FORMATS = ("json", "vtt", "srt")
SIDECAR_SUFFIXES = tuple("." + f for f in TIMINGS_FORMATS)  # what a job may write beside its output


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


def _ssml(v: str) -> str | None:
    return ssml.problem(v) if ssml.is_ssml(v) else None


SAMPLE_RATE = Param("sample_rate", int, "output sample rate in Hz (default: the model's)", minimum=8000, maximum=96000)
SEED = Param("seed", int, "random seed (default: derived from the output path)", minimum=0, maximum=SEED_MAX,
             check=seed_problem)


def kind_specs() -> dict[str, KindSpec]:
    specs = [
        KindSpec("vocode", "a log-mel (.npy [n_mels, frames]) or a recording (copy-synthesis) through a vocoder",
                 (Param("mel", str, "path of a .npy log-mel", is_input_path=True),
                  Param("audio", str, "path of an audio file to copy-synthesize", is_input_path=True),
                  Param("vocoder", str, "bundled vocoder name or .safetensors path (default: 'default')",
                        is_weights=True),
                  SAMPLE_RATE, SEED),
                 exactly_one_of=("mel", "audio")),
        KindSpec("tts", "text through a TTS voice",
                 (Param("text", str, "the text, or SSML starting with <speak>", required=True, check=_ssml),
                  Param("voice", str, "voice name", is_weights=True),
                  Param("speed", float, "0.25..4", minimum=0.25, maximum=4),
                  Param("pitch_shift", float, "semitones", minimum=-12, maximum=12),
                  Param("speaker", int, "a multi-speaker voice's speaker (default 0)", minimum=0, maximum=2**31 - 1),
                  Param("lexicon", str, "a file of your pronunciations, lines 'WORD respelling' or 'WORD /phonemes/'",
                        is_input_path=True),
                  Param("timings", str, "also write when each sentence and word is said, beside the output: "
                                        "json, vtt or srt (captions)", enum=TIMINGS_FORMATS),
                  SAMPLE_RATE, SEED)),
        KindSpec("notes", "one instrument note",
                 (Param("pitch", int, "MIDI note number", required=True, minimum=0, maximum=127),
                  Param("instrument", str, "instrument name", required=True),
                  Param("model", str, "timbre model name or .safetensors path (default: 'default')",
                        is_weights=True),
                  Param("velocity", int, "1..127", minimum=1, maximum=127),
                  Param("seconds", float, "note length", exclusive_minimum=0), SAMPLE_RATE, SEED)),
        KindSpec("convert", "a recording re-rendered with another timbre",
                 (Param("input", str, "audio file", required=True, is_input_path=True),
                  Param("to", str, "target instrument", required=True),
                  Param("to_b", str, "morph: the instrument of the last note ('to' plays the first)"),
                  Param("mode", str, "how a morph mixes the two: slerp (default) or lerp", enum=MODES),
                  Param("model", str, "timbre model name or .safetensors path (default: 'default')",
                        is_weights=True),
                  Param("flat", bool, "notes as the model plays them (default false: follow the recording's "
                        "pitch and loudness within each note)"),
                  SAMPLE_RATE, SEED)),
        KindSpec("midi", "a MIDI file rendered with the timbre model",
                 (Param("input", str, "MIDI file", required=True, is_input_path=True),
                  Param("instrument", str, "timbre at the start", required=True),
                  Param("to", str, "timbre at the end (the piece morphs from instrument to this)"),
                  Param("model", str, "timbre model name or .safetensors path (default: 'default')",
                        is_weights=True),
                  SAMPLE_RATE, SEED)),
    ]
    return {s.name: s for s in specs}


WEIGHTS_SUFFIX = ".safetensors"


def weights_path(value: str, base: Path) -> Path | None:
    """Where a weights field's value names a file, resolved against the manifest's folder ``base``, or None
    for a bundled name. A path is what has a separator, ends in .safetensors or names a file in ``base``
    (with or without the suffix, as ``weights.resolve`` accepts); 'default' is always the bundled one."""
    if value == "default":
        return None
    path = Path(value)
    spelled_as_path = "/" in value or "\\" in value or path.suffix.lower() == WEIGHTS_SUFFIX
    here = (base / path).absolute()  # absolute: later loads must not depend on the working directory
    return here if spelled_as_path or _is_file(here) or _is_file(here.with_suffix(WEIGHTS_SUFFIX)) else None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the filesystem: not a file here, and the model check says why
        return False


def check_output(output: Any) -> str | None:
    """Outputs stay inside --out: relative, no '..', an audio suffix (the rules of OUTPUT_PATTERN)."""
    if output is not None and not isinstance(output, str):  # once reported as missing
        return f"output: must be a string, a relative path such as 'speech/line1.wav', not {json.dumps(output)}"
    if output is None or not output.strip():
        return "output: missing (a relative path such as 'speech/line1.wav')"
    if re.search(_CONTROL, output):
        return f"output: {output!r} contains a control character or line break"
    if re.match(_ABSOLUTE, output):
        return f"output: {output!r} is absolute; outputs must be relative to --out"
    if re.search(_PARENT, output):
        return f"output: {output!r} leaves the output folder ('..' is refused)"
    if not re.fullmatch(OUTPUT_PATTERN, output):  # fullmatch: '$' alone would pass 'x.wav\n'
        return f"output: {output!r} must end in {' or '.join(AUDIO_SUFFIXES)}"
    return None


def _is_path(param: Param) -> bool:
    return param.is_input_path or param.is_weights


def _bounds(param: Param, value: Any) -> str | None:
    """The declarative bounds of ``param`` (those the schema states too), or None."""
    if param.type is str and not re.search(_NON_BLANK, value):
        return "is empty"
    if _is_path(param) and re.search(_CONTROL, value):
        return f"{value!r} contains a control character or line break"
    if param.enum and value not in param.enum:
        return f"{value!r} is not {', '.join(param.enum[:-1])} or {param.enum[-1]}"
    lo, hi = param.minimum, param.maximum
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"{value} is out of range {'' if lo is None else lo}..{'' if hi is None else hi}"
    if param.exclusive_minimum is not None and not value > param.exclusive_minimum:
        return f"{value} must be > {param.exclusive_minimum:g}"
    return None


def _article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _csv_number(kind: type, text: str) -> int | float:
    """A CSV cell as a number. An int cell may read '60.0' as JSON's 60.0 does (spreadsheets write whole
    numbers so); the integral check in ``_coerce`` then takes it and refuses '60.5', as for JSON."""
    try:
        return kind(text)
    except ValueError:
        if kind is not int:
            raise
        return float(text)


def _coerce(param: Param, value: Any, from_csv: bool) -> tuple[Any, str | None]:
    if from_csv and isinstance(value, str) and param.type is bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if value.strip().lower() not in words:
            return value, f"{param.name}: {value!r} is not true or false"
        value = words[value.strip().lower()]
    elif from_csv and isinstance(value, str) and param.type is not str:
        try:
            value = _csv_number(param.type, value)
        except ValueError:
            return value, f"{param.name}: {value!r} is not {_article(param.type.__name__)}"
    if param.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if param.type is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON (and so JSON Schema's "integer") does not tell 22050.0 from 22050
    if not isinstance(value, param.type) or (isinstance(value, bool) and param.type is not bool):
        return value, f"{param.name}: expected {param.type.__name__}, got {json.dumps(value)}"
    if isinstance(value, float) and not math.isfinite(value):  # json.loads takes NaN and Infinity
        return value, f"{param.name}: {value} is not a finite number"
    # A check of its own first: it words the bounds as the rest of audiogan does (a seed's 0..2**64-1).
    if reason := (param.check and param.check(value)) or _bounds(param, value):
        return value, f"{param.name}: {reason}"
    return value, None


def _digest(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        cache[path] = file_digest(path)
    return cache[path]


def _job(record: dict[str, Any], line: int, base: Path, from_csv: bool, digests: dict[Path, str],
         specs: dict[str, KindSpec]) -> Job | ManifestError:
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
    inputs: dict[str, str] = {}
    weights: list[str] = []
    for name, value in given.items():
        value, reason = _coerce(known[name], value, from_csv)
        if reason:
            return ManifestError(line, reason)
        if known[name].is_input_path:
            path = (base / value).absolute()  # as for weights: a Ray actor's working directory is not ours
            if not _is_file(path):
                return ManifestError(line, f"{name}: file not found: {path}")
            try:
                inputs[name] = _digest(path, digests)
            except OSError as exc:
                return ManifestError(line, f"{name}: cannot read {path}: {exc}")
            value = str(path)
        elif known[name].is_weights and (found := weights_path(value, base)) is not None:
            value = str(found)
            weights.append(name)
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
    return Job(line, kind, output, params, seed, inputs, tuple(weights))


_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what io's newline="" counts as one line break


def _records(path: Path) -> tuple[list[tuple[int, dict[str, Any] | str]], bool]:
    """(line number, record or parse error) for each job line; CSV when the suffix says so."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as exc:
        raise ValueError(f"manifest {path} is not UTF-8 text (byte {exc.start}): a .jsonl or .csv file?") from None
    if path.suffix.lower() == ".csv":
        return _csv_rows(path, text), True
    records: list[tuple[int, dict[str, Any] | str]] = []
    # Only "\n" ends a line: str.splitlines() would also split at U+2028, U+0085 or a form feed, which
    # JSON allows inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            record = json.loads(line, object_pairs_hook=_once_each)
        except json.JSONDecodeError as exc:
            records.append((number, f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        except _Repeated as exc:
            records.append((number, str(exc)))
            continue
        records.append((number, record if isinstance(record, dict) else "a job must be a JSON object"))
    return records, False


class _Repeated(ValueError):
    """A JSON object naming a field twice: json.loads keeps the last, silently, which may not be the meant one."""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, value in pairs:
        if name in record:
            raise _Repeated(f"field {name!r} is given twice")
        record[name] = value
    return record


def _long_name(files: list[str]) -> str | None:
    """A part of a job's paths (its output, or the timings beside it) too long for a file name: refused here,
    not by the filesystem once the job is rendered."""
    for name in files:
        for part in name.split("/") if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX else ():
            if (size := len(part.encode("utf-8", "surrogateescape"))) > NAME_MAX:
                shown = f"{part[:20]}...{part[-10:]}"
                beside_it = "" if name == files[0] else " (the timings file beside the output)"
                return f"output: {shown!r}{beside_it} is {size} bytes long; a file name may have at most {NAME_MAX}"
    return None


def _folders(name: str) -> list[str]:
    """The folders an output (a normalised relative path) lies in: 'a/b/c.wav' -> ['a/b', 'a']."""
    parts = name.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _clash(files: list[str], seen: dict[str, int], folders: dict[str, int]) -> str | None:
    """Why a job's files cannot be written beside those of earlier lines: the same file, or a file where
    another needs a folder ('a.wav' and 'a.wav/b.wav' once both passed, and one failed at its write)."""
    for name in files:
        if name in seen:
            return f"output: {name!r} is also written by line {seen[name]}"
        if name in folders:
            return f"output: {name!r} is a folder of the output of line {folders[name]}"
        if parent := next((p for p in _folders(name) if p in seen), None):
            return f"output: {name!r} would be inside {parent!r}, a file written by line {seen[parent]}"
    return None


def _check_header(path: Path, columns: Sequence[str] | None) -> None:
    """A CSV's first row names its columns: without a kind and an output column (a file with no header
    row) each row was refused as "kind: None", and a one-row file rendered nothing and succeeded."""
    if columns is None:
        return  # an empty file: no jobs
    for needed in ("kind", "output"):
        if needed not in columns:
            raise ValueError(f"manifest {path} line 1: the header has no `{needed}` column (it names "
                             f"{', '.join(map(repr, columns))}); a CSV manifest starts with a row naming its "
                             "columns, such as kind,text,output")
    if twice := next((c for i, c in enumerate(columns) if c in columns[:i]), None):
        raise ValueError(f"manifest {path} line 1: the header names the column {twice!r} twice")


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any] | str]]:
    # A cell cannot be longer than the file; the csv module's default cap (128 KiB) once crashed a run on a
    # long tts text with a traceback.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    # newline="": a quoted cell keeps its line breaks, and line_num counts the file's lines.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[tuple[int, dict[str, Any] | str]] = []
    try:
        _check_header(path, reader.fieldnames)
        for row in reader:
            # line_num is the row's last line; a row is reported by its first.
            cells = [*(v for k, v in row.items() if k is not None), *row.get(None, [])]
            first = reader.line_num - sum(len(_LINE_BREAK.findall(v or "")) for v in cells)
            rows.append((first, "more values than header columns" if None in row else dict(row)))
    except csv.Error as exc:  # the rows past it cannot be read: the whole manifest is refused (the DictReader's
        # own line_num is that of the last good row)
        raise ValueError(f"manifest {path} line {reader.reader.line_num}: not valid CSV: {exc}") from None
    return rows


def read_manifest(path: str | Path,
                  unavailable: Callable[[str, dict[str, Any]], str | None] | None = None) -> Manifest:
    """Parse and check every line; bad lines become ``errors`` (line number and reason), never exceptions.

    ``unavailable(kind, params)`` says why a job cannot run here (its model is not installed), or None.
    """
    if unavailable is None:
        from audiogan.render.kinds import manifest_checker

        unavailable = manifest_checker()
    path = Path(path)
    if path.is_dir() or not path.exists():  # a pipe is fine: `audiogan render <(make-jobs)`, /dev/stdin
        raise FileNotFoundError(f"manifest {path} is a folder, not a file" if path.is_dir()
                                else f"manifest not found: {path}")
    # A piped manifest's folder (/dev/fd) holds none of its files: its paths are the working directory's.
    base = path.parent if path.is_file() else Path.cwd()
    manifest = Manifest(path)
    records, from_csv = _records(path)
    seen: dict[str, int] = {}  # file -> the line writing it
    folders: dict[str, int] = {}  # folder -> the first line writing into it
    digests: dict[Path, str] = {}  # an input named by many lines is read once
    specs = kind_specs()
    for line, record in records:
        job = (ManifestError(line, record) if isinstance(record, str)
               else _job(record, line, base, from_csv, digests, specs))
        if isinstance(job, Job):
            if reason := _long_name(job.files) or _clash(job.files, seen, folders):
                job = ManifestError(line, reason)
            elif reason := unavailable(job.kind, job.params):
                job = ManifestError(line, f"kind {job.kind!r} cannot run here: {reason}")
        if isinstance(job, ManifestError):
            manifest.errors.append(job)
        else:
            seen.update(dict.fromkeys(job.files, line))
            for name in job.files:
                folders.update({p: line for p in _folders(name) if p not in folders})
            manifest.jobs.append(job)
    return manifest


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one manifest line, generated from the kind specs."""
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    variants = []
    for spec in kind_specs().values():
        props: dict[str, Any] = {"kind": {"const": spec.name},
                                 "output": {"type": "string", "pattern": OUTPUT_PATTERN,
                                            "description": "path relative to --out"}}
        for p in spec.params:
            prop: dict[str, Any] = {"type": names[p.type], "description": p.help}
            if p.type is str:
                prop["pattern"] = PATH_PATTERN if _is_path(p) else _NON_BLANK
            bounds = {"minimum": p.minimum, "maximum": p.maximum, "exclusiveMinimum": p.exclusive_minimum,
                      "enum": list(p.enum) or None}
            props[p.name] = prop | {k: v for k, v in bounds.items() if v is not None}
        variant: dict[str, Any] = {"title": spec.name, "description": spec.help, "type": "object",
                                   "properties": props, "additionalProperties": False,
                                   "required": ["kind", "output", *(p.name for p in spec.params if p.required)]}
        if spec.exactly_one_of:
            variant["oneOf"] = [{"required": [n]} for n in spec.exactly_one_of]
        variants.append(variant)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "audiogan-render-manifest-line",
            "title": "audiogan render manifest line", "oneOf": variants}
