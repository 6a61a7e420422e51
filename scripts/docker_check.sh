#!/usr/bin/env bash
# Build the server image, start it as a user would (an extra flag appended, ports published), wait for its
# HEALTHCHECK, make every kind of call with the torch-free client, read its metrics, serve TLS from a second
# container (a throwaway certificate), stop it with SIGTERM. Needs a Docker engine, the dev venv (make
# setup-dev) for the client, and openssl for the TLS step. Not part of make test: CI machines have no Docker
# engine.
#   Usage: bash scripts/docker_check.sh [docker build options, e.g. --build-arg TORCH_INDEX=...]
#   Env:   DOCKER (default docker), IMAGE (default audiogan), HEALTHY_WITHIN seconds (default 180)
set -euo pipefail
cd "$(dirname "$0")/.."
docker=${DOCKER:-docker}
image=${IMAGE:-audiogan}
client=.venv/bin/audiogan-client
work=$(mktemp -d)
name=audiogan-check-$$
trap '$docker rm -f $name >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
step() { printf '%-34s' "$1"; }

step "build $image"
start=$SECONDS
$docker build -q -t "$image" "$@" . >/dev/null
echo "ok ($((SECONDS - start)) s, $($docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.2f GB", $1 / 1e9}'))"

step "run with --metrics-port appended"
$docker run -d --name $name -p 127.0.0.1::50051 -p 127.0.0.1::9464 "$image" --metrics-port 9464 >/dev/null
target=$($docker port $name 50051 | head -1)
metrics=$($docker port $name 9464 | head -1)
echo "ok (gRPC $target, metrics $metrics)"

healthy() {  # healthy CONTAINER: wait for its HEALTHCHECK to pass
    local start=$SECONDS
    until [ "$($docker inspect -f '{{.State.Health.Status}}' "$1")" = healthy ]; do
        if [ $((SECONDS - start)) -ge "${HEALTHY_WITHIN:-180}" ] \
            || [ "$($docker inspect -f '{{.State.Running}}' "$1")" != true ]; then
            echo "FAILED"; $docker logs "$1"; exit 1
        fi
        sleep 1
    done
    echo "ok (after $((SECONDS - start)) s)"
}
step "HEALTHCHECK says healthy"
healthy $name

call() {  # call LABEL CLIENT-ARGS...: one client command against the container, its last line as the result
    step "$1"; shift
    out=$($client --target "$target" "$@" 2>&1) || { echo "FAILED"; echo "$out"; $docker logs $name; exit 1; }
    echo "ok: $(tail -1 <<<"$out")"
}
.venv/bin/python - "$work/tune.wav" <<'EOF'
import sys, wave
import numpy as np
rate = 16000
t = np.arange(3 * rate) / rate
freq = 220 * 2 ** (np.floor(t * 2) / 12)  # a rising semitone every half second
pcm = (0.4 * np.sin(2 * np.pi * np.cumsum(freq) / rate) * 32767).astype("<i2")
with wave.open(sys.argv[1], "wb") as out:
    out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate), out.writeframes(pcm.tobytes())
EOF
step "voices"
$client --target "$target" voices >"$work/voices.json" || { echo "FAILED"; $docker logs $name; exit 1; }
.venv/bin/python -c 'import json, sys; d = json.load(open(sys.argv[1]))
print("ok:", ", ".join(v["name"] for v in d["voices"] + d["vocoders"]))' "$work/voices.json"
call "say" say "The image answers." -o "$work/say.wav"
call "say --stream" say --stream "It streams as well." -o "$work/stream.wav"
call "vocode" vocode audiogan/samples/demo_mel.npy -o "$work/vocode.wav"
call "notes" notes --instrument violin --pitch 60 67 -o "$work/notes"
call "interpolate" interpolate --from violin --to flute --steps 3 -o "$work/morph.wav"
call "convert" convert "$work/tune.wav" --to violin -o "$work/convert.wav"

step "metrics"
if command -v curl >/dev/null; then
    count=$(curl -fsS "http://$metrics/metrics" | grep -c '^audiogan_requests_total{.*code="OK"' || true)
    [ "$count" -gt 0 ] || { echo "FAILED: no audiogan_requests_total with code OK"; exit 1; }
    echo "ok ($count method/code series of audiogan_requests_total)"
else
    echo "skipped (no curl)"
fi

step "TLS, the health check trusting it"
if command -v openssl >/dev/null; then
    mkdir "$work/certs"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$work/certs/key.pem" -out "$work/certs/cert.pem" 2>/dev/null
    chmod a+r "$work/certs/key.pem"  # the server runs as uid 1000; a throwaway key
    $docker run -d --name $name-tls -p 127.0.0.1::50051 -v "$work/certs:/certs:ro" \
        -e AUDIOGAN_TLS_CA=/certs/cert.pem "$image" --tls-cert /certs/cert.pem --tls-key /certs/key.pem >/dev/null
    trap '$docker rm -f $name $name-tls >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    healthy $name-tls
    tls_port=$($docker port $name-tls 50051 | head -1 | cut -d: -f2)
    step "say over TLS"
    out=$($client --target "localhost:$tls_port" --tls-ca "$work/certs/cert.pem" say "Sealed." -o "$work/tls.wav" \
        2>&1) || { echo "FAILED"; echo "$out"; $docker logs $name-tls; exit 1; }
    echo "ok: $(tail -1 <<<"$out")"
    $docker rm -f $name-tls >/dev/null
else
    echo "skipped (no openssl)"
fi

step "docker stop (SIGTERM drains)"
start=$SECONDS
$docker stop $name >/dev/null
code=$($docker inspect -f '{{.State.ExitCode}}' $name)
$docker logs $name 2>&1 | grep -q "stopped" || { echo "FAILED: no 'stopped' in its log"; exit 1; }
[ "$code" = 0 ] || { echo "FAILED: exit code $code"; exit 1; }
echo "ok (exit 0 after $((SECONDS - start)) s)"
