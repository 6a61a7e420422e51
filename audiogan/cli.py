"""`audiogan` command line: argument parsing and wiring only."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

DEMO_CLIP = Path(__file__).parent / "samples" / "demo.flac"


def _vocode(args: argparse.Namespace) -> int:
    import torch

    from audiogan import Vocoder, load_audio, save_audio

    if args.threads:
        torch.set_num_threads(args.threads)
    vocoder = Vocoder.load(args.model, device=args.device)
    if args.mel:
        mel = np.load(args.mel)
        wave = vocoder(mel)
        source = args.mel
    else:
        source = args.input or str(DEMO_CLIP)
        audio, _ = load_audio(source, vocoder.sample_rate)
        wave = vocoder.copy_synthesize(audio)
    out = save_audio(args.output, wave, vocoder.sample_rate)
    seconds = wave.numel() / vocoder.sample_rate
    print(f"wrote {out} ({seconds:.2f} s at {vocoder.sample_rate} Hz) from {source} "
          f"with {vocoder.card.get('name', args.model)}")
    if args.plot:
        from audiogan.plots import plot_mels

        mel_in = torch.as_tensor(mel) if args.mel else vocoder.mel(audio)
        png = plot_mels({"input mel": mel_in, "mel of the vocoded audio": vocoder.mel(wave)}, args.plot,
                        vocoder.config.mel)
        print(f"wrote {png}")
    return 0


def _train_vocoder(args: argparse.Namespace) -> int:
    from audiogan.config import load_yaml, override
    from audiogan.train.vocoder_trainer import VocoderTrainer, VocoderTrainingConfig

    cfg = load_yaml(VocoderTrainingConfig, args.config)
    for assignment in args.set or []:
        cfg.train = override(cfg.train, assignment)
    trainer = VocoderTrainer(cfg, args.data, args.run_dir, args.device, args.resume, args.init_generator)
    result = trainer.fit()
    if trainer.dist.main:
        print(f"done at step {trainer.step}: exported {trainer.run_dir / (cfg.name + '.safetensors')}; " +
              ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)))
    return 0


def _export_vocoder(args: argparse.Namespace) -> int:
    import torch

    from audiogan.train.vocoder_trainer import export_checkpoint

    path = export_checkpoint(args.checkpoint, args.output, torch.float16 if args.fp16 else torch.float32)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiogan", description="GAN audio synthesis: vocoders, TTS, timbre.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("vocode", help="mel -> audio with a vocoder (copy-synthesis of a recording by default)")
    v.add_argument("input", nargs="?", help="audio file to copy-synthesize (default: the bundled demo clip)")
    v.add_argument("--mel", help="a .npy log-mel [n_mels, frames] in the vocoder's mel config instead of audio")
    v.add_argument("-o", "--output", default="vocoded.wav", help="output .wav or .flac (default: %(default)s)")
    v.add_argument("--model", default="default", help="bundled name or .safetensors path (default: %(default)s)")
    v.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    v.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    v.add_argument("--plot", metavar="PNG", help="also save input and output mel spectrograms side by side")
    v.set_defaults(func=_vocode)

    t = sub.add_parser("train", help="train a model").add_subparsers(dest="model_kind", required=True)
    tv = t.add_parser("vocoder", help="train a GAN vocoder")
    tv.add_argument("--config", required=True, help="configs/vocoder/NAME.yaml")
    tv.add_argument("--data", nargs="+", required=True, help="LJSpeech-format or plain audio folders")
    tv.add_argument("--run-dir", default="runs/vocoder", help="checkpoints, logs, exports (default: %(default)s)")
    tv.add_argument("--device", default="auto")
    tv.add_argument("--resume", help="checkpoint.pt to continue exactly")
    tv.add_argument("--init-generator", help="exported .safetensors to start from (fresh discriminators)")
    tv.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a train: field, e.g. max_minutes=20")
    tv.set_defaults(func=_train_vocoder)

    e = sub.add_parser("export", help="export inference weights").add_subparsers(dest="model_kind", required=True)
    ev = e.add_parser("vocoder", help="checkpoint.pt -> .safetensors + model card")
    ev.add_argument("checkpoint")
    ev.add_argument("-o", "--output", required=True, help="output .safetensors path")
    ev.add_argument("--fp32", dest="fp16", action="store_false", help="keep float32 (default: float16)")
    ev.set_defaults(func=_export_vocoder)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"audiogan: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
