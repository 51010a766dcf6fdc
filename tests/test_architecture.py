"""The layer contract of the design: the engine is pure PyTorch, UIs sit on top."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "bihm_app"
FORBIDDEN_IN_ENGINE = ("h5py", "typer", "rich", "textual", "bihm_app.data", "bihm_app.store", "bihm_app.render",
                       "bihm_app.cli", "bihm_app.tui", "bihm_app.runner", "bihm_app.errors")  # fmt: skip


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((PKG / "engine").glob("*.py")), ids=lambda p: p.name)
def test_engine_imports_nothing_but_torch_and_itself(path):
    bad = {n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_IN_ENGINE)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_lower_layers_never_import_the_user_interfaces():
    for layer in ("engine", "data", "store", "render", "runner"):
        for path in (PKG / layer).rglob("*.py"):
            bad = {n for n in _imports(path) if n.split(".")[0] == "textual" or n.startswith(("bihm_app.cli", "bihm_app.tui"))}
            assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}"


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter not installed (pip install -e .[test])")
    res = subprocess.run([str(exe)], cwd=PKG.parent, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_engine_imports_without_the_ui_libraries():
    code = (
        "import sys; import bihm_app.engine.model, bihm_app.engine.estimators, bihm_app.engine.training, "
        "bihm_app.engine.exact; bad=[m for m in ('h5py','typer','rich','textual') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=PKG.parent).returncode == 0


def test_front_ends_stay_thin():
    """Catches application logic growing back into the front-ends: every module of cli/ and tui/
    under 250 lines, every function under 60 (they parse, call bihm_app.runner and render)."""
    too_big = []
    for path in sorted([*(PKG / "cli").rglob("*.py"), *(PKG / "tui").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) >= 250:
            too_big.append(f"{path.relative_to(PKG)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 >= 60:
                too_big.append(f"{path.relative_to(PKG)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_big, "\n".join(too_big)
