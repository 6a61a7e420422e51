#!/usr/bin/env bash
# Training runs on a lent GPU as prepared device-tool calls (docs/gpu-training.md): a GAN phase for the
# bundled vocoder, or the acoustic model of the voice (tts) from scratch.
#
# Here, once per session (needs PyPI for the wheels; writes the git-ignored .whl/, .gpu/p1 .. pN, .gpu/wheels):
#     bash scripts/gpu_train.sh prepare
# There, back to back on one warm machine (it is given back ~30 s after a call returns, and a run with it):
#     run(carry=[".gpu/p1"], command="bash scripts/gpu_train.sh receive p1")        # each part in turn,
#     run(carry=[".gpu/p3", ".gpu/wheels"], command="bash scripts/gpu_train.sh receive p3")   # wheels last
#     run(timeout_s=600,
#         command="bash scripts/gpu_train.sh start MINUTES [--set KEY=VALUE ...] && bash scripts/gpu_train.sh wait 575")
#     run(command="bash scripts/gpu_train.sh wait 540")     # until the run ends; its outputs then come back
# A part and the repository travel together, and the device tool takes 64 MiB in all: hence parts of
# 37 MiB beside a ~25 MiB tree (three parts for the four shared sets). `start` continues the bundled vector
# vocoder with its discriminators from the first step (after their head start), bf16 and CUDA graphs;
# extra --set arguments override it, e.g. --set 'discriminators=[mrd]' (twice the steps per second,
# quality not yet measured on a GPU). On 2026-12-04 an H200 took 3-5 s per warm receive call and ran 11
# minutes of training at 20 steps/s (benchmarks/RESULTS.md).
# The voice: `prepare tts [--config FILE] [--set KEY=VALUE ...]` copies its corpus into .gpu/t1 and builds
# the feature cache here (phonemes need espeak-ng, which the image lacks) into
# .gpu/t2 with the arguments it will train with; then `receive t1`, `receive t2` (with .gpu/wheels), and
# `start tts MINUTES [--set ...]`, `wait` as above. Snapshots (fp16 exports) come back every quarter of the run.
# Here, `PYTHON=.venv/bin/python bash scripts/gpu_train.sh rehearse [tts]` runs receive, start and wait on
# the CPU for half a minute of training, with the modules the image lacks hidden.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/tmp/data}
RUN=${RUN:-/tmp/run}
PY=${PYTHON:-python3}

prepare() {
    [ -d .whl ] || bash scripts/gpu_checks.sh prepare || exit 1
    rm -rf .gpu/p[0-9]* .gpu/wheels
    "$PY" scripts/pack_speech.py "${SPEECH:-../shared/data/speech}"/* --out .gpu --max-mib "${MAX_MIB:-37}" || exit 1
    # Training needs only soundfile (to read the FLAC) and its two dependencies: 1.6 MB that can ride
    # with the last part instead of taking a call of their own.
    mkdir -p .gpu/wheels && cp .whl/soundfile-*.whl .whl/cffi-*.whl .whl/pycparser-*.whl .gpu/wheels/ || exit 1
    du -sh .gpu/p[0-9]* .gpu/wheels
}

prepare_tts() {
    # The arguments the run trains with: the cache's name depends on the recipe's data and mel settings.
    local args=(--config "configs/tts/lj_prompts_small.yaml") corpus=${CORPUS:-dctts_lj_prompts}
    [ "${1:-}" = --config ] && { args=(--config "$2"); shift 2; }
    args+=("$@")
    [ -d .whl ] || bash scripts/gpu_checks.sh prepare || exit 1
    rm -rf .gpu/t1 .gpu/t2 .gpu/wheels && mkdir -p .gpu/t1 .gpu/t2 .gpu/wheels
    cp -r "${SPEECH:-../shared/data/speech}/$corpus" .gpu/t1/ || exit 1
    rm -rf /tmp/gpu_train_cache  # a run folder with a checkpoint is only continued with --resume
    "$PY" -m audiogan.cli train tts "${args[@]}" --data ".gpu/t1/$corpus" --run-dir /tmp/gpu_train_cache \
        --device cpu --set max_steps=1 --set data.cache_dir=.gpu/t2/tts-cache >/tmp/gpu_train_cache.log 2>&1 \
        || { tail -5 /tmp/gpu_train_cache.log; exit 1; }
    printf '%s\n' "${args[@]}" >.gpu/t2/tts-args
    echo "$corpus" >.gpu/t2/tts-corpus
    cp .whl/soundfile-*.whl .whl/cffi-*.whl .whl/pycparser-*.whl .gpu/wheels/ || exit 1
    du -sh .gpu/t1 .gpu/t2 .gpu/wheels
}

receive() {
    local part=${1:?which part (p1, p2, ...)}
    [ -d ".gpu/$part" ] || { echo "no .gpu/$part here: name it in carry" >&2; exit 1; }
    mkdir -p "$DATA"
    cp -r ".gpu/$part/." "$DATA/"
    if [ -d .gpu/wheels ]; then mkdir -p "$DATA.wheels" && cp .gpu/wheels/*.whl "$DATA.wheels/"; fi
    echo "received $part: $(du -sh "$DATA" | cut -f1) under $DATA in $(ls "$DATA" | wc -l) folders"
}

start() {
    local kind=vocoder
    [ "${1:-}" = tts ] && { kind=tts; shift; }
    local minutes=${1:?how many minutes of training}
    shift
    [ -n "$(ls -A "$DATA" 2>/dev/null)" ] || { echo "nothing under $DATA: receive the parts first" >&2; exit 1; }
    if [ "${QUICK:-0}" = 0 ]; then
        local wheels=.whl
        [ -d "$DATA.wheels" ] && wheels=$DATA.wheels
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$wheels"/*.whl || exit 1
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    local device=${DEVICE:-cuda} snapshots
    snapshots=$(awk -v m="$minutes" 'BEGIN { print (m / 4 > 0.5 ? m / 4 : 0.5) }')
    mkdir -p "$RUN"
    if [ "$kind" = tts ]; then
        [ -f "$DATA/tts-args" ] || { echo "no $DATA/tts-args: receive the parts from 'prepare tts'" >&2; exit 1; }
        local args
        mapfile -t args <"$DATA/tts-args"
        setsid nohup "$PY" -m audiogan.cli train tts "${args[@]}" --data "$DATA/$(cat "$DATA/tts-corpus")" \
            --run-dir "$RUN" --device "$device" --set data.cache_dir="$DATA/tts-cache" --set bf16=true \
            --set max_minutes="$minutes" --set snapshot_every_minutes="$snapshots" \
            --set validate_every_minutes="$snapshots" --set checkpoint_every_minutes="$minutes" "$@" \
            >"$RUN/train.log" 2>&1 &
        echo $! >"$RUN/pid"
        echo "training the voice (pid $(cat "$RUN/pid")), $minutes minutes, log $RUN/train.log"
        return 0
    fi
    setsid nohup "$PY" -m audiogan.cli train vocoder --config "${CONFIG:-configs/vocoder/vector_16k_cpu.yaml}" \
        --data "$DATA"/* --run-dir "$RUN" --device "$device" \
        --init-generator audiogan/weights/vocoder-16k-vector.safetensors \
        --set bf16=true --set compile=true --set compile_mode=reduce-overhead --set adversarial_start=0 \
        --set max_minutes="$minutes" --set snapshot_every_minutes="$snapshots" \
        --set validate_every_minutes="$snapshots" --set log_every=200 "$@" >"$RUN/train.log" 2>&1 &
    echo $! >"$RUN/pid"
    echo "training started (pid $(cat "$RUN/pid")), $minutes minutes, log $RUN/train.log"
}

collect() {
    # At most 8 files come back: the export and its card, the metrics, the log, and the last two
    # snapshots with their cards (weights load only beside their card). Called while waiting too, so
    # that a call cut off at its time limit still brings back the newest snapshots.
    local out=$1 snap
    mkdir -p "$out"
    rm -f "$out"/step*
    cp "$RUN"/*.safetensors "$RUN"/*.json "$RUN"/metrics.jsonl "$RUN"/train.log "$out"/ 2>/dev/null
    for snap in $(find "$RUN/snapshots" -name '*.safetensors' 2>/dev/null | sort | tail -2); do
        cp "$snap" "${snap%.safetensors}.json" "$out"/
    done
}

wait_run() {
    local seconds=${1:-540} out=${OUT:-/tmp/gpu_train} started=$SECONDS
    [ -f "$RUN/pid" ] || { echo "no run was started on this machine (a fresh one?)" >&2; exit 1; }
    while kill -0 "$(cat "$RUN/pid")" 2>/dev/null && [ $((SECONDS - started)) -lt "$seconds" ]; do
        sleep 15
        grep -E "step [0-9]+ " "$RUN/train.log" | tail -1 | cut -c1-220
        collect "$out"
    done
    grep -E "Error|error:|Traceback" "$RUN/train.log" | tail -5
    collect "$out"
    if kill -0 "$(cat "$RUN/pid")" 2>/dev/null; then
        echo "still training after ${seconds} s: call wait again"
        return 0
    fi
    tail -3 "$RUN/train.log" | cut -c1-300
    ls -la "$out"
}

rehearse() {
    # The whole sequence on the CPU, a stand-in for the device tool's calls: a tiny vocoder part, or the
    # voice's parts as `prepare tts` builds them, with the modules the image lacks hidden.
    local tmp=/tmp/gpu_train_rehearsal kind=${1:-vocoder} shim=$PWD/scripts/device_shim
    rm -rf "$tmp" && mkdir -p "$tmp/data"
    if [ "$kind" = tts ]; then
        [ -f .gpu/t2/tts-args ] || { echo "run 'bash scripts/gpu_train.sh prepare tts' first" >&2; exit 1; }
        DATA=$tmp/received receive t1 && DATA=$tmp/received receive t2 || exit 1
        PYTHONPATH=$shim DATA=$tmp/received RUN=$tmp/run DEVICE=cpu QUICK=1 start tts 0.5 --set bf16=false \
            --set log_every=1 || exit 1
    else
        cp -r "${SPEECH:-../shared/data/speech}/aishell1_S0913" "$tmp/data/"
        "$PY" scripts/pack_speech.py "$tmp/data/aishell1_S0913" --out "$tmp/pack" >/dev/null
        mkdir -p .gpu && rm -rf .gpu/p0 && mv "$tmp/pack/p1" .gpu/p0
        DATA=$tmp/received receive p0 || exit 1
        PYTHONPATH=$shim DATA=$tmp/received RUN=$tmp/run DEVICE=cpu QUICK=1 start 0.5 --set compile=false \
            --set bf16=false --set log_every=1 || exit 1
        rm -rf .gpu/p0
    fi
    DATA=$tmp/received RUN=$tmp/run OUT=$tmp/out wait_run 240
}

case "${1:-}" in
    prepare) shift; if [ "${1:-}" = tts ]; then shift; prepare_tts "$@"; else prepare; fi ;;
    receive) shift; receive "$@" ;;
    start) shift; start "$@" ;;
    wait) shift; wait_run "$@" ;;
    rehearse) shift; rehearse "$@" ;;
    *) sed -n '2,24p' "$0"; exit 2 ;;
esac
