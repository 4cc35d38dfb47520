"""InfluxDB line protocol: :func:`to_line` writes one, :func:`parse_lines` reads many.

Escaping (as InfluxDB 1.x and 2.x read it):

- measurement: ``,`` and space get a backslash;
- tag keys, tag values and field keys: ``,``, ``=`` and space get a backslash;
- any other backslash in a name is literal (the server does not unescape ``\\\\``), so a
  backslash at the end of a name or before a character that needs escaping cannot be
  stored as written: InfluxDB 1.6 rejects the first and doubles the second. The writer puts
  ``/`` there instead; the payload parsers reject such tags first (:func:`tag_problem`);
- control characters (NUL, newlines, tabs ...) are removed from names and tag values, and
  tag values are cut to :data:`MAX_TAG_CHARS`;
- string field values go in double quotes with ``"`` and ``\\`` escaped.

Raw newlines are never written: a newline (or carriage return) in a string field becomes
the two characters ``\\n`` (``\\r``), which InfluxDB stores as written. Readers therefore see
a backslash-n where the text had a line break. Other control characters, NUL included,
are stored and returned as they are.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from datetime import UTC, datetime

from oddwatch.records import Point

FieldValue = float | int | bool | str
ParsedLine = tuple[str, dict[str, str], dict[str, FieldValue], int | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_MEASUREMENT_SPECIAL = frozenset(", ")
_KEY_SPECIAL = frozenset(",= ")
#: The longest tag value written; longer ones are cut (parsers reject them first).
MAX_TAG_CHARS = 256

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NEEDS_ESCAPE = re.compile(r"[\\,= \x00-\x1f\x7f-\x9f]")
_UNSTORABLE_BACKSLASH = re.compile(r"\\(?=[,= ]|$)")


def strip_control(text: str) -> str:
    r"""*text* without control characters (C0, DEL and C1), which tags cannot hold.

    >>> strip_control("pump\x00-1\n")
    'pump-1'
    """
    return _CONTROL.sub("", text)


def tag_problem(value: str) -> str | None:
    r"""Why InfluxDB cannot store *value* as a tag value exactly as it is, or None.

    >>> tag_problem("pump-1") is None, tag_problem("C:\\temp\\x") is None
    (True, True)
    >>> tag_problem("C:\\temp\\")
    "ends in a backslash or has one before ',', '=' or a space, which InfluxDB cannot store as written"
    """
    if len(value) > MAX_TAG_CHARS:
        return f"is {len(value)} characters long; tag values are limited to {MAX_TAG_CHARS}"
    if _CONTROL.search(value):
        return "holds control characters"
    if _UNSTORABLE_BACKSLASH.search(value):
        return ("ends in a backslash or has one before ',', '=' or a space, which InfluxDB cannot "
                "store as written")
    return None


@functools.lru_cache(maxsize=65536)
def _escape_name(text: str, special: frozenset[str]) -> str:
    if not _NEEDS_ESCAPE.search(text):  # the common case: nothing to escape
        return text
    text = _CONTROL.sub("", text)
    out: list[str] = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch == "\\":
            nxt = text[i + 1] if i < last else ""
            out.append("/" if nxt == "" or nxt in special else "\\")
        elif ch in special:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def escape_measurement(name: str) -> str:
    r"""Escape a measurement name.

    >>> escape_measurement("cpu load,total")
    'cpu\\ load\\,total'
    """
    return _escape_name(name, _MEASUREMENT_SPECIAL)


def escape_key(text: str) -> str:
    r"""Escape a tag key, tag value or field key.

    >>> escape_key("a b=c,d")
    'a\\ b\\=c\\,d'
    >>> escape_key("C:\\temp\\"), escape_key("a\\ b")
    ('C:\\temp/', 'a/\\ b')
    """
    return _escape_name(text, _KEY_SPECIAL)


def escape_string(value: str) -> str:
    r"""A string field value, quoted.

    >>> print(escape_string('say "hi"\\now\nbye'))
    "say \"hi\"\\now\nbye"
    """
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{body}"'


def timestamp_ns(ts: datetime) -> int:
    """Nanoseconds since the epoch of a timezone-aware datetime, exactly.

    >>> timestamp_ns(datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC))
    1704067200000001000
    """
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"line protocol: timestamp {ts!r} is naive; use a timezone-aware UTC datetime")
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def format_field(measurement: str, key: str, value: object) -> str:
    """One field value in line protocol; floats stay floats (``1.0``), ints get ``i``.

    >>> format_field("m", "f", 1.0), format_field("m", "n", 3), format_field("m", "b", True)
    ('1.0', '3i', 'true')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        number = int(value)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise ValueError(f"line protocol: measurement {measurement!r} field {key!r} = {number} is outside int64")
        return f"{number}i"
    if isinstance(value, numbers.Real):
        real = float(value)
        if not math.isfinite(real):
            raise ValueError(f"line protocol: measurement {measurement!r} field {key!r} = {real!r} is not finite")
        return repr(real)
    if isinstance(value, str):
        return escape_string(value)
    type_name = type(value).__name__
    if type_name == "bool_":  # numpy.bool_ without importing numpy
        return "true" if value else "false"
    raise ValueError(
        f"line protocol: measurement {measurement!r} field {key!r} has type {type_name}; "
        "expected float, int, bool or str"
    )


def to_line(point: Point) -> str:
    r"""One point as a line of InfluxDB line protocol (no trailing newline).

    Tags are sorted by key; tags with empty values (also after removing control characters)
    are dropped.

    >>> from oddwatch.records import Point
    >>> p = Point("sensor score", {"site": "s1", "asset": "pump,2", "unit": ""},
    ...           {"value": 1.0, "n": 3, "ok": True, "note": 'a "b"'},
    ...           datetime(2024, 1, 1, tzinfo=UTC))
    >>> print(to_line(p))
    sensor\ score,asset=pump\,2,site=s1 value=1.0,n=3i,ok=true,note="a \"b\"" 1704067200000000000
    >>> to_line(Point("m", {}, {}, datetime(2024, 1, 1, tzinfo=UTC)))
    Traceback (most recent call last):
    ...
    ValueError: line protocol: measurement 'm' has no fields; a point needs at least one
    """
    m = point.measurement
    tags = tuple(point.tags.items())
    try:
        head = _series_key(m, tags)
    except TypeError:  # an unhashable tag value
        head = _series_key.__wrapped__(m, tags)
    fields = []
    for key, value in point.fields.items():
        kind = type(value)
        if kind is float and value - value == 0.0:  # type: ignore[operator]  # finite float: the common case
            text = repr(value)
        elif kind is bool:
            text = "true" if value else "false"
        else:
            text = format_field(m, key, value)
        if not key:
            raise ValueError(f"line protocol: measurement {m!r} has a field with an empty key (value {value!r})")
        fields.append(f"{escape_key(key)}={text}")
    if not fields:
        raise ValueError(f"line protocol: measurement {m!r} has no fields; a point needs at least one")
    return f"{head} {','.join(fields)} {timestamp_ns(point.ts)}"


@functools.lru_cache(maxsize=65536)
def _series_key(m: str, tags: tuple[tuple[str, str], ...]) -> str:
    """Measurement and sorted, escaped tags: the part of a line shared by a series' points."""
    if not escape_measurement(m):
        raise ValueError(f"line protocol: empty measurement name for point with tags {dict(tags)!r}")
    if escape_measurement(m).startswith("#"):
        raise ValueError(f"line protocol: measurement {m!r} starts with '#', which InfluxDB reads as a comment")
    parts = [escape_measurement(m)]
    seen: set[str] = set()
    for key, value in sorted(tags):
        if value is None or value == "" or not escape_key(str(value)[:MAX_TAG_CHARS]):
            continue
        if not key:
            raise ValueError(f"line protocol: measurement {m!r} has a tag with an empty key (value {value!r})")
        name = escape_key(key)
        if name in seen:  # two keys that differ only in control characters: InfluxDB takes one
            continue
        seen.add(name)
        parts.append(f"{name}={escape_key(str(value)[:MAX_TAG_CHARS])}")
    return ",".join(parts)


# --------------------------------------------------------------------------- parser
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+i")
_UINT_RE = re.compile(r"\d+u")
_TS_RE = re.compile(r"-?\d+")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.end = len(text)

    def fail(self, what: str, pos: int | None = None) -> ValueError:
        pos = self.pos if pos is None else pos
        line_no = self.text.count("\n", 0, pos) + 1
        start = self.text.rfind("\n", 0, pos) + 1
        stop = self.text.find("\n", pos)
        line = self.text[start : stop if stop >= 0 else self.end]
        shown = line if len(line) <= 120 else line[:117] + "..."
        return ValueError(
            f"line protocol: {what} at line {line_no} column {pos - start + 1} (offset {pos}): {shown!r}"
        )

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def name(self, stops: str, escapable: str, what: str) -> str:
        """Read an escaped name up to an unescaped char in *stops* (or end / newline).

        A backslash escapes the characters in *escapable*; before any other character both
        stay, as InfluxDB keeps them.
        """
        out: list[str] = []
        start = self.pos
        text = self.text
        while self.pos < self.end:
            ch = text[self.pos]
            if ch == "\\" and self.pos + 1 < self.end and text[self.pos + 1] not in "\r\n":
                nxt = text[self.pos + 1]  # as InfluxDB reads it: the pair is one unit
                out.append(nxt if nxt in escapable else ch + nxt)
                self.pos += 2
                continue
            if ch in stops or ch in "\r\n":
                break
            out.append(ch)
            self.pos += 1
        if self.pos == start:
            raise self.fail(f"empty {what}")
        return "".join(out)

    def string(self) -> str:
        opening = self.pos
        self.pos += 1  # opening quote
        out: list[str] = []
        text = self.text
        while self.pos < self.end:
            ch = text[self.pos]
            if ch == "\\" and self.pos + 1 < self.end and text[self.pos + 1] in '"\\':
                out.append(text[self.pos + 1])
                self.pos += 2
            elif ch == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(ch)
                self.pos += 1
        raise self.fail("unterminated string field value", opening)

    def field_value(self, key: str) -> FieldValue:
        if self.peek() == '"':
            return self.string()
        start = self.pos
        while self.pos < self.end and self.text[self.pos] not in ", \r\n":
            self.pos += 1
        token = self.text[start : self.pos]
        if not token:
            raise self.fail(f"missing value for field {key!r}", start)
        if token in _TRUE:
            return True
        if token in _FALSE:
            return False
        if _INT_RE.fullmatch(token):
            number = int(token[:-1])
            if not _INT64_MIN <= number <= _INT64_MAX:
                raise self.fail(f"field {key!r} integer {token} out of int64 range", start)
            return number
        if _UINT_RE.fullmatch(token):
            number = int(token[:-1])
            if number > _UINT64_MAX:
                raise self.fail(f"field {key!r} unsigned {token} out of uint64 range", start)
            return number
        if _FLOAT_RE.fullmatch(token):
            value = float(token)
            if not math.isfinite(value):
                raise self.fail(f"field {key!r} float {token} is not finite", start)
            return value
        raise self.fail(f"invalid value {token!r} for field {key!r}", start)

    def spaces(self) -> int:
        start = self.pos
        while self.peek() == " ":
            self.pos += 1
        return self.pos - start

    def at_eol(self) -> bool:
        return self.pos >= self.end or self.text[self.pos] in "\r\n"

    def line(self) -> ParsedLine:
        measurement = self.name(", ", ", ", "measurement")
        tags: dict[str, str] = {}
        while self.peek() == ",":
            self.pos += 1
            key = self.name(",= ", ",= ", "tag key")
            if self.peek() != "=":
                raise self.fail(f"expected '=' after tag key {key!r}")
            self.pos += 1
            if self.peek() in ("", ",", " ", "\r", "\n"):
                raise self.fail(f"missing value for tag {key!r}")
            tags[key] = self.name(",= ", ",= ", "tag value")
            if self.peek() == "=":
                raise self.fail(f"unescaped '=' in value of tag {key!r}")
        if self.spaces() == 0 or self.at_eol():
            raise self.fail(f"measurement {measurement!r} has no fields")
        fields: dict[str, FieldValue] = {}
        while True:
            key = self.name(",= ", ",= ", "field key")
            if self.peek() != "=":
                raise self.fail(f"expected '=' after field key {key!r}")
            self.pos += 1
            fields[key] = self.field_value(key)
            if self.peek() != ",":
                break
            self.pos += 1
        ts: int | None = None
        if self.peek() == " ":
            self.spaces()
            if not self.at_eol():
                start = self.pos
                while self.pos < self.end and self.text[self.pos] not in " \r\n":
                    self.pos += 1
                token = self.text[start : self.pos]
                if not _TS_RE.fullmatch(token):
                    raise self.fail(f"invalid timestamp {token!r}", start)
                ts = int(token)
                self.spaces()
        if not self.at_eol():
            raise self.fail(f"unexpected {self.peek()!r} after the fields")
        return measurement, tags, fields, ts

    def parse(self) -> list[ParsedLine]:
        out: list[ParsedLine] = []
        text = self.text
        while self.pos < self.end:
            while self.pos < self.end and text[self.pos] in " \r\n":
                self.pos += 1
            if self.pos >= self.end:
                break
            if text[self.pos] == "#":
                nl = text.find("\n", self.pos)
                self.pos = self.end if nl < 0 else nl + 1
                continue
            out.append(self.line())
        return out


def parse_lines(text: str) -> list[ParsedLine]:
    r"""Parse line protocol into ``(measurement, tags, fields, timestamp_ns or None)`` tuples.

    Blank lines and ``#`` comments are skipped; ``i``/``u`` integers become ints, ``t``/
    ``false``/... booleans; quoted strings may hold escaped quotes and backslashes. Raises
    ValueError naming the line, column and offset of malformed input.

    >>> parse_lines('cpu,host=a\\ b usage=0.5,n=3i,ok=t,msg="x \\"y\\"" 1700000000000000000\n')
    [('cpu', {'host': 'a b'}, {'usage': 0.5, 'n': 3, 'ok': True, 'msg': 'x "y"'}, 1700000000000000000)]
    >>> parse_lines("temp value=21.5")
    [('temp', {}, {'value': 21.5}, None)]
    >>> parse_lines("temp value=abc")
    Traceback (most recent call last):
    ...
    ValueError: line protocol: invalid value 'abc' for field 'value' at line 1 column 12 (offset 11): 'temp value=abc'
    """
    if not _NOT_PLAIN.search(text):
        plain = _plain_lines(text)
        if plain is not None:
            return plain
    return _Parser(text).parse()


_NOT_PLAIN = re.compile(r'[\\"#\r]')


def _plain_value(token: str) -> FieldValue | None:
    """A field value as :meth:`_Parser.field_value` reads it; None where the full parser must decide."""
    if _FLOAT_RE.fullmatch(token):
        value = float(token)
        return value if value - value == 0.0 else None
    if token in _TRUE:
        return True
    if token in _FALSE:
        return False
    if _INT_RE.fullmatch(token):
        number = int(token[:-1])
        return number if _INT64_MIN <= number <= _INT64_MAX else None
    return None


def _plain_lines(text: str) -> list[ParsedLine] | None:
    """Lines without escapes, quotes, comments or extra spaces, split on their separators.

    None as soon as a line is not of that simple form: the full parser then reads the whole
    text (and names the line and column of any error).
    """
    out: list[ParsedLine] = []
    for line in text.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        n = len(parts)
        if n == 3:
            ts_token = parts[2]
            if not _TS_RE.fullmatch(ts_token):
                return None
            ts: int | None = int(ts_token)
        elif n == 2:
            ts = None
        else:
            return None
        head = parts[0].split(",")
        measurement = head[0]
        if not measurement:
            return None
        tags: dict[str, str] = {}
        for pair in head[1:]:
            key, eq, value = pair.partition("=")
            if not key or not value or "=" in value:
                return None
            tags[key] = value
        fields: dict[str, FieldValue] = {}
        for pair in parts[1].split(","):
            key, eq, token = pair.partition("=")
            if not key or not token or "=" in token:
                return None
            field = _plain_value(token)
            if field is None:
                return None
            fields[key] = field
        out.append((measurement, tags, fields, ts))
    return out
