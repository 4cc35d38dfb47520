"""The log dataflow: MQTT log lines -> templates and windows -> micro-batched embeddings ->
usearch novelty -> InfluxDB and explained MQTT alerts.

Run it with ``oddwatch run logs`` or ``python -m bytewax.run "flows.logs:build_flow()"``.

Steps: ``mqtt_in`` -> ``parse_log`` -> ``split_errors`` -> ``group_key`` -> ``templates``
(one :class:`~oddwatch.core.log_pipeline.GroupTemplates` per site/host/app; windows close on event
time, and on wall-clock idleness so a source that goes silent still closes its window) ->
``micro_batch`` (Bytewax ``collect``: up to ``micro_batch`` items or ``batch_wait_ms``) ->
``embed`` (one :class:`~detectors.embedders.TemplateEmbeddingCache`: the model sees only
templates it never embedded) -> ``novelty`` (one :class:`~oddwatch.core.log_pipeline.GroupNovelty` and
alert tracker per group) -> ``influx_out`` / ``mqtt_out``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import StatefulLogic

from detectors.drift import DriftEvent, DriftWatch
from detectors.embedders import Embedder, TemplateEmbeddingCache
from detectors.rates import TemplateRates
from detectors.silence import SilenceWatch
from flows.runtime import connectors, value_of
from oddwatch.core.alerts import AlertTracker
from oddwatch.core.budget import BudgetStep, budget_points
from oddwatch.core.drift import drift_point
from oddwatch.core.feedback import (
    Feedback,
    FeedbackResult,
    RecentWindows,
    apply_log_feedback,
    feedback_point,
    parse_feedback,
    route_key,
    topic_prefix,
    window_meta,
)
from oddwatch.core.log_outputs import (
    Silence,
    log_alert,
    severity_of,
    silence_alerts,
    split_source,
    window_point,
)
from oddwatch.core.log_pipeline import (
    EmbeddedChange,
    EmbeddedWindow,
    GroupNovelty,
    GroupTemplates,
    LogParams,
    TemplateChange,
    TemplatedWindow,
    WindowResult,
    build_embedder,
    embed_batch,
)
from oddwatch.ingest.logs import parse_log
from oddwatch.ingest.topics import matches
from oddwatch.observe import metrics
from oddwatch.observe.logsetup import configure_logging
from oddwatch.records import UTC, Alert, IngestError, LogLine, Message, Point, spread_errors, utcnow
from oddwatch.schema import alert_message, deadletter_message, error_point
from oddwatch.settings import LogSettings, Settings, load_settings

EMBED_KEY = "embed"


class LogParser:
    """The ``parse_log`` step: topic -> site/host/app, payload -> lines or errors."""

    def __init__(self, settings: LogSettings) -> None:
        self.settings = settings

    def __call__(self, msg: Message) -> list[LogLine | IngestError]:
        return spread_errors(parse_log(msg, self.settings))  # type: ignore[return-value]


# ---------------------------------------------------------------- step "templates"
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



@dataclass
class TemplatesState:
    """What the ``templates`` step keeps per source group (pickled at snapshots)."""

    templates: GroupTemplates
    silence: SilenceWatch = field(default_factory=SilenceWatch)


class TemplatesLogic(StatefulLogic[LogLine, Any, TemplatesState]):
    """Bytewax logic around :class:`GroupTemplates`; closes idle windows on wall-clock time.

    Event time of an idle source is estimated as its last line's time plus the wall time it
    has been silent beyond ``idle_check_s``, so a service that goes silent still has its
    window scored. A gap far longer than the source's usual gaps is reported as a
    :class:`Silence` when the source sends again.
    """

    def __init__(self, params: Callable[[str], LogParams], idle_check_s: float,
                 state: TemplatesState | None) -> None:
        self.params = params  # topic -> the detector settings of its subscription
        self.state = state
        self.idle = timedelta(seconds=idle_check_s)
        self.last_event: float | None = None
        self.last_wall: datetime | None = None

    def on_item(self, value: LogLine) -> tuple[list[Any], bool]:
        if self.state is None:
            self.state = TemplatesState(GroupTemplates(value.key, self.params(value.topic)))
        ts = value.ts.timestamp()
        silence = self.state.silence.update(ts)
        windows, changes = self.state.templates.process(ts, value.msg)
        self.last_event = ts if self.last_event is None else max(self.last_event, ts)
        self.last_wall = utcnow()
        out: list[Any] = [*changes, *windows]
        if silence is not None:
            out.append(Silence(value.key, *silence))
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Any], bool]:
        if self.state is None or self.last_event is None or self.last_wall is None:
            return [], StatefulLogic.RETAIN
        # Only silence beyond the idle period counts: a worker busy elsewhere (a model call)
        # must not close a window whose next lines are still queued.
        silent = (utcnow() - self.last_wall).total_seconds() - self.idle.total_seconds()
        if silent <= 0:
            return [], StatefulLogic.RETAIN
        return list(self.state.templates.advance(self.last_event + silent)), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[list[Any], bool]:
        return (list(self.state.templates.flush()) if self.state is not None else []), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return None if self.last_wall is None else utcnow() + self.idle

    def snapshot(self) -> TemplatesState:
        assert self.state is not None  # only snapshotted after an item built it
        return self.state


# ---------------------------------------------------------------- step "embed"
class EmbedStep:
    """The ``embed`` step: one micro-batch of windows and template changes -> embedded."""

    def __init__(self, params: LogParams, embedder: Embedder) -> None:
        self.params = params
        self.embedder = embedder

    def __call__(
        self, cache: TemplateEmbeddingCache | None, batch: list[TemplatedWindow | TemplateChange | Silence]
    ) -> tuple[TemplateEmbeddingCache, list[EmbeddedWindow | EmbeddedChange | Silence]]:
        if cache is None:
            cache = TemplateEmbeddingCache(self.embedder, capacity=self.params.cache_capacity)
        elif cache.embedder is not self.embedder:
            cache.set_embedder(self.embedder)  # after a restore; a new model invalidates by key
        windows = [b for b in batch if isinstance(b, TemplatedWindow)]
        changes = [b for b in batch if isinstance(b, TemplateChange)]
        silences = [b for b in batch if isinstance(b, Silence)]  # passed through
        before = (cache.hits, cache.misses, cache.model_calls)
        ew, ec = embed_batch(cache, windows, changes)
        _record_batch(cache, before)
        return cache, [*ec, *ew, *silences]


def _record_batch(cache: TemplateEmbeddingCache, before: tuple[int, int, int]) -> None:
    hits, misses, calls = cache.hits - before[0], cache.misses - before[1], cache.model_calls - before[2]
    metrics.TEMPLATE_CACHE_HITS.inc(hits)
    metrics.TEMPLATE_CACHE_MISSES.inc(misses)
    if calls:
        metrics.MODEL_CALLS.inc(calls)
        metrics.EMBED_BATCH_SIZE.observe(misses / calls)


# ---------------------------------------------------------------- step "novelty"
@dataclass
class GroupState:
    """What the ``novelty`` step keeps per source group (pickled at snapshots)."""

    novelty: GroupNovelty
    tracker: AlertTracker
    open_severity: str = "warning"
    recent: RecentWindows = field(default_factory=RecentWindows)  # anomalous windows, for feedback
    drift: DriftWatch = field(default_factory=DriftWatch)  # drift points only: no log re-fit
    last_stamp_us: int = 0  # the newest log_window timestamp written for this group
    rates: TemplateRates | None = None  # template counts per time window (bursts)

    def stamp(self, end: float) -> datetime:
        """A timestamp for a window's point, unique within the group.

        Windows of one group that end in the same second (session windows on second-resolution
        logs) would otherwise overwrite each other in InfluxDB; the true end is in the fields.
        """
        us = max(round(end * 1e6), self.last_stamp_us + 1)
        self.last_stamp_us = us
        return datetime.fromtimestamp(us / 1e6, UTC)


@dataclass(frozen=True, slots=True)
class Silenced:
    """The open and close alerts of a silence that ended."""

    alerts: tuple[Alert, ...]


@dataclass(frozen=True, slots=True)
class Decided:
    """A scored window, the alert transition it caused, and a drift it revealed, if any."""

    result: WindowResult
    alert: Alert | None
    drift: DriftEvent | None = None
    stamp: datetime | None = None  # the log_window point's time (unique per group); None: the end


@dataclass(frozen=True, slots=True)
class FeedbackDone:
    """Operator feedback applied to a log group: one result per remembered window of the alert."""

    feedback: Feedback
    site: str
    results: tuple[FeedbackResult, ...]


def apply_group_feedback(state: GroupState, fb: Feedback) -> FeedbackDone:
    """Learn feedback into a group: every remembered window of the alert (none: nothing learnt)."""
    windows = state.recent.find(fb.alert_id)
    results = tuple(apply_log_feedback(state.novelty, meta, fb) for meta in windows) or (
        FeedbackResult(f"{fb.verdict} on {fb.alert_id}: no remembered window of {state.novelty.source}; "
                       "nothing learnt"),)
    return FeedbackDone(fb, split_source(state.novelty.source)[0], results)


class NoveltyStep:
    """The ``novelty`` step: score a window against its group's index, decide, explain."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.params: LogParams = settings.log_detector
        self.alerts = settings.alerts
        self.embedder = embedder
        self.silence_factor = SilenceWatch().factor

    def __call__(
        self, state: GroupState | None, item: EmbeddedWindow | EmbeddedChange | Feedback | Silence
    ) -> tuple[GroupState | None, Decided | FeedbackDone | Silenced | None]:
        if isinstance(item, Feedback):  # unknown group: not ours (maybe the sensor flow's)
            return state, (apply_group_feedback(state, item) if state is not None else None)
        if isinstance(item, Silence):
            alerts = silence_alerts(item, self.silence_factor)
            for alert in alerts:
                metrics.ALERTS.labels(source="log", kind=alert.kind).inc()
            return state, Silenced(alerts)
        if isinstance(item, EmbeddedChange):
            if state is not None:
                state.novelty.apply_change(item)
            return state, None
        if state is None:
            state = GroupState(GroupNovelty(item.window.source, self.params),
                               AlertTracker(1, self.alerts.log_close_after, self.alerts.log_cooldown_s))
        if state.novelty.model is not None and state.novelty.model != item.model:
            state.novelty.reembed(item.model, self.embedder.encode)  # model or truncate_dim changed
        result = state.novelty.process(item)
        result, effective = self._bursts(state, item, result)
        metrics.WINDOWS_SCORED.inc()
        metrics.END_TO_END_LAG_SECONDS.observe(max(0.0, utcnow().timestamp() - result.end))
        if state.novelty.index is not None:
            metrics.INDEX_SIZE.labels(group=result.source).set(len(state.novelty.index))
        end = datetime.fromtimestamp(result.end, UTC)
        t = state.tracker.update(end, effective, result.threshold, result.warm)
        if t is not None:
            metrics.ALERTS.labels(source="log", kind=t.kind).inc()
        if t is not None and t.kind == "open":
            state.open_severity = severity_of(t.score)
        if result.is_anomaly:
            state.recent.add(window_meta(result), opened_alert=t is not None and t.kind == "open")
        drift = state.drift.update(end, result.score)
        return state, Decided(result, log_alert(result, t, state.open_severity) if t else None, drift,
                              state.stamp(result.end))


    def _bursts(self, state: GroupState, item: EmbeddedWindow, result: WindowResult) -> tuple[WindowResult, float]:
        """Mark a time window anomalous when a known template is far above its usual count.

        Returns the (possibly marked) result and the score the alert hysteresis sees.
        """
        if self.params.rate_level <= 0 or ":time:" not in result.window_id:
            return result, result.score
        if state.rates is None:
            state.rates = TemplateRates(level=self.params.rate_level)
        counts = dict(item.window.template_counts)
        score, tid = state.rates.score_one(counts)
        if result.is_anomaly or not result.warm or tid is None or score < 0.5:
            if not result.is_anomaly:
                state.rates.learn_one(counts)
            return result, result.score
        examples = item.window.examples.get(tid, ())
        burst = {"template": item.templates[tid], "count": counts[tid], "expected": state.rates.expected(tid),
                 "example": examples[0] if examples else "", "score": score}
        explanation = {**result.explanation, "burst": burst, "template_counts": counts}
        marked = dataclasses.replace(result, is_anomaly=True, explanation=explanation)
        return marked, max(result.score, result.threshold)


def to_points(d: Decided | FeedbackDone | Silenced) -> list[Point]:
    """Points for a decided window (window, drift) or applied feedback; alert rows come from ``budget``."""
    if isinstance(d, FeedbackDone):
        return [feedback_point(d.feedback, d.site, "log")]
    if isinstance(d, Silenced):
        return []
    points = [window_point(d.result, d.stamp)]
    if d.drift is not None:
        points.append(drift_point(split_source(d.result.source), d.drift, stream="log",
                                  threshold=d.result.threshold))
    return points


def alerts_of(d: Decided | FeedbackDone | Silenced) -> list[Alert]:
    """The alert transitions of a decided window or an ended silence."""
    if isinstance(d, Silenced):
        return list(d.alerts)
    return [d.alert] if isinstance(d, Decided) and d.alert is not None else []


def build_flow(
    settings: Settings | None = None,
    *,
    source: Any = None,
    influx_sink: Any = None,
    mqtt_sink: Any = None,
    embedder: Embedder | None = None,
    batch_wait_ms: float = 200.0,
    idle_check_s: float = 5.0,
) -> Dataflow:
    """The log dataflow; real connectors and the configured model unless others are given."""
    configure_logging()
    settings = settings or load_settings()
    params: LogParams = settings.log_detector
    params.validate()
    embedder = embedder or build_embedder(params)
    topics = [sub.topic for sub in settings.logs.subscriptions]
    source, influx_sink, mqtt_sink = connectors(settings, "logs", topics, source=source,
                                                influx_sink=influx_sink, mqtt_sink=mqtt_sink)
    prefix, dead = settings.mqtt.alerts_prefix, settings.mqtt.deadletter_prefix

    fb_prefix = topic_prefix(settings.mqtt.feedback_topic)
    flow = Dataflow("logs")
    messages = op.input("mqtt_in", flow, source)
    by_topic = op.branch("split_feedback", messages, lambda m: m.topic.startswith(fb_prefix + "/"))
    feedback = op.branch("split_feedback_errors",
                         op.map("parse_feedback", by_topic.trues,
                                lambda m: parse_feedback(m, prefix=fb_prefix, stream="log")),
                         is_feedback)
    parsed = op.flat_map("parse_log", by_topic.falses, metrics.counted("log", LogParser(settings.logs)))
    split = op.branch("split_errors", parsed, is_line)
    keyed = op.key_on("group_key", split.trues, lambda line: line.key)
    params_for = SubscriptionParams(settings)
    templated = op.stateful("templates", keyed, lambda resume: TemplatesLogic(params_for, idle_check_s, resume))
    to_embed = op.key_on("embed_key", op.map("drop_group_key", templated, lambda kv: kv[1]), lambda _: EMBED_KEY)
    batches = op.collect("micro_batch", to_embed, timeout=timedelta(milliseconds=batch_wait_ms),
                         max_size=params.micro_batch)
    embedded = op.stateful_map("embed", batches, EmbedStep(params, embedder))
    items = op.flat_map("unbatch", embedded, lambda kv: kv[1])
    by_group = op.key_on("novelty_key", op.merge("windows_and_feedback", items, feedback.trues), _group_of)
    decided: Stream[Decided | FeedbackDone | Silenced] = op.filter_map(
        "novelty_out", op.stateful_map("novelty", by_group, NoveltyStep(settings, embedder)), value_of)
    points = op.flat_map("to_points", decided, to_points)
    to_budget = op.key_on("budget_key", op.flat_map("alerts_of", decided, alerts_of), lambda _: "budget")
    budgeted = op.flat_map("unkey_budget", op.stateful_map("budget", to_budget, BudgetStep(settings.alerts, "logs")),
                           lambda kv: kv[1])
    alert_pts = op.flat_map("budget_points", budgeted, budget_points)
    alerts = op.filter_map("to_messages", budgeted,
                           lambda a: alert_message(a, prefix) if isinstance(a, Alert) else None)
    errors = cast("Stream[IngestError]", op.merge("all_errors", split.falses, feedback.falses))
    op.output("influx_out", op.merge("all_points", points, alert_pts, op.map("error_point", errors, error_point)),
              influx_sink)
    op.output("mqtt_out", op.merge("all_messages", alerts,
                                   op.map("deadletter_message", errors, lambda e: deadletter_message(e, dead))),
              mqtt_sink)
    return flow


def is_line(x: object) -> TypeGuard[LogLine]:
    """Log lines go on to the templates; everything else is an ingest error."""
    return isinstance(x, LogLine)


def is_feedback(x: object) -> TypeGuard[Feedback]:
    """Parsed feedback goes to the novelty step; everything else is an ingest error."""
    return isinstance(x, Feedback)


def _group_of(item: EmbeddedWindow | EmbeddedChange | Feedback | Silence) -> str:
    if isinstance(item, Feedback):
        return route_key(item.alert_id)
    if isinstance(item, Silence):
        return item.source
    return item.change.source if isinstance(item, EmbeddedChange) else item.window.source

