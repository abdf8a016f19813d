# Sourced by scripts/*-venv.sh: creates (once) a Python virtual environment for a test that compares
# Flint with a Python package, and prints the path of its python on the last line of stdout.
#
# The sourcing script sets NAME (for messages), VENV (the folder), WHAT (what it installs, for
# messages) and defines two functions: `ready` (exit status 0 when "$PY" has what is needed) and
# `install` (pip-installs it with `pip_install ...`), then calls `python_venv_main`.
# Exit codes: 0 ready; 2 python3 or its venv module is missing; 3 pip could not install $WHAT.
# On 2 and 3 the reason is printed on stderr; the tests print it and skip.

PY="$VENV/bin/python"

pip_install() {
  "$PY" -m pip install --retries 0 --disable-pip-version-check --no-input "$@" >>"$VENV.log" 2>&1
}

python_venv_main() {
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
    echo "$NAME: python3 is not installed (needed to create $VENV)" >&2
    exit 2
  fi
  if [ ! -x "$PY" ]; then
    # Never delete a folder this script did not create (a venv given by the variable may be shared).
    if [ -e "$VENV" ] && [ -n "$(ls -A "$VENV" 2>/dev/null)" ]; then
      echo "$NAME: $VENV exists and is not a Python venv; point the variable elsewhere" >&2
      exit 2
    fi
    if ! python3 -m venv "$VENV" >"$VENV.log" 2>&1; then
      echo "$NAME: 'python3 -m venv $VENV' failed (is the python3-venv package installed?):" >&2
      tail -n 5 "$VENV.log" >&2
      rm -rf "$VENV"
      exit 2
    fi
  fi
  echo "$NAME: installing $WHAT into $VENV ..." >&2
  if ! install || ! ready; then
    echo "$NAME: pip could not install $WHAT (log: $VENV.log):" >&2
    grep -E 'ERROR|No matching|Could not' "$VENV.log" | tail -n 3 >&2
    exit 3
  fi
  echo "$PY"
}
