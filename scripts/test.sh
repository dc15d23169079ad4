#!/usr/bin/env bash
# The test suite (the Krita and GIMP end-to-end tests skip, saying why, when the editors are absent).
source "$(dirname "$0")/env.sh"
cd "$ROOT"
exec "$PY" -m pytest "$@"
