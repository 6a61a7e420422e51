#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: system packages if missing, .venv, pip install.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the package needs at run time (soundfile's wheel bundles libsndfile):
# espeak-ng for the text-to-speech phonemizer. The dev set-up adds FluidSynth and the General MIDI
# soundfont (a ~120 MB package) for rendering instrument-note training data and its tests.
APT_PACKAGES=(espeak-ng)
if [ "${1:-}" = "dev" ]; then APT_PACKAGES+=(fluidsynth fluid-soundfont-gm); fi
PY=${PYTHON:-python3}
# Debian and Ubuntu ship `python3 -m venv` without ensurepip, in a package of its own.
if [ ! -x .venv/bin/python ] && ! "$PY" -c "import ensurepip" 2>/dev/null; then APT_PACKAGES+=(python3-venv); fi
# pesq (PESQ validation, in the train extra) is published as source only: building it takes a C compiler and
# Python's headers, which a fresh Debian lacks (the build failed there with "x86_64-linux-gnu-gcc: not found").
command -v gcc >/dev/null || APT_PACKAGES+=(gcc)
"$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || APT_PACKAGES+=(python3-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"
fi

[ -x .venv/bin/python ] || { echo "setup: creating .venv"; "$PY" -m venv .venv; }
extras="server,train"
[ "${1:-}" = "dev" ] && extras="dev"
stamp=".venv/.audiogan-${extras/,/-}-$(cat pyproject.toml client/pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "setup: pip install -e ./client -e .[$extras] (torch 2.11.0 is large: the first run takes a few minutes)"
    .venv/bin/python -m pip install -q --upgrade pip
    # The server imports the client package's generated gRPC stubs, so both go in.
    .venv/bin/python -m pip install -q -e ./client -e ".[$extras]"
    touch "$stamp"
fi
echo "setup: ready (.venv, audiogan $(.venv/bin/python -c 'import audiogan; print(audiogan.__version__)'))"
