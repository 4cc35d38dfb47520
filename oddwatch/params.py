"""The detector settings of a sensor series (``[series]``) and a log source (``[log_detector]``).

Plain dataclasses, every default written once, each with ``validate()``: the settings loader
(:mod:`oddwatch.settings`) builds them from TOML, and the decision core
(:mod:`oddwatch.core.series`, :mod:`oddwatch.core.logsource`) runs with them. They sit below
both, so neither imports the other to know its settings.

>>> LogParams().window_params().mode == LogParams().window_mode == LogWindowParams().mode
True
>>> SeriesParams().detector_params().window == SeriesParams().window
True
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from detectors.sensor import SensorDetectorParams
from detectors.spot import TailThreshold

MODES = ("session", "tumbling", "sliding")
BYS = ("time", "count")
FLEETS = ("site/app", "app", "source")


@dataclass
class LogWindowParams:
    """How lines are grouped into windows (every default written once)."""

    mode: str = "tumbling"
    by: str = "time"  # tumbling/sliding: "time" or "count"
    size_s: float = 60.0
    slide_s: float = 30.0
    size_lines: int = 100
    slide_lines: int = 50
    session_regex: str = r"blk_-?\d+"
    session_gap_s: float = 3600.0
    session_memory_s: float = 0.0  # > 0: a later burst of a session closed by its gap continues it
    max_session_lines: int = 10000
    max_open_windows: int = 100000  # beyond it the least recently active window is closed
    examples_per_template: int = 1

    def validate(self) -> None:
        """Raise ValueError naming the field and value when a setting cannot work."""
        if self.mode not in MODES:
            raise ValueError(f"LogWindowParams: mode = {self.mode!r} must be one of {MODES}")
        if self.by not in BYS:
            raise ValueError(f"LogWindowParams: by = {self.by!r} must be one of {BYS}")
        for name in ("size_s", "slide_s", "session_gap_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LogWindowParams: {name} = {getattr(self, name)!r} must be > 0")
        if not self.session_memory_s >= 0:
            raise ValueError(f"LogWindowParams: session_memory_s = {self.session_memory_s!r} must be >= 0 (0: off)")
        for name in ("size_lines", "slide_lines", "max_session_lines", "max_open_windows"):
            if getattr(self, name) < 1:
                raise ValueError(f"LogWindowParams: {name} = {getattr(self, name)!r} must be >= 1")
        if self.examples_per_template < 0:
            raise ValueError(
                f"LogWindowParams: examples_per_template = {self.examples_per_template!r} must be >= 0"
            )
        try:
            re.compile(self.session_regex)
        except re.error as exc:
            raise ValueError(f"LogWindowParams: session_regex = {self.session_regex!r} is invalid: {exc}") from None


@dataclass
class SeriesParams(SensorDetectorParams):
    """Every tunable of the per-series pipeline (config section ``[series]``).

    The detector's tunables are inherited from
    :class:`detectors.sensor.SensorDetectorParams`; the fields below calibrate the alert
    threshold: ``max(min_threshold, q-quantile of past scores + margin)``, no alert during
    the first ``warmup`` readings, and never below the score that normal readings exceed as
    often as the budget ``[alerts] false_alerts_per_week`` allows (:class:`detectors.spot.TailThreshold`).
    The detector's score is already relative to the series'
    own history (0.5 = its ``alert_ratio``), so ``min_threshold`` is the alert level and the
    quantile only raises it for a series that scores above it more than ``1 - q`` of the
    time (measured on NAB: higher ``q`` values cost 6-10 points).
    """

    q: float = 0.5
    warmup: int = 300
    min_threshold: float = 0.5
    margin: float = 0.0
    critical_score: float = 0.9  # alerts whose score reaches this are "critical"
    drift: bool = True  # watch score level and input rate; re-fit the threshold after a score drift
    drift_delta: float = 0.002  # ADWIN confidence: smaller gives fewer, later drift events
    drift_min_samples: int = 300  # readings of a regime before a drift of it is reported
    rewarm: int = 1  # readings without alerts after a re-fit (0: warmup); NAB standard -0.1 (1), -4 (50)
    quiet_after_alert: int = 48  # readings after an alert closes during which the series raises no new one
    onset_score: bool = True  # score capped below min_threshold where no alert can open (SeriesOutput.score)
    tail_q: float = 0.98  # quantile above which the score tail is modelled ([alerts] false_alerts_per_week)
    tail_gap: int = 10  # readings below it that end one exceedance episode (a correlated run counts once)
    tail_min_peaks: int = 20  # episodes before the tail is trusted; before, the highest score so far ...
    tail_cold_cap: float = 0.9  # ... up to this score
    tail_cold_s: float = 21600.0  # ... for at most this many seconds of readings (a slow stream is not held for days)

    def calibration(self, per_week: float) -> TailThreshold:
        """The threshold calibration of a series whose budget is *per_week* false alerts a week."""
        return TailThreshold(per_week=per_week, warmup=self.warmup, min_threshold=self.min_threshold, q=self.q,
                             margin=self.margin, init_q=self.tail_q, gap=self.tail_gap,
                             min_peaks=self.tail_min_peaks, max_peaks=max(256, self.tail_min_peaks),
                             cold_cap=self.tail_cold_cap, cold_s=self.tail_cold_s)

    def validate(self) -> None:
        """Raise ValueError naming the first setting whose value cannot work."""
        super().validate()
        self.calibration(1.0)

    def detector_params(self) -> SensorDetectorParams:
        names = {f.name for f in fields(SensorDetectorParams)}
        return SensorDetectorParams(**{k: v for k, v in asdict(self).items() if k in names})


@dataclass
class LogParams:
    """Every tunable of the log detector, defaults written once (config section ``[log_detector]``)."""

    # windows (defaults: LogWindowParams; a subscription may override them)
    window_mode: str = LogWindowParams.mode  # tumbling | sliding | session (opt-in: session_regex names the session id)
    window_by: str = LogWindowParams.by  # tumbling/sliding by "time" or "count"
    window_size_s: float = LogWindowParams.size_s
    window_slide_s: float = LogWindowParams.slide_s
    window_size_lines: int = LogWindowParams.size_lines
    window_slide_lines: int = LogWindowParams.slide_lines
    session_regex: str = LogWindowParams.session_regex
    session_gap_s: float = LogWindowParams.session_gap_s
    session_memory_s: float = LogWindowParams.session_memory_s  # > 0: a session's later bursts are judged with the session so far
    max_session_lines: int = LogWindowParams.max_session_lines
    max_open_windows: int = LogWindowParams.max_open_windows
    examples_per_template: int = LogWindowParams.examples_per_template
    # fleets: the sources one decision object judges together (shared templates, normal windows
    # and calibration; windows, bursts, silences and alerts per source)
    fleet: str = "site/app"  # site/app (one app on any host of a site) | app (on any site) | source (each alone)
    max_fleet_sources: int = 10000  # sources held per fleet; the least recently active beyond it is forgotten
    # severity: a line's level (syslog severity, a level field, a FATAL/ERROR/CRITICAL word) is evidence
    severity_level: float = 0.5  # a window alerts when level weight x exp(-share of windows with the template / 0.05) reaches it; 0: off
    # counts: a time window's "unusual mix" must show a template count its own rate makes unlikely
    mix_level: float = 4.0  # -log10 Poisson tail probability of the most surprising count; 0: no check
    # templates
    max_templates: int = 1000
    template_sim_th: float = 0.4
    template_depth: int = 4
    # embeddings
    model: str = "default"  # "default", "hashing" (tests), a local path or cached model name
    device: str = "auto"
    truncate_dim: int = 0  # 0: full size
    prompt: str = ""  # prompt text for every template (takes precedence over prompt_name)
    prompt_name: str = ""  # a prompt the model defines, e.g. "query" or "document"
    dtype: str = "auto"  # auto (float16 on CUDA, float32 on CPU) | float32 | float16 | bfloat16
    max_seq_length: int = 0  # tokens per template; 0: the model's own limit
    revision: str = ""  # branch, tag or commit of a Hugging Face model; "": its default
    trust_remote_code: bool = False  # run the model's own code (only for models you trust)
    allow_download: bool = False  # fetch a model missing locally; false: fail at once, offline
    batch_size: int = 64
    cache_capacity: int = 10000
    max_new_templates_per_min: int = 60  # per source and minute of event time; beyond it stand-in vectors; 0: no limit
    micro_batch: int = 256  # lines per source and embedding call in the evaluator (the flow takes Bytewax's batches)
    # window vector
    weighting: str = "logtfidf"  # count | tfidf | logtfidf | idf (presence x idf)
    count_weight: float = 0.7  # share of the template-count part in the window vector
    count_dims: int = 256
    # novelty index
    index_capacity: int = 10000
    index_k: int = 3
    eviction: str = "oldest"
    search_dims: int = 0  # 0: single-stage search at full size
    admit_distance: float = 0.05  # store only windows this close to a normal one (or promoted)
    dedupe_distance: float = 0.001  # do not store a window this close to an entry
    refresh_every: int = 1000  # recompute stored vectors with the current idf every N windows
    promote_min: int = 5  # a recurring high-scoring shape becomes normal after this many windows ...
    promote_rate: float = 0.05  # ... if in at least this share of the windows since it first appeared
    burst_min: int = 3  # or sooner, in a burst: this many windows ...
    burst_rate: float = 0.25  # ... in at least this share of the windows since it first appeared
    candidates: int = 1000  # most high-scoring shapes tracked for promotion
    candidate_radius: float = 0.05  # a window this close to a tracked shape supports it
    # calibration
    q: float = 0.99
    warmup: int = 20  # normal windows learnt before alerts
    min_threshold: float = 0.15  # chosen on the first half of HDFS blocks (scripts/cv_hdfs.py)
    margin: float = 0.0
    # bursts: a known template far above its usual count per time window (detectors/rates.py)
    rate_level: float = 8.0  # -log10 probability that alerts; 0 turns it off (time windows only)
    # explanations
    rare_fraction: float = 0.01  # a template in under this share of windows is "rare" ...
    rare_min_windows: int = 3  # ... or in fewer windows than this; rare windows are never learnt
    explain_lines: int = 3

    def window_params(self) -> LogWindowParams:
        return LogWindowParams(
            mode=self.window_mode, by=self.window_by, size_s=self.window_size_s,
            slide_s=self.window_slide_s, size_lines=self.window_size_lines,
            slide_lines=self.window_slide_lines, session_regex=self.session_regex,
            session_gap_s=self.session_gap_s, session_memory_s=self.session_memory_s,
            max_session_lines=self.max_session_lines,
            max_open_windows=self.max_open_windows, examples_per_template=self.examples_per_template,
        )

    def validate(self) -> None:
        """Raise ValueError naming the field and value when a setting cannot work."""
        self.window_params().validate()
        if self.weighting not in ("count", "tfidf", "logtfidf", "idf"):
            raise ValueError(f"LogParams: weighting = {self.weighting!r} must be count, tfidf, logtfidf or idf")
        if self.dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise ValueError(f"LogParams: dtype = {self.dtype!r} must be auto, float32, float16 or bfloat16")
        if self.max_seq_length < 0:
            raise ValueError(f"LogParams: max_seq_length = {self.max_seq_length!r} must be >= 0 (0: the model's limit)")
        if not 0.0 <= self.count_weight <= 1.0:
            raise ValueError(f"LogParams: count_weight = {self.count_weight!r} must be in [0, 1]")
        if self.fleet not in FLEETS:
            raise ValueError(f"LogParams: fleet = {self.fleet!r} must be one of {FLEETS}")
        if self.severity_level < 0 or self.mix_level < 0:
            raise ValueError(f"LogParams: severity_level = {self.severity_level!r} and mix_level = "
                             f"{self.mix_level!r} must be >= 0 (0: off)")
        for name in ("count_dims", "index_capacity", "max_fleet_sources", "index_k", "micro_batch", "promote_min", "max_templates"):
            if getattr(self, name) < 1:
                raise ValueError(f"LogParams: {name} = {getattr(self, name)!r} must be >= 1")
        if self.max_new_templates_per_min < 0:
            raise ValueError(f"LogParams: max_new_templates_per_min = {self.max_new_templates_per_min!r} must be "
                             ">= 0 (0: no limit)")
        if self.truncate_dim < 0 or self.search_dims < 0:
            raise ValueError(
                f"LogParams: truncate_dim = {self.truncate_dim!r} and search_dims = {self.search_dims!r} "
                "must be >= 0 (0 = full size)"
            )
