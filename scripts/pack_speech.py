"""Pack speech folders into parts small enough to carry to a remote GPU machine.

    python scripts/pack_speech.py ../shared/data/speech/* --out .gpu --sample-rate 16000 --max-mib 37

Audio is resampled to the training rate and stored as 16-bit FLAC (the trainer would resample it
anyway), keeping each folder's relative layout and metadata.csv, then split into parts p1, p2, ... of at
most --max-mib each. Copy all parts into one folder on the far side and pass its subfolders as --data.
A part travels with the repository (about 24 MiB) and the device tool carries 64 MiB per call, hence 37.
"""

from __future__ import annotations

import argparse
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from audiogan.audio.io import load_audio, save_audio
from audiogan.train.data import AUDIO_SUFFIXES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--max-mib", type=float, default=37.0)
    args = p.parse_args()
    staging = args.out / "all"
    jobs = []
    for folder in args.folders:
        for f in sorted(folder.rglob("*")):
            rel = Path(folder.name) / f.relative_to(folder)
            if f.suffix.lower() in AUDIO_SUFFIXES:
                jobs.append((f, (staging / rel).with_suffix(".flac")))
            elif f.name in ("metadata.csv", "LICENSE", "LICENSE.TXT", "SPEAKERS.TXT"):
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, staging / rel)

    def convert(job: tuple[Path, Path]) -> None:
        wave, _ = load_audio(job[0], args.sample_rate)
        save_audio(job[1], wave, args.sample_rate)

    with ThreadPoolExecutor() as pool:
        list(tqdm(pool.map(convert, jobs), total=len(jobs), desc="resample"))
    part, used = 1, 0
    limit = args.max_mib * 2**20
    for f in sorted(x for x in staging.rglob("*") if x.is_file()):
        size = f.stat().st_size
        if used and used + size > limit:
            part, used = part + 1, 0
        dest = args.out / f"p{part}" / f.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(f, dest)
        used += size
    shutil.rmtree(staging)
    print(f"wrote {part} parts under {args.out} (each <= {args.max_mib:g} MiB)")


if __name__ == "__main__":
    main()
