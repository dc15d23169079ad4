#!/usr/bin/env python3
"""Install or uninstall the Semantic Analogy plug-in in GIMP 3's user plug-in folder.

    python plugin_gimp/install.py                 # install into the detected GIMP 3 profile
    python plugin_gimp/install.py --uninstall
    python plugin_gimp/install.py --plug-in-dir DIR   # any plug-ins folder (tests, portable GIMP)
    python plugin_gimp/install.py --vendor-deps --python-version 3.12 --platform win_amd64

GIMP 3 loads only an executable NAME/NAME.py inside a plug-ins folder; the
protocol package and the editor-side core shared with the Krita plug-in are
copied beside it as NAME/sa_shared/protocol and NAME/sa_shared/plugin_core
(relative imports only, so they work under that name; the core finds its
sibling protocol as in the Krita zip). Runs on any Python 3.8+ with the
standard library; --vendor-deps also needs pip.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

PLUGIN_NAME = "semantic_analogy_gimp"
BUNDLED = "sa_shared"  # the package holding the bundled protocol/ and plugin_core/
VENDOR = "vendor"
DEPENDENCIES = ("pyzmq", "msgpack")
GIMP_VERSION = "3.0"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "tests", "test_*")
# The protocol's command-line client side (commands.py, files.py): the plug-in never runs it.
PROTOCOL_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "tests", "test_*", "commands.py", "files.py")

sys.path.insert(0, str(REPO / "scripts"))
import engine_wheel  # noqa: E402  (the engine wheel the plug-in carries)

log = logging.getLogger("install")


class InstallError(Exception):
    """Something the user must fix; the message says what."""


def profile_dirs(system: str, env: Mapping[str, str], home: Path, version: str = GIMP_VERSION) -> list[Path]:
    """GIMP 3 profile folders to consider, most likely first (GIMP3_DIRECTORY overrides all)."""
    if env.get("GIMP3_DIRECTORY"):
        return [Path(env["GIMP3_DIRECTORY"])]
    if system == "Windows":
        appdata = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
        return [appdata / "GIMP" / version]
    if system == "Darwin":
        return [home / "Library" / "Application Support" / "GIMP" / version]
    config = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    return [
        config / "GIMP" / version,
        home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / version,  # Flatpak
        home / "snap" / "gimp" / "current" / ".config" / "GIMP" / version,  # Snap
    ]


def choose_plug_in_dir(candidates: Sequence[Path], exists=os.path.isdir) -> Path:
    """plug-ins/ of the first profile that exists (GIMP ran once), else of the first candidate."""
    for profile in candidates:
        if exists(profile):
            return profile / "plug-ins"
    return candidates[0] / "plug-ins"


def vendor_command(
    python: str, target: Path, python_version: Optional[str] = None, platform_tag: Optional[str] = None
) -> list[str]:
    """The pip command that puts pyzmq and msgpack for GIMP's Python into the plug-in's vendor/ folder.

    With a Python version and platform tag, pip fetches the binary wheels made for
    GIMP's bundled Python (Windows, macOS) instead of the interpreter running this.
    """
    cmd = [python, "-m", "pip", "install", "--upgrade", "--target", str(target)]
    if python_version or platform_tag:
        cmd += ["--only-binary=:all:", "--implementation", "cp"]
        if python_version:
            cmd += ["--python-version", python_version]
        if platform_tag:
            cmd += ["--platform", platform_tag]
    return cmd + list(DEPENDENCIES)


def check_sources(repo: Path) -> tuple[Path, Path, Path]:
    plugin = repo / "plugin_gimp" / PLUGIN_NAME
    protocol = repo / "protocol"
    core = repo / "plugin_core"
    if not (plugin / f"{PLUGIN_NAME}.py").is_file():
        raise InstallError(f"{plugin / (PLUGIN_NAME + '.py')} is missing: run this from a Semantic Analogy checkout.")
    if not (protocol / "client.py").is_file():
        raise InstallError(
            f"{protocol} has no client.py: the protocol package is missing from this checkout, "
            "so the plug-in could not talk to the engine."
        )
    if not (core / "bundle.py").is_file():
        raise InstallError(f"{core} has no bundle.py: the shared plug-in core is missing from this checkout.")
    return plugin, protocol, core


def install(plug_in_dir: Path, repo: Path = REPO) -> Path:
    """Copy the plug-in, the protocol and the shared core into plug_in_dir/NAME; returns the plug-in file.

    A previous installation is replaced, except its vendor/ folder (wheels that
    took a download to get).
    """
    plugin, protocol, core = check_sources(repo)
    dest = plug_in_dir / PLUGIN_NAME
    staging = plug_in_dir / f".{PLUGIN_NAME}.new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(plugin, staging, ignore=IGNORED)
    shutil.copytree(protocol, staging / BUNDLED / "protocol", ignore=PROTOCOL_IGNORED)
    shutil.copytree(core, staging / BUNDLED / "plugin_core", ignore=IGNORED)
    try:  # what "Semantic Analogy Engine… › Install" installs
        engine_wheel.build(staging / "engine_wheel", repo)
    except engine_wheel.WheelError as e:
        raise InstallError(str(e)) from e
    (staging / BUNDLED / "__init__.py").write_text(
        '"""What the Semantic Analogy plug-in carries: the protocol and the shared plug-in core."""\n',
        encoding="utf-8")
    if (dest / VENDOR).is_dir():
        shutil.move(str(dest / VENDOR), str(staging / VENDOR))
    main = staging / f"{PLUGIN_NAME}.py"
    main.chmod(main.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest / main.name


def uninstall(plug_in_dir: Path) -> bool:
    """Remove plug_in_dir/NAME; False when it was not installed there."""
    dest = plug_in_dir / PLUGIN_NAME
    if not dest.exists():
        return False
    shutil.rmtree(dest)
    return True


def vendor_deps(plug_in_dir: Path, python_version: Optional[str], platform_tag: Optional[str]) -> None:
    target = plug_in_dir / PLUGIN_NAME / VENDOR
    if not target.parent.is_dir():
        raise InstallError(f"{target.parent} does not exist: install the plug-in first.")
    cmd = vendor_command(sys.executable, target, python_version, platform_tag)
    log.info("running: %s", " ".join(cmd))
    if subprocess.call(cmd) != 0:
        raise InstallError(
            "pip could not fetch pyzmq and msgpack (see its output above). Check the network, "
            "the --python-version (GIMP's Python, shown in the plug-in's error message) and the --platform tag."
        )


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--uninstall", action="store_true", help="remove the plug-in instead of installing it")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--plug-in-dir", type=Path, help="a GIMP plug-ins folder (default: the detected profile's)")
    where.add_argument("--gimp-dir", type=Path, help="a GIMP 3 profile folder (the plug-in goes to its plug-ins/)")
    p.add_argument("--gimp-version", default=GIMP_VERSION, help="GIMP profile version folder (default %(default)s)")
    p.add_argument(
        "--vendor-deps",
        action="store_true",
        help="also pip-install pyzmq and msgpack into the plug-in's vendor/ folder\n"
        "(for GIMP's bundled Python on Windows/macOS, or a Linux Python without them)",
    )
    p.add_argument("--python-version", help="GIMP's Python version for --vendor-deps, e.g. 3.12")
    p.add_argument("--platform", dest="platform_tag", help="pip platform tag for --vendor-deps, e.g. win_amd64")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if args.plug_in_dir:
        plug_in_dir = args.plug_in_dir
    elif args.gimp_dir:
        plug_in_dir = args.gimp_dir / "plug-ins"
    else:
        plug_in_dir = choose_plug_in_dir(profile_dirs(platform.system(), os.environ, Path.home(), args.gimp_version))
    try:
        if args.uninstall:
            if uninstall(plug_in_dir):
                log.info("removed %s", plug_in_dir / PLUGIN_NAME)
            else:
                log.info("nothing to remove: %s does not exist", plug_in_dir / PLUGIN_NAME)
            return 0
        plug_in_dir.mkdir(parents=True, exist_ok=True)
        path = install(plug_in_dir)
        log.info("installed %s", path)
        if args.vendor_deps:
            vendor_deps(plug_in_dir, args.python_version, args.platform_tag)
            log.info("pyzmq and msgpack are in %s", path.parent / VENDOR)
        log.info("restart GIMP, start the engine (.venv/bin/semantic-analogy serve, in the Semantic Analogy folder), "
                 "then use Filters > Semantic Analogy...")
        return 0
    except (InstallError, OSError) as exc:
        log.error("error: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
