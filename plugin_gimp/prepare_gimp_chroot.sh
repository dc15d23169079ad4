#!/usr/bin/env bash
# Prepare a Debian 13 ("trixie") chroot with GIMP 3.0 and its Python plug-in support, for the
# end-to-end test (tests/test_gimp_e2e.py) and the dialog screenshot. Debian 12 only has GIMP 2.10.
#
#   sudo plugin_gimp/prepare_gimp_chroot.sh           # prepare (minutes, ~1 GB); no-op when ready
#   plugin_gimp/prepare_gimp_chroot.sh --check        # exit 0 when ready, else say why (exit 1)
#
# Environment: SA_GIMP_CHROOT (default /var/cache/semantic-analogy/trixie, outside the repository),
# SA_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Exit status: 0 ready; 1 not ready (--check); 2 cannot prepare (not root, no debootstrap, no registry).
set -euo pipefail

ROOT="${SA_GIMP_CHROOT:-/var/cache/semantic-analogy/trixie}"
MIRROR="${SA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 python3-zmq python3-msgpack"
MARKER="$ROOT/.semantic-analogy-gimp-ready"

say() { echo "prepare_gimp_chroot: $*" >&2; }
fail() { say "$*"; exit 2; }

# Ready = GIMP 3 and the plug-in's Python modules work inside the chroot. Needs root (chroot).
is_ready() {
    [ -x "$ROOT/usr/bin/gimp-console-3.0" ] || return 1
    chroot "$ROOT" /usr/bin/python3 -c '
import gi, zmq, msgpack
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp
' >/dev/null 2>&1
}

if [ "${1:-}" = "--check" ]; then
    if [ -f "$MARKER" ] && [ -x "$ROOT/usr/bin/gimp-console-3.0" ]; then
        exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
        say "the GIMP chroot at $ROOT is not marked ready, and checking it needs root"
        exit 1
    fi
    if is_ready; then
        echo "$PACKAGES" >"$MARKER"
        exit 0
    fi
    say "no ready GIMP 3 chroot at $ROOT: run plugin_gimp/prepare_gimp_chroot.sh as root (needs the Debian registry)"
    exit 1
fi
[ $# -eq 0 ] || fail "unknown argument '$1' (usage: prepare_gimp_chroot.sh [--check])"

[ "$(id -u)" = 0 ] || fail "must run as root (debootstrap and chroot need it): sudo $0"

mkdir -p "$(dirname "$ROOT")"
# One preparation at a time: a second caller waits for the first, then finds the marker.
exec 9>"$ROOT.lock"
flock 9

if [ -f "$MARKER" ]; then
    say "ready (marker $MARKER)"
    exit 0
fi
if is_ready; then
    echo "$PACKAGES" >"$MARKER"
    say "ready (found a working chroot at $ROOT)"
    exit 0
fi

if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap on this machine"
        DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >&2 \
            || fail "cannot install debootstrap (apt-get install debootstrap failed: no access to the package registry?)"
    fi
    # A half-made chroot from an interrupted run still has debootstrap's work folder: start over.
    if [ -d "$ROOT/debootstrap" ]; then
        say "removing the interrupted debootstrap at $ROOT"
        rm -rf --one-file-system "$ROOT"
    fi
    say "debootstrap trixie into $ROOT from $MIRROR (about ten minutes)"
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >&2 \
        || fail "debootstrap failed: cannot reach the Debian registry at $MIRROR? (see the output above)"
fi

say "installing $PACKAGES in the chroot"
chroot "$ROOT" /bin/bash -c "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES" >&2 \
    || fail "apt-get in the chroot failed: cannot reach the Debian registry at $MIRROR? (see the output above)"
chroot "$ROOT" apt-get clean >&2 || true

is_ready || fail "the packages are installed but GIMP's Python modules do not import in $ROOT"
echo "$PACKAGES" >"$MARKER"
say "ready: $ROOT"
