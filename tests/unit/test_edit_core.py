"""dlqctl edit's pure parts: JSON text kept token for token, errors with line and column,
value kinds, header edits, what an editor's saved file means."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlqctl.core import jsontext
from dlqctl.core.edit import (
    EditRefused,
    EditRequest,
    EditTarget,
    SavedText,
    ValueKind,
    edit_headers,
    editor_text,
    parse_set_header,
    plan_change,
    value_from_editor,
    value_from_file,
    value_kind,
)
from dlqctl.core.errors import UsageError
from dlqctl.core.ids import parse_id
from dlqctl.core.models import RAW_PAYLOAD_KEY, Header, Status, raw_or_json

ID = uuid.UUID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
SELECTOR = parse_id(str(ID))

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)

# An integer of more digits than Python converts (sys.get_int_max_str_digits: 4300).
HUGE_NUMBER = b'{"amount":' + b"1" * 5000 + b"}"


def test_pretty_keeps_every_token_as_written() -> None:
    text = '{"amount":1.10,"big":12345678901234567890.5,"e":1e400,"s":"caf\\u00e9 \\"q\\"",'
    text += '"dup":1,"dup":2,"empty":{},"list":[],"nested":[{"a":null,"b":[true,false]}]}'
    shown = jsontext.pretty(text)
    assert shown.splitlines()[:4] == [
        "{",
        '  "amount": 1.10,',
        '  "big": 12345678901234567890.5,',
        '  "e": 1e400,',
    ]
    assert '"s": "caf\\u00e9 \\"q\\""' in shown
    assert '"empty": {},' in shown and '"list": [],' in shown
    assert shown.count('"dup"') == 2
    assert jsontext.compact(shown) == text


@given(JSON_VALUES, st.sampled_from([None, 2, 0]))
def test_compact_of_pretty_is_the_compact_text(value: object, indent: int | None) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    compacted = jsontext.compact(jsontext.pretty(text))
    assert compacted == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(jsontext.pretty(text)) == value


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "Expecting ',' delimiter"),
        ('{"a": NaN}', 1, 7, "NaN is not a JSON value"),
        ("[1,\n -Infinity]", 2, 2, "-Infinity is not a JSON value"),
        ("", 1, 1, "empty: no JSON value"),
        ("  \n ", 2, 2, "empty: no JSON value"),
        ('{"a": 1}}', 1, 9, "Extra data"),
    ],
)
def test_parse_errors_name_line_and_column(text: str, line: int, column: int, reason: str) -> None:
    with pytest.raises(jsontext.JsonTextError) as caught:
        jsontext.parse(text)
    assert (caught.value.line, caught.value.column, caught.value.reason) == (line, column, reason)
    assert str(caught.value) == f"line {line}, column {column}: {reason}"


def test_bytes_that_are_not_utf8_are_located() -> None:
    with pytest.raises(jsontext.JsonTextError) as caught:
        jsontext.parse(b'{\n  "name": "caf\xe9"\n}')
    assert (caught.value.line, caught.value.column) == (2, 15)
    assert caught.value.reason == "not UTF-8 text"


@pytest.mark.parametrize(
    ("original", "kind"),
    [
        (b'{"a":1}', ValueKind.JSON),
        (b'"just a string"', ValueKind.JSON),
        (b'{"a": NaN}', ValueKind.TEXT),
        (HUGE_NUMBER, ValueKind.TEXT),
        (b"id;amount\n1;2", ValueKind.TEXT),
        (b"\x00\xff\xfe", ValueKind.BINARY),
        (b'\xff{"a":1}', ValueKind.BINARY),
        (None, ValueKind.TOMBSTONE),
    ],
)
def test_value_kind(original: bytes | None, kind: ValueKind) -> None:
    assert value_kind(original) is kind


def test_a_number_python_will_not_read_makes_bytes_that_are_not_json() -> None:
    # As the consumer stores such an event (the raw stand-in), never "this is a bug".
    with pytest.raises(jsontext.JsonTextError) as refused:
        jsontext.parse(HUGE_NUMBER)
    assert (refused.value.line, refused.value.column) == (1, 11)
    assert not jsontext.is_json(HUGE_NUMBER)
    assert list(raw_or_json(HUGE_NUMBER)) == [RAW_PAYLOAD_KEY]


def test_parse_set_header() -> None:
    assert parse_set_header("currency=EUR") == ("currency", "EUR")
    assert parse_set_header("trace=a=b") == ("trace", "a=b")
    assert parse_set_header("empty=") == ("empty", "")
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_set_header("currency")
    with pytest.raises(UsageError, match="must not be empty"):
        parse_set_header("=x")
    for key in ("dlq-id", "DLQ-Consumer", "dlq-retry-count", "dlq-anything"):
        with pytest.raises(UsageError, match="replay's own"):
            parse_set_header(f"{key}=x")


def test_request_combinations() -> None:
    assert EditRequest(SELECTOR).needs_editor
    assert not EditRequest(SELECTOR, set_headers=(("a", "b"),)).needs_editor
    with pytest.raises(UsageError, match="--revert"):
        EditRequest(SELECTOR, revert=True, unset_headers=("a",))
    with pytest.raises(UsageError, match="replay's own"):
        EditRequest(SELECTOR, unset_headers=("dlq-id",))
    with pytest.raises(UsageError, match="both set and unset"):
        EditRequest(SELECTOR, set_headers=(("a", "1"),), unset_headers=("a",))


def _h(key: str, value: str | None) -> Header:
    return Header(key, None if value is None else value.encode())


def test_header_edits_keep_order_and_other_duplicates() -> None:
    base = (_h("a", "1"), _h("b", "2"), _h("a", "3"), _h("c", None), _h("c", "x"))
    assert edit_headers(base, [("a", "9")], []) == (
        _h("a", "9"),
        _h("b", "2"),
        _h("c", None),
        _h("c", "x"),
    )
    assert edit_headers(base, [("d", "")], ["c"]) == (
        _h("a", "1"),
        _h("b", "2"),
        _h("a", "3"),
        _h("d", ""),
    )
    assert edit_headers(base, [], ["nope"]) == base


def _target(original: bytes | None, **fields: object) -> EditTarget:
    values: dict[str, object] = {
        "dlq_id": ID,
        "consumer": "orders",
        "status": Status.PENDING,
        "original_value": original,
        "original_headers": (_h("a", "1"),),
        "edited_raw": None,
        "edited_headers": None,
        "edited_at": None,
        "edited_by": None,
    }
    values.update(fields)
    return EditTarget(**values)  # type: ignore[arg-type]


def _saved(written: str, data: bytes, tmp_path: Path) -> SavedText:
    return SavedText(data=data, path=tmp_path / "x.json", written=written.encode())


def test_editor_gets_json_pretty_and_stores_it_compact(tmp_path: Path) -> None:
    text, suffix = editor_text(ValueKind.JSON, b'{"amount":1.10,"currency":"XXX"}', ID)
    assert (text, suffix) == ('{\n  "amount": 1.10,\n  "currency": "XXX"\n}\n', ".json")
    fixed = text.replace("XXX", "EUR").encode()
    assert value_from_editor(ValueKind.JSON, _saved(text, fixed, tmp_path)) == (
        b'{"amount":1.10,"currency":"EUR"}'
    )
    assert value_from_editor(ValueKind.JSON, _saved(text, text.encode(), tmp_path)) is None
    assert value_from_editor(ValueKind.JSON, _saved(text, b"  \n", tmp_path)) is None
    broken = text.replace('"XXX"', "EUR").encode()
    with pytest.raises(jsontext.JsonTextError) as caught:
        value_from_editor(ValueKind.JSON, _saved(text, broken, tmp_path))
    assert (caught.value.line, caught.value.column) == (3, 15)
    assert caught.value.reason == "Expecting value"


def test_editor_text_values_lose_only_the_newline_the_editor_added(tmp_path: Path) -> None:
    text, suffix = editor_text(ValueKind.TEXT, b"id;amount", ID)
    assert (text, suffix) == ("id;amount", ".txt")
    assert value_from_editor(ValueKind.TEXT, _saved(text, b"id;total\n", tmp_path)) == b"id;total"
    kept = value_from_editor(ValueKind.TEXT, _saved("a\n", b"b\n", tmp_path))
    assert kept == b"b\n"
    with pytest.raises(EditRefused, match="binary"):
        editor_text(ValueKind.BINARY, b"\xff\x00", ID)
    with pytest.raises(EditRefused, match="tombstone"):
        editor_text(ValueKind.TOMBSTONE, None, ID)


def test_values_from_a_file_are_exact_bytes() -> None:
    assert value_from_file(ValueKind.JSON, b'{"a": 1}\n', "f.json", ID) == b'{"a": 1}\n'
    assert value_from_file(ValueKind.BINARY, b"\xff\x00", "f", ID) == b"\xff\x00"
    assert value_from_file(ValueKind.TEXT, b"not json {", "f", ID) == b"not json {"
    with pytest.raises(EditRefused, match=r"f\.json is not valid JSON at line 2, column 1"):
        value_from_file(ValueKind.JSON, b'{"a": 1\n', "f.json", ID)
    with pytest.raises(EditRefused, match="empty"):
        value_from_file(ValueKind.JSON, b"", "stdin", ID)
    with pytest.raises(EditRefused, match="tombstone"):
        value_from_file(ValueKind.TOMBSTONE, b"{}", "stdin", ID)


def test_a_change_back_to_the_original_is_no_edit() -> None:
    target = _target(b'{"a":1}', edited_raw=b'{"a":2}', edited_headers=(_h("a", "2"),))
    back = plan_change(target, EditRequest(SELECTOR, value=b'{"a":1}'), b'{"a":1}')
    assert back.edited_raw is None and back.edited_headers == (_h("a", "2"),)
    headers_back = plan_change(target, EditRequest(SELECTOR, set_headers=(("a", "1"),)), None)
    assert headers_back.edited_raw == b'{"a":2}' and headers_back.edited_headers is None
    assert not plan_change(target, EditRequest(SELECTOR, revert=True), None).is_edited
    on_top = plan_change(target, EditRequest(SELECTOR, set_headers=(("b", "x"),)), None)
    assert on_top.edited_headers == (_h("a", "2"), _h("b", "x"))


def test_refused_unless_pending() -> None:
    for status in (Status.REPLAYED, Status.DISCARDED):
        with pytest.raises(EditRefused, match=f"is {status.value}: only pending"):
            _target(b"{}", status=status).refuse_unless_pending()
    _target(b"{}").refuse_unless_pending()
