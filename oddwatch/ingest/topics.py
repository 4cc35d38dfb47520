"""MQTT topic filters and Telegraf-style topic parsing into tags.

>>> parse_topic("plant/s1/pump-3/temp", [Subscription("plant/+/+/+", "_/site/asset/sensor")])
{'site': 's1', 'asset': 'pump-3', 'sensor': 'temp'}
>>> parse_topic("other/x", [Subscription("plant/+/+/+", "_/site/asset/sensor")]) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from oddwatch.settings import Settings, Subscription


def matches(topic_filter: str, topic: str) -> bool:
    """Whether *topic* matches an MQTT *topic_filter* with ``+`` and ``#`` wildcards.

    >>> matches("plant/+/+/+", "plant/a/b/c"), matches("logs/#", "logs/a/b"), matches("a/+", "a/b/c")
    (True, True, False)
    """
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels):
            return False
        if level != "+" and level != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def parse_topic(topic: str, subscriptions: Sequence[Subscription]) -> dict[str, str] | None:
    """Tags from the first subscription whose filter matches *topic*, or None when none does.

    The tag spec names one tag per topic level; ``_`` skips a level. Empty levels are kept as
    empty strings so the caller can reject them with the topic in the message.
    """
    levels = topic.split("/")
    for sub in subscriptions:
        if not matches(sub.topic, topic):
            continue
        names = sub.tags.split("/")
        return {name: levels[i] for i, name in enumerate(names) if name != "_" and i < len(levels)}
    return None


def widened(topic_filter: str, own_prefixes: Iterable[str] = ()) -> str:
    """The filter a flow subscribes to for *topic_filter*: from its first wildcard on, ``#``.

    So a topic with too few or too many levels (``plant/s1/pump`` for ``plant/+/+/+``) still
    reaches the parser, which rejects it as ``bad_topic`` (ingest_error and dead letter) rather
    than the broker dropping it unseen. A filter is kept as it is when widening it would leave
    no literal level (``+/+/+``) or would take in one of *own_prefixes* (the topics oddwatch
    publishes: alerts, dead letters, incidents), which would feed the flow its own output.

    >>> widened("plant/+/+/+"), widened("$share/g/plant/+/+/+"), widened("+/+/+"), widened("logs/a/#")
    ('plant/#', '$share/g/plant/#', '+/+/+', 'logs/a/#')
    >>> widened("oddwatch/+/+", ["oddwatch/alerts"])
    'oddwatch/+/+'
    """
    share = ""
    plain = topic_filter
    if plain.startswith("$share/"):
        _, group, plain = plain.split("/", 2)
        share = f"$share/{group}/"
    levels = plain.split("/")
    first = next((i for i, level in enumerate(levels) if level in ("+", "#")), None)
    if first is None or first == 0:
        return topic_filter
    wide = "/".join(levels[:first] + ["#"])
    if any(matches(wide, f"{prefix.rstrip('/')}/x") for prefix in own_prefixes):
        return topic_filter
    return share + wide


def own_prefixes(settings: Settings) -> list[str]:
    """The topic prefixes oddwatch itself publishes under (never widened into)."""
    return [settings.mqtt.alerts_prefix, settings.mqtt.deadletter_prefix, settings.incidents.topic_prefix,
            settings.quality.topic_prefix, settings.mqtt.feedback_topic.rstrip("#").rstrip("/")]


def subscribe_filters(subscriptions: Sequence[Subscription], own_prefixes: Iterable[str] = ()) -> list[str]:
    """The filters to subscribe to for *subscriptions* (each :func:`widened`, duplicates dropped)."""
    own = list(own_prefixes)
    return list(dict.fromkeys(widened(s.topic, own) for s in subscriptions))


def topic_problem(topic: str, subscriptions: Sequence[Subscription]) -> tuple[str, str]:
    """Why *topic* gives no tags: ``("bad_topic", detail)`` when it is under a subscription's
    literal levels but has the wrong number of levels, else ``("unknown_topic", detail)``.

    >>> subs = [Subscription("plant/+/+/+", "_/site/asset/sensor")]
    >>> topic_problem("plant/s1/pump", subs)
    ('bad_topic', "topic 'plant/s1/pump' has 3 levels; subscription plant/+/+/+ (_/site/asset/sensor) expects 4")
    >>> topic_problem("other/x", subs)[0]
    'unknown_topic'
    """
    n = len(topic.split("/"))
    for sub in subscriptions:
        wide = widened(sub.topic)
        if wide != sub.topic and matches(wide, topic) and not matches(sub.topic, topic):
            expected = len(sub.topic.split("/")) - (2 if sub.topic.startswith("$share/") else 0)
            return "bad_topic", (f"topic {topic!r} has {n} levels; subscription {sub.topic} ({sub.tags}) "
                                 f"expects {expected}")
    known = ", ".join(f"{s.topic} ({s.tags})" for s in subscriptions)
    return "unknown_topic", f"topic {topic!r} matches no subscription ({known})"
