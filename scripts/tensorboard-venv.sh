#!/usr/bin/env bash
# Creates (once) a Python virtual environment with the real TensorBoard 2.21.0, for the loggers'
# interop test, and prints the path of its python on the last line of stdout.
#
#   scripts/tensorboard-venv.sh            # venv in .cache/tensorboard-venv (git-ignored)
#   FLINT_TB_VENV=/some/dir scripts/tensorboard-venv.sh
#
# A venv that already has tensorboard 2.21.0 (e.g. one made for other peers) is used as it is; an
# existing venv without it gets it installed; a folder this script did not create is never deleted.
#
# Exit codes: 0 ready; 2 python3 or its venv module is missing; 3 pip could not install tensorboard.
# On 2 and 3 the reason is printed on stderr; the interop test prints it and skips.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLINT_TB_VENV:-$ROOT/.cache/tensorboard-venv}"
TB_VERSION="2.21.0"
MARKER="$VENV/.flint-tensorboard-$TB_VERSION"

ready() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import tensorboard, sys; sys.exit(0 if tensorboard.__version__ == '$TB_VERSION' else 1)" 2>/dev/null
}

if ready; then
  echo "$VENV/bin/python"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
# Two test processes may ask at once: one creates, the other waits.
exec 9>"$VENV.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

if ready; then
  echo "$VENV/bin/python"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "tensorboard-venv: python3 is not installed (needed to create $VENV)" >&2
  exit 2
fi

created=0
if [ ! -x "$VENV/bin/python" ]; then
  if [ -e "$VENV" ] && [ -n "$(ls -A "$VENV" 2>/dev/null)" ]; then
    echo "tensorboard-venv: $VENV exists and is not a Python venv; point FLINT_TB_VENV elsewhere" >&2
    exit 2
  fi
  created=1
  if ! python3 -m venv "$VENV" >"$VENV.log" 2>&1; then
    echo "tensorboard-venv: 'python3 -m venv $VENV' failed (is the python3-venv package installed?):" >&2
    tail -n 5 "$VENV.log" >&2
    rm -rf "$VENV"
    exit 2
  fi
fi

echo "tensorboard-venv: installing tensorboard==$TB_VERSION into $VENV ..." >&2
if ! "$VENV/bin/python" -m pip install --retries 0 --disable-pip-version-check --no-input "tensorboard==$TB_VERSION" >>"$VENV.log" 2>&1; then
  echo "tensorboard-venv: pip could not install tensorboard==$TB_VERSION (log: $VENV.log):" >&2
  tail -n 5 "$VENV.log" >&2
  [ "$created" = 1 ] && rm -rf "$VENV"
  exit 3
fi

touch "$MARKER"
echo "$VENV/bin/python"
