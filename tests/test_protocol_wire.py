"""Encoding and decoding of messages against the schema (pure, no sockets)."""

import msgpack
import pytest

from semantic_analogy.protocol.errors import ProtocolError
from semantic_analogy.protocol.images import RGBAImage
from semantic_analogy.protocol.wire import MAX_HEADER_BYTES, DecodeError, decode, encode

IMG = RGBAImage.filled(3, 2, (1, 2, 3, 255))


def submit_frames(**overrides):
    content = {"image": IMG, "labels": IMG, "targets": [IMG, IMG], "settings": {"preset": "tiny"}}
    content.update(overrides)
    return encode("submit", content, msg_id="m1")


def raw(header, *buffers):
    return [msgpack.packb(header, use_bin_type=True), *buffers]


def header(type_="ping", content=None, **extra):
    return {"v": "1.0", "type": type_, "msg_id": "abc", "content": {} if content is None else content, **extra}


def test_submit_round_trip_puts_pixels_in_their_own_frames():
    frames = submit_frames(target_names=["a", "b"], cancel_if_silent=3.0)
    assert len(frames) == 5 and all(f == IMG.data for f in frames[1:])
    head = msgpack.unpackb(frames[0])
    assert head["content"]["targets"][1] == {"width": 3, "height": 2, "buffer": 3}
    msg = decode(frames, sender="client", strict=True)
    assert msg.type == "submit" and msg.msg_id == "m1" and msg.reply_to is None
    assert msg.content["targets"] == [IMG, IMG] and msg.content["image"] == IMG
    assert msg.content["target_names"] == ["a", "b"]


def test_reply_to_and_event_round_trip():
    frames = encode("event", {"job_id": "j" * 32, "seq": 3, "kind": "preview",
                              "data": {"stage": "train", "step": 5, "total": 10}, "images": [IMG]}, reply_to="r1")
    msg = decode(frames, sender="daemon", strict=True)
    assert msg.reply_to == "r1" and msg.content["images"] == [IMG]


@pytest.mark.parametrize(
    "frames,code,words",
    [
        ([], "MALFORMED", "empty message"),
        ([b""], "MALFORMED", "DEALER"),
        ([b"\xc1"], "MALFORMED", "not a valid msgpack"),
        ([b"\x91" * 5000 + b"\xc0"], "MALFORMED", "not a valid msgpack"),
        ([msgpack.packb([1, 2])], "MALFORMED", "must be a msgpack map"),
        ([b"\x81\x01\x01"], "MALFORMED", "not a valid msgpack"),
        ([b"\xdb" + (2**31).to_bytes(4, "big") + b"abc"], "MALFORMED", "not a valid msgpack"),  # huge declared str
        ([b"x" * (MAX_HEADER_BYTES + 1)], "TOO_LARGE", "header frame"),
        (raw({"type": "ping", "msg_id": "a", "content": {}}), "MISSING_FIELD", "'v'"),
        (raw({**header(), "v": 1}), "BAD_VALUE", "MAJOR.MINOR"),
        (raw({**header(), "v": "2.0"}), "VERSION_MISMATCH", "not compatible"),
        (raw({**header(), "msg_id": ""}), "BAD_VALUE", "msg_id"),
        (raw({**header(), "msg_id": "x" * 65}), "BAD_VALUE", "msg_id"),
        (raw({**header(), "msg_id": 5}), "WRONG_TYPE", "'msg_id' must be a string"),
        (raw({**header(), "content": []}), "WRONG_TYPE", "'content' must be a map"),
        (raw(header("launch_missiles")), "UNKNOWN_TYPE", "launch_missiles"),
        (raw(header("welcome")), "UNKNOWN_TYPE", "expected one of"),
        (raw(header("watch")), "MISSING_FIELD", "'job_id'"),
        (raw(header("watch", {"job_id": 7})), "WRONG_TYPE", "'job_id' must be a string, got int"),
        (raw(header("hello", {"protocol_version": True})), "WRONG_TYPE", "got bool"),
        (raw(header("ping"), b"extra"), "MALFORMED", "1 pixel frame"),
    ],
)
def test_broken_messages_are_named(frames, code, words):
    with pytest.raises(DecodeError, match=words) as info:
        decode(frames, sender="client")
    assert info.value.code == code


def _submit_header(image_desc, labels_desc=None, targets=None):
    return header("submit", {
        "image": image_desc, "labels": labels_desc or {"width": 1, "height": 1, "buffer": 1},
        "targets": targets if targets is not None else [{"width": 1, "height": 1, "buffer": 2}],
        "settings": {},
    })


@pytest.mark.parametrize(
    "desc,buffers,code,words",
    [
        ({"width": 2, "height": 2, "buffer": 0}, [b"\0" * 15, b"\0" * 4, b"\0" * 4], "BAD_IMAGE", "frame has 15 bytes"),
        ({"width": 100000, "height": 100000, "buffer": 0}, [b"\0" * 4] * 3, "TOO_LARGE", "limit of 1000"),
        ({"width": 0, "height": 2, "buffer": 0}, [b""] * 3, "BAD_IMAGE", "at least 1"),
        ({"width": 1, "height": 1, "buffer": 9}, [b"\0" * 4] * 3, "MALFORMED", "points at buffer 9"),
        ({"width": 1, "height": 1, "buffer": 1}, [b"\0" * 4] * 3, "MALFORMED", "reuses buffer 1"),
        ({"width": 1, "height": 1}, [b"\0" * 4] * 3, "MISSING_FIELD", "'buffer'"),
        ({"width": "1", "height": 1, "buffer": 0}, [b"\0" * 4] * 3, "WRONG_TYPE", "'width'"),
        ({"width": 1, "height": 1, "buffer": 0}, [b"\0" * 4] * 4, "MALFORMED", "4 pixel frame"),
    ],
)
def test_image_descriptors_are_checked_against_their_frames(desc, buffers, code, words):
    with pytest.raises(DecodeError, match=words) as info:
        decode(raw(_submit_header(desc), *buffers), sender="client", max_pixels=1000)
    assert info.value.code == code


def test_decode_error_keeps_the_senders_msg_id_for_the_reply():
    with pytest.raises(DecodeError) as info:
        decode(raw(header("watch")), sender="client")
    assert info.value.msg_id == "abc"
    with pytest.raises(DecodeError) as info:
        decode([b"\xc1"], sender="client")
    assert info.value.msg_id is None


def test_unknown_fields_are_ignored_unless_strict():
    frames = raw(header("ping", {"future_field": 1}, also_new=2))
    assert decode(frames, sender="client").type == "ping"
    with pytest.raises(DecodeError, match="also_new"):
        decode(frames, sender="client", strict=True)
    with pytest.raises(DecodeError, match="future_field"):
        decode(raw(header("ping", {"future_field": 1})), sender="client", strict=True)


def test_a_newer_minor_version_is_accepted():
    assert decode(raw({**header(), "v": "1.7"}), sender="client").version == "1.7"


@pytest.mark.parametrize(
    "content,words",
    [
        ({"job_id": "j", "seq": 1, "kind": "explode", "data": {}, "images": []}, "unknown event kind"),
        ({"job_id": "j", "seq": 1, "kind": "queued", "data": {}, "images": []}, "'position'"),
        ({"job_id": "j", "seq": 1, "kind": "preview", "data": {"stage": "t", "step": 1, "total": 2}, "images": []},
         "carries 1 image"),
        ({"job_id": "j", "seq": 1, "kind": "result", "data": {"target_names": ["a", "b"], "model_key": "k",
                                                              "cached": True}, "images": [IMG]}, "carries 2 image"),
        ({"job_id": "j", "seq": 1, "kind": "progress", "data": {"stage": "train", "step": 1, "total": 2, "eta_s": 1,
                                                                "elapsed_s": 1, "losses": {"G": "x"}}, "images": []},
         "'losses' must be a map of strings to numbers"),
    ],
)
def test_event_data_is_checked_per_kind(content, words):
    with pytest.raises(ProtocolError, match=words):
        encode("event", content)


def test_encode_refuses_content_that_breaks_the_spec():
    with pytest.raises(ProtocolError, match="'targets' must be a list of images") as info:
        encode("submit", {"image": IMG, "labels": IMG, "targets": IMG, "settings": {}})
    assert info.value.code == "WRONG_TYPE"
    with pytest.raises(ProtocolError, match="needs the field 'settings'"):
        encode("submit", {"image": IMG, "labels": IMG, "targets": [IMG]})
    with pytest.raises(ProtocolError, match="does not list"):
        encode("ping", {"surprise": 1})
    with pytest.raises(ValueError, match="unknown message type"):
        encode("nope", {})
    with pytest.raises(ProtocolError, match="header is") as info:
        encode("hello", {"protocol_version": "1.0", "client": "x" * (MAX_HEADER_BYTES + 1)})
    assert info.value.code == "TOO_LARGE"
