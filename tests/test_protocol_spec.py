"""SPEC.md is normative: its tables must match the catalogue the code checks messages with."""

import re
from pathlib import Path

import pytest

import semantic_analogy.protocol as protocol
from semantic_analogy.protocol.errors import ERROR_CODES
from semantic_analogy.protocol.schema import EVENT_KINDS, HEADER_FIELDS, MESSAGES, MODEL_ENTRY, type_matches
from semantic_analogy.protocol.version import PROTOCOL_VERSION
from semantic_analogy.protocol.wire import IMAGE_FIELDS

SPEC = Path(protocol.__file__).with_name("SPEC.md")


def parse_spec(text: str) -> tuple[dict[str, list[list[str]]], dict[str, str]]:
    """heading -> table rows (cells, `code` marks removed), heading -> prose under it."""
    tables: dict[str, list[list[str]]] = {}
    prose: dict[str, str] = {}
    heading = ""
    for line in text.splitlines():
        m = re.match(r"^#{1,4} (.+)$", line)
        if m:
            heading = m.group(1).strip()
            tables.setdefault(heading, [])
            prose.setdefault(heading, "")
            continue
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                continue
            tables[heading].append([c.strip("`") for c in cells])
        else:
            prose[heading] = prose.get(heading, "") + line + "\n"
    # Drop the column-title row of each table.
    return {h: rows[1:] for h, rows in tables.items() if rows}, prose


TABLES, PROSE = parse_spec(SPEC.read_text())


def fields_of(rows):
    return [(r[0], r[1], {"yes": True, "no": False}[r[2]]) for r in rows]


def as_tuples(fields):
    return [(f.name, f.type, f.required) for f in fields]


def test_title_names_this_protocol_version():
    assert SPEC.read_text().splitlines()[0].endswith(f"version {PROTOCOL_VERSION}")


def test_header_and_image_tables_match_the_code():
    assert fields_of(TABLES["Header"]) == as_tuples(HEADER_FIELDS)
    assert fields_of(TABLES["Images"]) == as_tuples(IMAGE_FIELDS)
    assert fields_of(TABLES["Model entry"]) == as_tuples(MODEL_ENTRY)


def test_every_message_is_specified_with_its_sender_reply_and_fields():
    specified = {h.strip("`") for h in PROSE if re.fullmatch(r"`\w+`", h)}
    assert specified == set(MESSAGES)
    for name, spec in MESSAGES.items():
        heading = f"`{name}`"
        m = re.search(r"Sent by \*\*(client|daemon)\*\*(?:; reply \*\*(\w+)\*\*)?", PROSE[heading])
        assert m, f"SPEC.md: {name} does not say who sends it"
        assert (m.group(1), m.group(2)) == (spec.sender, spec.reply), name
        assert fields_of(TABLES.get(heading, [])) == as_tuples(spec.fields), name
        if not spec.fields:
            assert "No fields" in PROSE[heading], name


def test_every_request_has_a_reply_sent_by_the_daemon():
    for spec in MESSAGES.values():
        if spec.sender == "client":
            assert MESSAGES[spec.reply].sender == "daemon"


def test_event_kinds_match():
    kinds = {m.group(1): h for h in TABLES if (m := re.fullmatch(r"Event kind `(\w+)`", h))}
    assert set(kinds) == set(EVENT_KINDS)
    for kind, heading in kinds.items():
        assert fields_of(TABLES[heading]) == as_tuples(EVENT_KINDS[kind]), kind


def test_error_codes_match():
    assert [r[0] for r in TABLES["Error codes"]] == list(ERROR_CODES)


def test_limits_table_lists_the_limits_welcome_reports():
    from semantic_analogy.daemon.config import Limits

    assert [r[0] for r in TABLES["Limits"]] == list(Limits().as_dict())


@pytest.mark.parametrize(
    "value,type_,ok",
    [
        (1, "int", True), (True, "int", False), (1.5, "number", True), (1, "number", True),
        (None, "str|nil", True), ("x", "str|nil", True), (1, "str|nil", False),
        ([1, 2], "list<int>", True), ([1, "a"], "list<int>", False), ({"a": 1.0}, "map<str,number>", True),
        ({"a": "b"}, "map<str,number>", False), ({1: 2}, "map", False), ([], "list<image>", True),
    ],
)
def test_type_notation(value, type_, ok):
    assert type_matches(value, type_) is ok
