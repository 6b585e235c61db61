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


def test_the_faust_process_imports_nothing_heavy():
    """The scoring libraries live in the scoring process; the Faust process stays lean."""
    import subprocess
    import sys
    code = ("import sys, stream.app, stream.worker; print(sorted(m for m in ('pandas', 'pyarrow', "
            "'xgboost', 'clickhouse_connect', 'chdb', 'numpy', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
