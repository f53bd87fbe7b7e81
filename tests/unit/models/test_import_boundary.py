"""models/ must not import ingest, streams, simulators or tickets (STYLE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[3] / "models"
FORBIDDEN = ("ingest", "streams", "simulators", "tickets")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.py")), ids=lambda p: p.name)
def test_module_imports_no_outer_package(path: Path) -> None:
    assert not _imports(path) & set(FORBIDDEN)


def test_importing_models_loads_no_outer_package() -> None:
    mods = [p.stem for p in MODELS.glob("*.py") if p.stem not in {"__init__", "__main__"}]
    code = (
        "import sys\n"
        + "".join(f"import models.{m}\n" for m in mods)
        + f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=MODELS.parent
    )
    assert out.stdout.strip() == ""


def test_the_check_would_catch_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import simulators.city\nfrom tickets import rules\n", encoding="utf-8")
    assert _imports(bad) & set(FORBIDDEN) == {"simulators", "tickets"}
