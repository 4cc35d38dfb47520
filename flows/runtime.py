"""What the flows share: the real connectors of a flow (built only where a caller did not pass its
own; building them starts nothing), the keyed-state operator and the steps every flow has."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from oddwatch.core.budget import AlertBudget
from oddwatch.core.feedback import Feedback, is_quiet, parse_feedback
from oddwatch.observe.metrics import METRICS
from oddwatch.records import Alert, IngestError, Message, Outgoing, Point
from oddwatch.records import Stream as StreamName
from oddwatch.schema import alert_message, alert_points, budget_point, deadletter_message
from oddwatch.settings import AlertSettings, Settings, expand

V = TypeVar("V")
W = TypeVar("W")
S = TypeVar("S")


def value_of(kv: tuple[str, V]) -> V:
    """The value of a keyed item (to leave a keyed step)."""
    return kv[1]


class Discard:
    """What a :func:`keyed_state` step function returns to drop its key's state (nothing is emitted)."""


DISCARD = Discard()


class _KeyedLogic(StatefulBatchLogic[V, W, S], Generic[V, W, S]):
    """One key's state: :meth:`on_batch` steps it in place, :meth:`snapshot` hands it over as is."""

    __slots__ = ("builder", "state", "step_fn")

    def __init__(self, state: S | None, builder: Callable[[V], S | None], step_fn: Callable[[S, V], W | Discard | None]) -> None:
        self.state = state
        self.builder = builder
        self.step_fn = step_fn

    def on_batch(self, values: list[V]) -> tuple[Iterable[W], bool]:
        state, step_fn = self.state, self.step_fn
        out: list[W] = []
        for v in values:
            if state is None:
                state = self.state = self.builder(v)
                if state is None:
                    continue
            w = step_fn(state, v)
            if isinstance(w, Discard):
                state = self.state = None
            elif w is not None:
                out.append(w)
        return out, state is None

    def snapshot(self) -> S:
        # Bytewax asks every touched key for a snapshot at each epoch close, recovery or not,
        # and drops it when recovery is off; with recovery on it pickles it for the epoch
        # (tests/test_recovery.py resumes from such snapshots). Returning the live state skips
        # the deep copy ``stateful_map`` makes there.
        return self.state  # type: ignore[return-value]


@operator
def keyed_state(
    step_id: str,
    up: KeyedStream[V],
    builder: Callable[[V], S | None],
    step_fn: Callable[[S, V], W | Discard | None],
) -> Stream[W]:
    """Per-key state that ``step_fn`` updates in place; emits its non-``None`` results, unkeyed.

    ``builder(value)`` makes the state from the first value of a key (``None``: the value is
    dropped and no state is kept); ``step_fn(state, value)`` updates it and returns what to
    emit, or :data:`DISCARD` to drop the key's state. Unlike ``op.stateful_map`` the state is never deep-copied: Bytewax takes a snapshot
    of every touched key at every epoch close even with recovery off, and a copy of a
    long-history state costs more than scoring the readings that touched it. A state must
    still pickle (recovery snapshots, ``-r``).

    >>> from bytewax.dataflow import Dataflow
    >>> from bytewax.testing import TestingSink, TestingSource, run_main
    >>> flow = Dataflow("keyed_state_eg")
    >>> nums = op.key_on("key", op.input("in", flow, TestingSource([1, 2, 3, 4])), lambda n: str(n % 2))
    >>> def total(state, n):
    ...     state.append(n)
    ...     return sum(state)
    >>> out = []
    >>> op.output("out", keyed_state("sum", nums, lambda n: [], total), TestingSink(out))
    >>> run_main(flow)
    >>> out
    [1, 2, 4, 6]
    """

    def build(resume: S | None) -> _KeyedLogic[V, W, S]:
        return _KeyedLogic(resume, builder, step_fn)

    keyed = op.stateful_batch("state", up, build)
    return op.map("values", keyed, value_of)


def state_dir(settings: Settings, flow: str) -> Path:
    """``<[state].dir>/<flow>``: the flow's WAL (``wal/``) and Bytewax snapshots (``recovery/``)."""
    return Path(expand(settings.state.dir)) / flow


def wal_source(settings: Settings, flow: str, topics: list[str], *, stop: threading.Event | None = None) -> Any:
    """MQTT -> the flow's WAL -> the dataflow (:class:`~oddwatch.connectors.wal.WalSource`)."""
    from oddwatch.connectors.mqtt import MqttWalReceiver
    from oddwatch.connectors.wal import Wal, WalSource

    def receive(wal: Wal, part: str) -> MqttWalReceiver:
        return MqttWalReceiver(settings.mqtt, topics, flow=flow, wal=wal, index=int(part.lstrip("p") or 0),
                               held=METRICS.held)

    return WalSource(state_dir(settings, flow) / "wal", receive, segment_bytes=settings.state.wal_segment_bytes,
                     fsync=settings.state.fsync, stop=stop)


def connectors(
    settings: Settings, flow: str, topics: list[str], *, source: Any = None, influx_sink: Any = None,
    mqtt_sink: Any = None,
) -> tuple[Any, Any, Any]:
    """``(source, influx_sink, mqtt_sink)``: MQTT in (plus feedback), InfluxDB and MQTT out.

    With ``[state].recovery`` (the default), a real run reads MQTT through the flow's WAL and
    its InfluxDB sink spools each batch before returning (see :mod:`oddwatch.connectors.wal`);
    run it with Bytewax recovery (``oddwatch run`` does). Building them starts nothing: the
    command that runs the flow starts its health endpoint and signal handling
    (:func:`oddwatch.flowrun.start_runtime`).
    """
    durable = "off"
    if source is None:
        subscribed = [*topics, settings.mqtt.feedback_topic]
        if settings.state.recovery:
            source = wal_source(settings, flow, subscribed)
            durable = "always" if settings.state.fsync == "always" else "page-cache"
        else:
            from oddwatch.connectors.mqtt import MqttSource

            source = MqttSource(settings.mqtt, subscribed, flow=flow)
    if influx_sink is None:
        from oddwatch.connectors.influx import InfluxSink

        influx_sink = InfluxSink(settings.influx, durable=durable, meters=METRICS)
    if mqtt_sink is None:
        from oddwatch.connectors.mqtt import MqttSink

        mqtt_sink = MqttSink(settings.mqtt, flow=flow)
    return source, influx_sink, mqtt_sink


class BudgetStep:
    """The Bytewax ``budget`` step's mapper (``stateful_map`` on one key for every alert).

    Emits the alerts to send (``Alert``) and, after each, the budget's ``pipeline`` point.
    With ``[alerts].budget_counts = "incidents"`` every alert passes: the incidents flow
    applies the budget to incidents instead.

    >>> from datetime import datetime
    >>> from oddwatch.settings import AlertSettings
    >>> from oddwatch.records import UTC, Alert
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> a = Alert("s1/p/t:1", "sensor", "open", "warning", "s1", "p", "", "", 0.7, 0.5, t, t)
    >>> budget, out = BudgetStep(AlertSettings(), "sensors")(None, a)
    >>> [type(x).__name__ for x in out]
    ['Alert', 'Point']
    """

    def __init__(self, alerts: AlertSettings, instance: str) -> None:
        self.alerts = alerts
        self.instance = instance

    def __call__(self, budget: AlertBudget | None, alert: Alert) -> tuple[AlertBudget, list[Alert | Point]]:
        if budget is None:
            a = self.alerts
            budget = AlertBudget(a.budget_per_source_per_hour, a.budget_global_per_hour,
                                 summary_every=getattr(a, "budget_summary_every", 10))
        if getattr(self.alerts, "budget_counts", "alerts") == "incidents":  # budgeted as incidents downstream
            return budget, [alert, budget_point(budget, self.instance, alert.ts)]
        out: list[Alert | Point] = list(budget.admit(alert))
        out.append(budget_point(budget, self.instance, alert.ts))
        return budget, out


def budget_points(item: Alert | Point) -> list[Point]:
    """InfluxDB points of one ``budget`` output: the alert's rows, or the ``pipeline`` point."""
    return alert_points(item) if isinstance(item, Alert) else [item]


# ---------------------------------------------------------------- steps every flow shares
class SplitFeedback:
    """The ``split_feedback`` step's predicate: True for a message on the feedback topics."""

    def __init__(self, prefix: str) -> None:
        self.head = prefix + "/"

    def __call__(self, msg: Message) -> bool:
        return msg.topic.startswith(self.head)


class ParseFeedback:
    """The ``parse_feedback`` step: a feedback message -> :class:`Feedback` or an ingest error."""

    def __init__(self, prefix: str, stream: StreamName) -> None:
        self.prefix = prefix
        self.stream: StreamName = stream

    def __call__(self, msg: Message) -> Feedback | IngestError:
        return parse_feedback(msg, prefix=self.prefix, stream=self.stream)


class ToMessage:
    """The ``to_messages`` step: a budgeted alert -> its MQTT message (none for quiet closes or points)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, item: Alert | Point) -> Outgoing | None:
        return alert_message(item, self.prefix) if isinstance(item, Alert) and not is_quiet(item) else None


class DeadletterMessage:
    """The ``deadletter_message`` step: an ingest error -> its dead-letter MQTT message."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, err: IngestError) -> Outgoing:
        return deadletter_message(err, self.prefix)


def budget_key(_: object) -> str:
    """The ``budget_key`` step: every alert of the flow through one budget."""
    return "budget"
