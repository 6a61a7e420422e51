#!/usr/bin/env bash
# Run a command beside a fresh audiogan-server (bundled models, a free loopback port), then stop the server.
# The command sees AUDIOGAN_TARGET=127.0.0.1:PORT.   Usage: bash scripts/with_server.sh CMD [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
.venv/bin/audiogan-server --port 0 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 240); do
    grep -q "serving:" "$log" && break
    kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.5
done
grep -q "serving:" "$log" || { echo "with_server: the server did not start"; cat "$log"; exit 1; }
port=$(grep -o "listening on [^ ]*" "$log" | grep -o "[0-9]*$")
echo "with_server: audiogan-server on 127.0.0.1:$port" >&2
AUDIOGAN_TARGET="127.0.0.1:$port" "$@"
