"""``audiogan-client``: call an audiogan server from the shell."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

# gRPC's core logs a failed TLS handshake or an unreadable certificate to stderr itself, in lines above the
# one this command prints for the error; it reads this setting when grpc is first imported, just below.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
import numpy as np

from audiogan_client.audio import check_output, decode, write_atomic, write_audio
from audiogan_client.client import AudioGanClient, AudioResult, ServerBusy, check_root_certificates
from audiogan_client.ranges import (
    PITCH,
    PITCH_SHIFT,
    SAMPLE_RATE,
    SECONDS,
    SEEDS,
    SPEAKER,
    SPEED,
    TIMEOUT,
    VELOCITY,
    Range,
)
from audiogan_client.request_ids import MAX_REQUEST_ID_CHARS, check_request_id
from audiogan_client.stdio import WavStream, check_stdout, is_stdio, name_of, one_reader, read_stdin, write_stdout

OUT_DEFAULT = "out.wav"
TIMBRE_HELP = "instrument name, or a latent (comma list, .npy, or - for a .npy on standard input)"
Call = Callable[[AudioGanClient], None]  # a command's work once its arguments and files have passed


def _read(path: str, option: str) -> bytes:
    """A file's bytes, or an error naming the option it was given to ("[Errno 2] ... 'x.txt'" did not)."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"{option} {path}: {err.strerror or err}") from None


def _input(path: str, option: str, what: str) -> bytes:
    """An input's bytes: a file's, or for ``-`` all of standard input's (``what`` it should hold names it)."""
    return read_stdin(what) if is_stdio(path) else _read(path, option)


def _output(path: str, option: str = "-o", *, folder: bool = False, inputs: tuple[str | None, ...] = ()) -> str:
    """Refuse an output before the server is called, not once it has done the work: a folder for a file or a
    file for a folder, nowhere to write, or one of the command's ``inputs`` (`convert take.wav -o take.wav`
    replaced the recording with its conversion). The suffix is the caller's to check."""
    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        raise ValueError(f"{option} {path} is a {'file' if folder else 'folder'}; name a "
                         f"{'folder' if folder else 'file in it'}")
    for source in inputs:
        if source and not is_stdio(source) and target.exists() and Path(source).exists() \
                and os.path.samefile(source, target):
            raise ValueError(f"{option} {path} is the input {source}; name another file, or it would be replaced")
    # Missing folders are made on writing: the nearest existing one must be a folder open to writing.
    start = target if folder else target.parent
    existing = next(p for p in [start, *start.parents] if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: no permission to write in {existing}")
    return path


def _audio_output(path: str, inputs: tuple[str | None, ...] = ()) -> str:
    """-o: a .wav or .flac file that can be written, or '-' (standard output)."""
    try:
        check_output(path)
    except ValueError as err:
        raise ValueError(f"-o {err}") from None
    if is_stdio(path):
        check_stdout("-o -")
        return path
    return _output(path, inputs=inputs)


def _array(path: str, what: str) -> np.ndarray:
    """A .npy file of real numbers (``-``: standard input), or an error naming ``what`` it should hold
    (numpy's own advice for a file that is not one is to unpickle it, which is unsafe for a file of unknown
    origin)."""
    given: str | io.BytesIO = path
    if is_stdio(path):
        given, path = io.BytesIO(read_stdin(what)), name_of(path)
    elif Path(path).is_dir():
        raise ValueError(f"{path} is a folder, not a .npy file of {what}")
    try:
        data = np.load(given, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{what} file not found: {path}") from None
    except (OSError, ValueError, EOFError):
        raise ValueError(f"cannot read {path} as {what}: not a .npy array written by np.save") from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iuf":
        raise ValueError(f"{path} does not hold {what}: save one array of real numbers with np.save")
    return data


def _timbre(spec: str, option: str) -> str | list[float]:
    """'violin' is an instrument; '0.1,0.2,...', a .npy path or '-' (a .npy piped in) is a latent."""
    if spec.endswith(".npy") or is_stdio(spec):
        return _array(spec, "a timbre latent").astype(np.float32).ravel().tolist()
    if "," in spec:
        try:
            return [float(v) for v in spec.split(",")]
        except ValueError:  # float's own words name neither the option nor what a list should hold
            raise ValueError(f"{option} {spec}: a latent is a comma list of numbers") from None
    return spec


def _label(spec: str) -> str:
    """A short, safe file-name stem for a timbre spec: the spec itself may be an absolute path (which would
    put the file outside the output folder) or hundreds of comma-separated numbers (too long a name)."""
    if spec.endswith(".npy"):
        spec = Path(spec).stem
    elif "," in spec or is_stdio(spec):
        spec = "latent"
    return re.sub(r"[^\w.-]+", "_", spec).strip("._")[:64] or "timbre"


def _save(result: AudioResult, out: str) -> None:
    path = write_audio(out, result.samples, result.sample_rate)
    if str(path) != "-":
        print(f"wrote {path} ({len(result.samples) / result.sample_rate:.2f} s at {result.sample_rate} Hz)",
              file=sys.stderr)


def _text(args: argparse.Namespace) -> str:
    if not args.file:
        return args.text
    try:
        return _input(args.file, "--file", "text").decode("utf-8")
    except UnicodeDecodeError as exc:
        name = "standard input" if is_stdio(args.file) else args.file
        raise ValueError(f"say: {name} is not UTF-8 text (byte {exc.start}); convert it first") from None


def _check_say(args: argparse.Namespace) -> None:
    """Refuse what the call would ignore or get wrong, before the server is called, as ``audiogan say`` does."""
    if args.file and args.text:
        raise ValueError("say: give TEXT or --file, not both")
    if args.raw and args.output not in ("-", OUT_DEFAULT):
        raise ValueError("say: --raw streams PCM to standard output; drop -o, or drop --raw to write a file")
    if args.raw:
        check_stdout("--raw")
    if args.timings and (args.stream or args.raw):
        raise ValueError("say: --timings comes with the whole-audio call, not --stream or --raw")
    if args.timings and Path(args.timings).suffix.lower() != ".json":
        raise ValueError(f"say: --timings writes JSON: name a .json file, not {Path(args.timings).name!r}")
    if args.timings:
        _output(args.timings, "--timings", inputs=(args.file,))
    if not args.raw:
        _audio_output(args.output, inputs=(args.file,))


def cmd_say(args: argparse.Namespace) -> Call:
    _check_say(args)
    text = _text(args)
    if not text:
        raise ValueError("say: give TEXT or --file")
    return lambda client: _say(client, args, text)


def _say(client: AudioGanClient, args: argparse.Namespace, text: str) -> None:
    kwargs = {"voice": args.voice, "sample_rate": args.sample_rate, "speed": args.speed, "speaker": args.speaker,
              "pitch_shift": args.pitch_shift, "request_id": args.request_id}
    if args.timings:
        result = client.synthesize_timed(text, **kwargs)
        _save(AudioResult(result.samples, result.sample_rate), args.output)
        spans = {"sentences": result.sentences, "words": result.words, "marks": result.marks}
        write_atomic(Path(args.timings), json.dumps(spans, indent=1, ensure_ascii=False).encode("utf-8"))
        print(f"wrote {args.timings}: {len(result.sentences)} sentences, {len(result.words)} words timed",
              file=sys.stderr)
        return
    if not args.stream and not args.raw:
        _save(client.synthesize(text, **kwargs), args.output)
        return
    # Streaming: PCM16 on standard output as it arrives, so a player starts at once (a WAV for -o -, its header
    # with the first chunk, which tells the rate; bare for --raw), or a file at the end.
    piped = args.raw or is_stdio(args.output)
    wav = None if args.raw or not piped else WavStream(sys.stdout.fileno())
    parts: list[np.ndarray] = []
    rate = 0
    try:
        for chunk in client.stream_chunks(text, encoding="pcm16", **kwargs):
            rate = chunk.sample_rate_hz
            if wav is not None:
                wav.write(chunk.audio, rate)
            elif piped:
                write_stdout(chunk.audio)
            else:
                parts.append(decode(chunk.audio, chunk.encoding))
    except grpc.RpcError as err:
        if wav is not None:
            wav.close()  # in a file, what came is a whole WAV
        if piped or not parts:
            raise
        # A stream cut off (past the server's audio limit, a deadline, the server gone) keeps the audio that
        # came, said in the error's one line.
        write_audio(args.output, np.concatenate(parts), rate)
        raise SystemExit(f"audiogan-client: {_failure(err, args)} (the audio received before it is in "
                         f"{args.output}){_request_id(err)}") from None
    if wav is not None:
        wav.close()
    elif not piped:
        _save(AudioResult(np.concatenate(parts) if parts else np.zeros(0, np.float32), rate), args.output)


def cmd_vocode(args: argparse.Namespace) -> Call:
    _audio_output(args.output, inputs=(args.mel,))
    mel = _array(args.mel, "a mel")
    if mel.ndim != 2:
        raise ValueError(f"{name_of(args.mel)} holds an array of shape {mel.shape}; a mel is [n_mels, frames]")
    return lambda client: _save(client.vocode(mel, vocoder=args.vocoder, sample_rate=args.sample_rate,
                                              request_id=args.request_id), args.output)


def cmd_notes(args: argparse.Namespace) -> Call:
    out = Path(_output(args.output, folder=True))
    notes = [{"pitch": p, "timbre": _timbre(args.instrument, "--instrument"), "velocity": args.velocity,
              "seconds": args.seconds, "seed": args.seed} for p in args.pitches]

    def call(client: AudioGanClient) -> None:
        results = client.notes(notes, model=args.model, sample_rate=args.sample_rate, request_id=args.request_id)
        for pitch, result in zip(args.pitches, results, strict=True):
            _save(result, str(out / f"{_label(args.instrument)}-{pitch:03d}.wav"))
    return call


def cmd_interpolate(args: argparse.Namespace) -> Call:
    _audio_output(args.output)
    one_reader({"--from": args.timbre_from, "--to": args.timbre_to})
    timbres = _timbre(args.timbre_from, "--from"), _timbre(args.timbre_to, "--to")
    return lambda client: _interpolate(client, args, *timbres)


def _interpolate(client: AudioGanClient, args: argparse.Namespace, timbre_from: str | list[float],
                 timbre_to: str | list[float]) -> None:
    results, alphas = client.interpolate(timbre_from, timbre_to, pitch=args.pitch, steps=args.steps,
                                         seconds=args.seconds, mode=args.mode, velocity=args.velocity,
                                         seed=args.seed, model=args.model, sample_rate=args.sample_rate,
                                         request_id=args.request_id)
    # One file: the steps one after another, so the morph can be heard in a single listen.
    gap = np.zeros(int(0.25 * results[0].sample_rate), np.float32)
    joined = np.concatenate([x for r in results for x in (r.samples, gap)])
    _save(AudioResult(joined, results[0].sample_rate), args.output)
    print("alphas: " + " ".join(f"{a:.3f}" for a in alphas), file=sys.stderr)


def cmd_convert(args: argparse.Namespace) -> Call:
    _audio_output(args.output, inputs=(args.input,))
    one_reader({"input": args.input, "--to": args.to, "--to-b": args.to_b})
    recording = _input(args.input, "input", "audio")
    to, to_b = _timbre(args.to, "--to"), _timbre(args.to_b, "--to-b") if args.to_b else None
    return lambda client: _save(client.convert(recording, to=to, model=args.model, sample_rate=args.sample_rate,
                                               flat=args.flat, to_b=to_b, mode=args.mode, seed=args.seed,
                                               request_id=args.request_id),
                                args.output)


def cmd_voices(args: argparse.Namespace) -> Call:
    def call(client: AudioGanClient) -> None:
        listing = client.list_voices(request_id=args.request_id)
        for kind in ("voices", "vocoders"):
            for model in listing[kind]:
                model["card"] = {k: model["card"].get(k) for k in ("name", "training", "validation")
                                 if k in model["card"]}
        print(json.dumps(listing, indent=2))
    return call


def cmd_instruments(args: argparse.Namespace) -> Call:
    return lambda client: print(json.dumps(client.list_instruments(args.model, request_id=args.request_id), indent=2))


def _ranged(bounds: Range) -> Callable[[str], float]:
    """An argparse type: a number within ``bounds``, refused before any call in the words the client library
    uses (the number as typed). A --timeout of 0 failed every call at once with a puzzling DEADLINE_EXCEEDED."""
    def parse(value: str) -> float:
        try:
            number = (int if bounds.whole else float)(value)
        except ValueError:
            number = None
        if number is None or not bounds.holds(number):
            raise argparse.ArgumentTypeError(f"{value if number is not None else repr(value)} is not {bounds}")
        return number
    parse.__name__ = "whole number" if bounds.whole else "number"
    return parse


def _request_id_option(value: str) -> str:
    """An argparse type: a request id a server takes as it is, or a usage error saying why not."""
    try:
        return check_request_id(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("request_id ")) from None


def _model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="", help="timbre model name (see `instruments`; default: the server's)")


def _note_options(p: argparse.ArgumentParser) -> None:
    """What every note takes, as `audiogan note` names it."""
    _model_option(p)
    p.add_argument("--velocity", type=_ranged(VELOCITY), default=100,
                   help="MIDI velocity, 1..127: the note's level and brightness (default %(default)s)")
    p.add_argument("--seconds", type=_ranged(SECONDS),
                   help="note length, up to the model's (default: the model's, 4.096 s for the bundled one)")
    _seed_option(p, "the note's random latent: same seed, same note")


def _seed_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--seed", type=_ranged(SEEDS), default=0, help=f"{what}, {SEEDS.span} (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiogan-client", description=__doc__,
        epilog="Inputs are read and outputs checked before the server is called; an output is written whole or "
               "not at all, and replaces a file of that name, never the input. An input given as - is read whole "
               "from standard input (a terminal, an empty pipe or more than 1 GiB is refused), at most one per "
               "command. Exit status: 0 done; 2 a usage error, nothing sent; 1 a failed call or write, said in one "
               "line.")
    parser.add_argument("--target", default="127.0.0.1:50051", help="server address (default %(default)s)")
    parser.add_argument("--timeout", type=_ranged(TIMEOUT), default=120.0,
                        help="each call's deadline in seconds, retries included, > 0, at most 1e9 "
                             "(default %(default)g)")
    parser.add_argument("--tls-ca", help="PEM root certificate: connect with TLS")
    parser.add_argument("--request-id", type=_request_id_option,
                        help=f"the call's id, sent as its x-request-id, which the server's log line for it "
                             f"carries: 1..{MAX_REQUEST_ID_CHARS} visible ASCII characters (default: a new one; "
                             f"a failed call's message ends with it)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str, out_default: str = OUT_DEFAULT,
            out_help: str = "output .wav or .flac (default %(default)s; '-' writes a WAV to stdout)",
            ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-o", "--output", default=out_default, help=out_help)
        p.add_argument("--sample-rate", type=_ranged(SAMPLE_RATE), default=0,
                       help="output rate in Hz, 8000..96000 (default: the model's)")
        return p

    p = add("say", "text -> speech", out_help="output .wav or .flac (default %(default)s); '-' writes a WAV to "
                                              "stdout, with --stream a streamed WAV as the audio arrives (| aplay)")
    p.add_argument("text", nargs="?", help="the text (or use --file); SSML when it starts with <speak>")
    p.add_argument("--file", help="read the text from this UTF-8 file; - reads it from standard input")
    p.add_argument("--voice", default="", help="voice name (see `voices`)")
    p.add_argument("--speed", type=_ranged(SPEED), default=1.0, help="0.25..4 (default %(default)g)")
    p.add_argument("--pitch-shift", type=_ranged(PITCH_SHIFT), default=0.0,
                   help="semitones, -12..12 (default %(default)g)")
    p.add_argument("--speaker", type=_ranged(SPEAKER), default=0,
                   help="a multi-speaker voice's speaker, from 0 (see `voices`; default %(default)s)")
    p.add_argument("--stream", action="store_true", help="use the streaming call")
    p.add_argument("--timings", metavar="PATH.json", help="also write when each sentence and word is said (JSON)")
    p.add_argument("--raw", action="store_true",
                   help="stream bare little-endian PCM16 to stdout as it arrives, no WAV header (implies --stream; "
                        "aplay -r 16000 -f S16_LE -t raw -)")
    p.set_defaults(func=cmd_say)

    p = add("vocode", "log-mel .npy [n_mels, frames] -> audio")
    p.add_argument("mel", help="a log-mel [n_mels, frames] saved with np.save, e.g. audiogan/samples/demo_mel.npy; "
                               "- reads the .npy from standard input")
    p.add_argument("--vocoder", default="", help="vocoder name (see `voices`; default: the server's)")
    p.set_defaults(func=cmd_vocode)

    p = add("notes", "instrument notes, one WAV per pitch in the output folder", out_default="notes",
            out_help="output folder (default %(default)s)")
    p.add_argument("--instrument", required=True,
                   help="instrument name, or a latent (comma list, .npy, or - for a .npy on standard input; a list "
                        "that starts with '-' goes as --instrument=-0.1,...); files are named after the name, the "
                        ".npy's stem, or 'latent'")
    p.add_argument("--pitches", type=_ranged(PITCH), nargs="+", default=[60],
                   help="MIDI pitches, one note each, within the model's range (default 60)")
    _note_options(p)
    p.set_defaults(func=cmd_notes)

    p = add("interpolate", "a timbre morph: steps notes from one timbre to another, joined in one WAV")
    # Not dest="target": that is the global server address, which --to would silently replace.
    # --instrument as `audiogan note --instrument A --to B`, the same morph made locally.
    p.add_argument("--from", "--instrument", dest="timbre_from", required=True,
                   help=f"the first step's timbre: {TIMBRE_HELP}")
    p.add_argument("--to", dest="timbre_to", required=True,
                   help=f"the last step's timbre: {TIMBRE_HELP}")
    p.add_argument("--pitch", type=_ranged(PITCH), default=60,
                   help="MIDI pitch, within the model's range (default %(default)s)")
    p.add_argument("--steps", type=_ranged(Range(2, 64, whole=True)), default=8,
                   help="notes from one timbre to the other, 2..64 (default %(default)s)")
    _note_options(p)
    p.add_argument("--mode", choices=["slerp", "lerp"], default="slerp",
                   help="how the timbres mix: spherical or straight-line (default %(default)s)")
    p.set_defaults(func=cmd_interpolate)

    p = add("convert", "re-render a recording with another timbre")
    p.add_argument("input", help="WAV/FLAC/OGG file; - reads it from standard input")
    p.add_argument("--to", required=True, help=TIMBRE_HELP)
    p.add_argument("--flat", action="store_true",
                   help="play the notes as the model makes them, held on their semitones at one level "
                        "(default: follow the recording's vibrato, bends and dynamics within each note)")
    p.add_argument("--to-b", help="morph: the timbre of the last note (--to is the first's), as --to takes it")
    p.add_argument("--mode", choices=["slerp", "lerp"], default="slerp", help="how a morph mixes the timbres")
    _seed_option(p, "the notes' random latents, the recording's note i taking seed + i: same seed, same result")
    _model_option(p)
    p.set_defaults(func=cmd_convert)

    sub.add_parser("voices", help="list voices and vocoders").set_defaults(func=cmd_voices)
    p = sub.add_parser("instruments", help="list instruments")
    _model_option(p)
    p.set_defaults(func=cmd_instruments)
    return parser


def _quiet_broken_pipe() -> None:
    """The reader of stdout (``| head``) has gone: stop without a traceback. Python would flush stdout
    again at exit and complain, so stdout is pointed at /dev/null first (the recipe in Python's docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(1)


def _failure(err: grpc.RpcError, args: argparse.Namespace) -> str:
    return f"{err.code().name}: {err.details()}{_hint(err, args)}"


def _request_id(err: grpc.RpcError) -> str:
    """The failed call's id, which finds the server's log line for it (a support ticket quotes it)."""
    request_id = getattr(err, "request_id", "")
    return f" (request id {request_id})" if request_id else ""


def _hint(err: grpc.RpcError, args: argparse.Namespace) -> str:
    """What the caller can do about an error whose message, gRPC's own, does not say."""
    if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f" (the deadline: --timeout {args.timeout:g} s, retries included)"
    if isinstance(err, ServerBusy):
        times = "once" if err.retries == 1 else f"{err.retries} times"
        return f" (the server is busy: retried {times}, within --timeout {args.timeout:g} s)"
    return ""


def main(argv: list[str] | None = None) -> None:
    try:
        _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C: a line, not a traceback from inside gRPC. A stream is cancelled on its way out (the
        # server frees its slot), and no output file is left half-written: each is written whole, then
        # renamed, and a stream's audio only at its end.
        print("audiogan-client: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def _main(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    try:
        root = _read(args.tls_ca, "--tls-ca") if args.tls_ca else None
        if root is not None:
            try:  # else each try failed as UNAVAILABLE, "Failed to create security handshaker"
                check_root_certificates(root)
            except ValueError as err:
                raise ValueError(f"--tls-ca {args.tls_ca}: {err}") from None
        call = args.func(args)  # every input read and output checked: nothing has reached the server yet
    except (OSError, ValueError) as err:
        # A usage error, as argparse's own: exit 2, where a failed call or write exits 1.
        print(f"audiogan-client: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        with AudioGanClient(args.target, timeout=args.timeout, root_certificates=root) as client:
            call(client)
            sys.stdout.flush()  # here, where a reader gone is caught, not at exit as "Exception ignored"
    except grpc.RpcError as err:
        raise SystemExit(f"audiogan-client: {_failure(err, args)}{_request_id(err)}") from None
    except BrokenPipeError:
        _quiet_broken_pipe()
    except (OSError, ValueError) as err:
        raise SystemExit(f"audiogan-client: {err}") from None


if __name__ == "__main__":
    main()
