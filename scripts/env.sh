# Sourced by the other scripts: create .venv with the project installed, if missing.
# torch/torchvision are pinned to the builds this project is tested with; pip takes
# them from a local wheel cache when the machine has one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SEMANTIC_ANALOGY_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
if ! "$PY" -c "import semantic_analogy.engine.api, semantic_analogy.plugin_core, torch, pytest" >/dev/null 2>&1; then
    echo "setting up $VENV (first run only; PyTorch is large, this takes a few minutes)..." >&2
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
    "$PY" -m pip install -q -e "$ROOT[test]"
    # An editable install leaves our sources uncompiled; where PYTHONDONTWRITEBYTECODE is set
    # (CI, containers) every command would compile them again (~0.1 s of each run's start-up).
    "$PY" -m compileall -q "$ROOT/semantic_analogy" "$ROOT/engine" "$ROOT/daemon" "$ROOT/protocol" "$ROOT/plugin_core" >/dev/null
fi
export PATH="$VENV/bin:$PATH"
