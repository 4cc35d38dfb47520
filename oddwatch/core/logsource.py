"""One log source's decision object: lines in; decided windows, alerts and drift out.

:class:`LogSourceState` (one per source key ``site/host/app``) owns every stage from a parsed
line to an explained alert, with no Bytewax and no I/O; the log dataflow (``flows/logs.py``)
and ``oddwatch eval logs`` (``oddwatch/evaluation/logs.py``) both call it, so evaluation runs
exactly what runs live:

1. silences: the gap before each line against the source's usual gap
   (:class:`~detectors.silence.SilenceWatch`), reported when the source sends again;
2. templates and windows (:class:`~oddwatch.core.log_pipeline.GroupTemplates`);
3. embeddings of the windows' templates: the state keeps the vector of every template it
   uses (inside :class:`~oddwatch.core.log_pipeline.GroupNovelty`), so a restored state needs
   no re-embedding; texts it never embedded go to the injected :class:`TemplateVectors`
   (the worker's :class:`~detectors.embedders.TemplateEmbeddingCache`, shared by every source,
   never pickled with the state);
4. novelty, calibration and admission (:class:`~oddwatch.core.log_pipeline.GroupNovelty`);
5. bursts (:class:`~detectors.rates.TemplateRates`) on time windows only (the window's
   ``kind``): a known template far above its usual count per window;
6. hysteresis and cooldown (:class:`~oddwatch.core.alerts.AlertTracker`), drift of the window
   scores (:class:`~detectors.drift.DriftWatch`, reported, not acted on), and the explained
   :class:`~oddwatch.records.Alert` (:mod:`oddwatch.core.log_outputs`);
7. operator feedback (:meth:`LogSourceState.apply_feedback`) on the anomalous windows it
   remembers (:class:`RecentWindows`).

Micro-batching: :meth:`LogSourceState.step` takes a batch of lines. It runs stages 1-2 over
the whole batch, embeds the new template texts of the batch in one call, then decides the
windows in line order. The flow hands each source's lines over with Bytewax
``op.stateful_batch``: a batch is whatever arrived for the key in one activation, so it adds
no waiting (unlike ``op.collect``, which holds items for a timeout), and it grows with the
load, when batching pays. Only the embedding call is shared within a batch, so decisions do
not depend on where batches end: the evaluator, with batches of its own size, decides the
same windows with the same scores and alerts.

Floods: a source that makes more than ``max_new_templates_per_min`` new templates in a minute
of event time (unique ids or data in every line) has the rest of that minute's lines of new
shapes left unmined (``<unknown template>``) and any new template texts beyond the same budget
at embedding time scored with stand-in hashing vectors, and is reported once per minute
(:class:`Flooded`), so its lines cost what ordinary lines cost and the worker's other sources
do not wait behind its Drain3 and model work. Below the limit nothing changes.

Examples
--------
>>> from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
>>> from oddwatch.core.log_pipeline import LogParams
>>> cache = TemplateEmbeddingCache(HashingEmbedder(dim=16))
>>> state = LogSourceState("s1/web1/app", LogParams(window_mode="tumbling", window_size_s=60, warmup=3),
...                        embeddings=cache)
>>> lines = [(60.0 * w + i, f"GET /item/{w} 200") for w in range(10) for i in range(3)]
>>> decided = [o for o in state.step(lines) + state.flush() if isinstance(o, Decided)]
>>> len(decided), any(d.result.is_anomaly for d in decided), cache.model_calls
(10, False, 1)
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from detectors.drift import DriftEvent, DriftWatch
from detectors.embedders import HashingEmbedder
from detectors.rates import TemplateRates
from detectors.silence import SilenceWatch
from detectors.tail import TailThreshold
from oddwatch.core.alerts import AlertTracker
from oddwatch.core.feedback import (
    RECENT_WINDOWS,
    Feedback,
    FeedbackDone,
    FeedbackResult,
    split_alert_id,
)
from oddwatch.core.log_outputs import (
    Silence,
    feedback_close,
    log_alert,
    severity_of,
    silence_alerts,
    split_source,
)
from oddwatch.core.log_pipeline import (
    EmbeddedChange,
    EmbeddedWindow,
    GroupNovelty,
    GroupTemplates,
    LogParams,
    ModelKey,
    NewTemplateBudget,
    TemplateChange,
    TemplatedWindow,
    WindowResult,
)
from oddwatch.ingest.logs import normalize_level, sniff_level
from oddwatch.records import UTC, Alert, Severity
from oddwatch.settings import AlertSettings

#: A line: (event time in epoch seconds, message), optionally with its source key (default: the
#: state's key) and its level (syslog severity or level field; None: a level word in the text).
RawLine = tuple[float, str] | tuple[float, str, str] | tuple[float, str, str, str | None]
COUNT_CHANGES = 3  # templates named when a window's mix differs from its usual counts
#: Rank of a level (0: not evidence) and the weight of each rank as evidence of a fault.
LEVEL_RANKS = {"emergency": 3, "alert": 3, "critical": 3, "error": 2, "warning": 1}
RANK_WEIGHTS = {3: 1.0, 2: 0.7, 1: 0.0}
RANK_NAMES = {3: "critical", 2: "error", 1: "warning"}
ROUTINE_SHARE = 0.05  # a levelled template in this share of a fleet's windows keeps 1/e of its weight


def level_rank(level: str | None, text: str) -> int:
    """The rank of a line's level (3: critical/fatal/alert/emergency, 2: error, 1: warning,
    0: other); without a level, of the first level word in the text.

    >>> level_rank("error", "x"), level_rank(None, "RAS KERNEL FATAL data TLB error"), level_rank(None, "hello")
    (2, 3, 0)
    """
    name = normalize_level(level) if level is not None else sniff_level(text)
    return LEVEL_RANKS.get(name or "", 0)


def fleet_key(source: str, fleet: str = "site/app") -> str:
    """The key of the fleet a source ``site/host/app`` belongs to (``[log_detector] fleet``):
    ``site/app`` (default) groups one app's hosts of a site, ``app`` of every site, ``source``
    keeps each source alone. A key not of three levels (a node name in a log corpus) joins the
    fleet ``*``.

    >>> fleet_key("s1/web1/nginx"), fleet_key("s1/web1/nginx", "app"), fleet_key("s1/web1/nginx", "source")
    ('s1/*/nginx', '*/*/nginx', 's1/web1/nginx')
    >>> fleet_key("R02-M1-N0-C:J12-U11")
    '*'
    """
    if fleet == "source":
        return source
    parts = source.split("/")
    if len(parts) != 3:
        return "*"
    return f"{parts[0]}/*/{parts[2]}" if fleet == "site/app" else f"*/*/{parts[2]}"


class TemplateVectors(Protocol):
    """Where a state gets embeddings of template texts it never embedded (a
    :class:`~detectors.embedders.TemplateEmbeddingCache`, or a wrapper of one)."""

    @property
    def key(self) -> ModelKey | None: ...

    def embed(self, templates: list[str]) -> np.ndarray: ...


# ---------------------------------------------------------------- outputs
@dataclass(frozen=True, slots=True)
class Decided:
    """The decision on one window; ``stamp`` is its ``log_window`` point's time, unique per
    source (windows ending in the same second would overwrite each other in InfluxDB)."""

    result: WindowResult
    stamp: datetime


@dataclass(frozen=True, slots=True)
class Drifted:
    """A lasting change of a source's window scores or window rate."""

    source: str
    event: DriftEvent
    threshold: float


@dataclass(frozen=True, slots=True)
class Flooded:
    """A source made more new templates in a minute of event time than
    ``max_new_templates_per_min``. ``kind`` ``"templates"``: the rest of that minute's lines of
    new shapes were not mined (they count as ``<unknown template>``); ``"embeddings"``: the rest
    of the new template texts got stand-in vectors
    (:class:`~detectors.embedders.HashingEmbedder`), not the model's. Emitted at most once per
    minute, with an example line."""

    source: str
    minute: float  # start of the minute, epoch seconds
    limit: int
    kind: str  # "templates" | "embeddings"
    example: str


LogOutput = Decided | Alert | Drifted | Flooded


def _example_of(template: str, events: Sequence[Silence | TemplateChange | TemplatedWindow]) -> str:
    """A line of *template* among the events' windows ("" when none kept one)."""
    for ev in events:
        if isinstance(ev, TemplatedWindow):
            for tid, text in ev.templates.items():
                if text == template and ev.window.examples.get(tid):
                    return ev.window.examples[tid][0]
    return ""


# ---------------------------------------------------------------- window memory for feedback
def window_meta(result: WindowResult) -> dict[str, Any]:
    """What feedback needs of an anomalous window, from its :class:`WindowResult`.

    Its explanation (present on anomalous windows) carries the template counts.
    """
    ex = result.explanation
    return {"source": result.source, "window_id": result.window_id, "start": result.start, "end": result.end,
            "lines": result.lines, "score": result.score, "template_counts": dict(ex.get("template_counts", {})),
            "examples": [r.get("example", "") for r in ex.get("rare_templates", [])][:3]}


class RecentWindows:
    """The last ``capacity`` anomalous windows of a log source, found again by alert id.

    A log alert's id is ``f"{source}:{int(opened_at)}"`` where ``opened_at`` is the end of the
    window that opened it; the windows of one alert are those ending from then on until the
    next alert opened.

    >>> rw = RecentWindows(capacity=2)
    >>> for end in (100.5, 160.0, 220.0):
    ...     rw.add({"window_id": f"w{end}", "end": end, "template_counts": {1: 1}})
    >>> [m["window_id"] for m in rw.find("s/h/a:160")], len(rw)
    (['w160.0', 'w220.0'], 2)
    """

    def __init__(self, capacity: int = RECENT_WINDOWS) -> None:
        if capacity < 1:
            raise ValueError(f"RecentWindows: capacity = {capacity!r} must be >= 1")
        self.capacity = capacity
        self._by_end: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._opens: list[int] = []  # epochs of alert opens seen (bounded like the windows)

    def __len__(self) -> int:
        return len(self._by_end)

    def add(self, meta: Mapping[str, Any], *, opened_alert: bool = False) -> None:
        """Remember one anomalous window (``opened_alert``: it opened an alert)."""
        self._by_end[str(meta["window_id"])] = dict(meta)
        if opened_alert:
            self._opens.append(int(meta["end"]))
            del self._opens[: -self.capacity]
        while len(self._by_end) > self.capacity:
            self._by_end.popitem(last=False)

    def find(self, alert_id: str) -> list[dict[str, Any]]:
        """The remembered windows of an alert, oldest first."""
        epoch = split_alert_id(alert_id)[1]
        later = [e for e in self._opens if e > epoch]
        stop = min(later) if later else math.inf
        return [m for m in self._by_end.values() if epoch <= int(m["end"]) < stop]


# ---------------------------------------------------------------- one source of a fleet
class SourceTrack:
    """What a fleet's decision object keeps per source: its silences, usual template counts
    (its deviation from the fleet), alert hysteresis and remembered anomalous windows."""

    def __init__(self, params: LogParams, alerts: AlertSettings, recent: int) -> None:
        self.silence = SilenceWatch()
        self.rates = TemplateRates(level=params.rate_level) if params.rate_level > 0 else None
        self.tracker = AlertTracker(1, alerts.log_close_after, alerts.log_cooldown_s)
        self.recent = RecentWindows(recent)
        self.open_severity: Severity = "warning"
        self.last_stamp_us = 0


# ---------------------------------------------------------------- the decision object
class LogSourceState:
    """Every decision about one fleet of log sources; picklable (the embeddings source is not
    pickled).

    The sources of a fleet (:func:`fleet_key`; one source when ``fleet = "source"``) share
    templates, normal windows and calibration, so a new or small source is judged from its
    first lines by what its fleet does; each source has its own windows, silences, usual
    template counts (the fleet's until it has its own) and alerts (:class:`SourceTrack`).

    Parameters
    ----------
    key
        The fleet key (:func:`fleet_key`), or a source key ``site/host/app`` for a state of
        one source; lines without a source key are this key's.
    params
        Detector settings (the source's subscription's windows applied).
    alerts
        ``log_close_after`` and ``log_cooldown_s`` are used.
    embeddings
        Embeddings of template texts the state never embedded; after unpickling, pass one
        to :meth:`bind` before stepping.
    recent
        Anomalous windows remembered for feedback.
    """

    def __init__(self, key: str, params: LogParams | None = None, *, alerts: AlertSettings | None = None,
                 embeddings: TemplateVectors | None = None, recent: int = RECENT_WINDOWS) -> None:
        self.key = key
        self.params = params or LogParams()
        self.params.validate()
        a = alerts or AlertSettings()
        p = self.params
        self.templates = GroupTemplates(key, p)
        self.novelty = GroupNovelty(key, p)
        if a.false_alerts_per_week > 0 and self.templates.kind == "time":
            per_week = 7 * 86400.0 / (p.window_size_s if p.window_mode == "tumbling" else p.window_slide_s)
            self.novelty.calibration = TailThreshold(  # type: ignore[assignment]
                p=min(1.0 - p.q, a.false_alerts_per_week / per_week), warmup=p.warmup, min_threshold=p.min_threshold)
            self.novelty.new_threshold = p.min_threshold
        self.alert_settings = a
        self.recent_capacity = recent
        self.sources: OrderedDict[str, SourceTrack] = OrderedDict()  # least recently active first
        self.fleet_rates = TemplateRates(level=p.rate_level) if p.rate_level > 0 else None
        self.drift = DriftWatch()  # drift points only: the log threshold is not re-fitted
        self.lines = 0
        self.windows = 0
        self.templates_held = 0  # template lookups served from the state's own vectors
        self.budget = NewTemplateBudget(p.max_new_templates_per_min)
        self.standins: dict[str, None] = {}  # template texts whose vector is a stand-in, not the model's
        self.stood_in = 0  # template texts given stand-in vectors
        self.flagged_minute = -1.0  # the last minute a Flooded was emitted for
        self._embeddings: TemplateVectors | None = None
        if embeddings is not None:
            self.bind(embeddings)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_embeddings"] = None  # a model is not state
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "budget" not in state:  # a state pickled before the new-template limit
            self.budget = NewTemplateBudget(self.params.max_new_templates_per_min)
            self.standins, self.stood_in, self.flagged_minute = {}, 0, -1.0
        if "sources" not in state:  # a state of one source pickled before fleets
            tr = SourceTrack.__new__(SourceTrack)
            for name in ("silence", "rates", "tracker", "recent", "open_severity", "last_stamp_us"):
                setattr(tr, name, state[name])
                self.__dict__.pop(name, None)
            self.sources = OrderedDict([(self.key, tr)])
            self.fleet_rates = None
            self.alert_settings, self.recent_capacity = AlertSettings(), tr.recent.capacity

    def bind(self, embeddings: TemplateVectors) -> int:
        """Use *embeddings* from now on; when its model differs from the one the state's vectors
        came from, re-embed every template and rebuild the index now. Returns the index entries
        recomputed."""
        self._embeddings = embeddings
        model = embeddings.key
        if model is None or self.novelty.model is None or model == self.novelty.model:
            return 0
        return self.novelty.reembed(model, embeddings.embed)

    def track(self, source: str | None = None) -> SourceTrack:
        """The per-source part of *source* (default: the state's key), made on first use."""
        src = self.key if source is None else source
        tr = self.sources.get(src)
        if tr is None:
            tr = self.sources[src] = SourceTrack(self.params, self.alert_settings, self.recent_capacity)
        return tr

    @property
    def tracker(self) -> AlertTracker:
        """The alert hysteresis of the state's own key (a state of one source)."""
        return self.track().tracker

    @property
    def index_size(self) -> int:
        """Normal windows in the novelty index."""
        return len(self.novelty.index) if self.novelty.index is not None else 0

    # -- stepping
    def step(self, lines: Iterable[RawLine]) -> list[LogOutput]:
        """Decide a batch of lines ``(event time in epoch seconds, message)``, in order.

        Returns the decisions on the windows the lines closed, the alert transitions (window
        alerts, and a silence's open and close when a line ends one) and drift events.
        """
        self._model()  # fail before any change when no embeddings are bound
        events: list[Silence | TemplateChange | TemplatedWindow] = []
        retire: list[str] = []
        for line in lines:
            ts, text = line[0], line[1]
            source = line[2] if len(line) > 2 else self.key  # type: ignore[misc]
            level = line[3] if len(line) > 3 else None  # type: ignore[misc]
            self.lines += 1
            tr = self.sources.get(source)
            if tr is None:
                tr = self.track(source)
                while len(self.sources) > self.params.max_fleet_sources:  # the least recently active goes
                    old = next(iter(self.sources))
                    events.extend(self.templates.drop(old))
                    del self.sources[old]
                    retire.append(old)
            else:
                self.sources.move_to_end(source)
            gap = tr.silence.update(ts)
            if gap is not None:
                events.append(Silence(source, *gap))
            windows, changes = self.templates.process(ts, text, source, level_rank(level, text))
            events.extend(changes)
            events.extend(windows)
        flooded: list[LogOutput] = []
        for u in self.templates.unmined:
            self._flag(u.minute, "templates", u.line, flooded, u.source or self.key)
        self.templates.unmined.clear()
        out = flooded + self._decide(events)
        for old in retire:
            if old in self.sources and not self.templates.windows.has(old):
                del self.sources[old]
        return out

    def drop(self, source: str) -> list[LogOutput]:
        """Decide the open windows of *source* and forget it (it went idle and gave way)."""
        self._model()
        out = self._decide(list(self.templates.drop(source)))
        self.sources.pop(source, None)
        return out

    def _flag(self, minute: float, kind: str, example: str, out: list[LogOutput], source: str = "") -> None:
        if minute != self.flagged_minute:
            self.flagged_minute = minute
            out.append(Flooded(source or self.key, minute, self.params.max_new_templates_per_min, kind, example))

    def advance(self, ts: float) -> list[LogOutput]:
        """Move event time to *ts* without a line: decide the windows that are now complete."""
        self._model()
        return self._decide(list(self.templates.advance(ts)))

    def flush(self) -> list[LogOutput]:
        """End of stream: decide every open window."""
        self._model()
        return self._decide(list(self.templates.flush()))

    def _decide(self, events: Sequence[Silence | TemplateChange | TemplatedWindow]) -> list[LogOutput]:
        if not events:
            return []
        out: list[LogOutput] = []
        fresh = self._embed_new(events, out)
        for ev in events:
            if isinstance(ev, Silence):
                out.extend(silence_alerts(ev, self.track(ev.source).silence.factor))
            elif isinstance(ev, TemplateChange):
                self.novelty.apply_change(EmbeddedChange(ev, self._vector(ev.template_id, ev.new, fresh),
                                                         self._model()))
            else:
                out.extend(self._decide_window(ev, fresh))
        return out

    def _model(self) -> ModelKey:
        if self._embeddings is None:
            raise RuntimeError(f"LogSourceState[{self.key}]: no embeddings bound (call bind() after unpickling)")
        return self._embeddings.key or ("", None)

    def _embed_new(self, events: Sequence[Silence | TemplateChange | TemplatedWindow],
                   out: list[LogOutput]) -> dict[str, np.ndarray]:
        """One embedding call for every template text of the batch that the state does not hold
        (or holds a stand-in of), within the source's new-template budget; the rest get
        stand-in vectors, and the minute's first stand-in adds a :class:`Flooded` to *out*."""
        table = self.novelty.table
        standins = self.standins
        texts: dict[str, None] = {}
        for ev in events:
            if isinstance(ev, TemplateChange):
                texts[ev.new] = None
            elif isinstance(ev, TemplatedWindow):
                for tid, t in ev.templates.items():
                    if tid in table and table[tid][0] == t and t not in standins:
                        self.templates_held += 1
                    else:
                        texts[t] = None
        if not texts:
            return {}
        order = list(texts)
        assert self._embeddings is not None  # checked by _model()
        allowed = self.budget.take(len(order), self.templates.windows.watermark)
        fresh = dict(zip(order[:allowed], self._embeddings.embed(order[:allowed]), strict=True)) if allowed else {}
        if standins:
            self._upgrade(fresh)
        if allowed < len(order):
            self._stand_in(order[allowed:], events, fresh, out)
        return fresh

    def _upgrade(self, fresh: Mapping[str, np.ndarray]) -> None:
        """Give stood-in templates that now have the model's vector that vector, and recompute
        the index entries that used the stand-in."""
        upgraded = {text for text in fresh if text in self.standins}
        if not upgraded:
            return
        for tid, (text, _) in list(self.novelty.table.items()):
            if text in upgraded:
                change = TemplateChange(self.key, tid, text, text)
                self.novelty.apply_change(EmbeddedChange(change, fresh[text], self._model()))
        for text in upgraded:
            del self.standins[text]

    def _stand_in(self, texts: list[str], events: Sequence[Silence | TemplateChange | TemplatedWindow],
                  fresh: dict[str, np.ndarray], out: list[LogOutput]) -> None:
        """Stand-in vectors (hashing, at the model's size) for *texts* over the budget."""
        dim = next((v.shape[0] for v in fresh.values()), None) or next(
            (v.shape[0] for _, v in self.novelty.table.values()), None)
        if dim is None:  # nothing embedded yet: the model sizes the first one
            assert self._embeddings is not None
            first = self._embeddings.embed(texts[:1])[0]
            dim = first.shape[0]
        fresh.update(zip(texts, HashingEmbedder(dim=dim).encode(texts), strict=True))
        self.stood_in += len(texts)
        for text in texts:
            self.standins[text] = None
        if len(self.standins) > 2 * self.params.max_templates:  # keep those still in use
            held = {text for text, _ in self.novelty.table.values()}
            self.standins = {t: None for t in self.standins if t in held or t in fresh}
        self._flag(self.budget.minute * 60.0, "embeddings", _example_of(texts[0], events) or texts[0], out)

    def _vector(self, tid: int, text: str, fresh: dict[str, np.ndarray]) -> np.ndarray:
        if text in fresh:
            return fresh[text]
        held = self.novelty.table.get(tid)
        if held is not None and held[0] == text:
            return held[1]
        assert self._embeddings is not None
        fresh[text] = self._embeddings.embed([text])[0]  # a text this batch changed twice
        return fresh[text]

    def _decide_window(self, tw: TemplatedWindow, fresh: dict[str, np.ndarray]) -> list[LogOutput]:
        vectors = {tid: self._vector(tid, text, fresh) for tid, text in tw.templates.items()}
        result = self.novelty.process(EmbeddedWindow(tw.window, tw.templates, vectors, self._model()))
        tr = self.track(tw.window.source)
        counts = dict(tw.window.template_counts)
        rates = self._rates(tr)
        result, effective = self._bursts(tw, result, rates)
        result, effective = self._severity(tw, result, effective)
        explained = bool(result.explanation.get("rare_templates")) or any(
            k in result.explanation for k in ("burst", "severity"))
        if result.is_anomaly and not explained:
            changes = self._count_changes(tw, result, rates)
            if changes is None:  # no count its own rate makes unlikely: Poisson noise, not a fault
                result = dataclasses.replace(result, is_anomaly=False, explanation={})
                effective = min(effective, math.nextafter(result.threshold, 0.0))
            else:
                result = dataclasses.replace(result, explanation={**result.explanation, "count_changes": changes})
        if result.is_anomaly:  # every way a window is marked (a new message under a budget too) opens an alert
            effective = max(effective, result.threshold)
        if tw.kind != "session" and not result.is_anomaly:
            if tr.rates is not None:
                tr.rates.learn_one(counts)
            if self.fleet_rates is not None:
                self.fleet_rates.learn_one(counts)
        self.windows += 1
        end = datetime.fromtimestamp(result.end, UTC)
        t = tr.tracker.update(end, effective, result.threshold, result.warm)
        if t is not None and t.kind == "open":
            tr.open_severity = severity_of(max(t.score, result.score))
        if result.is_anomaly:
            tr.recent.add(window_meta(result), opened_alert=t is not None and t.kind == "open")
        out: list[LogOutput] = [Decided(result, self._stamp(tr, result.end))]
        if t is not None:
            out.append(log_alert(result, t, tr.open_severity))
        drift = self.drift.update(end, result.score)
        if drift is not None:
            out.append(Drifted(self.key, drift, result.threshold))
        return out

    def _rates(self, tr: SourceTrack) -> TemplateRates | None:
        """The usual counts a source's window is judged by: its own once it has enough
        windows, else its fleet's."""
        if tr.rates is not None and tr.rates.windows >= tr.rates.min_windows:
            return tr.rates
        return self.fleet_rates

    def _bursts(self, tw: TemplatedWindow, result: WindowResult, rates: TemplateRates | None,
                ) -> tuple[WindowResult, float]:
        """Mark a time window anomalous when a known template is far above its usual count.

        A window the novelty index flagged too keeps its decision and gets the burst as its
        explanation (a count is what an operator can check). Returns the (possibly marked)
        result and the score the alert hysteresis sees.
        """
        if rates is None or tw.kind != "time":
            return result, result.score
        counts = dict(tw.window.template_counts)
        score, tid = rates.score_one(counts)
        if not result.warm or tid is None or score < 0.5:
            return result, result.score
        examples = tw.window.examples.get(tid, ())
        burst = {"template": tw.templates[tid], "count": counts[tid], "expected": rates.expected(tid),
                 "example": examples[0] if examples else "", "score": score}
        explanation = {**result.explanation, "burst": burst, "template_counts": counts}
        marked = dataclasses.replace(result, is_anomaly=True, explanation=explanation)
        return marked, max(result.score, result.threshold)

    def _severity(self, tw: TemplatedWindow, result: WindowResult, effective: float) -> tuple[WindowResult, float]:
        """Mark a window anomalous when it holds a line of a high level (critical, error) whose
        template is uncommon in the fleet's windows: weight x exp(-share / ROUTINE_SHARE)
        reaches ``severity_level``. A routine error line (in a tenth of the windows or more)
        weighs next to nothing."""
        level = self.params.severity_level
        if level <= 0 or not result.warm or not tw.window.levels or result.is_anomaly:
            return result, effective
        n = max(1, self.novelty.n_windows - 1)
        best, top = 0.0, None
        for tid, rank in tw.window.levels.items():
            share = max(0, self.novelty.df.get(tid, 1) - 1) / n
            evidence = RANK_WEIGHTS.get(rank, 0.0) * math.exp(-share / ROUTINE_SHARE)
            if evidence > best:
                best, top = evidence, tid
        if top is None or best < level:
            return result, effective
        ex = tw.window.examples.get(top, ())
        sev = {"template": tw.templates.get(top, f"<template {top}>"), "level": RANK_NAMES[tw.window.levels[top]],
               "count": tw.window.template_counts.get(top, 0), "windows_seen": max(0, self.novelty.df.get(top, 1) - 1),
               "example": ex[0] if ex else "", "evidence": best}
        explanation = {**result.explanation, "severity": sev, "template_counts": dict(tw.window.template_counts)}
        return dataclasses.replace(result, is_anomaly=True, explanation=explanation), max(effective, result.threshold)

    def _count_changes(self, tw: TemplatedWindow, result: WindowResult,
                       rates: TemplateRates | None) -> list[dict[str, Any]] | None:
        """The templates whose counts their own usual rate makes least likely (time windows:
        a Poisson tail test per template, up or down), or, without rates, those differing most
        from the nearest normal window. None when no count is surprising at ``mix_level``."""
        counts = dict(tw.window.template_counts)
        texts = {tid: text for tid, (text, _) in self.novelty.table.items()}

        def row(tid: int, usual: float) -> dict[str, Any]:
            ex = tw.window.examples.get(tid, ())
            return {"template": tw.templates.get(tid) or texts.get(tid, f"<template {tid}>"),
                    "count": counts.get(tid, 0), "usual": usual, "example": ex[0] if ex else ""}

        level = self.params.mix_level
        if tw.kind != "session" and level > 0 and (rates is None or rates.windows < rates.min_windows):
            return None  # a count's own variability is not known yet: no "unusual mix"
        if tw.kind != "session" and level > 0 and rates is not None:
            scored = sorted(((rates.surprise(t, counts.get(t, 0)), t)
                             for t in set(counts) | set(rates.mean)), key=lambda x: (-x[0], x[1]))
            if not scored or scored[0][0] < level:
                return None
            return [row(t, round(rates.expected(t), 1)) for surprise, t in scored[:COUNT_CHANGES] if surprise >= 1.0]
        near = result.explanation.get("nearest_normal") or {}
        usual = {int(k): int(v) for k, v in dict(near.get("template_counts", {})).items()}
        diff = sorted(set(counts) | set(usual), key=lambda t: (-abs(counts.get(t, 0) - usual.get(t, 0)), t))
        return [row(t, usual.get(t, 0)) for t in diff[:COUNT_CHANGES] if counts.get(t, 0) != usual.get(t, 0)]

    def _stamp(self, tr: SourceTrack, end: float) -> datetime:
        us = max(round(end * 1e6), tr.last_stamp_us + 1)
        tr.last_stamp_us = us
        return datetime.fromtimestamp(us / 1e6, UTC)

    # -- feedback
    def apply_feedback(self, fb: Feedback) -> FeedbackDone:
        """Learn an operator's verdict on one of this source's alerts.

        A false positive learns every remembered window of the alert as normal (similar
        windows then score low) and closes the alert if it is still open, quietly (the close
        is for InfluxDB, not MQTT). Other verdicts change nothing.
        """
        key, epoch = split_alert_id(fb.alert_id)
        if key != self.key and fleet_key(key, self.params.fleet) != self.key:
            raise ValueError(f"LogSourceState.apply_feedback: feedback for {fb.alert_id!r} routed to log "
                             f"source {self.key!r}")
        site = split_source(key)[0]
        src = self.track(key)
        if fb.verdict != "false_positive":
            return FeedbackDone(fb, site, (FeedbackResult(f"{fb.verdict} on {fb.alert_id} noted; nothing learnt"),))
        windows = src.recent.find(fb.alert_id)
        results = [self._learn_false_positive(meta, fb) for meta in windows] or [
            FeedbackResult(f"false positive on {fb.alert_id}: no remembered window of {key}; nothing learnt")]
        tr = src.tracker
        if tr.is_open and tr.opened_at is not None and int(tr.opened_at.timestamp()) == epoch:
            peak = tr.peak_score
            t = tr.close(max(fb.ts, tr.opened_at), peak, self.novelty.calibration.threshold)
            if t is not None:
                close = feedback_close(key, fb, t, src.open_severity)
                results.append(FeedbackResult(f"false positive on {fb.alert_id}: open alert closed", True, close))
        return FeedbackDone(fb, site, tuple(results))

    def _learn_false_positive(self, meta: Mapping[str, Any], fb: Feedback) -> FeedbackResult:
        wid = meta.get("window_id", "?")
        entry = {k: meta[k] for k in ("window_id", "start", "end", "lines", "examples") if k in meta}
        learnt = self.novelty.learn_normal(dict(meta.get("template_counts", {})), {**entry, "feedback": fb.alert_id},
                                           meta.get("score"))
        if learnt is None:
            return FeedbackResult(f"false positive on {fb.alert_id}: window {wid} of {self.key} cannot be rebuilt "
                                  "(templates or index no longer known); nothing learnt")
        added, size = learnt
        what = "added to the normal index" if added else "already in the normal index"
        score = float(meta.get("score", 0.0))
        return FeedbackResult(f"false positive on {fb.alert_id}: window {wid} of {self.key} (novelty {score:.3f}) "
                              f"{what}; index size {size}", True)
