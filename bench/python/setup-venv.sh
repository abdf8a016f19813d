#!/usr/bin/env bash
# Creates (once) the Python virtual environment of the benchmark's Python peers and prints the path of
# its python on the last line of stdout.
#
#   bench/python/setup-venv.sh                 # venv in .cache/bench-venv (git-ignored)
#   FLINT_BENCH_VENV=/some/dir bench/python/setup-venv.sh
#
# Each peer's packages are installed on their own, so that a peer pip cannot get is skipped while the
# others still run:
#   torch      torch==2.13.* (CPU build)           -> peer 'torch'
#   lightning  lightning==2.6.* (needs torch)      -> peer 'lightning'
#   keras      keras==3.* + tensorflow-cpu==2.21.* -> peer 'keras'
# The outcome of each group is written to $VENV/flint-peers.json ({"torch": "ok" | "<why not>", ...});
# a group that failed is tried again on the next call.
# Exit codes: 0 venv ready (some groups may have failed: see flint-peers.json); 2 no python3/venv.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FLINT_BENCH_VENV:-$ROOT/.cache/bench-venv}"
PY="$VENV/bin/python"

mkdir -p "$(dirname "$VENV")"
# Two processes may ask at once: one installs, the other waits.
exec 9>"$VENV.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "bench-venv: python3 is not installed (needed to create $VENV)" >&2
  exit 2
fi
if [ ! -x "$PY" ]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >"$VENV.log" 2>&1; then
    echo "bench-venv: 'python3 -m venv $VENV' failed (is the python3-venv package installed?):" >&2
    tail -n 5 "$VENV.log" >&2
    rm -rf "$VENV"
    exit 2
  fi
fi

LOG="$VENV/install.log"
STATUS="$VENV/flint-peers.json"

have() { "$PY" -c "$1" >/dev/null 2>&1; }

# group name, python check that says it is installed, pip arguments
install_group() {
  local name="$1" check="$2"; shift 2
  if have "$check"; then echo "ok"; return; fi
  echo "bench-venv: installing $name ($*) into $VENV ..." >&2
  if "$PY" -m pip install --retries 0 --disable-pip-version-check --no-input "$@" >>"$LOG" 2>&1 && have "$check"; then
    echo "ok"
  else
    local why
    why="$(grep -E 'ERROR|No matching|Could not' "$LOG" | tail -n 1 | tr -d '"\\' | cut -c1-300)"
    echo "bench-venv: pip could not install $name: ${why:-see $LOG}" >&2
    echo "pip could not install $*: ${why:-see $LOG}"
  fi
}

torch_status="$(install_group torch "import torch; assert torch.__version__.startswith('2.13')" 'torch==2.13.*' numpy)"
if [ "$torch_status" = ok ]; then
  lightning_status="$(install_group lightning "import lightning; assert lightning.__version__.startswith('2.6')" 'lightning==2.6.*')"
else
  lightning_status="needs torch, which is missing ($torch_status)"
fi
keras_status="$(install_group keras "import os; os.environ['KERAS_BACKEND']='tensorflow'; import keras, tensorflow as tf; assert keras.__version__.startswith('3.') and tf.__version__.startswith('2.21')" 'tensorflow-cpu==2.21.*' 'keras==3.*')"

printf '{"torch": "%s", "lightning": "%s", "keras": "%s"}\n' "$torch_status" "$lightning_status" "$keras_status" >"$STATUS"
cat "$STATUS" >&2
echo "$PY"
