#!/bin/bash
# A server and a client started at the same moment: `audiogan-server` on its bundled models and, at once,
# `audiogan-client say` with its defaults (3 retries from 0.2 s, 120 s deadline). Prints the client's exit
# status, how long it took and the size of the WAV it wrote. Run from the repository root:
#   PYTHONPATH=.:server:client bash benchmarks/say_together.sh [ROUNDS]
PY=${PY:-python}
for _ in $(seq "${1:-3}"); do
  port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  out=$(mktemp -d)
  $PY -m audiogan_server.main --port "$port" 2>"$out/server.log" &
  server=$!
  start=$(date +%s.%N)
  $PY -m audiogan_client.cli --target "127.0.0.1:$port" say "Hello there." -o "$out/hello.wav" 2>"$out/client.err"
  status=$?
  end=$(date +%s.%N)
  kill -TERM "$server"
  wait "$server"
  printf 'client exit %s after %.2f s, wav %s bytes: %s\n' "$status" "$(echo "$end - $start" | bc)" \
    "$(stat -c %s "$out/hello.wav" 2>/dev/null || echo none)" "$(tail -n 1 "$out/client.err")"
  rm -rf "$out"
done
