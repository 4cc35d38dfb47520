"""MQTT topic filters and Telegraf-style topic parsing into tags.

>>> parse_topic("plant/s1/pump-3/temp", [Subscription("plant/+/+/+", "_/site/asset/sensor")])
{'site': 's1', 'asset': 'pump-3', 'sensor': 'temp'}
>>> parse_topic("other/x", [Subscription("plant/+/+/+", "_/site/asset/sensor")]) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence

from oddwatch.settings import Subscription


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
