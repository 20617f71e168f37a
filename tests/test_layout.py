"""The package's shape: each stage imports only from the stages before it (the arrows run one way)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cfblend"
# pipeline order; the top-level helpers (io, paths, errors) may be imported by every stage
STAGES = ["data", "competition", "models", "runs", "ensemble", "report", "kaggle"]
HELPERS = {"io", "paths", "errors", "threads"}


def imports_of(path: Path) -> set[str]:
    """The cfblend modules a file imports (first component under cfblend), lazily imported ones too."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cfblend"):
            parts = node.module.split(".")
            if len(parts) > 1:
                out.add(parts[1])
            else:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("cfblend."))
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_only_earlier_stages_and_helpers(stage):
    allowed = set(STAGES[: STAGES.index(stage) + 1]) | HELPERS
    for f in sorted((SRC / stage).rglob("*.py")):
        bad = imports_of(f) - allowed
        assert not bad, f"{f.relative_to(SRC)} imports {sorted(bad)}, a later stage than {stage}"


def test_helpers_import_no_stage():
    for name in HELPERS:
        assert imports_of(SRC / f"{name}.py") <= HELPERS, f"{name}.py imports a stage"


def test_top_level_holds_only_the_entry_points_and_helpers():
    top = {p.stem for p in SRC.glob("*.py")}
    assert top == {"__init__", "__main__", "cli", "pipeline"} | HELPERS
    assert {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(STAGES)
