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
VENV="${FLINT_METRICS_VENV:-$ROOT/.cache/metrics-venv}"
PY="$VENV/bin/python"
CHECK="import torch, sklearn, torchmetrics; assert torchmetrics.__version__.startswith('1.9')"

ready() { [ -x "$PY" ] && "$PY" -c "$CHECK" >/dev/null 2>&1; }

if ready; then
  echo "$PY"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
# Two test processes may ask at once: one creates, the other waits.
exec 9>"$VENV.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

if ready; then
  echo "$PY"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "metrics-venv: python3 is not installed (needed to create $VENV)" >&2
  exit 2
fi
if [ ! -x "$PY" ]; then
  if ! python3 -m venv "$VENV" >"$VENV.log" 2>&1; then
    echo "metrics-venv: 'python3 -m venv $VENV' failed (is the python3-venv package installed?):" >&2
    tail -n 5 "$VENV.log" >&2
    rm -rf "$VENV"
    exit 2
  fi
fi

echo "metrics-venv: installing torch (CPU), torchmetrics 1.9 and scikit-learn into $VENV ..." >&2
pip() { "$PY" -m pip install --retries 0 --disable-pip-version-check --no-input "$@" >>"$VENV.log" 2>&1; }
if ! { pip --index-url https://download.pytorch.org/whl/cpu torch || pip torch; } ||
  ! pip 'torchmetrics==1.9.*' 'scikit-learn>=1.5' || ! ready; then
  echo "metrics-venv: pip could not install torch, torchmetrics==1.9.* and scikit-learn (log: $VENV.log):" >&2
  grep -E 'ERROR|No matching|Could not' "$VENV.log" | tail -n 3 >&2
  exit 3
fi
echo "$PY"
