#!/usr/bin/env bash
# The main job on a bundled example: move the zebra (examples/zebra, target cond/1.png).
# The default method (patch: seconds, no training) writes out/zebra.png; pass
# `--method gan+patch` to train the GAN's `preview` preset first (minutes on a 2-core CPU).
source "$(dirname "$0")/env.sh"
cd "$ROOT"
semantic-analogy run examples/zebra/img.png examples/zebra/label.png examples/zebra/cond/1.png \
    --out out/zebra.png --preset preview "$@"
echo "result: $ROOT/out/zebra.png"
