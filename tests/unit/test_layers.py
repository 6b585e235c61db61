"""Layers point one way: shared ← batch, stream ← amlscore (the CLI and the demo)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"shared": {"batch", "stream", "amlscore"}, "batch": {"stream", "amlscore"},
             "stream": {"batch", "amlscore"}}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_or_beside_it(package):
    crossings = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & FORBIDDEN[package])
                 for p in (ROOT / package).rglob("*.py")}
    assert {k: v for k, v in crossings.items() if v} == {}


def test_the_check_sees_a_crossing(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from batch.replay import records\n")
    assert imported_packages(module) == {"batch"}


def loaded_after_importing(modules: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` a fresh interpreter holds after importing ``modules``."""
    import subprocess
    import sys
    code = f"import sys, {modules}; print(sorted(m for m in {candidates!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip())


def test_the_faust_process_imports_nothing_heavy():
    """The scoring libraries live in the scoring process; the Faust process stays lean."""
    assert loaded_after_importing("stream.app, stream.worker", (
        "pandas", "pyarrow", "xgboost", "clickhouse_connect", "chdb", "numpy", "matplotlib")) == []


def test_the_scoring_process_imports_no_training_only_library():
    """scipy.stats and the other training-only libraries would cost the scoring process ~40 MB
    resident it never uses (the suppression bound, chosen when training, needs only
    scipy.special, which the scoring process loads already)."""
    assert loaded_after_importing("stream.scoring.main, stream.scoring.service", (
        "scipy.stats", "scipy.optimize", "sklearn", "matplotlib")) == []


def test_the_scoring_process_loads_no_kafka_client():
    """It builds the records the Faust process publishes, as plain columns (shared.outbound)."""
    assert loaded_after_importing("stream.scoring.main, stream.scoring.service, stream.scoring.encode",
                                  ("aiokafka", "faust", "kafka")) == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """The project modules a module imports (at any depth of its code)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] in ("shared", "stream", "batch", "amlscore")}


MODULES = {_module_name(p): p for package in ("shared", "stream", "batch", "amlscore")
           for p in (ROOT / package).rglob("*.py")}


def in_scoring_package(module: str) -> bool:
    return module == "stream.scoring" or module.startswith("stream.scoring.")


def test_the_process_boundary_shows_in_the_tree():
    """stream/scoring/ runs only in the scoring process, the rest of stream/ in the Faust process;
    they share only stream.boundary (what crosses) and stream.memory (process hygiene)."""
    shared_by_both = {"stream", "stream.boundary", "stream.memory"}
    crossings = {}
    for name, path in MODULES.items():
        if not name.startswith("stream"):
            continue
        used = {m for m in project_imports(path) if m in MODULES and m.startswith("stream")}
        if in_scoring_package(name):
            wrong = {m for m in used if not in_scoring_package(m) and m not in shared_by_both}
        else:
            wrong = {m for m in used if in_scoring_package(m)}
        if wrong:
            crossings[name] = sorted(wrong)
    assert crossings == {}


def test_no_import_cycles():
    graph = {name: {m for m in project_imports(path) if m in MODULES and m != name}
             for name, path in MODULES.items()}
    cycles = []

    def visit(name: str, trail: list[str], state: dict[str, int]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif not state.get(nxt):
                visit(nxt, [*trail, nxt], state)
        state[name] = 2

    state: dict[str, int] = {}
    for name in sorted(graph):
        if not state.get(name):
            visit(name, [name], state)
    assert cycles == []
