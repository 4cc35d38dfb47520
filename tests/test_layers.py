"""The import rules of docs/design.md: no cycle, no module importing a higher layer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
assert _spec is not None and _spec.loader is not None
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)


def test_no_import_cycles() -> None:
    assert import_graph.cycles(import_graph.graph()) == []


def test_no_module_imports_a_higher_layer() -> None:
    assert import_graph.violations(import_graph.graph()) == []


def test_detectors_and_simulators_stand_alone() -> None:
    graph = import_graph.graph()
    for module, deps in graph.items():
        if module.split(".")[0] in ("detectors", "simulators"):
            assert {d.split(".")[0] for d in deps} <= {module.split(".")[0]}, (module, deps)


def _imports_of(prefix: str) -> set[str]:
    graph = import_graph.graph()
    return {d for m, deps in graph.items() if m == prefix or m.startswith(prefix + ".") for d in deps}


def test_connectors_know_nothing_of_observe() -> None:
    """Metrics are injected into connectors; they import nothing from oddwatch.observe."""
    assert not {d for d in _imports_of("oddwatch.connectors") if d.startswith("oddwatch.observe")}
