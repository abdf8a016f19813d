#!/usr/bin/env bash
# Creates (once) a Python virtual environment with the real PyTorch Lightning 2.6 and torch 2.13 (CPU
# build), for the differential test packages/trainer/src/parity/parity.test.ts, and prints the path
# of its python on the last line of stdout.
#
#   scripts/lightning-venv.sh                  # venv in .cache/lightning-venv (git-ignored)
#   FLINT_LIGHTNING_VENV=/some/dir scripts/lightning-venv.sh
#
# Exit codes: 0 ready; 2 python3 or its venv module is missing; 3 pip could not install torch or
# lightning. On 2 and 3 the reason is printed on stderr; the parity test prints it and skips.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="lightning-venv"
VENV="${FLINT_LIGHTNING_VENV:-$ROOT/.cache/lightning-venv}"
WHAT="torch==2.13.* (CPU) and lightning==2.6.*"
source "$ROOT/scripts/lib/python-venv.sh"

# Reads the installed versions without importing torch (which takes seconds).
ready() {
  [ -x "$PY" ] && "$PY" -c "import sys; from importlib.metadata import version as v; sys.exit(0 if v('torch').startswith('2.13') and v('lightning').startswith('2.6') else 1)" >/dev/null 2>&1
}

install() {
  pip_install 'torch==2.13.*' && pip_install 'lightning==2.6.*'
}

python_venv_main
