# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
.PHONY: setup setup-dev demo serve test test-client proto lint bench-speed bench-quality bench-server clean

setup:
	bash scripts/setup.sh

setup-dev:
	bash scripts/setup.sh dev

# Start the server on the bundled models, have the torch-free client stream a sentence of speech from it, stop.
DEMO_TEXT ?= Hello! This is audiogan, speaking through its own server. The train leaves at 10:30 a.m. from platform 2.
demo: setup
	bash scripts/with_server.sh sh -c '.venv/bin/audiogan-client --target $$AUDIOGAN_TARGET say --stream "$(DEMO_TEXT)" -o demo_server.wav'

# A server that stays up (Ctrl-C or SIGTERM drains it): 127.0.0.1:50051, Prometheus on :9464.
serve: setup
	.venv/bin/audiogan-server --metrics-port 9464

# numba (pYIN, phase integration, alignment search) caches compiled code per checkout, not in the shared venv.
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba

test: setup-dev
	.venv/bin/ruff check .
	if [ -x .venv/bin/hadolint ]; then .venv/bin/hadolint Dockerfile; fi
	.venv/bin/python -m pytest -q
	bash scripts/test_client.sh

test-client: setup-dev
	bash scripts/test_client.sh

# Regenerate the gRPC stubs in client/ from proto/ (tests fail while they are stale).
proto: setup-dev
	.venv/bin/python scripts/gen_proto.py

lint: setup-dev
	.venv/bin/ruff check .
	if [ -x .venv/bin/hadolint ]; then .venv/bin/hadolint Dockerfile; fi

bench-speed: setup-dev
	.venv/bin/python -m benchmarks.vocoder_speed

bench-quality: setup-dev
	.venv/bin/python -m benchmarks.vocoder_quality

bench-server: setup-dev
	.venv/bin/python -m benchmarks.server_load

clean:
	rm -rf .cache runs demo_vocoded.wav demo_server.wav .pytest_cache .venv-client
