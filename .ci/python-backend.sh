#!/usr/bin/env bash
# The Python backend example (examples/backend-python) against a real
# `cds serve`: builds the debug binaries it needs (target/debug/cds, the
# test certificate tool), makes a venv with pinned packages, runs pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build -p cds-cli --locked
cargo build -p cds-tests --example test_pki --locked

venv="${CDS_PY_VENV:-target/python-backend-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    grpcio==1.76.0 grpcio-tools==1.76.0 grpcio-reflection==1.76.0 pytest==8.4.2

CDS_BIN="$PWD/target/debug/cds" \
CDS_TEST_PKI_BIN="$PWD/target/debug/examples/test_pki" \
    "$venv/bin/python" -m pytest -q examples/backend-python/tests "$@"
