"""scripts/espeak/bundle.sh: espeak-ng for a machine without it (the GPU image) loads from its folder
alone, through the libpcaudio stand-in, and phonemizes English with the trimmed data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or not (LIBDIR / "libespeak-ng.so.1").exists(),
    reason="needs gcc and Debian's libespeak-ng1 to build the bundle")

PROBE = """
import re
from audiogan.tts.phonemes import phonemize
print(" ".join(phonemize(["Hello world."])[0]))
maps = open("/proc/self/maps").read().splitlines()
print(sorted({l.split()[-1] for l in maps if re.search("libpcaudio|libsonic", l)}))
"""


def test_bundle_loads_from_its_own_folder(tmp_path: Path) -> None:
    bundle = tmp_path / "espeak"
    subprocess.run(["bash", str(ROOT / "scripts" / "espeak" / "bundle.sh"), str(bundle)], check=True,
                   env={**os.environ, "WHEELS": "0", "LIBDIR": str(LIBDIR)}, capture_output=True)
    data = bundle / "espeak-ng-data"
    assert (data / "en_dict").exists() and not (data / "de_dict").exists()
    env = {**os.environ, "LD_LIBRARY_PATH": str(bundle / "lib"),
           "PHONEMIZER_ESPEAK_LIBRARY": str(bundle / "lib" / "libespeak-ng.so.1"),
           "PHONEMIZER_ESPEAK_DATA_PATH": str(data), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True)
    phones, libs = out.stdout.strip().splitlines()
    assert phones.split() == ["h", "ə", "l", "ˈ", "oʊ", "w", "ˈ", "ɜː", "l", "d", "."]
    # The stand-in, not the system's libpcaudio (which needs PulseAudio, ALSA and X11), was loaded.
    assert str(bundle / "lib" / "libpcaudio.so.0") in libs and str(bundle / "lib" / "libsonic.so.0") in libs
