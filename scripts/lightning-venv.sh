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
VENV="${FLINT_LIGHTNING_VENV:-$ROOT/.cache/lightning-venv}"
PY="$VENV/bin/python"
# Reads the installed versions without importing torch (which takes seconds).
CHECK="import sys; from importlib.metadata import version as v; sys.exit(0 if v('torch').startswith('2.13') and v('lightning').startswith('2.6') else 1)"

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
  echo "lightning-venv: python3 is not installed (needed to create $VENV)" >&2
  exit 2
fi

if [ ! -x "$PY" ]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >"$VENV.log" 2>&1; then
    echo "lightning-venv: 'python3 -m venv $VENV' failed (is the python3-venv package installed?):" >&2
    tail -n 5 "$VENV.log" >&2
    rm -rf "$VENV"
    exit 2
  fi
fi

pip_install() {
  "$PY" -m pip install --retries 0 --disable-pip-version-check --no-input "$@" >>"$VENV.log" 2>&1
}

echo "lightning-venv: installing torch==2.13.* (CPU) and lightning==2.6.* into $VENV ..." >&2
if ! pip_install --extra-index-url https://download.pytorch.org/whl/cpu 'torch==2.13.*' || ! pip_install 'lightning==2.6.*' || ! ready; then
  echo "lightning-venv: pip could not install torch==2.13.* (CPU) and lightning==2.6.* (log: $VENV.log):" >&2
  grep -E 'ERROR|No matching|Could not' "$VENV.log" | tail -n 3 >&2
  exit 3
fi

echo "$PY"
