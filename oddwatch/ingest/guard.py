"""The last-resort guard of a parse step: an exception for one message becomes an ingest error.

The parsers return typed errors for every bad input they know of; this guard keeps a flow
running when one of them meets an input nobody thought of. The error names the step, the
topic and an excerpt of the payload, so the message can be replayed against a fixed parser.

>>> from datetime import datetime
>>> from oddwatch.records import Message, UTC
>>> def broken(msg):
...     raise RecursionError("maximum recursion depth exceeded")
>>> err, = guarded("sensor", "parse_reading", broken)(Message("plant/a/b/c", b"[[[", datetime(2026, 1, 1, tzinfo=UTC)))
>>> err.reason, err.step
('parse_failed', 'parse_reading')
>>> print(err.detail)
parse_reading raised RecursionError for topic 'plant/a/b/c', payload '[[[': maximum recursion depth exceeded; the message was skipped (a parser bug: please report it with this payload)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from oddwatch.records import IngestError, Message, Stream, excerpt

T = TypeVar("T")

REASON = "parse_failed"


def failure(stream: Stream, step: str, msg: Message, exc: BaseException) -> IngestError:
    """The ``parse_failed`` ingest error for *exc* raised while parsing *msg*."""
    detail = (f"{step} raised {type(exc).__name__} for topic {msg.topic!r}, payload "
              f"{excerpt(msg.payload, 80)!r}: {str(exc)[:200]}; the message was skipped "
              "(a parser bug: please report it with this payload)")
    return IngestError(stream=stream, step=step, reason=REASON, topic=msg.topic,
                       payload=excerpt(msg.payload), detail=detail, ts=msg.received)


def guarded(stream: Stream, step: str, parse: Callable[[Message], list[T]]) -> Callable[[Message], list[T | IngestError]]:
    """*parse* that returns ``[IngestError]`` instead of raising (Exception, not KeyboardInterrupt)."""

    def run(msg: Message) -> list[T | IngestError]:
        try:
            return list(parse(msg))
        except Exception as exc:  # the last resort: one message never stops the flow
            return [failure(stream, step, msg, exc)]

    return run
