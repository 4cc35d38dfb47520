"""Assets: which sensor series and log sources belong to one machine, device or site.

A source key is ``site/asset/sensor`` (a sensor series) or ``site/host/app`` (a log source).
Rules from ``[[assets.map]]`` (globs over source keys, first match wins) come first; a source
no rule matches belongs by convention to the asset named by its second level, so the sensor
series ``north/pump-1/temperature`` and the log source ``north/pump-1/plc`` are one asset
without any configuration. A plant example::

    [[assets.map]]
    asset = "pump-1"
    sources = ["north/pump-1/*", "north/plc-07/*"]   # the pump and the PLC that drives it

and a network example (a switch's syslog, its SNMP temperature and traffic counters)::

    [[assets.map]]
    asset = "core-sw1"
    site = "dc1"
    sources = ["dc1/core-sw1/*", "dc1/snmp-core-sw1/*", "dc1/*/ifmgr-core-sw1"]

With ``[incidents].group_by = "site"`` every asset of a site shares one incident key.

>>> m = AssetMap([AssetRule("pump-1", ["north/plc-07/*"])])
>>> m.asset_of("north/plc-07/controller"), m.asset_of("north/pump-1/temperature")
(('north', 'pump-1'), ('north', 'pump-1'))
>>> m.key_of("south/fan-2/vibration")
'south/fan-2'
>>> AssetMap([], group_by="site").key_of("south/fan-2/vibration")
'south/all'
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from oddwatch.settings import AssetRule, AssetSettings, IncidentSettings

SITE_WIDE = "all"  # the asset name of a site-wide incident key


class AssetMap:
    """Source keys to ``(site, asset)``: configured globs first, then the naming convention.

    Parameters
    ----------
    rules
        ``[[assets.map]]`` entries, tried in order.
    group_by
        ``"asset"`` (default) or ``"site"``: the incident key is ``site/asset`` or ``site/all``.
    """

    def __init__(self, rules: Sequence[AssetRule] = (), *, group_by: str = "asset") -> None:
        if group_by not in ("asset", "site"):
            raise ValueError(f"AssetMap: group_by = {group_by!r} must be 'asset' or 'site'")
        self.rules = [AssetRule(r.asset, list(r.sources), r.site) for r in rules]
        self.group_by = group_by

    @classmethod
    def from_settings(cls, assets: AssetSettings, incidents: IncidentSettings) -> AssetMap:
        return cls(assets.map, group_by=incidents.group_by)

    def asset_of(self, source: str) -> tuple[str, str]:
        """``(site, asset)`` of a source key; ValueError naming the key if it has no site/asset levels.

        >>> AssetMap().asset_of("north")
        Traceback (most recent call last):
        ...
        ValueError: source key 'north' is not 'site/asset/sensor' or 'site/host/app'
        """
        parts = source.split("/")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError(f"source key {source!r} is not 'site/asset/sensor' or 'site/host/app'")
        for rule in self.rules:
            if any(fnmatchcase(source, pattern) for pattern in rule.sources):
                return rule.site or parts[0], rule.asset
        return parts[0], parts[1]

    def key_of(self, source: str) -> str:
        """The incident key of a source: ``site/asset`` (or ``site/all`` when grouped by site)."""
        site, asset = self.asset_of(source)
        return f"{site}/{SITE_WIDE if self.group_by == 'site' else asset}"

    def members(self, sources: Sequence[str], key: str) -> list[str]:
        """The sources among *sources* that belong to the incident key *key* (for a dashboard).

        >>> AssetMap().members(["n/p1/t", "n/p1/plc", "n/p2/t"], "n/p1")
        ['n/p1/t', 'n/p1/plc']
        """
        return [s for s in sources if self.key_of(s) == key]
