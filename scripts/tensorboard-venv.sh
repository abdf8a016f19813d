#!/usr/bin/env bash
# Creates (once) a Python virtual environment with the real TensorBoard 2.21.0, for the loggers'
# interop test, and prints the path of its python on the last line of stdout.
#
#   scripts/tensorboard-venv.sh            # venv in .cache/tensorboard-venv (git-ignored)
#   FLINT_TB_VENV=/some/dir scripts/tensorboard-venv.sh
#
# Exit codes: 0 ready; 2 python3 or its venv module is missing; 3 pip could not install tensorboard.
# On 2 and 3 the reason is printed on stderr; the interop test prints it and skips.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="tensorboard-venv"
VENV="${FLINT_TB_VENV:-$ROOT/.cache/tensorboard-venv}"
TB_VERSION="2.21.0"
WHAT="tensorboard==$TB_VERSION"
source "$ROOT/scripts/lib/python-venv.sh"

ready() {
  [ -x "$PY" ] && "$PY" -c "import tensorboard, sys; sys.exit(0 if tensorboard.__version__ == '$TB_VERSION' else 1)" >/dev/null 2>&1
}

install() {
  pip_install "tensorboard==$TB_VERSION"
}

python_venv_main
