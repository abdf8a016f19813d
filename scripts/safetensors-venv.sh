#!/usr/bin/env bash
# Creates (once) a Python virtual environment with torch (CPU) and safetensors, for the export test
# that loads Flint's safetensors into PyTorch (and the reverse), and prints the path of its python on
# the last line of stdout.
#
#   scripts/safetensors-venv.sh              # venv in .cache/safetensors-venv (git-ignored)
#   FLINT_SAFETENSORS_VENV=/some/dir scripts/safetensors-venv.sh
#
# A venv that already has both packages (e.g. one made for other peers) is used as it is.
# Exit codes: 0 ready; 2 python3 or its venv module is missing; 3 pip could not install the packages.
# On 2 and 3 the reason is printed on stderr; the test prints it and skips.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="safetensors-venv"
VENV="${FLINT_SAFETENSORS_VENV:-$ROOT/.cache/safetensors-venv}"
WHAT="torch (CPU) and safetensors"
source "$ROOT/scripts/lib/python-venv.sh"

ready() {
  [ -x "$PY" ] && "$PY" -c "import torch, numpy, safetensors.torch" >/dev/null 2>&1
}

install() {
  pip_install 'torch==2.13.*' 'safetensors>=0.4' numpy
}

python_venv_main
