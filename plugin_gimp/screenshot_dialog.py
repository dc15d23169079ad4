#!/usr/bin/env python3
"""Screenshot the plug-in's dialog from a real GIMP 3 run (for the README): docs/gimp_dialog.png.

    sudo .venv/bin/python plugin_gimp/screenshot_dialog.py [--out docs/gimp_dialog.png]

Starts Xvfb on this machine (listening on TCP so GIMP in the chroot reaches it), runs
the full GIMP in the prepared chroot (prepare_gimp_chroot.sh) with the tree example
as photo + label layers, opens Filters > Semantic Analogy... interactively, finds the
dialog with xwininfo, grabs the screen with GDK inside the chroot and crops it here.
Needs root, Xvfb and xwininfo (x11-utils) on this machine, Pillow in this Python.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gimp_chroot  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DIALOG_TITLE = "Semantic Analogy"
log = logging.getLogger("screenshot")

SCENE = r'''
import gi
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio
CFG = __CFG__
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(CFG["photo"]))
photo = image.get_layers()[0]
photo.set_name("photo")
group = Gimp.GroupLayer.new(image, "painting")
image.insert_layer(group, None, 0)
for path, name in ((CFG["labels"], "labels"), (CFG["target"], "target labels")):
    layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path))
    layer.set_name(name)
    image.insert_layer(layer, group, 0)
    layer.set_opacity(60.0)
Gimp.Display.new(image)
Gimp.displays_flush()
proc = Gimp.get_pdb().lookup_procedure("plug-in-semantic-analogy")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
config.set_property("image", image)
config.set_core_object_array("drawables", [photo])
if CFG.get("method"):
    config.set_property("method", CFG["method"])
proc.run(config)
'''

GRAB = r'''
import sys, gi
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk
x, y, w, h = map(int, sys.argv[2:6])
root = Gdk.get_default_root_window()
pixbuf = Gdk.pixbuf_get_from_window(root, x, y, w, h)
pixbuf.savev(sys.argv[1], "png", [], [])
'''


def free_display() -> int:
    for n in range(90, 140):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number between :90 and :139")


def find_window(display: str, title: str) -> tuple[int, int, int, int] | None:
    done = subprocess.run(["xwininfo", "-display", display, "-name", title], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    values = {k: int(v) for k, v in re.findall(r"(Absolute upper-left [XY]|Width|Height):\s+(-?\d+)", done.stdout)}
    if len(values) < 4 or values["Width"] < 50:
        return None
    return values["Absolute upper-left X"], values["Absolute upper-left Y"], values["Width"], values["Height"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "gimp_dialog.png")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the dialog")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between the dialog appearing and the grab")
    parser.add_argument("--margin", type=int, default=0, help="pixels around the dialog to keep")
    parser.add_argument("--method", choices=("gan", "patch", "gan+patch"),
                        help="method shown in the dialog (default: the plug-in's); patch greys the training settings out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = gimp_chroot.not_ready_reason()
    if reason:
        log.error("cannot take the screenshot: %s", reason)
        return 2
    for tool in ("Xvfb", "xwininfo"):
        if shutil.which(tool) is None:
            log.error("cannot take the screenshot: %s is not installed on this machine", tool)
            return 2

    n = free_display()
    display = f":{n}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x860x24", "-listen", "tcp", "-ac", "-nolisten",
                             "unix"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    gimp = None
    with gimp_chroot.GimpSandbox(prefix="sa-gimp-shot-") as sandbox:
        try:
            time.sleep(1.0)
            data = sandbox.path / "data"
            data.mkdir()
            example = REPO / "examples" / "tree"
            shutil.copy(example / "img.png", data / "photo.png")
            shutil.copy(example / "label.png", data / "labels.png")
            shutil.copy(example / "cond" / "1.png", data / "target.png")
            sandbox.install_plugin()
            cfg = {k: sandbox.inside(data / f"{k}.png") for k in ("photo", "labels", "target")}
            if args.method:  # (the scene is Python source: a JSON null would not parse there)
                cfg["method"] = args.method
            env = {"DISPLAY": f"127.0.0.1:{n}", "GDK_BACKEND": "x11", "NO_AT_BRIDGE": "1"}
            gimp = sandbox.popen_batch(SCENE.replace("__CFG__", json.dumps(cfg)), gui=True, env=env)
            deadline = time.monotonic() + args.timeout
            box = None
            while time.monotonic() < deadline and gimp.poll() is None:
                box = find_window(f"127.0.0.1:{n}", DIALOG_TITLE)
                if box:
                    break
                time.sleep(1.0)
            if not box:
                output = gimp.stdout.read() if gimp.poll() is not None else "(GIMP still running)"
                log.error("the dialog did not appear within %.0f s; GIMP said:\n%s", args.timeout, output[-3000:])
                return 1
            time.sleep(args.settle)  # let GTK finish drawing the dialog (layer previews load lazily)
            box = find_window(f"127.0.0.1:{n}", DIALOG_TITLE) or box
            x, y, w, h = box
            m = args.margin
            shot = sandbox.path / "shot.png"
            grab = sandbox.path / "grab.py"
            grab.write_text(GRAB)
            subprocess.run(
                sandbox.command(["python3", sandbox.inside(grab), sandbox.inside(shot),
                                 str(max(0, x - m)), str(max(0, y - m)), str(w + 2 * m), str(h + 2 * m)], env),
                check=True, capture_output=True, text=True, timeout=60,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            Image.open(shot).convert("RGB").save(args.out, optimize=True)
            log.info("wrote %s (%dx%d, dialog at %d,%d)", args.out, w, h, x, y)
            return 0
        finally:
            if gimp is not None:
                gimp_chroot.kill_group(gimp)
                gimp.wait()
            gimp_chroot.kill_group(xvfb)
            xvfb.wait()


if __name__ == "__main__":
    sys.exit(main())
