"""The log dataflow: MQTT log lines -> one decision object per log source -> InfluxDB and
explained MQTT alerts.

Run it with ``oddwatch run logs`` or ``python -m bytewax.run "flows.logs:build_flow()"``.

Steps: ``mqtt_in`` -> ``split_feedback`` -> ``parse_log`` / ``parse_feedback`` ->
``split_errors`` -> ``source_key`` (site/host/app; feedback by its alert's source) ->
``decide`` (Bytewax ``stateful_batch``: one :class:`~oddwatch.core.logsource.LogSourceState`
per source gets each batch of its lines in one call, so the batch's new templates are embedded
in one model call; wall-clock idleness closes the windows of a source that went quiet) ->
``to_points`` / ``alerts_of`` -> ``budget`` -> ``influx_out`` / ``mqtt_out``; ``flood_errors``
turns a source over its new-template limit into a ``template_flood`` ingest error. Every decision is
made inside the state; this module only wires it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeGuard, cast

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import StatefulBatchLogic

from detectors.embedders import Embedder, HashingEmbedder, TemplateEmbeddingCache
from flows.runtime import (
    BudgetStep,
    DeadletterMessage,
    ParseFeedback,
    SplitFeedback,
    ToMessage,
    budget_key,
    budget_points,
    connectors,
    value_of,
)
from oddwatch.core.admission import Evict, admit_sources
from oddwatch.core.feedback import (
    Feedback,
    FeedbackDone,
    route_key,
    topic_prefix,
)
from oddwatch.core.log_outputs import split_source
from oddwatch.core.log_pipeline import LogParams, ModelKey, build_embedder
from oddwatch.core.logsource import Decided, Drifted, Flooded, LogOutput, LogSourceState, RawLine, fleet_key
from oddwatch.ingest.guard import guarded
from oddwatch.ingest.logs import parse_log
from oddwatch.ingest.topics import matches, own_prefixes, subscribe_filters
from oddwatch.observe.logsetup import configure_logging
from oddwatch.observe.metrics import METRICS, Metrics
from oddwatch.records import (
    UTC,
    Alert,
    IngestError,
    LogLine,
    Message,
    Point,
    excerpt,
    spread_errors,
    utcnow,
    valid_text,
)
from oddwatch.schema import (
    drift_point,
    error_point,
    feedback_point,
    window_point,
)
from oddwatch.settings import AlertSettings, LogSettings, Settings, load_settings

Decision = LogOutput | FeedbackDone | IngestError
log = logging.getLogger(__name__)


class LogParser:
    """The ``parse_log`` step's parser of one message: topic -> site/host/app, payload -> lines
    or errors."""

    def __init__(self, settings: LogSettings) -> None:
        self.settings = settings

    def __call__(self, msg: Message) -> list[LogLine | IngestError]:
        return spread_errors(parse_log(msg, self.settings))  # type: ignore[return-value]


class ParseBatch:
    """The ``parse_log`` step over a batch of messages: *parse* each, count the messages once per
    batch and the errors by reason in *meters* when given."""

    def __init__(self, parse: Callable[[Message], list[Any]], meters: Metrics | None = None) -> None:
        self.parse = parse
        self.meters = meters

    def __call__(self, msgs: list[Message]) -> list[Any]:
        out: list[Any] = []
        for msg in msgs:
            out += self.parse(msg)
        if self.meters is not None:
            self.meters.messages_in.labels(stream="log").inc(len(msgs))
            for item in out:
                if isinstance(item, IngestError):
                    self.meters.parse_errors.labels(stream="log", reason=item.reason).inc()
        return out


class SubscriptionParams:
    """The log detector settings for a topic: ``[log_detector]`` with its subscription's windows.

    >>> from oddwatch.settings import Subscription
    >>> s = Settings()
    >>> s.logs.subscriptions = [Subscription("logs/+/+/+", "_/site/host/app"),
    ...                         Subscription("hdfs/+/+/+", "_/site/host/app", window_mode="session")]
    >>> p = SubscriptionParams(s)
    >>> p("logs/s1/web1/nginx").window_mode, p("hdfs/s1/dn1/datanode").window_mode
    ('tumbling', 'session')
    """

    def __init__(self, settings: Settings) -> None:
        self.base: LogParams = settings.log_detector
        self.subscriptions = settings.logs.subscriptions

    def __call__(self, topic: str) -> LogParams:
        for sub in self.subscriptions:
            if matches(sub.topic, topic):
                overrides = sub.window_overrides()
                if not overrides:
                    return self.base
                params = dataclasses.replace(self.base, **cast("dict[str, Any]", overrides))
                params.validate()
                return params
        return self.base


class SharedEmbeddings:
    """The process's template embedding cache, shared by every source's state.

    Bytewax worker threads of one process share it, so calls are serialised; each call's
    cache hits, misses and model calls are counted in *meters*.
    """

    def __init__(self, cache: TemplateEmbeddingCache, meters: Metrics) -> None:
        self.cache = cache
        self.meters = meters
        self.failures: list[tuple[str, Exception]] = []
        self._lock = threading.Lock()

    @property
    def key(self) -> ModelKey | None:
        return self.cache.key

    def embed(self, templates: list[str]) -> np.ndarray:
        with self._lock:
            c = self.cache
            hits, misses, calls = c.hits, c.misses, c.model_calls
            try:
                rows = c.embed(templates)
            except Exception:  # noqa: BLE001 - one bad template must not stop the flow
                rows = self._one_by_one(templates)
            self.meters.template_cache_hits.inc(c.hits - hits)
            self.meters.template_cache_misses.inc(c.misses - misses)
            if c.model_calls > calls:
                self.meters.model_calls.inc(c.model_calls - calls)
                self.meters.embed_batch_size.observe((c.misses - misses) / (c.model_calls - calls))
            return rows


    def _one_by_one(self, templates: list[str]) -> np.ndarray:
        """Rows for *templates* one model call each, after a call for all of them failed; a template
        the model refuses gets a stand-in (hashing) vector and a ``model_failed`` entry in
        ``failures`` (taken by :meth:`take_failures`)."""
        rows = []
        for text in templates:
            try:
                rows.append(self.cache.embed([text])[0])
            except Exception as exc:  # noqa: BLE001 - reported as an ingest error
                self.failures.append((text, exc))
                rows.append(HashingEmbedder(dim=self.cache.dim).encode([valid_text(str(text))])[0])
        return np.stack(rows) if rows else np.zeros((0, self.cache.dim), dtype=np.float32)

    def take_failures(self) -> list[tuple[str, Exception]]:
        with self._lock:
            out, self.failures = self.failures, []
            return out


# ---------------------------------------------------------------- step "decide"
class SourceLogic(StatefulBatchLogic[LogLine | Feedback | Evict, Decision, LogSourceState]):
    """Bytewax logic around one :class:`LogSourceState`.

    Each batch's lines go to the state in one call (feedback in between splits the batch, so
    order is kept). Event time of an idle source is estimated as its last line's time plus
    the wall time it has been silent beyond ``idle_check_s``, so a service that goes quiet
    still has its windows decided.
    """

    def __init__(self, decide: Decide, state: LogSourceState | None) -> None:
        self.decide = decide
        self.state = state
        if state is not None:
            state.bind(decide.embeddings)
        self.last_event: float | None = None
        self.last_wall: datetime | None = None

    def on_batch(self, values: list[LogLine | Feedback | Evict]) -> tuple[list[Decision], bool]:
        out: list[Decision] = []
        run: list[RawLine] = []
        lines = 0
        for value in values:
            if isinstance(value, Evict):  # idle, and its place went to a new source: decide what is left, drop it
                out += self._step(run)
                run = []
                if self.state is not None:
                    state = self.state
                    key = value.key
                    out += self.decide.record(state, self._guarded("drop", functools.partial(state.drop, key)))
                    if not state.sources:
                        self.state = None
                continue
            if isinstance(value, Feedback):
                out += self._step(run)
                run = []
                if self.state is not None:  # else not ours (maybe the sensor flow's)
                    out.append(self.state.apply_feedback(value))
                continue
            if self.state is None:
                self.state = self.decide.new_state(value)
            ts = value.ts.timestamp()
            run.append((ts, value.msg, value.key, value.level))
            self.last_event = ts if self.last_event is None or ts > self.last_event else self.last_event
            lines += 1
        if lines:
            self.last_wall = utcnow()
        out += self._step(run)
        return out, (StatefulBatchLogic.DISCARD if self.state is None else StatefulBatchLogic.RETAIN)

    def _step(self, run: list[RawLine]) -> list[Decision]:
        if not run or self.state is None:
            return []
        state = self.state
        held = state.templates_held
        out = self._guarded("step", lambda: state.step(run), run)
        self.decide.meters.template_cache_hits.inc(state.templates_held - held)  # the state's own vectors
        return self.decide.record(state, out)

    def _guarded(self, call: str, fn: Callable[[], list[Any]], run: list[RawLine] | None = None) -> list[Any]:
        """``fn()``'s outputs plus an ingest error per template the model refused; when ``fn``
        raises, an ingest error per line of *run* (or one for the source) instead: the flow goes on."""
        assert self.state is not None
        key = self.state.key
        try:
            out = list(fn())
        except Exception as exc:  # noqa: BLE001 - the last resort: one source's input never stops the flow
            log.error("step 'decide': LogSourceState.%s for source %r raised %s: %s; its %d line(s) went to "
                      "ingest_error and the dead-letter topic", call, key, type(exc).__name__, exc, len(run or ()))
            texts = [line[1] for line in run] if run else [""]
            out = [decide_error(key, text, f"LogSourceState.{call} raised {type(exc).__name__}: {str(exc)[:300]}; "
                                "the line was not scored (a bug: please report it with this payload)")
                   for text in texts]
        for text, refused in self.decide.embeddings.take_failures():
            out.append(decide_error(key, text, f"the embedding model raised {type(refused).__name__} for this template: "
                                    f"{str(refused)[:300]}; it was scored with a stand-in (hashing) vector"))
        return out

    def on_notify(self) -> tuple[list[Decision], bool]:
        if self.state is None or self.last_event is None or self.last_wall is None:
            return [], StatefulBatchLogic.RETAIN
        # Only silence beyond the idle period counts: a worker busy elsewhere (a model call)
        # must not close a window whose next lines are still queued.
        silent = (utcnow() - self.last_wall).total_seconds() - self.decide.idle.total_seconds()
        if silent <= 0:
            return [], StatefulBatchLogic.RETAIN
        state, at = self.state, self.last_event + silent
        return self.decide.record(state, self._guarded("advance", lambda: state.advance(at))), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Decision], bool]:
        if self.state is None:
            return [], StatefulBatchLogic.RETAIN
        state = self.state
        return self.decide.record(state, self._guarded("flush", state.flush)), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return None if self.last_wall is None else utcnow() + self.decide.idle

    def snapshot(self) -> LogSourceState:
        assert self.state is not None  # a logic without state is discarded, never snapshotted
        return self.state  # as is, no copy: Bytewax pickles it with recovery on and drops it otherwise


class Decide:
    """The ``decide`` step's builder: a :class:`SourceLogic` per source key, new or resumed."""

    def __init__(self, params: Callable[[str], LogParams], alerts: AlertSettings, embeddings: SharedEmbeddings,
                 meters: Metrics, idle_check_s: float) -> None:
        self.params = params  # topic -> the detector settings of its subscription
        self.alerts = alerts
        self.embeddings = embeddings
        self.meters = meters
        self.idle = timedelta(seconds=idle_check_s)

    def __call__(self, resume: LogSourceState | None) -> SourceLogic:
        return SourceLogic(self, resume)

    def new_state(self, line: LogLine) -> LogSourceState:
        params = self.params(line.topic)
        return LogSourceState(fleet_key(line.key, params.fleet), params, alerts=self.alerts,
                              embeddings=self.embeddings)

    def record(self, state: LogSourceState, outputs: list[LogOutput]) -> list[Decision]:
        """Count the state's outputs in the metrics; returns them unchanged."""
        now = utcnow().timestamp()
        decided = 0
        for item in outputs:
            if isinstance(item, Decided):
                decided += 1
                self.meters.end_to_end_lag_seconds.observe(max(0.0, now - item.result.end))
            elif isinstance(item, Alert):
                self.meters.alerts.labels(source="log", kind=item.kind).inc()
            elif isinstance(item, Flooded):
                self.meters.parse_errors.labels(stream="log", reason=FLOOD_REASON).inc()
            elif isinstance(item, IngestError):
                self.meters.parse_errors.labels(stream="log", reason=item.reason).inc()
        if decided:
            self.meters.windows_scored.inc(decided)
            self.meters.index_size.labels(group=state.key).set(state.index_size)
        return list(outputs)


# ---------------------------------------------------------------- small named steps
def is_line(x: object) -> TypeGuard[LogLine | Evict]:
    """Log lines (and evictions of idle sources) go on to their source; everything else is an ingest error."""
    return isinstance(x, (LogLine, Evict))


def is_feedback(x: object) -> TypeGuard[Feedback]:
    """Parsed feedback goes to its source; everything else is an ingest error."""
    return isinstance(x, Feedback)


class SourceKey:
    """The ``source_key`` step: lines (and evictions) by the fleet of their site/host/app
    (``[log_detector] fleet``), feedback by its alert's source's fleet."""

    def __init__(self, fleet: str = "site/app") -> None:
        self.fleet = fleet

    def __call__(self, item: LogLine | Feedback | Evict) -> str:
        return fleet_key(route_key(item.alert_id) if isinstance(item, Feedback) else item.key, self.fleet)


source_key = SourceKey()


def to_points(d: Decision) -> list[Point]:
    """Points for a decided window, a drift or applied feedback; alert rows come from ``budget``."""
    if isinstance(d, Decided):
        return [window_point(d.result, d.stamp)]
    if isinstance(d, Drifted):
        return [drift_point(split_source(d.source), d.event, stream="log", threshold=d.threshold)]
    if isinstance(d, FeedbackDone):
        return [feedback_point(d.feedback, d.site, "log")]
    return []


FLOOD_REASON = "template_flood"


def decide_error(source: str, text: str, detail: str) -> IngestError:
    """The ``model_failed`` ingest error of a line or template the ``decide`` step could not use."""
    return IngestError(stream="log", step="decide", reason=MODEL_FAILED, topic=source, payload=excerpt(text),
                       detail=f"log source {source}: {detail}", ts=utcnow())


MODEL_FAILED = "model_failed"


def flood_error(d: Decision) -> IngestError | None:
    """The ``flood_errors`` step: a source over its new-template limit -> a ``template_flood``
    ingest error naming the source and the limit, with an example line as its payload, stamped
    when decided (sources flooding in the same minute must not share a point)."""
    if isinstance(d, IngestError):  # a line or template the model refused (see SourceLogic._guarded)
        return d
    if not isinstance(d, Flooded):
        return None
    minute = datetime.fromtimestamp(d.minute, UTC)
    done = ("its other lines of new shapes were not mined (counted as <unknown template>)" if d.kind == "templates"
            else "its other new templates were scored with stand-in (hashing) vectors, not the model")
    detail = (f"log source {d.source} made more than [log_detector].max_new_templates_per_min = {d.limit} new "
              f"templates in the minute from {minute.isoformat()}; {done} for the rest of that minute. Check what "
              "this source logs (unique ids or data in every line? see the payload) or raise the setting")
    return IngestError(stream="log", step="decide", reason=FLOOD_REASON, topic=d.source,
                       payload=excerpt(d.example), detail=detail, ts=utcnow())


def alerts_of(d: Decision) -> list[Alert]:
    """The alert transitions among the outputs (a quiet close of applied feedback included)."""
    if isinstance(d, Alert):
        return [d]
    return [d.alert] if isinstance(d, FeedbackDone) and d.alert is not None else []


def build_flow(
    settings: Settings | None = None,
    *,
    source: Any = None,
    influx_sink: Any = None,
    mqtt_sink: Any = None,
    embedder: Embedder | None = None,
    idle_check_s: float = 5.0,
    meters: Metrics | None = None,
) -> Dataflow:
    """The log dataflow; real connectors, the configured model and the process's metrics unless
    others are given."""
    configure_logging()
    settings = settings or load_settings()
    params: LogParams = settings.log_detector
    params.validate()
    meters = meters or METRICS
    embeddings = SharedEmbeddings(
        TemplateEmbeddingCache(embedder or build_embedder(params), capacity=params.cache_capacity), meters)
    topics = subscribe_filters(settings.logs.subscriptions, own_prefixes(settings))
    source, influx_sink, mqtt_sink = connectors(settings, "logs", topics, source=source,
                                                influx_sink=influx_sink, mqtt_sink=mqtt_sink)
    fb_prefix = topic_prefix(settings.mqtt.feedback_topic)
    decide = Decide(SubscriptionParams(settings), settings.alerts, embeddings, meters, idle_check_s)

    flow = Dataflow("logs")
    messages = op.input("mqtt_in", flow, source)
    by_topic = op.branch("split_feedback", messages, SplitFeedback(fb_prefix))
    feedback = op.branch("split_feedback_errors", op.map("parse_feedback", by_topic.trues, ParseFeedback(fb_prefix, "log")),
                         is_feedback)
    parse = guarded("log", "parse_log", admit_sources(LogParser(settings.logs), settings.logs))
    parsed = op.flat_map_batch("parse_log", by_topic.falses, ParseBatch(parse, meters))
    lines = op.branch("split_errors", parsed, is_line)
    keyed = op.key_on("source_key", op.merge("lines_and_feedback", lines.trues, feedback.trues),
                       SourceKey(params.fleet))
    decided: Stream[Decision] = op.map("unkey", op.stateful_batch("decide", keyed, decide), value_of)
    points = op.flat_map("to_points", decided, to_points)
    to_budget = op.key_on("budget_key", op.flat_map("alerts_of", decided, alerts_of), budget_key)
    budgeted = op.flat_map("unkey_budget", op.stateful_map("budget", to_budget, BudgetStep(settings.alerts, "logs")),
                           value_of)
    alert_pts = op.flat_map("budget_points", budgeted, budget_points)
    alerts = op.filter_map("to_messages", budgeted, ToMessage(settings.mqtt.alerts_prefix))
    floods = op.filter_map("flood_errors", decided, flood_error)
    errors = cast("Stream[IngestError]", op.merge("all_errors", lines.falses, feedback.falses, floods))
    op.output("influx_out", op.merge("all_points", points, alert_pts, op.map("error_point", errors, error_point)),
              influx_sink)
    op.output("mqtt_out", op.merge("all_messages", alerts, op.map(
        "deadletter_message", errors, DeadletterMessage(settings.mqtt.deadletter_prefix))), mqtt_sink)
    return flow
