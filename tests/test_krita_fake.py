"""Krita plugin against a fake Krita (tests/fake_krita): layer reading, result layers,
request building and the controller's job flow and error paths, in milliseconds.

The fake keeps real pixels in Krita's B, G, R, A order; the real Krita stays the proof
(tests/test_krita_e2e.py). The controller runs here without Qt: its worker thread is
real, its QTimer does not fire by itself, so `pump()` does what Krita's event loop
would (wait for the worker, call the timer's slot). The socket is a scripted fake
client; the real client against a real daemon is tested in the e2e and protocol tests.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin_krita"))
sys.path.insert(0, str(ROOT / "tests"))

import fake_krita  # noqa: E402
from semantic_analogy.protocol import client as protocol_client  # noqa: E402
from semantic_analogy.protocol import errors as protocol_errors  # noqa: E402
from semantic_analogy.protocol import images as protocol_images  # noqa: E402
from semantic_analogy_krita import layers as L  # noqa: E402
from semantic_analogy_krita.pixels import PixelFormatError, Rect  # noqa: E402
from semantic_analogy_krita.settings import DocSettings  # noqa: E402

W, H = 6, 4
RED_BGRA = bytes([0, 0, 255, 255])  # Krita's order: B, G, R, A
GREEN_BGRA = bytes([0, 255, 0, 255])
BLUE_BGRA = bytes([255, 0, 0, 255])


@pytest.fixture
def krita(monkeypatch, tmp_path):
    with fake_krita.installed(monkeypatch, tmp_path / "appdata") as app:
        yield app


@pytest.fixture
def io(krita):
    from semantic_analogy_krita import krita_io

    return krita_io


def gradient_bgra(w, h, seed=0):
    """Every pixel different, B != R, so a channel swap or an offset shows."""
    return bytes(v for j in range(h) for i in range(w)
                 for v in ((i * 40 + seed) % 256, (j * 60 + 7) % 256, (200 - i * 10 - j) % 256, 255))


def bgra_to_rgba(data):
    out = bytearray(data)
    out[0::4], out[2::4] = data[2::4], data[0::4]
    return bytes(out)


def flat(px, w=W, h=H):
    return px * (w * h)


def paint_doc(krita, with_target=True):
    """Photo, Labels, Target 1 (bottom to top), as a painter has them."""
    doc = krita.createDocument(W, H, "test", "RGBA", "U8", "", 72.0)
    doc.add_paint_layer("Photo", gradient_bgra(W, H))
    labels = bytearray(flat(RED_BGRA))
    labels[: W * 4 * 2] = flat(GREEN_BGRA, W, 2)  # top two rows another class
    doc.add_paint_layer("Labels", bytes(labels))
    if with_target:
        target = bytearray(flat(RED_BGRA))
        target[: W * 4] = flat(GREEN_BGRA, W, 1)
        doc.add_paint_layer("Target 1", bytes(target))
    return doc


def selection(io, doc):
    infos, _ = io.walk(doc)
    return L.choose(infos, None, None, None)


# ---------------------------------------------------------------- the fake itself
def test_fake_stores_pixels_in_krita_byte_order_and_bounds_past_the_canvas(krita):
    doc = krita.createDocument(W, H, "t", "RGBA", "U8", "", 72.0)
    node = doc.add_paint_layer("Moved", flat(BLUE_BGRA, 3, 2), rect=(-2, 3, 3, 2))
    b = node.bounds()
    assert (b.x(), b.y(), b.width(), b.height()) == (-2, 3, 3, 2)  # partly off the canvas
    assert node.pixelData(-2, 3, 1, 1) == BLUE_BGRA
    assert node.pixelData(1, 0, 1, 1) == bytes(4)  # never painted: transparent
    top = doc.add_paint_layer("Top", RED_BGRA, rect=(0, 0, 1, 1))
    assert doc.stack() == ["Moved", "Top"]
    assert doc.rootNode().addChildNode(doc.createNode("x", "paintlayer"), top)
    assert doc.stack() == ["Moved", "Top", "x"]
    group = doc.add_group("G")
    assert not group.addChildNode(doc.createNode("y", "paintlayer"), top), "above must be a child (as in Krita)"


# ---------------------------------------------------------------- krita_io: reading
def test_walk_lists_bottom_first_depth_first_with_group_paths(krita, io):
    doc = krita.createDocument(W, H, "t", "RGBA", "U8", "", 72.0)
    doc.add_paint_layer("Photo", flat(RED_BGRA))
    group = doc.add_group("Parts")
    doc.add_paint_layer("Sky", flat(BLUE_BGRA), parent=group).setVisible(False)
    doc.add_paint_layer("Labels", flat(GREEN_BGRA))
    infos, nodes = io.walk(doc)
    assert [(i.name, i.path, i.kind, i.index, i.depth, i.visible) for i in infos] == [
        ("Photo", "Photo", "paintlayer", 0, 0, True),
        ("Parts", "Parts", "grouplayer", 1, 0, True),
        ("Sky", "Parts / Sky", "paintlayer", 2, 1, False),
        ("Labels", "Labels", "paintlayer", 3, 0, True),
    ]
    assert all(nodes[i.key].name() == i.name for i in infos)
    assert len({i.key for i in infos}) == 4


def test_read_node_turns_krita_bgra_into_rgba_pixel_for_pixel(krita, io):
    doc = krita.createDocument(W, H, "t", "RGBA", "U8", "", 72.0)
    data = gradient_bgra(W, H)
    node = doc.add_paint_layer("Photo", data)
    node.setOpacity(40)  # raw read: a label layer's lowered opacity does not matter
    im = io.read_node(node, Rect(0, 0, W, H), "The photo")
    assert (im.width, im.height) == (W, H)
    assert im.rgba == bgra_to_rgba(data)
    assert im.rgba[:4] == bytes([data[2], data[1], data[0], 255])


def test_layer_past_the_canvas_is_cropped_to_its_part_on_the_canvas(krita, io):
    doc = krita.createDocument(W, H, "t", "RGBA", "U8", "", 72.0)
    data = gradient_bgra(5, 3, seed=9)
    node = doc.add_paint_layer("Photo", data, rect=(-2, 2, 5, 3))  # x -2..2, y 2..4 of a 6x4 canvas
    region = io.region_for(doc, node)
    assert region == Rect(0, 2, 3, 2)
    im = io.read_node(node, region, "The photo")
    # the on-canvas part: columns 2..4 and rows 0..1 of what was painted
    expect = b"".join(data[(j * 5 + i) * 4:(j * 5 + i + 1) * 4] for j in range(2) for i in range(2, 5))
    assert im.rgba == bgra_to_rgba(expect)


def test_layer_wholly_off_the_canvas_is_refused_with_its_name(krita, io):
    doc = krita.createDocument(W, H, "t", "RGBA", "U8", "", 72.0)
    node = doc.add_paint_layer("Old photo", flat(RED_BGRA, 2, 2), rect=(W + 3, 0, 2, 2))
    with pytest.raises(PixelFormatError, match="“Old photo” has no pixels on the canvas"):
        io.region_for(doc, node)
    assert io.region_for(doc, None) == Rect(0, 0, W, H)  # the visible image: the whole canvas


def test_u16_layer_is_read_as_8_bit_rgba(krita, io):
    doc = krita.createDocument(2, 1, "t", "RGBA", "U16", "", 72.0)
    node = doc.createNode("Photo", "paintlayer")
    doc.rootNode().addChildNode(node, None)
    # B, G, R, A little-endian uint16: 0x1010 -> 0x10 (high byte), 0xff00 -> 0xff
    node.setPixelData(bytes([0x10, 0x10, 0, 0x80, 0, 0xff, 0xff, 0xff] * 2), 0, 0, 2, 1)
    im = io.read_node(node, Rect(0, 0, 2, 1), "The photo")
    assert im.rgba == bytes([0xff, 0x80, 0x10, 0xff] * 2)


def test_unsupported_colour_space_names_the_layer_and_the_menu(krita, io):
    doc = krita.createDocument(W, H, "t", "CMYKA", "U8", "", 72.0)
    node = doc.createNode("Photo", "paintlayer")
    doc.rootNode().addChildNode(node, None)
    with pytest.raises(PixelFormatError, match="The photo") as e:
        io.read_node(node, Rect(0, 0, W, H), "The photo")
    assert "CMYK" in str(e.value)


def test_read_visible_hides_the_label_layers_for_the_read_and_shows_them_again(krita, io):
    doc = paint_doc(krita)
    doc.setModified(False)
    infos, nodes = io.walk(doc)
    sel = L.Selection(L.VISIBLE_IMAGE, *[i.key for i in infos[1:3]])
    hide = [nodes[u] for u in L.hidden_for_visible_image(infos, sel)]
    assert [n.name() for n in hide] == ["Labels", "Target 1"]
    im = io.read_visible(doc, Rect(0, 0, W, H), hide)
    assert im.rgba == bgra_to_rgba(gradient_bgra(W, H))  # the photo alone, not the opaque labels on top
    assert all(n.visible() for n in hide)
    assert not doc.modified(), "hiding and showing for the read is not a change to the document"


def test_group_layer_is_read_through_its_projection(krita, io):
    doc = krita.createDocument(2, 1, "t", "RGBA", "U8", "", 72.0)
    group = doc.add_group("Labels")
    doc.add_paint_layer("a", RED_BGRA * 2, rect=(0, 0, 2, 1), parent=group)
    doc.add_paint_layer("b", BLUE_BGRA, rect=(1, 0, 1, 1), parent=group)
    im = io.read_node(group, Rect(0, 0, 2, 1), "The label layer")
    assert im.rgba == bytes([255, 0, 0, 255, 0, 0, 255, 255])


# ---------------------------------------------------------------- krita_io: writing
def test_result_layer_holds_the_rgba_result_in_krita_order_at_its_region(krita, io):
    doc = paint_doc(krita)
    rgba = bgra_to_rgba(gradient_bgra(3, 2, seed=50))
    node = io.add_result_layer(doc, None, "Target 1 → analogy", Rect(2, 1, 3, 2), rgba)
    assert node.type() == "paintlayer" and node.name() == "Target 1 → analogy"
    b = node.bounds()
    assert (b.x(), b.y(), b.width(), b.height()) == (2, 1, 3, 2)
    assert node.pixelData(2, 1, 3, 2) == gradient_bgra(3, 2, seed=50)
    assert io.read_node(node, Rect(2, 1, 3, 2), "r").rgba == rgba  # round trip
    assert doc.refreshes >= 1


def test_result_layer_in_a_non_rgb_document_says_how_to_convert(krita, io):
    doc = krita.createDocument(W, H, "t", "GRAYA", "U8", "", 72.0)
    with pytest.raises(PixelFormatError, match="Convert Image Color Space"):
        io.add_result_layer(doc, None, "r", Rect(0, 0, W, H), flat(RED_BGRA))
    assert doc.stack() == [], "nothing is added when the result cannot be written"


def test_new_label_layer_and_duplicate_as_target(krita, io):
    doc = paint_doc(krita, with_target=False)
    photo = doc.nodeByName("Photo")
    node = io.new_label_layer(doc, photo)
    assert node.name() == "Labels (2)" and node.opacity() == 153
    assert doc.stack() == ["Photo", "Labels (2)", "Labels"] and doc.activeNode() is node
    copy = io.duplicate_as_target(doc, doc.nodeByName("Labels"))
    assert copy.name() == "Target 1" and doc.stack()[-1] == "Target 1" and doc.activeNode() is copy
    assert copy.pixelData(0, 0, W, H) == doc.nodeByName("Labels").pixelData(0, 0, W, H)


def test_palette_file_and_foreground_colour(krita, io, tmp_path):
    path = io.install_palette_file()
    assert path == tmp_path / "appdata" / "palettes" / "semantic_analogy_labels.gpl"
    assert path.read_text(encoding="utf-8").startswith("GIMP Palette")
    assert io.set_foreground((10, 20, 30))
    assert krita.activeWindow().activeView().foreground.qcolor.rgba_tuple == (10, 20, 30, 255)
    krita.window = None
    assert not io.set_foreground((1, 2, 3))


def test_live_mode_change_key_follows_the_target_pixels(krita, io):
    doc = paint_doc(krita)
    target = doc.nodeByName("Target 1")
    before = io.node_content_key(target, Rect(0, 0, W, H))
    assert io.node_content_key(target, Rect(0, 0, W, H)) == before
    target.setPixelData(BLUE_BGRA, 3, 3, 1, 1)
    assert io.node_content_key(target, Rect(0, 0, W, H)) != before


# ---------------------------------------------------------------- controller
class FakeClient:
    """The few protocol.Client calls the controller makes, with scripted events."""

    instances: list = []
    fail_connect: Exception | None = None

    def __init__(self, address, timeout):
        self.address, self.timeout = address, timeout
        self.submits: list = []
        self.cancelled: list = []
        self.events: list = []  # what the next poll() returns
        self.closed = False
        FakeClient.instances.append(self)

    def connect(self):
        if FakeClient.fail_connect is not None:
            raise FakeClient.fail_connect
        return {"protocol_version": 1, "engine_version": "0.1.0", "device": "cpu"}

    def submit(self, image, labels, targets, settings, *, target_names, method):
        self.submits.append({"image": image, "labels": labels, "targets": targets, "settings": settings,
                             "target_names": target_names, "method": method})
        return f"job-{len(self.submits)}"

    def poll(self, job_id, timeout=0.0):
        out, self.events = self.events, []
        return out

    def cancel(self, job_id):
        self.cancelled.append(job_id)
        self.events.append(protocol_client.Event("cancelled", {"code": "CANCELLED", "message": "cancelled"},
                                                 job_id=job_id))
        return "cancelled"

    def close(self):
        self.closed = True


class FakeClientModule:
    Client = FakeClient


class Recorder:
    """Every signal the controller emits, in order."""

    def __init__(self, controller):
        self.log = []
        for name in ("connectionChanged", "busyChanged", "progressChanged", "previewReady", "keepAvailable", "noticeAdded",
                     "resultAdded", "failed", "finished", "previewChanged"):
            getattr(controller, name).connect(lambda *a, n=name: self.log.append((n, a)))

    def of(self, name):
        return [a for n, a in self.log if n == name]


@pytest.fixture
def controller(krita):
    from semantic_analogy_krita.controller import Controller

    FakeClient.instances = []
    FakeClient.fail_connect = None
    c = Controller((FakeClientModule, protocol_images, protocol_errors))
    c.rec = Recorder(c)
    yield c
    c.shutdown()


def pump(c, rounds=20):
    """What Krita's event loop does between two timer ticks: the worker's call finishes, then
    the QTimer fires. Stops when the controller's timer is stopped."""
    for _ in range(rounds):
        if c._future is not None:
            c._future.exception(timeout=10)
        if not c._timer.active:
            return
        c._tick()


def result_event(job_id, images):
    return protocol_client.Event("result", {}, images=images, job_id=job_id)


def rgba_image(w, h, px=bytes([9, 8, 7, 255])):
    return protocol_images.RGBAImage(w, h, px * (w * h))


def test_request_holds_the_layers_as_rgba_of_the_source_region(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    photo, labels, target = (doc.nodeByName(n) for n in ("Photo", "Labels", "Target 1"))
    sel = selection(krita_io, doc)
    assert controller.run(doc, sel, DocSettings(preset="tiny", steps=4), "train", address=":5555")
    pump(controller)
    client = FakeClient.instances[0]
    assert client.address == "tcp://127.0.0.1:5555"
    sent = client.submits[0]
    assert (sent["image"].width, sent["image"].height) == (W, H)
    assert sent["image"].data == bgra_to_rgba(photo.pixelData(0, 0, W, H))
    assert sent["labels"].data == bgra_to_rgba(labels.pixelData(0, 0, W, H))
    assert [t.data for t in sent["targets"]] == [bgra_to_rgba(target.pixelData(0, 0, W, H))]
    assert sent["target_names"] == ["Target 1"] and sent["method"] == "patch"
    assert sent["settings"]["steps"] == 4
    assert controller.rec.of("progressChanged")[-1] == (-1, "Queued…")
    assert controller.rec.of("connectionChanged")[-1][0] is True
    assert controller.busy


def test_train_without_target_reconstructs_from_the_labels(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita, with_target=False)
    assert controller.run(doc, selection(krita_io, doc), DocSettings(), "train", address=":5555")
    pump(controller)
    sent = FakeClient.instances[0].submits[0]
    assert sent["target_names"] == ["Labels"] and sent["targets"][0].data == sent["labels"].data


@pytest.mark.parametrize("case, words", [
    ("no labels chosen", "Choose the label layer"),
    ("label layer deleted", "The chosen label layer no longer exists; choose it again."),
    ("apply without target", "Choose the target label layer"),
    ("empty labels", "is empty: paint the photo's regions"),
    ("no document", "Open or create a document first."),
])
def test_errors_before_anything_is_sent_say_what_to_do(krita, controller, case, words):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita, with_target=case != "apply without target")
    sel = selection(krita_io, doc)
    mode = "train"
    if case == "no labels chosen":
        sel = L.Selection(sel.source_uid, "", sel.target_uid)
    elif case == "label layer deleted":
        doc.rootNode().removeChildNode(doc.nodeByName("Labels"))
    elif case == "apply without target":
        mode = "apply"
    elif case == "empty labels":
        doc.nodeByName("Labels").setPixelData(bytes(W * H * 4), 0, 0, W, H)
    elif case == "no document":
        doc = None
    assert not controller.run(doc, sel, DocSettings(), mode, address=":5555")
    (short, _details), = controller.rec.of("failed")
    assert words in short
    assert controller.rec.of("finished") == [(False,)]
    assert not controller.busy and FakeClient.instances == [], "nothing connected or sent"


def test_a_finished_job_adds_the_result_layer_with_the_engines_pixels(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    assert controller.run(doc, selection(krita_io, doc), DocSettings(), "train", address=":5555")
    pump(controller)
    client = FakeClient.instances[0]
    client.events = [protocol_client.Event("progress", {"step": 2, "total": 4, "stage": "train"}, job_id="job-1"),
                     result_event("job-1", [rgba_image(W, H, bytes([10, 20, 30, 0]))])]
    controller._tick()
    node = doc.nodeByName("Target 1 → analogy")
    assert node is not None
    # opaque, in Krita's order: B, G, R, A
    assert node.pixelData(0, 0, W, H) == bytes([30, 20, 10, 255]) * (W * H)
    assert controller.rec.of("resultAdded")[0][0] == "Target 1 → analogy"
    texts = [t for _p, t in controller.rec.of("progressChanged")]
    assert "Training 2/4, estimating time left" in texts and texts[-1].startswith("Done")
    assert controller.rec.of("finished") == [(True,)] and not controller.busy
    assert not controller._timer.active


def test_engine_error_is_shown_in_plain_words(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    controller.run(doc, selection(krita_io, doc), DocSettings(), "train", address=":5555")
    pump(controller)
    FakeClient.instances[0].events = [protocol_client.Event(
        "error", {"code": "BAD_LABELS", "message": "the label layer has 40 colours"}, job_id="job-1")]
    controller._tick()
    (short, details), = controller.rec.of("failed")
    assert short == "The engine could not make the analogy: the label layer has 40 colours [BAD_LABELS]"
    assert "code: BAD_LABELS" in details
    assert controller.rec.of("progressChanged")[-1] == (0, "Failed")
    assert controller.rec.of("finished") == [(False,)] and not controller.busy
    assert [n.name() for n in doc.topLevelNodes()] == ["Photo", "Labels", "Target 1"]


def test_no_daemon_says_how_to_start_it(krita, controller):
    from semantic_analogy_krita import krita_io

    FakeClient.fail_connect = protocol_errors.DaemonUnavailable("no reply in 5 s")
    doc = paint_doc(krita)
    assert controller.run(doc, selection(krita_io, doc), DocSettings(), "train", address="127.0.0.1:5599")
    pump(controller)
    (short, _details), = controller.rec.of("failed")
    assert "No answer from the Semantic Analogy engine at tcp://127.0.0.1:5599" in short
    assert "semantic-analogy serve --bind tcp://127.0.0.1:5599" in short
    assert controller.rec.of("connectionChanged")[-1] == (False, "Not connected")
    assert not controller.busy and not controller.connected


def test_cancel_ends_the_job_as_cancelled(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    controller.run(doc, selection(krita_io, doc), DocSettings(), "train", address=":5555")
    pump(controller)
    controller.cancel()
    assert FakeClient.instances[0].cancelled == ["job-1"]
    controller._tick()
    (short, _), = controller.rec.of("failed")
    assert short == "Cancelled: no layer was added."
    assert controller.rec.of("progressChanged")[-1] == (0, "Cancelled") and not controller.busy


def test_document_closed_before_the_result_arrived(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    controller.run(doc, selection(krita_io, doc), DocSettings(), "train", address=":5555")
    pump(controller)
    doc.closed = True
    FakeClient.instances[0].events = [result_event("job-1", [rgba_image(W, H)])]
    controller._tick()
    (short, _), = controller.rec.of("failed")
    assert short == "The document was closed before the result arrived."
    assert not controller.busy


def test_a_result_of_the_wrong_size_is_refused(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    controller.run(doc, selection(krita_io, doc), DocSettings(), "train", address=":5555")
    pump(controller)
    FakeClient.instances[0].events = [result_event("job-1", [rgba_image(3, 2)])]
    controller._tick()
    (short, _), = controller.rec.of("failed")
    assert short == f"The engine returned 3×2 pixels for a {W}×{H} area."
    assert doc.stack() == ["Photo", "Labels", "Target 1"]


# ---------------------------------------------------------------- where results go (issue 10)
def run_to_result(controller, doc, sel, n_images=1):
    assert controller.run(doc, sel, DocSettings(), "train", address=":5555")
    pump(controller)
    client = FakeClient.instances[-1]
    job = f"job-{len(client.submits)}"
    client.events = [result_event(job, [rgba_image(W, H) for _ in range(n_images)])]
    controller._tick()
    assert controller.rec.of("finished")[-1] == (True,), controller.rec.of("failed")


def test_results_go_above_the_label_layers_newest_on_top_and_say_so(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    sel = selection(krita_io, doc)
    run_to_result(controller, doc, sel)
    assert doc.stack() == ["Photo", "Labels", "Target 1", "Target 1 → analogy"]
    run_to_result(controller, doc, sel)
    assert doc.stack() == ["Photo", "Labels", "Target 1", "Target 1 → analogy", "Target 1 → analogy (2)"]
    assert controller.rec.of("resultAdded") == [
        ("Target 1 → analogy", "on top of the label layers"),
        ("Target 1 → analogy (2)", "on top of the label layers and earlier results")]
    # what the painter sees: the newest result covers the (visible, opaque) label layers
    shown = doc.rootNode().projectionPixelData(0, 0, W, H)
    assert shown == bytes([7, 8, 9, 255]) * (W * H)
    assert all(n.visible() for n in doc.topLevelNodes())


def test_a_layer_of_the_users_above_everything_stays_on_top(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    doc.add_paint_layer("Sketch", RED_BGRA, rect=(0, 0, 1, 1))
    run_to_result(controller, doc, selection(krita_io, doc))
    assert doc.stack() == ["Photo", "Labels", "Target 1", "Target 1 → analogy", "Sketch"]
    assert controller.rec.of("resultAdded")[-1] == ("Target 1 → analogy", "on top of the label layers, under “Sketch”")


def test_label_layers_in_a_group_put_the_result_above_the_group(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = krita.createDocument(W, H, "t", "RGBA", "U8", "", 72.0)
    doc.add_paint_layer("Photo", gradient_bgra(W, H))
    group = doc.add_group("Painting")
    doc.add_paint_layer("Labels", flat(RED_BGRA), parent=group)
    target = bytearray(flat(RED_BGRA))
    target[:4] = GREEN_BGRA
    doc.add_paint_layer("Target 1", bytes(target), parent=group)
    doc.add_paint_layer("Notes", RED_BGRA, rect=(0, 0, 1, 1))
    sel = selection(krita_io, doc)
    assert sel.labels_uid and sel.target_uid
    run_to_result(controller, doc, sel)
    assert doc.stack() == ["Photo", "Painting", "Target 1 → analogy", "Notes"]
    assert [n.name() for n in group.childNodes()] == ["Labels", "Target 1"]


def test_two_targets_in_one_job_stack_in_order(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    sel = selection(krita_io, doc)
    assert controller.run(doc, sel, DocSettings(), "train", address=":5555")
    pump(controller)
    controller._job["names"] = ["Target 1", "Target 2"]  # as a job with two targets has them
    FakeClient.instances[0].events = [result_event("job-1", [rgba_image(W, H), rgba_image(W, H)])]
    controller._tick()
    assert doc.stack()[-2:] == ["Target 1 → analogy", "Target 2 → analogy"]
    assert controller.rec.of("resultAdded")[-1] == ("Target 2 → analogy", "above “Target 1 → analogy”")


def test_placement_rules_without_krita():
    def info(uid, name, index, depth=0):
        return L.LayerInfo(uid, name, "paintlayer", name, True, index, depth)

    layers = [info("p", "Photo", 0), info("l", "Labels", 1), info("x", "Sketch", 2), info("t", "Target 1", 3)]
    sel = L.Selection("p", "l", "t")
    assert L.result_placement(layers, sel) == L.Placement("t", "on top of the label layers")
    # the visible image as source; a label-named layer the user did not choose still counts
    layers = [info("p", "Photo", 0), info("l", "my labels", 1), info("o", "Labels old", 2), info("s", "Sky", 3)]
    assert L.result_placement(layers, L.Selection(L.VISIBLE_IMAGE, "l", "")) == \
        L.Placement("o", "on top of the label layers, under “Sky”")
    # everything chosen was deleted meanwhile: on top of the document
    assert L.result_placement([info("s", "Sky", 0)], sel) == L.Placement("", "on top of the layers")


# ---------------------------------------------------------------- preview, caption, progress, Keep agree (issue 10)
from semantic_analogy_krita.messages import (  # noqa: E402
    CANCELLED_CAPTION, INSTANT_PATCH_CAPTION, KEEP_NOTE, KEEPING_CAPTION, KEEPING_FULL_SIZE_CAPTION,
)


def instant_event(job, w=W, h=H, px=bytes([1, 2, 3, 255])):
    return protocol_client.Event("preview", {"instant": True, "kind": "patch", "stage": "train"},
                                 images=[rgba_image(w, h, px)], job_id=job)


def training_preview(job, step, total=10):
    return protocol_client.Event("preview", {"step": step, "total": total, "stage": "train"},
                                 images=[rgba_image(W, H, bytes([90, 90, 90, 255]))], job_id=job)


def start_training(controller, krita):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    assert controller.run(doc, selection(krita_io, doc), DocSettings(method="gan+patch"), "train", address=":5555")
    pump(controller)
    client = FakeClient.instances[0]
    client.events = [protocol_client.Event("queued", {"position": 0}, job_id="job-1"), instant_event("job-1")]
    controller._tick()
    return doc, client


def test_instant_result_shows_with_its_progress_line_and_keep_offered(krita, controller):
    start_training(controller, krita)
    rec = controller.rec
    assert rec.of("previewReady")[-1][1:] == (INSTANT_PATCH_CAPTION, True)
    assert rec.of("progressChanged")[-1] == (0, "Instant patch result ready; training…"), \
        "not “Starting…” while the instant result shows"
    assert rec.of("keepAvailable") == [(True,)] and controller.can_keep
    assert rec.of("noticeAdded") == [], "a Train was asked to train: nothing to announce"


def test_apply_without_a_trained_model_says_it_trains_first(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    settings = DocSettings(method="gan+patch", preset="preview")
    assert controller.run(doc, selection(krita_io, doc), settings, "apply", address=":5555")
    pump(controller)
    client = FakeClient.instances[0]
    client.events = [protocol_client.Event("queued", {"position": 0}, job_id="job-1"), instant_event("job-1"),
                     protocol_client.Event("progress", {"stage": "train", "step": 1, "total": 600, "eta_s": 190},
                                           job_id="job-1")]
    controller._tick()
    notices = controller.rec.of("noticeAdded")
    assert len(notices) == 1 and notices[0][0].startswith("No trained model for this photo yet: training first")
    assert controller.rec.of("progressChanged")[-1] == (0, "Training 1/600, ~3 min left")


def test_daemon_warnings_reach_the_docker_once_per_job(krita, controller):
    _doc, client = start_training(controller, krita)
    data = {"stage": "train", "step": 1, "total": 10, "eta_s": 9.0,
            "warnings": ["target labels: 240 pixels of (255, 255, 255) filled"]}
    client.events = [protocol_client.Event("progress", data, job_id="job-1"),
                     protocol_client.Event("progress", {**data, "step": 2}, job_id="job-1")]
    controller._tick()
    assert controller.rec.of("noticeAdded") == [("Engine warning: target labels: 240 pixels of (255, 255, 255) filled",)]


def test_training_previews_under_keep_say_what_keep_takes(krita, controller):
    _doc, client = start_training(controller, krita)
    client.events = [training_preview("job-1", 3)]
    controller._tick()
    assert controller.rec.of("previewReady")[-1][1:] == ("Training preview: step 3 / 10" + KEEP_NOTE, False)


def test_after_cancel_the_caption_no_longer_says_training_continues(krita, controller):
    doc, client = start_training(controller, krita)
    controller.cancel()
    controller._tick()
    rec = controller.rec
    assert rec.of("previewChanged")[-1] == (None, CANCELLED_CAPTION)
    assert rec.of("keepAvailable")[-1] == (False,)
    assert rec.of("progressChanged")[-1] == (0, "Cancelled")
    assert doc.stack() == ["Photo", "Labels", "Target 1"]


def test_keep_shows_the_kept_result_not_the_training_preview(krita, controller):
    doc, client = start_training(controller, krita)
    client.events = [training_preview("job-1", 3)]
    controller._tick()
    assert controller.keep_instant()
    rec = controller.rec
    img, caption = rec.of("previewChanged")[-1]
    assert caption == KEEPING_CAPTION and img.rgba == bytes([1, 2, 3, 255]) * (W * H), "the instant result again"
    assert rec.of("keepAvailable")[-1] == (False,)
    controller._tick()  # the training job's `cancelled` event: the full-size preview becomes the layer
    assert client.cancelled == ["job-1"]
    assert doc.stack()[-1] == "Target 1 → analogy"
    assert doc.nodeByName("Target 1 → analogy").pixelData(0, 0, 1, 1) == bytes([3, 2, 1, 255])
    img, caption = rec.of("previewChanged")[-1]
    assert caption == "The kept instant result, added as the layer “Target 1 → analogy”"
    assert img.rgba == bytes([1, 2, 3, 255]) * (W * H)
    assert rec.of("progressChanged")[-1][1].startswith("Done: kept the instant result")
    assert rec.of("finished") == [(True,)] and not controller.busy


def test_keep_of_a_scaled_preview_makes_it_at_full_size_and_says_so(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    assert controller.run(doc, selection(krita_io, doc), DocSettings(method="gan+patch"), "train", address=":5555")
    pump(controller)
    client = FakeClient.instances[0]
    client.events = [instant_event("job-1", 3, 2)]  # the daemon scaled it down
    controller._tick()
    assert controller.keep_instant()
    controller._tick()  # cancelled: a method "patch" job makes it again at full size
    assert controller.rec.of("previewChanged")[-1] == (None, KEEPING_FULL_SIZE_CAPTION)
    pump(controller, rounds=1)
    assert client.submits[-1]["method"] == "patch" and len(client.submits) == 2
    client.events = [result_event("job-2", [rgba_image(W, H)])]
    controller._tick()
    assert controller.rec.of("previewChanged")[-1][1] == \
        "The kept instant result, added as the layer “Target 1 → analogy”"
    assert doc.stack()[-1] == "Target 1 → analogy"
    assert controller.rec.of("progressChanged")[-1][1].startswith("Done: kept the instant result")


def test_a_plain_result_is_captioned_as_the_added_layer(krita, controller):
    from semantic_analogy_krita import krita_io

    doc = paint_doc(krita)
    run_to_result(controller, doc, selection(krita_io, doc))
    img, caption = controller.rec.of("previewChanged")[-1]
    assert caption == "The result, added as the layer “Target 1 → analogy”" and (img.width(), img.height()) == (W, H)
