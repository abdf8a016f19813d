#!/usr/bin/env bash
# Creates (once) a Python virtual environment with torch (CPU), torchmetrics 1.9 and scikit-learn, for
# the metrics' oracle test, and prints the path of its python on the last line of stdout.
#
#   packages/metrics/scripts/metrics-venv.sh              # venv in .cache/metrics-venv (git-ignored)
#   FLINT_METRICS_VENV=/some/dir packages/metrics/scripts/metrics-venv.sh
#
# A venv that already has the three packages (e.g. one made for other peers) is used as it is.
# Exit codes: 0 ready; 2 python3 or its venv module is missing; 3 pip could not install the packages.
# On 2 and 3 the reason is printed on stderr; the oracle test prints it and skips.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
NAME="metrics-venv"
VENV="${FLINT_METRICS_VENV:-$ROOT/.cache/metrics-venv}"
WHAT="torch (CPU), torchmetrics==1.9.* and scikit-learn"
source "$ROOT/scripts/lib/python-venv.sh"

ready() {
  [ -x "$PY" ] && "$PY" -c "import torch, sklearn, torchmetrics; assert torchmetrics.__version__.startswith('1.9')" >/dev/null 2>&1
}

install() {
  pip_install 'torch==2.13.*' && pip_install 'torchmetrics==1.9.*' 'scikit-learn>=1.5'
}

python_venv_main
