"""`audiogan` command line: argument parsing and wiring only."""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from audiogan.audio.stdio import STDIN_NAME, audio_output, check_stdout, is_stdio, read_stdin, source
from audiogan.render.choices import ENGINES
from audiogan.timbre.choices import MODES, seed_problem
from audiogan.vocoder.phases import INFERENCE_PHASES

DEMO_CLIP = Path(__file__).parent / "samples" / "demo.flac"
AUDIO_OUT = (".wav", ".flac")
OUT_HELP = "output .wav or .flac; - writes a WAV to standard output"
PLOT_OUT = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
EXIT_DISK_FULL = 3  # `render` stopped for want of room: not 2, an invalid manifest, nor 1, failed jobs
# Optional imports (pyproject's extras) -> the extra that installs them: what a plain install lacks.
EXTRAS = {"fluidsynth": "train", "tensorboard": "train", "matplotlib": "train", "pesq": "train",
          "pystoi": "train", "librosa": "train", "ray": "ray", "grpc": "server", "prometheus_client": "server",
          "pocketsphinx": "bench", "speechmos": "bench", "onnxruntime": "bench"}


def _count(least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in least..most, refused at parse time rather than deep in the work."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"{value} is out of range {least}..{'' if most is None else most}")
        return value
    parse.__name__ = "whole number"
    return parse


def _seed(text: str) -> int:
    """An argparse type: a seed as the library and render manifests take it, with their words."""
    try:
        value = int(text)
    except ValueError:
        value = text  # type: ignore[assignment]
    if problem := seed_problem(value):
        raise argparse.ArgumentTypeError(problem)
    return value


def _number(least: float, most: float) -> Callable[[str], float]:
    """An argparse type: a finite number in least..most."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not least <= value <= most:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"{text} is out of range {least:g}..{most:g}")
        return value
    parse.__name__ = "number"
    return parse


def _positive(text: str) -> float:
    """An argparse type: a finite number above 0 (a Ray actor of 0 CPUs once divided by zero)."""
    value = _number(0, sys.float_info.max)(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range: must be above 0")
    return value


def _threads(text: str) -> int:
    """0 (torch's choice) up to this machine's CPUs: thousands of threads stall a run for minutes."""
    return _count(0, os.cpu_count() or 1)(text)


def _output(path: str, suffixes: tuple[str, ...], what: str = "-o", inputs: tuple[str | None, ...] = ()) -> str:
    """Refuse an output before the work that would fill it: a wrong suffix, a folder, nowhere to write, or
    one of the command's ``inputs`` (`convert take.wav -o take.wav` replaced the recording with its conversion).
    For audio, ``-`` is standard output (a WAV), refused where it is a terminal; other outputs are files."""
    if is_stdio(path) and suffixes == AUDIO_OUT:
        check_stdout(f"{what} -")
        return path
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{what} {path} is a folder; name a file in it")
    for given in inputs:
        if given and not is_stdio(given) and target.exists() and Path(given).exists() \
                and os.path.samefile(given, target):
            raise ValueError(f"{what} {path} is the input {given}; name another file, or it would be replaced")
    if target.suffix.lower() not in suffixes:
        raise ValueError(f"{what} {path}: name a {' or '.join(suffixes)} file")
    # Missing folders are created on writing: the nearest existing one must be a writable folder.
    existing = next(p for p in [target.parent, *target.parent.parents, Path(".")] if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: no permission to write in {existing}")
    return path


def _read_array(path: str, what: str) -> np.ndarray:
    """A .npy file (``-``: standard input), or an error naming ``what`` was expected (never a hint to load
    pickled data)."""
    given: str | bytes = path
    if is_stdio(path):
        given, path = source(path, what)
    elif Path(path).is_dir():
        raise ValueError(f"{path} is a folder, not a .npy file of {what}")
    elif Path(path).is_file() and Path(path).stat().st_size == 0:  # else "not written by np.save", a puzzle
        raise ValueError(f"{path} is empty (0 bytes), not {what}")
    try:
        data = np.load(io.BytesIO(given) if isinstance(given, bytes) else given, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    except (OSError, ValueError, EOFError):  # numpy's reason suggests unpickling, unsafe for a file of unknown origin
        raise ValueError(f"cannot read {path} as {what}: not a .npy array written by np.save") from None
    if not isinstance(data, np.ndarray):
        with data:
            raise ValueError(f"{path} is an .npz archive ({', '.join(data.files)}); save {what} alone with np.save")
    if data.dtype.kind not in "iuf":  # text, complex, bool: no timbre, no mel
        raise ValueError(f"{path} holds {data.dtype} values; {what} is an array of real numbers")
    return data


def _vocode(args: argparse.Namespace) -> int:
    import torch

    from audiogan import Vocoder, load_audio

    if args.mel and args.input:
        raise ValueError("vocode takes an INPUT recording or --mel, not both")
    _output(args.output, AUDIO_OUT, inputs=(args.input,))
    if args.plot:
        _output(args.plot, PLOT_OUT, "--plot")
    # Read before the model loads: a mel or a pipe that is no use is said at once.
    if args.mel:
        (mel, name), recording = _read_mel(args.mel), None
    else:
        mel, (recording, name) = None, source(args.input or str(DEMO_CLIP), "audio")
    if args.threads:
        torch.set_num_threads(args.threads)
    with audio_output(args.output) as output:
        vocoder = Vocoder.load(args.model, device=args.device, phase_iterations=args.phase_iterations,
                               phase=args.phase)
        if mel is not None:
            _check_mel(mel, name, vocoder.config.mel)
            wave = vocoder(mel)
        else:
            audio, _ = load_audio(recording, vocoder.sample_rate, name=name)
            wave = vocoder.copy_synthesize(audio)
        out = output.write(wave, vocoder.sample_rate)
        seconds = wave.numel() / vocoder.sample_rate
        print(f"wrote {out} ({seconds:.2f} s at {vocoder.sample_rate} Hz) from {name} "
              f"with {vocoder.card.get('name', args.model)}")
        if args.plot:
            from audiogan.plots import plot_mels

            mel_in = torch.as_tensor(mel) if mel is not None else vocoder.mel(audio)
            png = plot_mels({"input mel": mel_in, "mel of the vocoded audio": vocoder.mel(wave)}, args.plot,
                            vocoder.config.mel)
            print(f"wrote {png}")
    return 0


def _read_mel(path: str) -> tuple[np.ndarray, str]:
    """A --mel file (``-``: standard input) as one [n_mels, frames] array, and its name; or an error that
    says what it holds instead."""
    mel = _read_array(path, "a mel")
    name = STDIN_NAME if is_stdio(path) else path
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim == 3:  # the vocoder would return a batch, which one output file cannot hold
        raise ValueError(f"{name} holds a batch of {mel.shape[0]} mels; vocode one [n_mels, frames] mel per file")
    return mel, name


def _check_mel(mel: np.ndarray, name: str, mel_config: Any) -> None:
    """Warn of a mel far below the vocoder's floor. Its dtype and orientation are checked by the vocoder,
    for library callers too."""
    floor = float(np.log(mel_config.log_floor))
    # The front end clamps at the floor; a dB or power mel goes far below. (Other dtypes: the vocoder refuses.)
    if np.issubdtype(mel.dtype, np.floating) and mel.size and mel.min() < floor - 1:
        print(f"audiogan: warning: {name} goes down to {mel.min():.1f}, below the vocoder's floor "
              f"ln({mel_config.log_floor:g}) = {floor:.1f}: a dB or power mel? it takes natural-log magnitudes",
              file=sys.stderr)


def _say(args: argparse.Namespace) -> int:
    import torch

    from audiogan import Vocoder, save_audio
    from audiogan.audio.io import pcm16
    from audiogan.tts import TTS
    from audiogan.tts.timing import check_path

    if args.file and args.text:
        raise ValueError("say takes TEXT or --file, not both")
    if args.raw and args.output not in (None, "-"):
        raise ValueError("--raw streams PCM to standard output; drop -o, or drop --raw to write a file")
    args.output = args.output or "say.wav"
    if not args.show:
        if args.raw or args.output == "-":  # a stream writes no file
            check_stdout("--raw" if args.raw else "-o -")
        else:
            _output(args.output, AUDIO_OUT)
    if args.plot:
        _output(args.plot, PLOT_OUT, "--plot")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.file:
        name = "standard input" if args.file == "-" else args.file
        try:
            data = read_stdin("text") if is_stdio(args.file) else Path(args.file).read_bytes()
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name} is not UTF-8 text (byte {exc.start}); convert it first") from None
        except FileNotFoundError:  # "[Errno 2] No such file or directory" named no option
            raise FileNotFoundError(f"--file {args.file}: no such file") from None
        except IsADirectoryError:  # "Is a directory: d" named no option either
            raise ValueError(f"--file {args.file} is a folder; name a text file") from None
    elif args.text:
        text = args.text
    else:
        raise ValueError("say needs TEXT or --file")
    if args.show:
        return _show(args, text)
    if (args.timings or args.plot) and (args.raw or args.output == "-"):
        raise ValueError("--timings and --plot need the audio in a file, not streamed to stdout")
    if args.timings:
        check_path(args.timings)
        _output(args.timings, (".json", ".vtt", ".srt"), "--timings")
    vocoder = Vocoder.load(args.vocoder, device=args.device, phase_iterations=args.phase_iterations,
                           phase=args.phase)
    tts = TTS.load(args.voice, vocoder=vocoder, device=args.device, lexicon=args.lexicon)
    if args.speaker >= tts.speakers:  # before the progress bar of a long text starts
        raise ValueError(f"--speaker {args.speaker}: {tts.name} knows speakers 0..{tts.speakers - 1}")
    rate = tts.sample_rate
    if args.raw or args.output == "-":
        # Each piece on standard output as soon as it is vocoded, so that `| aplay` starts speaking with the
        # first sentence: a streamed WAV, or for --raw bare PCM16 (`aplay -r 16000 -f S16_LE -t raw -`).
        with audio_output("-") as output:
            stream = output.stream(rate, wav=not args.raw)
            for chunk in tts.stream(text, speed=args.speed, pitch_shift=args.pitch_shift, speaker=args.speaker):
                stream.write(pcm16(chunk))
            stream.close()
        what = "raw PCM16" if args.raw else "a WAV"
        print(f"streamed {stream.samples / rate:.2f} s of {what} at {rate} Hz, mono, with voice {tts.name}",
              file=sys.stderr)
        return 0
    wave, rate, timings = tts.synthesize(text, speed=args.speed, pitch_shift=args.pitch_shift, progress=True,
                                         speaker=args.speaker)
    out = save_audio(args.output, wave, rate)
    print(f"wrote {out} ({len(wave) / rate:.2f} s at {rate} Hz) with voice {tts.name}")
    if args.timings:
        timings.write(args.timings)
        print(f"wrote {args.timings}: {len(timings.sentences)} sentences, {len(timings.words)} words timed")
    if args.plot:
        from audiogan.plots import plot_mels

        mel = tts.vocoder.mel(torch.from_numpy(wave).to(tts.vocoder.device))
        spans = [(w.text, w.start, w.end) for w in timings.words]
        png = plot_mels({f"{tts.name}: {len(wave) / rate:.1f} s": mel}, args.plot, tts.vocoder.config.mel,
                        words=spans)
        print(f"wrote {png}: the spoken mel, each word marked")
    return 0


def _show(args: argparse.Namespace, text: str) -> int:
    """say --show: each sentence as written, as it will be said, and its phonemes; nothing synthesised."""
    from audiogan.tts import TTS

    tts = TTS.load(args.voice, vocoder=args.vocoder, device="cpu", lexicon=args.lexicon)
    for number, (written, said, phonemes) in enumerate(tts.show(text), 1):
        print(f"{number}. {written}\n   said:     {said}\n   phonemes: {phonemes}")
    return 0


def _models(args: argparse.Namespace) -> int:
    import json

    from audiogan import weights

    paths = ([weights.resolve_any(m) for m in args.models] if args.models
             else [weights.WEIGHTS_DIR / f"{n}.safetensors" for k in weights.DEFAULTS for n in weights.bundled(k)])
    if args.card:
        print(json.dumps({str(p): weights.read_card(p) for p in paths}, indent=2))
        return 0
    described = [weights.describe(path) for path in paths]  # every error before any of the table
    print("| model | kind | parameters | MB | trained | measured |")
    print("|---|---|---|---|---|---|")
    for d in described:
        spent = ", then ".join(f"{s['minutes']:.0f} {s['device']} min" for s in d["segments"])
        trained = f"{d['steps']:,} steps, {spent}" if d["steps"] else "?"
        trained += ", warm-started (--card: from what)" if d["warm_started"] else ""
        trained = "**cannot load: see below**" if d["problem"] else trained
        print(f"| {d['name']}{' (default)' if d['default'] else ''} | {d['kind']} | {d['parameters'] or 0:,} "
              f"| {d['megabytes']} | {trained} | {d['measured']} |")
    broken = [d for d in described if d["problem"]]
    for d in broken:  # the card alone reads well: say which files would fail to load, and exit so a script knows
        print(f"audiogan: error: {d['path']}: {d['problem']}", file=sys.stderr)
    return 1 if broken else 0


def _train(args: argparse.Namespace) -> int:
    from audiogan.config import load_yaml, override_recipe

    if args.model_kind == "vocoder":
        from audiogan.train.vocoder_trainer import VocoderTrainer as Trainer
        from audiogan.train.vocoder_trainer import VocoderTrainingConfig as Config
        extra = {"init_generator": args.init_generator, "warm_start": args.warm_start}
    elif args.model_kind == "timbre":
        from audiogan.train.timbre_trainer import TimbreTrainer as Trainer  # type: ignore[assignment]
        from audiogan.train.timbre_trainer import TimbreTrainingConfig as Config  # type: ignore[assignment]
        extra = {"init_generator": args.init_generator}
    else:
        from audiogan.train.tts_trainer import TTSTrainer as Trainer  # type: ignore[assignment]
        from audiogan.train.tts_trainer import TTSTrainingConfig as Config  # type: ignore[assignment]
        extra = {"init_generator": args.init_generator}
    _data_folders(args.data)
    cfg = load_yaml(Config, args.config)
    for assignment in args.set or []:
        cfg = override_recipe(cfg, assignment)
    if getattr(args, "predicted_mels", None):
        cfg.data.predicted_mels = args.predicted_mels
    trainer = Trainer(cfg, args.data, args.run_dir, args.device, args.resume, **extra)
    result = trainer.fit()
    if trainer.dist.main:
        print(f"done at step {trainer.step}: exported {trainer.run_dir / (cfg.name + '.safetensors')}; " +
              ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)))
    return 0


def _data_folders(folders: list[str]) -> None:
    """Each --data an existing folder, each once: a folder named twice trained twice as often as the card said."""
    seen: dict[str, str] = {}
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            raise FileNotFoundError(f"--data {folder}: " + ("a file; --data takes folders" if path.exists()
                                                             else "no such folder"))
        real = os.path.realpath(path)
        if real in seen:
            raise ValueError(f"--data names {seen[real]} twice" + (f" (also as {folder})" if folder != seen[real]
                                                                    else ""))
        seen[real] = folder


def _export(args: argparse.Namespace) -> int:
    import torch

    _output(args.output, (".safetensors",))
    if args.model_kind == "vocoder":
        from audiogan.train.vocoder_trainer import export_checkpoint
    elif args.model_kind == "timbre":
        from audiogan.train.timbre_trainer import export_timbre_checkpoint as export_checkpoint
    else:
        from audiogan.train.tts_trainer import export_tts_checkpoint as export_checkpoint
    path = export_checkpoint(args.checkpoint, args.output, torch.float16 if args.fp16 else torch.float32)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def _timbre(spec: str) -> Any:
    """An instrument name, or a .npy timbre latent (from `audiogan invert`)."""
    if spec.endswith(".npy"):
        return _read_array(spec, "a timbre latent")
    return spec


def _note(args: argparse.Namespace) -> int:
    from audiogan.timbre import TimbreModel

    if args.list:
        print("\n".join(TimbreModel.load(args.model, device=args.device).instruments))
        return 0
    if args.instrument is None:
        raise ValueError("--instrument is required (or --list to see the instruments)")
    _output(args.output, AUDIO_OUT)
    with audio_output(args.output) as output:
        model = TimbreModel.load(args.model, device=args.device)
        options = {"velocity": args.velocity, "seconds": args.seconds, "seed": args.seed}
        if args.to:
            notes, alphas = model.interpolate(_timbre(args.instrument), _timbre(args.to), args.pitch,
                                              steps=args.steps, mode=args.mode, **options)
            gap = np.zeros(int(0.25 * model.sample_rate), np.float32)
            out = np.concatenate([x for note in notes for x in (note, gap)])
            what = f"{len(alphas)} steps from {args.instrument} to {args.to}, 0.25 s apart"
        else:
            out = model.generate([args.pitch], [_timbre(args.instrument)], [args.velocity], [args.seed],
                                 args.seconds)[0]
            what = args.instrument
        path = output.write(out, model.sample_rate)
        print(f"wrote {path} ({len(out) / model.sample_rate:.2f} s, pitch {args.pitch}, {what})")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from audiogan import load_audio
    from audiogan.timbre import TimbreModel
    from audiogan.timbre.convert import convert
    from audiogan.timbre.inference import resolve_instrument

    if args.morph and not args.to_b:
        raise ValueError("--morph needs --to-b, the timbre at the last note")
    _output(args.output, AUDIO_OUT, inputs=(args.input,))
    recording, name = source(args.input, "audio")
    with audio_output(args.output) as output:
        model = TimbreModel.load(args.model, device=args.device)
        to, to_b = _timbre(args.to), _timbre(args.to_b) if args.to_b else None
        for timbre in (to, to_b):  # before the pitch analysis, not after it
            if isinstance(timbre, str):
                resolve_instrument(timbre, model.instruments)
            elif timbre is not None:
                model.timbre(timbre)
        wave, rate = load_audio(recording, name=name)
        try:
            out = convert(model, wave.numpy(), rate, to, seed=args.seed, flat=args.flat, to_b=to_b, mode=args.mode,
                          progress=True)
        except ValueError as exc:  # nothing pitched, a chord, too short: say which file
            raise ValueError(f"{name}: {exc}") from None
        path = output.write(out, model.sample_rate)
        played = f"morphing from {args.to} to {args.to_b}" if args.to_b else f"played by {args.to}"
        print(f"wrote {path} ({len(out) / model.sample_rate:.2f} s, {played})")
    return 0


def _render_midi(args: argparse.Namespace) -> int:
    from audiogan.timbre import TimbreModel
    from audiogan.timbre.midi import render_midi

    _output(args.output, AUDIO_OUT, inputs=(args.input,))
    score, name = source(args.input, "a MIDI file")
    with audio_output(args.output) as output:
        model = TimbreModel.load(args.model, device=args.device)
        out = render_midi(model, score, _timbre(args.instrument), _timbre(args.to) if args.to else None, args.mode,
                          args.seed, progress=True, name=name)
        path = output.write(out, model.sample_rate)
        morph = f", morphing to {args.to}" if args.to else ""
        print(f"wrote {path} ({len(out) / model.sample_rate:.1f} s, {args.instrument}{morph})")
    return 0


def _invert(args: argparse.Namespace) -> int:
    from audiogan import load_audio
    from audiogan.audio.io import write_atomic
    from audiogan.timbre import TimbreModel

    # np.save would add .npy to any other name, and timbres are told by it
    _output(args.output, (".npy",), inputs=(args.input,))
    recording, name = source(args.input, "audio")
    model = TimbreModel.load(args.model, device=args.device)
    wave, rate = load_audio(recording, name=name)
    pitch = model.note_pitch(wave.numpy(), rate) if args.pitch is None else args.pitch
    latent, losses = model.invert(wave.numpy(), rate, pitch, args.steps, progress=True)
    buffer = io.BytesIO()
    np.save(buffer, latent.cpu().numpy())
    write_atomic(args.output, buffer.getvalue())
    print(f"wrote {args.output}: the timbre of {name} at pitch {pitch}"
          f"{' (found in it)' if args.pitch is None else ''} (spectral loss {losses[0]:.3f} -> {losses[-1]:.3f}); "
          f"use it as a timbre, e.g. audiogan-client interpolate --from {args.output} --to violin")
    return 0


def _data_notes(args: argparse.Namespace) -> int:
    from audiogan.timbre.notes_data import GM_PROGRAMS, RenderSpec, parse_range, render_dataset

    if Path(args.out).exists() and not Path(args.out).is_dir():  # was "Not a directory: OUT/audio"
        raise ValueError(f"--out {args.out} is a file; name a folder (created if missing)")
    programs = sorted(GM_PROGRAMS) if args.programs == "default" else parse_range(args.programs, what="--programs")
    spec = RenderSpec(args.soundfont, args.sample_rate, args.seconds, args.hold)
    meta = render_dataset(args.out, programs, parse_range(args.pitches, what="--pitches"),
                          parse_range(args.velocities, 1, what="--velocities"), spec, args.workers, args.replace)
    print(f"wrote {meta}")
    return 0


def _data_tts_mels(args: argparse.Namespace) -> int:
    from audiogan.train.tts_mels import write_predicted_mels

    count = write_predicted_mels(args.checkpoint, args.data, args.out, args.device)
    print(f"wrote {count} mels to {args.out}")
    return 0


def _render(args: argparse.Namespace) -> int:
    import json

    from audiogan.render import DiskFullError, OutputBusyError, json_schema, read_manifest, record_invalid, run

    if args.schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    if not args.manifest or not args.out:
        print("audiogan: error: render needs MANIFEST and --out DIR", file=sys.stderr)
        return 2
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"audiogan: error: --out {args.out} is a file; name a folder (created if missing)", file=sys.stderr)
        return 2
    cpus = os.cpu_count() or 1
    if args.threads > cpus and args.engine == "local":  # Ray actors may run on bigger machines than this one
        print(f"audiogan: error: --threads {args.threads}: this machine has {cpus} CPUs (the local engine "
              "computes here)", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(min(args.threads, cpus))  # on Ray this process only plans
    manifest = read_manifest(args.manifest)
    for error in manifest.errors:
        print(f"{args.manifest}: {error}", file=sys.stderr)
    if manifest.errors and not args.skip_invalid:
        print(f"audiogan: {len(manifest.errors)} invalid line(s); nothing was rendered "
              "(fix them, or pass --skip-invalid to render the rest)", file=sys.stderr)
        try:  # errors.jsonl lists this run's problems, not a stale run's
            record_invalid(args.out, manifest.errors)
        except OutputBusyError as exc:
            print(f"audiogan: error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = run(manifest.jobs, args.out, engine=args.engine, batch_size=args.batch_size, device=args.device,
                      workers=args.workers, progress=not args.quiet, ray_address=args.address,
                      ray_cpus_per_actor=args.cpus_per_actor, phase_iterations=args.phase_iterations,
                      phase=args.phase, invalid=manifest.errors, threads=args.threads)
    except OutputBusyError as exc:
        print(f"audiogan: error: {exc}", file=sys.stderr)
        return 2
    except DiskFullError as exc:
        if exc.summary is not None:
            print(f"{exc.summary}; invalid lines skipped: {len(manifest.errors)}")
        print(f"audiogan: error: {exc}", file=sys.stderr)
        return EXIT_DISK_FULL
    print(f"{summary}; invalid lines skipped: {len(manifest.errors)}")
    if summary.failed or manifest.errors:
        print(f"failures are listed in {Path(args.out) / 'errors.jsonl'}", file=sys.stderr)
    # A skipped line is a job not done: a script must see it as it sees a failed one.
    return 1 if summary.failed or manifest.errors else 0


def _phase_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phase-iterations", type=_count(0), metavar="N",
                        help="fast Griffin-Lim iterations refining the vocoder's phase: slower, closer to the "
                             "recording (default: the model card's; benchmarks/RESULTS.md has the trade)")
    parser.add_argument("--phase", choices=INFERENCE_PHASES,
                        help="where the vocoder's phase comes from: its phase head, or rtpghi, integrated from "
                             "the magnitude (higher PESQ-wb and STOI, ~10 ms per second of audio on one core; "
                             "default: the model card's)")


SET_HELP = "override a train: field (max_minutes=20), or any section's: SECTION.FIELD (data.augment_speeds=[0.9,1.1])"


class _DefaultsShown(argparse.HelpFormatter):
    """Every option's default in --help, unless its text already says it or there is none to say."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        none = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "default" in text or none or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsShown)  # subcommands' parsers are built by this class too
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="audiogan", description="GAN audio synthesis: vocoders, TTS, timbre.",
                epilog="Outputs are written whole or not at all (a temporary file, renamed when complete; Ctrl-C "
                       "leaves none) and replace a file of the same name; an output that is the command's own input is "
                       "refused. In pipes, an input of - is read from standard input (all of it, up to 1 GiB, before a "
                       "model loads) and -o - writes the audio as a WAV to standard output, everything else going to "
                       "standard error (say -o - streams its WAV sentence by sentence), e.g. sox in.mp3 -t wav - | "
                       "audiogan vocode - -o - | aplay. Exit status: 0 done; 2 a usage error or a failure, said in one "
                       "line; 1 `models` found weights that cannot load, or standard output's reader left (as in | "
                       "head); 130 interrupted; render: see its --help.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("vocode", help="mel -> audio with a vocoder (copy-synthesis of a recording by default)")
    v.add_argument("input", nargs="?", help="audio file to copy-synthesize, - to read it from standard input "
                                           "(default: the bundled demo clip)")
    v.add_argument("--mel", help="a .npy log-mel [n_mels, frames] in the vocoder's mel config instead of audio "
                                 "(- reads it from standard input)")
    v.add_argument("-o", "--output", default="vocoded.wav", help=OUT_HELP)
    # --vocoder as on `say`, `audiogan-client vocode` and render jobs; --model, its first name, still works.
    v.add_argument("--vocoder", "--model", dest="model", default="default", metavar="NAME",
                   help="bundled vocoder name or .safetensors path (--model: the same; default: %(default)s)")
    v.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    v.add_argument("--threads", type=_threads, default=0, help="CPU threads (default: torch's choice)")
    _phase_flag(v)
    v.add_argument("--plot", metavar="PNG", help="also save input and output mel spectrograms side by side")
    v.set_defaults(func=_vocode)

    s = sub.add_parser("say", help="text -> speech with a TTS voice")
    s.add_argument("text", nargs="?", help="the text (or --file); SSML when it starts with <speak>")
    s.add_argument("--file", help="a UTF-8 text file of any length (a progress bar shows the sentences); "
                                  "- reads standard input")
    s.add_argument("-o", "--output",
                   help="output .wav or .flac (default: say.wav); - streams a WAV to stdout as each sentence is "
                        "vocoded (| aplay plays it; > out.wav gets exact sizes)")
    s.add_argument("--raw", action="store_true",
                   help="stream bare little-endian PCM16 mono to stdout instead, no WAV header (pipe it to "
                        "aplay -r 16000 -f S16_LE -t raw -)")
    s.add_argument("--show", action="store_true",
                   help="print each sentence as written, as it will be said and as phonemes, then exit "
                        "without synthesising")
    s.add_argument("--voice", default="default", help="bundled voice name or .safetensors path")
    s.add_argument("--vocoder", default="default", help="bundled vocoder name or .safetensors path")
    s.add_argument("--lexicon", help="your pronunciations: a file of lines 'WORD respelling' or 'WORD /phonemes/' "
                                     "(docs in audiogan/tts/lexicon.py)")
    _phase_flag(s)
    s.add_argument("--timings", metavar="PATH",
                   help="also write when each sentence and word is said: .json (sentences and words), .vtt or "
                        ".srt (captions, one cue a sentence)")
    s.add_argument("--plot", metavar="PNG", help="also draw the spoken mel with each word marked where it is said")
    s.add_argument("--speed", type=_number(0.25, 4.0), default=1.0, help="0.25..4 (default: %(default)s)")
    s.add_argument("--pitch-shift", type=_number(-12.0, 12.0), default=0.0, help="semitones, -12..12")
    s.add_argument("--speaker", type=_count(0), default=0,
                   help="speaker of a multi-speaker voice: its training folders in order (default: %(default)s)")
    s.add_argument("--device", default="auto", help="auto, cpu or cuda")
    s.add_argument("--threads", type=_threads, default=0, help="CPU threads (default: torch's choice)")
    s.set_defaults(func=_say)

    n = sub.add_parser("note", help="one instrument note, or a timbre morph (--to) in steps, with the note model")
    n.add_argument("--pitch", type=_count(0, 127), default=60, help="MIDI pitch (default: %(default)s)")
    n.add_argument("--instrument", help="instrument name, or a .npy timbre latent from `audiogan invert`")
    n.add_argument("--to", help="morph to this timbre in --steps notes")
    # At most the server's and the client's 64: --steps 1000000 set out to hold 262 GB of notes in memory.
    n.add_argument("--steps", type=_count(2, 64), default=8, help="notes in a morph, 2..64 (default: %(default)s)")
    n.add_argument("--mode", choices=MODES, default="slerp", help="how a morph mixes the timbres")
    n.add_argument("--velocity", type=_count(1, 127), default=100, help="MIDI velocity, 1..127")
    n.add_argument("--seconds", type=float, help="note length (default: the model's, 4.096 s)")
    n.add_argument("--seed", type=_seed, default=0, help="the note's random latent")
    n.add_argument("--list", action="store_true", help="print the instruments the model knows")
    n.add_argument("-o", "--output", default="note.wav", help=OUT_HELP)
    n.add_argument("--model", default="default", help="timbre model name or .safetensors path")
    n.add_argument("--device", default="auto", help="auto, cpu or cuda")
    n.set_defaults(func=_note)

    c = sub.add_parser("convert", help="re-render a monophonic recording with another instrument's timbre")
    c.add_argument("input", help="WAV/FLAC/OGG, any rate, mono or stereo (mixed down); - reads standard input")
    c.add_argument("--to", required=True, help="target instrument (`audiogan note --list`) or a .npy latent")
    c.add_argument("--to-b", metavar="NAME", help="morph: the timbre at the last note (--to is the first's); "
                                                   "each note takes the mix at its onset")
    c.add_argument("--morph", action="store_true", help="morph from --to to --to-b (implied by --to-b)")
    c.add_argument("--mode", choices=MODES, default="slerp", help="how a morph mixes the timbres")
    c.add_argument("-o", "--output", default="converted.wav", help=OUT_HELP)
    c.add_argument("--model", default="default", help="timbre model name or .safetensors path")
    c.add_argument("--seed", type=_seed, default=0, help="the notes' random latents")
    c.add_argument("--flat", action="store_true",
                   help="play the notes as the model makes them, held on their semitones at one level "
                        "(default: follow the recording's vibrato, bends and dynamics within each note)")
    c.add_argument("--device", default="auto", help="auto, cpu or cuda")
    c.set_defaults(func=_convert)

    iv = sub.add_parser("invert", help="find the timbre latent of a recorded note (.npy), for use as a timbre")
    iv.add_argument("input", help="a recording of one note (- reads it from standard input)")
    iv.add_argument("-o", "--output", default="timbre.npy", help="output .npy latent")
    iv.add_argument("--pitch", type=_count(0, 127), help="its MIDI pitch (default: estimated with pYIN)")
    iv.add_argument("--steps", type=_count(1), default=200, help="optimisation steps (default: %(default)s)")
    iv.add_argument("--model", default="default", help="timbre model name or .safetensors path")
    iv.add_argument("--device", default="auto", help="auto, cpu or cuda")
    iv.set_defaults(func=_invert)

    m = sub.add_parser("render-midi", help="render a MIDI file with the note model, optionally morphing A -> B")
    m.add_argument("input", help="a .mid file (drum tracks are skipped); - reads it from standard input")
    m.add_argument("--instrument", required=True, help="timbre at the start")
    m.add_argument("--to", help="timbre at the end: each note takes the mix at its onset")
    m.add_argument("--mode", choices=MODES, default="slerp", help="how a morph mixes the timbres")
    m.add_argument("-o", "--output", default="midi.wav", help=OUT_HELP)
    m.add_argument("--model", default="default", help="timbre model name or .safetensors path")
    m.add_argument("--seed", type=_seed, default=0, help="the notes' random latents")
    m.add_argument("--device", default="auto", help="auto, cpu or cuda")
    m.set_defaults(func=_render_midi)

    mo = sub.add_parser("models", help="the bundled models (or those named) with their training and measured "
                                       "quality, from their model cards")
    mo.add_argument("models", nargs="*", help="bundled names or .safetensors paths (default: every bundled model)")
    mo.add_argument("--card", action="store_true", help="print the whole model cards as JSON")
    mo.set_defaults(func=_models)

    t = sub.add_parser("train", help="train a model").add_subparsers(dest="model_kind", required=True)
    for kind, what, data in (("tts", "the acoustic model (text -> mel)",
                              "LJSpeech-format folders (recordings without a metadata.csv: the recipe's "
                              "data.transcripts; one voice in several folders: data.speakers)"),
                             ("timbre", "the note GAN", "NSynth-format folders (examples.json + audio/)")):
        tk = t.add_parser(kind, help=f"train {what} on {data}")
        tk.add_argument("--config", required=True, help=f"configs/{kind}/NAME.yaml")
        tk.add_argument("--data", nargs="+", required=True, help=data)
        tk.add_argument("--run-dir", default=f"runs/{kind}", help="checkpoints, logs, exports (default: %(default)s)")
        tk.add_argument("--device", default="auto", help="auto, cpu or cuda")
        tk.add_argument("--resume", help="checkpoint.pt to continue exactly")
        fresh = ("discriminator, which trains alone for disc_head_start_steps" if kind == "timbre" else
                 "aligner, which trains alone against the frozen model for align_head_start_steps")
        tk.add_argument("--init-generator", help=f"exported .safetensors to continue from (fresh {fresh})")
        tk.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
        tk.set_defaults(func=_train)
    tv = t.add_parser("vocoder", help="train a GAN vocoder")
    tv.add_argument("--config", required=True, help="configs/vocoder/NAME.yaml")
    tv.add_argument("--data", nargs="+", required=True, help="LJSpeech-format or plain audio folders")
    tv.add_argument("--run-dir", default="runs/vocoder", help="checkpoints, logs, exports (default: %(default)s)")
    tv.add_argument("--device", default="auto", help="auto, cpu or cuda")
    tv.add_argument("--resume", help="checkpoint.pt to continue exactly")
    tv.add_argument("--init-generator", help="exported .safetensors to start from (fresh discriminators)")
    tv.add_argument("--warm-start", help="exported .safetensors whose matching tensors (e.g. the backbone) start "
                                         "a model with other heads; counts from step 0, the card says from what")
    tv.add_argument("--predicted-mels", help="folder from `audiogan data tts-mels`: fine-tune on a TTS model's mels")
    tv.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    tv.set_defaults(func=_train)

    d = sub.add_parser("data", help="build training data").add_subparsers(dest="data_kind", required=True)
    dn = d.add_parser("notes", help="render NSynth-style instrument notes from a General MIDI soundfont")
    dn.add_argument("--soundfont", default="/usr/share/sounds/sf2/FluidR3_GM.sf2",
                    help="SF2/SF3 file (default: Debian's fluid-soundfont-gm)")
    dn.add_argument("--programs", default="default",
                    help="GM programs, 0-based, e.g. '0,40,73' or '0-7' (default: 34 programs over all families)")
    dn.add_argument("--pitches", default="24-84", help="MIDI pitches (default: %(default)s)")
    dn.add_argument("--velocities", default="50,75,100,127", help="MIDI velocities, 1..127")
    dn.add_argument("--seconds", type=float, default=4.0, help="note length (default: %(default)s)")
    dn.add_argument("--hold", type=float, default=3.0, help="note-on time before release (default: %(default)s)")
    dn.add_argument("--sample-rate", type=_count(8000, 192000), default=16000, help="Hz")
    dn.add_argument("--workers", type=_count(1), default=2, help="parallel processes (default: %(default)s)")
    dn.add_argument("--out", required=True,
                    help="output folder (audio/*.wav, examples.json, render.json). One that holds notes already "
                         "is added to: notes rendered there before with the same settings are skipped, so an "
                         "interrupted run can be rerun to finish it; other --soundfont, --sample-rate, --seconds "
                         "or --hold are refused")
    dn.add_argument("--replace", action="store_true",
                    help="start the data set in --out over with these settings: its earlier notes are no longer "
                         "listed (their files stay in audio/ where not rendered again)")
    dn.set_defaults(func=_data_notes)
    dm = d.add_parser("tts-mels", help="a TTS checkpoint's teacher-forced mels, to fine-tune a vocoder on",
                      description="Write <clip id>.npy mels that a TTS training checkpoint predicts for each clip, "
                                  "frame-aligned with the recording; then: audiogan train vocoder ... "
                                  "--init-generator VOCODER --predicted-mels OUT")
    dm.add_argument("--checkpoint", required=True, help="checkpoint.pt of `audiogan train tts` (exports lack the "
                                                       "aligner that fixes the durations)")
    dm.add_argument("--data", nargs="+", required=True, help="LJSpeech-format folders (those it was trained on)")
    dm.add_argument("--out", required=True, help="output folder")
    dm.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    dm.set_defaults(func=_data_tts_mels)

    r = sub.add_parser("render", help="render a JSONL/CSV manifest of jobs into a folder (resumable)",
                       description="Render every job of a manifest. Rerunning skips finished jobs whose parameters "
                                   "are unchanged. Schema of a line: audiogan render --schema; docs/render.md.",
                       epilog="Files in --out: .audiogan-render.jsonl (the resume log: a rerun skips what it lists as "
                              "done), errors.jsonl (this run's failed jobs and skipped lines; the last run's move to "
                              "errors.prev.jsonl). Exit status: 0 all done; 1 jobs failed or lines were skipped; "
                              f"2 invalid manifest or options, or --out busy; {EXIT_DISK_FULL} the disk was full: the "
                              "run stopped, and running it again resumes.")
    r.add_argument("manifest", nargs="?", help="jobs, one per line (.jsonl) or row (.csv); required unless --schema")
    r.add_argument("--out", help="output folder; job outputs are relative paths inside it; required unless --schema")
    r.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process; ray: model actors on a Ray cluster (pip install 'audiogan[ray]')")
    r.add_argument("--address", help="Ray cluster address, or 'auto' for the one `ray start` began on this "
                                     "machine (default: $RAY_ADDRESS, else a new local Ray)")
    r.add_argument("--cpus-per-actor", type=_positive, default=1.0,
                   help="Ray: CPUs per model actor (above 0; an actor needs a node with that many)")
    r.add_argument("--batch-size", type=_count(0), default=0,
                   help="jobs per forward pass (default on CPU: 64 for notes, 1 for the rest, where batching "
                        "measured no gain; 32 on CUDA)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    r.add_argument("--workers", type=_count(1), default=2, help="threads preparing and encoding (default: %(default)s)")
    r.add_argument("--threads", type=_count(0), default=0,
                   help="torch CPU threads (default: torch's choice; on Ray, each actor's, one per CPU it holds); "
                        "at most this machine's CPUs, or on Ray the largest node's")
    _phase_flag(r)
    r.add_argument("--skip-invalid", action="store_true", help="render the valid lines even if others are bad")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--schema", action="store_true", help="print the JSON Schema of a manifest line and exit")
    r.set_defaults(func=_render)

    e = sub.add_parser("export", help="export inference weights").add_subparsers(dest="model_kind", required=True)
    for kind in ("vocoder", "tts", "timbre"):
        ek = e.add_parser(kind, help=f"a {kind} checkpoint.pt -> .safetensors + model card")
        ek.add_argument("checkpoint", help=f"checkpoint.pt of `audiogan train {kind}`")
        ek.add_argument("-o", "--output", required=True, help="output .safetensors path")
        ek.add_argument("--fp32", dest="fp16", action="store_false", help="keep float32 (default: float16)")
        ek.set_defaults(func=_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:  # an optional package that is not installed
        quoted = re.findall(r"'([^']+)'", str(exc))  # from a worker process, only the message may survive
        module = (exc.name or (quoted[0] if quoted else str(exc))).split(".")[0]
        extra = EXTRAS.get(module)
        print(f"audiogan: error: this command needs the Python package {module!r}, which is not installed"
              + (f": pip install 'audiogan[{extra}]'" if extra else ""), file=sys.stderr)
        return 2
    except ImportError as exc:  # installed but unusable: pyfluidsynth without the FluidSynth library
        print(f"audiogan: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, FloatingPointError) as exc:
        print(f"audiogan: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `audiogan say -o - | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1
    except OSError as exc:  # unwritable output, a file not found: the message names the path
        print(f"audiogan: error: {exc.strerror or exc}: {exc.filename}" if exc.filename else
              f"audiogan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a trainer has logged the checkpoint it wrote
        print("audiogan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
