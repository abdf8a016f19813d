#!/usr/bin/env bash
# Creates (once) a Python virtual environment with torch (CPU), for the layers' oracle test
# (packages/core/src/layers/oracle.test.ts), and prints the path of its python on the last line of stdout.
#
#   packages/core/scripts/torch-venv.sh              # venv in .cache/torch-venv (git-ignored)
#   FLINT_TORCH_VENV=/some/dir packages/core/scripts/torch-venv.sh
#
# A venv that already has torch (e.g. one made for other peers) is used as it is.
# Exit codes: 0 ready; 2 python3 or its venv module is missing; 3 pip could not install torch.
# On 2 and 3 the reason is printed on stderr; the oracle test prints it and skips.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
NAME="torch-venv"
VENV="${FLINT_TORCH_VENV:-$ROOT/.cache/torch-venv}"
WHAT="torch==2.13.* (CPU)"
source "$ROOT/scripts/lib/python-venv.sh"

ready() {
  [ -x "$PY" ] && "$PY" -c "import torch" >/dev/null 2>&1
}

install() {
  pip_install 'torch==2.13.*'
}

python_venv_main
