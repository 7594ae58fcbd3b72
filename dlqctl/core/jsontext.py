"""JSON as text: strict parsing with the line and column of an error, and re-indenting that
keeps every token as written (see docs/edit.md, "JSON values").

Parsing and printing JSON through Python values would change what an operator did not
touch: ``1.10`` becomes ``1.1``, ``1e400`` becomes ``Infinity``, a 20-digit amount loses
digits, ``\\u00e9`` becomes ``é``. ``pretty`` and ``compact`` only move whitespace between
tokens: strings, numbers and literals stay byte for byte, keys keep their order (duplicates
too), so ``compact(pretty(text)) == compact(text)``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

INDENT = 2
_WHITESPACE = frozenset(" \t\n\r")
_PUNCTUATION = frozenset("{}[],:")
# Python's json module accepts these; JSON (RFC 8259) does not.
_NOT_JSON_CONSTANTS = frozenset({"NaN", "Infinity", "-Infinity"})


class JsonTextError(ValueError):
    """Where a text stops being JSON: 1-based line and column, and why."""

    def __init__(self, line: int, column: int, reason: str) -> None:
        super().__init__(line, column, reason)
        self.line = line
        self.column = column
        self.reason = reason

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _reject_constant(name: str) -> Any:
    raise _ConstantFound(name)


class _ConstantFound(ValueError):
    pass


def decode_utf8(data: bytes) -> str:
    """``data`` as text; JsonTextError at the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise JsonTextError(line, column, "not UTF-8 text") from None


# A run of more digits than Python converts to an int (see parse).
_LONG_DIGITS = re.compile(f"[0-9]{{{sys.get_int_max_str_digits() + 1},}}")


def parse(data: bytes | str) -> Any:
    """The JSON value of ``data`` (UTF-8 when bytes); JsonTextError where it breaks.

    Strict: NaN and Infinity are not JSON, nor is an empty text.
    """
    text = decode_utf8(data) if isinstance(data, bytes) else data
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _ConstantFound as exc:
        for index, token in _tokens(text):
            if token in _NOT_JSON_CONSTANTS:
                line, column = _position(text, index)
                raise JsonTextError(line, column, f"{token} is not a JSON value") from None
        raise JsonTextError(1, 1, f"{exc.args[0]} is not a JSON value") from None
    except json.JSONDecodeError as exc:
        reason = exc.msg
        if not text.strip():
            reason = "empty: no JSON value"
        raise JsonTextError(exc.lineno, exc.colno, reason) from None
    except ValueError:
        # Python's limit on integer digits (sys.get_int_max_str_digits): such a value is
        # handled as bytes that are not JSON rather than converted at quadratic cost.
        long_number = _LONG_DIGITS.search(text)
        line, column = _position(text, long_number.start()) if long_number else (1, 1)
        limit = sys.get_int_max_str_digits()
        raise JsonTextError(line, column, f"a number of more than {limit} digits") from None


def is_json(data: bytes | str) -> bool:
    """Whether ``data`` is one strict JSON text (UTF-8 when bytes)."""
    try:
        parse(data)
    except JsonTextError:
        return False
    return True


def _tokens(text: str) -> Iterator[tuple[int, str]]:
    """(index, token): punctuation, whole string literals as written, and bare words
    (numbers, true, false, null); whitespace between them is dropped."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in _WHITESPACE:
            i += 1
        elif char in _PUNCTUATION:
            yield i, char
            i += 1
        elif char == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            yield i, text[i : j + 1]
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in _WHITESPACE and text[j] not in _PUNCTUATION:
                j += 1
            yield i, text[i:j]
            i = j


def compact(text: str) -> str:
    """Valid JSON ``text`` without whitespace between its tokens."""
    return "".join(token for _, token in _tokens(text))


def pretty(text: str, indent: int = INDENT) -> str:
    """Valid JSON ``text`` with one member or element per line, ``indent`` spaces a level;
    empty objects and arrays stay ``{}`` and ``[]``."""
    tokens = [token for _, token in _tokens(text)]
    out: list[str] = []
    depth = 0
    for i, token in enumerate(tokens):
        if token in ("{", "["):
            following = tokens[i + 1] if i + 1 < len(tokens) else ""
            if following in ("}", "]"):
                out.append(token)
            else:
                depth += 1
                out.append(token + "\n" + " " * (indent * depth))
        elif token in ("}", "]"):
            if i and tokens[i - 1] in ("{", "["):
                out.append(token)
            else:
                depth -= 1
                out.append("\n" + " " * (indent * depth) + token)
        elif token == ",":
            out.append(",\n" + " " * (indent * depth))
        elif token == ":":
            out.append(": ")
        else:
            out.append(token)
    return "".join(out)
