"""Publish simulated readings and log lines over MQTT, paced against their timestamps.

The ``oddwatch simulate plant|network`` commands call :func:`run_plant` and
:func:`run_network`; both return a summary with counts and the fault (incident) plan.
Publishing goes through :class:`oddwatch.connectors.mqtt.MqttPublisher`, or any object with the
same ``publish`` / ``wait_all`` / ``close`` methods (tests pass a fake).

Timestamps: with ``start=None`` the run is placed so that the last item is stamped about when
it is published: at ``speed=1`` items are stamped "now"; at ``speed=N`` the run starts
``duration_s * (1 - 1/N)`` seconds in the past and catches up with the clock; with
``speed=None`` (as fast as the rate limit allows) it ends now. No item is ever stamped in the
future, so the flows' ``max_future_s`` check never rejects simulated data.

>>> from datetime import datetime, timezone
>>> r = SimReading("plant/s/a/temperature", datetime(2026, 1, 1, tzinfo=timezone.utc), 21.5, "degC")
>>> reading_payload(r)
b'{"ts": "2026-01-01T00:00:00Z", "value": 21.5, "unit": "degC"}'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from oddwatch.observe.progress import Progress, Publisher, publish_stream
from oddwatch.records import utcnow
from oddwatch.settings import Settings
from simulators.correlated import CorrelatedSimulation
from simulators.network import NetworkSimulation, SimLogLine
from simulators.plant import DEFAULT_SENSORS, DEFAULT_SITES, PlantSimulation, SimReading


def rfc3339(ts: datetime) -> str:
    """UTC RFC 3339 text with a ``Z``, microseconds only when non-zero.

    >>> from datetime import timezone
    >>> rfc3339(datetime(2026, 1, 1, 0, 0, 1, 500, tzinfo=timezone.utc))
    '2026-01-01T00:00:01.000500Z'
    """
    return ts.isoformat().replace("+00:00", "Z")


def reading_payload(r: SimReading) -> bytes:
    """The JSON payload of a reading: ``{"ts", "value", "unit"}`` (labels stay out)."""
    return json.dumps({"ts": rfc3339(r.ts), "value": r.value, "unit": r.unit}).encode()


def log_payload(line: SimLogLine) -> bytes:
    """The syslog text of a log line."""
    return line.payload.encode()


def default_start(duration_s: float, speed: float | None, now: datetime | None = None) -> datetime:
    """The first timestamp such that the run's last item is stamped about when it is sent.

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> [str(default_start(100, s, t).time()) for s in (1.0, 4.0, None)]
    ['00:00:00', '23:58:45', '23:58:20']
    """
    now = utcnow() if now is None else now
    lag = duration_s if speed is None else duration_s * max(0.0, 1.0 - 1.0 / speed)
    return now - timedelta(seconds=lag)


def _publisher(settings: Settings, client_id: str) -> Publisher:
    from oddwatch.connectors.mqtt import MqttPublisher  # imported late: the only paho user

    return MqttPublisher(settings.mqtt, client_id=client_id)


def run_plant(settings: Settings, *, rate: float, duration_s: float, seed: int,
              speed: float | None = 1.0, start: datetime | None = None, n_series: int | None = None,
              sites: tuple[str, ...] = DEFAULT_SITES, sensors: tuple[str, ...] = DEFAULT_SENSORS,
              day_s: float = 60.0, faults: bool = True, n_faults: int | None = None,
              warmup_frac: float = 0.25, rate_limit: float | None = None, progress: bool = False, client_id: str | None = None,
              publisher: Publisher | None = None) -> dict[str, Any]:
    """Simulate the plant and publish every reading; returns counts and the fault plan.

    Parameters
    ----------
    settings
        ``settings.mqtt`` says where to publish (QoS ``settings.mqtt.qos``).
    rate, duration_s, seed
        Readings per second in all, simulated seconds, and the seed.
    speed
        N times real time against the timestamps (1: live); None: as fast as ``rate_limit``.
    start
        First timestamp; default: see the module docstring.
    n_series, sites, sensors, day_s, faults, n_faults
        Passed to :class:`simulators.plant.PlantSimulation`.
    publisher
        Use this instead of a new :class:`~oddwatch.connectors.mqtt.MqttPublisher` (not closed).
    """
    start = default_start(duration_s, speed) if start is None else start
    sim = PlantSimulation(seed=seed, rate=rate, duration_s=duration_s, start=start, n_series=n_series,
                          sites=sites, sensors=sensors, day_s=day_s, faults=faults, n_faults=n_faults,
                          warmup_frac=warmup_frac)
    stats = _publish(settings, sim, reading_payload, kind="plant", total=sim.total, speed=speed,
                     rate_limit=rate_limit, progress=progress,
                     client_id=client_id or f"{settings.mqtt.client_id}-sim-plant-{seed}", publisher=publisher)
    return {"kind": "plant", "seed": seed, "series": len(sim.lay.topics), "expected": sim.total,
            "start": rfc3339(start), **stats, "plan": sim.plan.as_dict()}


def run_network(settings: Settings, *, rate: float, duration_s: float, seed: int,
                speed: float | None = 1.0, start: datetime | None = None,
                sites: tuple[str, ...] = ("north", "south"), syslog_format: str = "mixed",
                incidents: bool = True, n_incidents: int | None = None, warmup_frac: float = 0.25,
                rate_limit: float | None = None,
                progress: bool = False, client_id: str | None = None,
                publisher: Publisher | None = None) -> dict[str, Any]:
    """Simulate the network's syslog traffic and publish it; returns counts and the incident plan.

    Parameters as :func:`run_plant`; ``sites``, ``syslog_format``, ``incidents`` and
    ``n_incidents`` go to :class:`simulators.network.NetworkSimulation`.
    """
    start = default_start(duration_s, speed) if start is None else start
    sim = NetworkSimulation(seed=seed, rate=rate, duration_s=duration_s, start=start, sites=sites,
                            syslog_format=syslog_format, incidents=incidents, n_incidents=n_incidents,
                            warmup_frac=warmup_frac)
    stats = _publish(settings, sim, log_payload, kind="network", total=int(rate * duration_s), speed=speed,
                     rate_limit=rate_limit, progress=progress,
                     client_id=client_id or f"{settings.mqtt.client_id}-sim-network-{seed}", publisher=publisher)
    return {"kind": "network", "seed": seed, "sources": len(sim.sources),
            "start": rfc3339(start), **stats, "plan": sim.plan.as_dict()}


def run_correlated(settings: Settings, *, duration_s: float, seed: int, speed: float | None = 1.0,
                   start: datetime | None = None, site: str = "north", plant_rate: float = 2.4,
                   log_rate: float = 1.0, warmup_frac: float = 0.5, rate_limit: float | None = None, progress: bool = False,
                   client_id: str | None = None, publisher: Publisher | None = None) -> dict[str, Any]:
    """Simulate the plant and network with correlated faults (:mod:`simulators.correlated`) and
    publish readings and log lines on one connection; returns counts and the plan (scenarios,
    the asset rules they need, and the unrelated faults)."""
    start = default_start(duration_s, speed) if start is None else start
    sim = CorrelatedSimulation(seed=seed, duration_s=duration_s, start=start, site=site, plant_rate=plant_rate,
                               log_rate=log_rate, warmup_frac=warmup_frac)

    def payload(item: SimReading | SimLogLine) -> bytes:
        return reading_payload(item) if isinstance(item, SimReading) else log_payload(item)

    stats = _publish(settings, sim, payload, kind="correlated", total=int((plant_rate + log_rate) * duration_s),
                     speed=speed, rate_limit=rate_limit, progress=progress,
                     client_id=client_id or f"{settings.mqtt.client_id}-sim-correlated-{seed}", publisher=publisher)
    return {"kind": "correlated", "seed": seed, "start": rfc3339(start), **stats, "plan": sim.as_dict()}


def _publish(settings: Settings, items: Iterable[Any], payload: Callable[[Any], bytes], *, kind: str, total: int,
             speed: float | None, rate_limit: float | None, progress: bool, client_id: str,
             publisher: Publisher | None) -> dict[str, Any]:
    """Publish simulated items (readings or log lines) paced by their timestamps; counts included."""
    pub = publisher or _publisher(settings, client_id)
    labelled = 0

    def count(item: Any) -> bytes:
        nonlocal labelled
        labelled += item.label is not None
        return payload(item)

    try:
        stats = publish_stream(items, pub, topic_of=lambda x: x.topic, payload_of=count, ts_of=lambda x: x.ts,
                               speed=speed, rate_limit=rate_limit, qos=settings.mqtt.qos,
                               progress=Progress(total, label=kind, enabled=progress))
    finally:
        if publisher is None:
            pub.close()
    return {"labelled": labelled, **stats}
