#!/usr/bin/env bash
# The client's tests in a clean venv without torch (.venv-client), against a live server from .venv.
# Usage: bash scripts/test_client.sh   (after scripts/setup.sh dev; `make test` runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv-client/bin/python ] || { echo "test_client: creating .venv-client"; "$PY" -m venv .venv-client; }
.venv-client/bin/python -m pip install -q ./client pytest
# Not editable, and reinstalled each time, so the tests see the package exactly as users install it.
.venv-client/bin/python -m pip install -q --force-reinstall --no-deps ./client
echo "test_client: running client/tests in .venv-client (no torch)"
bash scripts/with_server.sh env AUDIOGAN_CLIENT_ONLY=1 .venv-client/bin/python -m pytest -q client/tests
