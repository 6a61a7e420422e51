#!/usr/bin/env bash
# The speed figures the open issues still owe from a GPU, as a prepared device-tool call.
#
# Here, once per session (needs PyPI; writes the git-ignored .whl/, .gpu/speed/ and .gpu/espeak/):
#     bash scripts/gpu_checks.sh prepare
# There, through the device tool, in one call (a task is lent 15 device minutes, starts included):
#     run(carry=[".whl", ".gpu/speed", ".gpu/espeak"], timeout_s=600, command="bash scripts/gpu_checks.sh run")
# Every step has its own time limit (together under 10 minutes), prints its table and appends it to
# $OUT/gpu_checks.md, so a step that runs over costs only itself. Here,
# `QUICK=1 PYTHON=.venv/bin/python bash scripts/gpu_checks.sh run` rehearses every step on the CPU with
# tiny sizes, with the modules the device image lacks hidden.
#
# Steps (issue), the default ones in this order: text (5: speech streams from text, the server doing
# phonemes, acoustic model and vocoder; espeak-ng and phonemizer travel in .gpu/espeak, built by
# scripts/espeak/bundle.sh), tts_render (6: 1,000 lines of speech rendered batched vs one by one),
# server (5: concurrent mel streams, target >= 256 in real time, TTFA p50 <= 30 ms), notes (4: batched
# note generation, target >= 50,000x real time), listeners (5: the mel streams paced like people
# listening, first requests staggered), render (6: 1,000 notes batched vs one by one), vocoder (2:
# inference x real time). Only when named: train (2: vocoder training steps/s, the reference V1 in fp32
# against the bundled recipe in bf16 + compile with CUDA graphs; measured 2026-12-04 on an H200,
# benchmarks/RESULTS.md), which alone takes 4.5 of the 10 minutes a call may run; notes_layout (4: the
# notes step with the generator's weights channels-last, as on the CPU, to set TimbreModel's GPU default).
set -uo pipefail
cd "$(dirname "$0")/.."
ALL_STEPS=(text tts_render server notes listeners render vocoder)

prepare() {
    mkdir -p .whl .gpu/speed
    # What the device image lacks (soundfile and its cffi), or may hold in versions older than the
    # generated stubs need (grpcio, protobuf), for its Python 3.12 on x86-64.
    local platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    for pkg in soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 grpcio==1.85.3 grpcio-health-checking==1.85.1 \
               grpcio-reflection==1.85.1 protobuf==7.36.2; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            "${platforms[@]}" -d .whl "$pkg" || exit 1
    done
    # Training speed needs real clips, not many: one shared speaker (6.6 MB of FLAC, Apache-2.0).
    cp -r "${SPEECH:-../shared/data/speech}/aishell1_S0913" .gpu/speed/
    bash scripts/espeak/bundle.sh .gpu/espeak || exit 1
    du -sh .whl .gpu/speed .gpu/espeak
}

run_steps() {
    local out=${OUT:-/tmp/gpu_checks} py=${PYTHON:-python3} quick=${QUICK:-0}
    mkdir -p "$out"
    if [ "$quick" = 0 ]; then
        [ -d .whl ] || { echo "no .whl/: run 'bash scripts/gpu_checks.sh prepare' here and carry .whl" >&2; exit 1; }
        "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .whl/*.whl || exit 1
        export PYTHONPATH=/tmp/site
        # Without the bundle the text steps fail at once, saying espeak-ng is missing; the rest still run.
        if [ -f .gpu/espeak/env.sh ]; then PYTHON=$py source .gpu/espeak/env.sh || exit 1; fi
    else
        # The rehearsal hides what the device image lacks and the wheels do not bring; phonemizer comes
        # from the espeak bundle when there is one (its libraries and data first on every path).
        if [ -f .gpu/espeak/env.sh ]; then
            PYTHON=$py source .gpu/espeak/env.sh || exit 1
            export AUDIOGAN_DEVICE_HAS=phonemizer
        fi
        export PYTHONPATH="$PWD/scripts/device_shim${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$PWD:$PWD/server:$PWD/client${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    local report="$out/gpu_checks.md"
    echo "# gpu_checks $(date -u +%FT%TZ) on $("$py" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")')" >>"$report"
    local steps=("$@")
    [ ${#steps[@]} -gt 0 ] || steps=("${ALL_STEPS[@]}")
    for step in "${steps[@]}"; do
        local limit cmd
        case "$step:$quick" in
            text:0) limit=100; cmd=(-m benchmarks.server_load --text --streams 16 64 256 --seconds 8 --soak 0
                                    --server-args "--device cuda --set limits.max_concurrent=320") ;;
            text:1) limit=150; cmd=(-m benchmarks.server_load --text --streams 2 --seconds 2 --soak 0
                                    --server-args "--device cpu") ;;
            tts_render:0) limit=150; cmd=(-m benchmarks.batch_render --kind tts --jobs 1000 --batch-sizes 1 64
                                          --device cuda) ;;
            tts_render:1) limit=150; cmd=(-m benchmarks.batch_render --kind tts --jobs 4 --batch-sizes 1 2
                                          --device cpu) ;;
            # Most wanted first: a variant cut off by the limit costs only the limit.
            train:0) limit=270; cmd=(benchmarks/train_speed.py --data .gpu/speed/aishell1_S0913 --device cuda
                                     --variants v1-fp32-strict-eager v1-fp32-eager vector-mrd-bf16-graphs
                                     vector-bf16-graphs vector-bf16-compile --steps 60 --warmup 10) ;;
            train:1) limit=300; cmd=(benchmarks/train_speed.py --data .gpu/speed/aishell1_S0913 --device cpu
                                     --variants vector-fp32-eager --steps 1 --warmup 1) ;;
            notes:0) limit=45; cmd=(-m benchmarks.timbre_speed --device cuda --batch 1 64 256 1024 --repeats 10 --profile) ;;
            notes:1) limit=120; cmd=(-m benchmarks.timbre_speed --device cpu --batch 1 2 --repeats 1 --profile) ;;
            notes_layout:0) limit=45; cmd=(-m benchmarks.timbre_speed --device cuda --batch 1 64 256 1024 --repeats 10
                                           --memory-format channels-last) ;;
            notes_layout:1) limit=120; cmd=(-m benchmarks.timbre_speed --device cpu --batch 1 2 --repeats 1
                                           --memory-format contiguous) ;;
            render:0) limit=60; cmd=(-m benchmarks.batch_render --kind notes --jobs 1000 --batch-sizes 1 64 --device cuda) ;;
            render:1) limit=120; cmd=(-m benchmarks.batch_render --kind notes --jobs 6 --batch-sizes 1 3 --device cpu) ;;
            server:0) limit=95; cmd=(-m benchmarks.server_load --streams 16 64 256 --seconds 8 --soak 1000
                                      --concurrency 32
                                      --server-args "--device cuda --voice none --set limits.max_concurrent=320") ;;
            server:1) limit=150; cmd=(-m benchmarks.server_load --streams 2 --seconds 2 --soak 10 --concurrency 2
                                      --server-args "--device cpu --voice none") ;;
            listeners:0) limit=45; cmd=(-m benchmarks.server_load --paced --stagger 5 --streams 256 --seconds 15
                                         --soak 0 --server-args "--device cuda --voice none") ;;
            listeners:1) limit=100; cmd=(-m benchmarks.server_load --paced --stagger 1 --streams 2 --seconds 3
                                         --soak 0 --server-args "--device cpu --voice none") ;;
            vocoder:0) limit=60; cmd=(-m benchmarks.vocoder_speed --models default hifigan_v1 --repeats 5) ;;
            vocoder:1) limit=120; cmd=(-m benchmarks.vocoder_speed --models default --seconds 1 --repeats 1) ;;
            *) echo "unknown step $step (steps: ${ALL_STEPS[*]})" >&2; exit 2 ;;
        esac
        echo "## $step: python ${cmd[*]}" | tee -a "$report"
        local started=$SECONDS
        timeout "$limit" "$py" "${cmd[@]}" 2>&1 | tee "$out/$step.log" | grep -E '^\||steps/s|^[a-z].*x real' >>"$report"
        local rc=${PIPESTATUS[0]}
        echo "(rc $rc, $((SECONDS - started)) s; full output in $step.log)" | tee -a "$report"
    done
    cat "$report"
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run_steps "$@" ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
esac
