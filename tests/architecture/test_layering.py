"""The floor plan, enforced: each package imports only from its own rank or lower.

Ranks (README's folder table): core 0 · activities 1 · registry 2 · legacy_adapter,
output_profiles 3 (one direction between them) · workflows, persistence 4 (neither imports the
other) · prodgraph 5 · api, worker.py, bench/, scripts/ 6. The CLI never imports api.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT

RANKS = {
    "core": 0,
    "activities": 1,
    "registry": 2,
    "legacy_adapter": 3,
    "output_profiles": 3,
    "workflows": 4,
    "persistence": 4,
    "prodgraph": 5,
    "api": 6,
    "worker": 6,
    "bench": 6,
    "scripts": 6,
}
#: Same-rank pairs that must not meet in the given direction (importer, imported).
FORBIDDEN_SAME_RANK = {
    ("legacy_adapter", "output_profiles"),
    ("workflows", "persistence"),
    ("persistence", "workflows"),
}


def project_files() -> list[Path]:
    """Every Python file of the project's packages and top-level programs."""
    files = [path for package in RANKS for path in (REPO_ROOT / package).rglob("*.py")]
    return sorted(files + [REPO_ROOT / "worker.py"])


def package_of(path: Path) -> str:
    """The ranked package a file belongs to."""
    return path.relative_to(REPO_ROOT).parts[0].removesuffix(".py")


def imported_packages(path: Path) -> set[str]:
    """Project packages a file imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names if name.split(".")[0] in RANKS}
    return found


def violations(own: str, imports: set[str]) -> list[str]:
    """Every import of package `own` that goes up a rank or across a forbidden pair."""
    wrong = []
    for imported in sorted(imports - {own}):
        if RANKS[imported] > RANKS[own]:
            wrong.append(f"{own} (rank {RANKS[own]}) imports {imported} (rank {RANKS[imported]})")
        elif (own, imported) in FORBIDDEN_SAME_RANK:
            wrong.append(f"{own} imports {imported}: that direction is forbidden")
    return wrong


@pytest.mark.parametrize("path", project_files(), ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_imports_go_only_down_the_ranks(path: Path):
    assert violations(package_of(path), imported_packages(path)) == []


def test_the_cli_never_imports_the_api():
    assert "api" not in imported_packages(REPO_ROOT / "prodgraph" / "cli.py")


def test_only_one_of_legacy_adapter_and_output_profiles_imports_the_other():
    adapter_to_profiles = any(
        "output_profiles" in imported_packages(path) for path in (REPO_ROOT / "legacy_adapter").rglob("*.py")
    )
    profiles_to_adapter = any(
        "legacy_adapter" in imported_packages(path) for path in (REPO_ROOT / "output_profiles").rglob("*.py")
    )
    assert not (adapter_to_profiles and profiles_to_adapter)


def test_the_checker_sees_upward_and_forbidden_imports(tmp_path: Path):
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from api.app import create_app\n    import persistence.engine\n")
    assert imported_packages(lazy) == {"api", "persistence"}
    assert violations("core", {"api"}) == ["core (rank 0) imports api (rank 6)"]
    assert violations("workflows", {"persistence", "registry"}) == [
        "workflows imports persistence: that direction is forbidden"
    ]


def test_every_project_package_has_a_rank():
    packages = {path.parent.relative_to(REPO_ROOT).parts[0] for path in REPO_ROOT.glob("*/__init__.py")}
    assert packages - {"tests"} <= set(RANKS)
