"""Log templates: a bounded, picklable Drain3 miner per source group.

Variable parts of a line (UUIDs, IPs with ports, paths, HDFS block ids, hex, numbers) are
masked before Drain3 clusters the line, so ``Receiving block blk_1 src: /10.0.0.1:50010`` and
``Receiving block blk_2 src: /10.0.0.2:50010`` share one template. Every call returns the
template id (Drain3's cluster id, stable for the life of the miner), the current template text
and what changed (``"cluster_created"``, ``"cluster_template_changed"`` or ``"none"``), so a
caller can re-embed a template whose text changed.

Examples
--------
>>> miner = TemplateMinerState()
>>> miner.add("Receiving block blk_-42 src: /10.0.0.1:50010 dest: /10.0.0.2:50010")
TemplateMatch(template_id=1, template='Receiving block <BLK> src: <IP> dest: <IP>', change_type='cluster_created')
>>> miner.add("Receiving block blk_77 src: /10.0.0.3:40010 dest: /10.0.0.4:50010").change_type
'none'
>>> miner.add("Served block blk_1 to /10.0.0.9").template_id
2
>>> import pickle
>>> pickle.loads(pickle.dumps(miner)).add("Served block blk_9 to /10.0.0.1").template_id
2
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, overload

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

# Order matters: the first instructions take the most specific shapes.
DEFAULT_MASKS: tuple[tuple[str, str], ...] = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"blk_-?\d+", "BLK"),
    (r"/?\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b", "IP"),
    (r"(?<![\w<])(?:/[\w.\-$@%+=]+)+/?", "PATH"),
    (r"\b0[xX][0-9a-fA-F]+\b", "HEX"),
    (r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b", "HEX"),
    (r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])", "NUM"),
)


# A literal every match of a default mask contains: the regex is skipped when it is absent.
_GUARDS = {"UUID": "-", "BLK": "blk_", "IP": ".", "PATH": "/"}


def _compile(masks: tuple[tuple[str, str], ...]) -> list[tuple[re.Pattern[str], str, str | None]]:
    return [(re.compile(p), f"<{name}>", _GUARDS.get(name) if (p, name) in DEFAULT_MASKS else None)
            for p, name in masks]


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """The template a line was assigned to."""

    template_id: int
    template: str
    change_type: str  # "cluster_created" | "cluster_template_changed" | "none"


class TemplateMinerState:
    """Drain3 template miner for one source group, bounded and picklable.

    Parameters
    ----------
    max_clusters
        Most templates kept; beyond it Drain3 evicts the least recently used one (its id is
        then never reused, and a line of that shape later gets a new id).
    sim_th
        Drain3 similarity threshold (0..1): higher makes more, finer templates.
    depth
        Drain3 prefix-tree depth (at least 3).
    max_children
        Drain3 prefix-tree fan-out per node.
    masks
        ``(regex, name)`` pairs applied in order; a match becomes ``<name>``.
    memo_size
        Lines remembered with their masked text, and masked lines with their template id (a
        fast path for repeated lines and shapes).
    """

    def __init__(
        self,
        *,
        max_clusters: int = 1000,
        sim_th: float = 0.4,
        depth: int = 4,
        max_children: int = 100,
        masks: tuple[tuple[str, str], ...] = DEFAULT_MASKS,
        memo_size: int = 10000,
    ) -> None:
        if max_clusters < 1:
            raise ValueError(f"TemplateMinerState: max_clusters = {max_clusters!r} must be >= 1")
        if not 0.0 <= sim_th <= 1.0:
            raise ValueError(f"TemplateMinerState: sim_th = {sim_th!r} must be in [0, 1]")
        if depth < 3:
            raise ValueError(f"TemplateMinerState: depth = {depth!r} must be >= 3")
        self.max_clusters = max_clusters
        self.sim_th = sim_th
        self.depth = depth
        self.max_children = max_children
        self.masks = tuple(masks)
        self.memo_size = memo_size
        self.lines = 0
        self._miner = self._build()
        self._regexes = _compile(self.masks)
        self._memo: dict[str, int] = {}  # masked line -> template id
        self._masked: dict[str, str] = {}  # line -> masked line

    def _build(self) -> TemplateMiner:
        config = TemplateMinerConfig()
        config.drain_max_clusters = self.max_clusters
        config.drain_sim_th = self.sim_th
        config.drain_depth = self.depth
        config.drain_max_children = self.max_children
        config.masking_instructions = []  # masking is done here, once, before Drain3
        config.parametrize_numeric_tokens = True
        return TemplateMiner(config=config)

    def mask(self, line: str) -> str:
        """*line* with its variable parts replaced by ``<NAME>`` masks (a line seen recently is
        looked up, not masked again)."""
        masked = self._masked.get(line)
        if masked is not None:
            return masked
        masked = line
        for regex, repl, guard in self._regexes:
            if guard is None or guard in masked:
                masked = regex.sub(repl, masked)
        if len(self._masked) >= self.memo_size:
            self._masked.clear()
        self._masked[line] = masked
        return masked

    @overload
    def add(self, line: str) -> TemplateMatch: ...

    @overload
    def add(self, line: str, *, learn: bool) -> TemplateMatch | None: ...

    def add(self, line: str, *, learn: bool = True) -> TemplateMatch | None:
        """Assign *line* to a template (learning it), returning id, text and change type.

        A masked line seen before goes straight to its template (Drain3 would match it to
        the same cluster without changing it), touching the cluster so LRU eviction still
        sees it as used. With ``learn=False`` only such lines are assigned; others return
        None (Drain3 is not called).
        """
        self.lines += 1
        masked = self.mask(line.strip())
        drain = self._miner.drain
        cid = self._memo.get(masked)
        if cid is not None:
            cluster = drain.id_to_cluster[cid]  # LRU touch
            if cluster is not None:
                cluster.size += 1
                return TemplateMatch(cid, cluster.get_template(), "none")
        if not learn:
            self.lines -= 1
            return None
        cluster, change_type = drain.add_log_message(masked)
        if len(self._memo) >= self.memo_size:
            self._memo.clear()
        self._memo[masked] = cluster.cluster_id
        return TemplateMatch(cluster.cluster_id, cluster.get_template(), change_type)

    def template(self, template_id: int) -> str | None:
        """The current text of a template, or None when unknown or evicted."""
        cluster = self._miner.drain.id_to_cluster.get(template_id)
        return None if cluster is None else cluster.get_template()

    def templates(self) -> dict[int, str]:
        """All current templates by id."""
        return {c.cluster_id: c.get_template() for c in self._miner.drain.clusters}

    def __len__(self) -> int:
        return len(self._miner.drain.clusters)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        drain = self._miner.drain
        state["_miner"] = None
        state["_regexes"] = None
        state["_memo"] = {}
        state["_masked"] = {}
        state["_drain"] = (drain.id_to_cluster, drain.root_node, drain.clusters_counter)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        id_to_cluster, root, counter = state.pop("_drain")
        self.__dict__.update(state)
        self._miner = self._build()
        self._regexes = _compile(self.masks)
        self._masked = {}
        drain = self._miner.drain
        drain.id_to_cluster = id_to_cluster
        drain.root_node = root
        drain.clusters_counter = counter

    def __repr__(self) -> str:
        return f"TemplateMinerState(templates={len(self)}, lines={self.lines}, max_clusters={self.max_clusters})"
