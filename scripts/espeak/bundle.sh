#!/usr/bin/env bash
# espeak-ng and phonemizer for a machine that has neither (the GPU image): text-to-speech on the device.
#
# Here (Debian with espeak-ng installed, gcc, PyPI reachable):
#     bash scripts/espeak/bundle.sh [DIR]            # default DIR: .gpu/espeak (git-ignored, 3.5 MB)
#     WHEELS=0 bash scripts/espeak/bundle.sh DIR     # libraries and data only (no PyPI: the tests)
# There, before Python starts (the dynamic loader reads LD_LIBRARY_PATH only at process start):
#     source DIR/env.sh                              # installs the wheels into /tmp/site, sets the paths
#
# DIR/lib holds Debian's libespeak-ng.so.1 and libsonic.so.0 and a stand-in libpcaudio.so.0 built from
# pcaudio_stub.c; DIR/espeak-ng-data holds the shared data with English as its only dictionary
# (ESPEAK_DICTS="en de" keeps more); DIR/wheels holds phonemizer 3.4 and what it needs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../.gpu/espeak}
libdir=${LIBDIR:-/usr/lib/x86_64-linux-gnu}
mkdir -p "$dir/lib" "$dir/wheels"
dir=$(cd "$dir" && pwd)

cp -L "$libdir/libespeak-ng.so.1" "$libdir/libsonic.so.0" "$dir/lib/"
gcc -shared -fPIC -O2 -Wall -Wextra -Wl,-soname,libpcaudio.so.0 -o "$dir/lib/libpcaudio.so.0" "$here/pcaudio_stub.c"

rm -rf "$dir/espeak-ng-data"
mkdir -p "$dir/espeak-ng-data"
for entry in "$libdir/espeak-ng-data"/*; do
    case "$(basename "$entry")" in *_dict) continue ;; esac
    cp -r "$entry" "$dir/espeak-ng-data/"
done
for lang in ${ESPEAK_DICTS:-en}; do
    cp "$libdir/espeak-ng-data/${lang}_dict" "$dir/espeak-ng-data/"
done

[ "${WHEELS:-1}" = 0 ] || python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    -d "$dir/wheels" phonemizer==3.4.0 dlinfo==2.0.0 joblib==1.5.2 attrs==25.4.0

cat >"$dir/env.sh" <<'SH'
# Sourced, not run: phonemizer and espeak-ng from this folder (see scripts/espeak/bundle.sh).
_espeak_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
${PYTHON:-python3} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$_espeak_dir"/wheels/*.whl
export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$_espeak_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PHONEMIZER_ESPEAK_LIBRARY="$_espeak_dir/lib/libespeak-ng.so.1"
export PHONEMIZER_ESPEAK_DATA_PATH="$_espeak_dir/espeak-ng-data"
SH
du -sh "$dir"
