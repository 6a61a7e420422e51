# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
.PHONY: setup setup-dev demo test lint bench-speed bench-quality clean

setup:
	bash scripts/setup.sh

setup-dev:
	bash scripts/setup.sh dev

demo: setup
	.venv/bin/audiogan vocode -o demo_vocoded.wav

test: setup-dev
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

lint: setup-dev
	.venv/bin/ruff check .

bench-speed: setup-dev
	.venv/bin/python -m benchmarks.vocoder_speed

bench-quality: setup-dev
	.venv/bin/python -m benchmarks.vocoder_quality

clean:
	rm -rf .cache runs demo_vocoded.wav .pytest_cache
