"""The comments of the sample config, read from the settings classes' own source.

A key's comment is the trailing ``# ...`` of its field line, or the ``# ...`` lines right above
it; a section's comment is the first paragraph of its class docstring. Inherited fields (the
``[series]`` detector tunables) take their comments from the class that declares them. So the
sample file says what the code says, and a new setting documented where it is declared is
documented in the sample.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
from functools import cache


@cache
def _class_comments(cls: type) -> dict[str, str]:
    """Field name -> comment for the fields *cls* itself declares."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    node = ast.parse(source).body[0]
    out: dict[str, str] = {}
    if not isinstance(node, ast.ClassDef):
        return out
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        trailing = comments.get(stmt.end_lineno or stmt.lineno)
        above: list[str] = []
        n = stmt.lineno - 1
        while n >= 1 and lines[n - 1].strip().startswith("#"):
            above.insert(0, comments.get(n, ""))
            n -= 1
        text = " ".join(t for t in (*above, trailing or "") if t)
        if text:
            out[stmt.target.id] = text
    return out


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> comment for every field of the dataclass *cls*, inherited ones included.

    >>> from oddwatch.settings.sections import InfluxSettings
    >>> field_comments(InfluxSettings)["flush_interval_s"]
    'longest a point waits in memory: bounds publish -> queryable'
    """
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            out.update(_class_comments(klass))
    return out


def section_comment(cls: type) -> str:
    """The first paragraph of *cls*'s docstring, on one line ("" when it has none of its own)."""
    doc = cls.__dict__.get("__doc__") or ""
    if not doc or doc.startswith(f"{cls.__name__}("):  # the docstring dataclass() writes
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
