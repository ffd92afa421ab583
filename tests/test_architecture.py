"""The core never imports the UI, and no module uses shell=True or an unsafe YAML load."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_textual_or_the_tui():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "engine").rglob("*.py")
        if _imports(p) & {"textual", "po_tui"}
    ]
    assert offenders == []


def test_importing_the_whole_engine_does_not_load_textual():
    code = (
        "import importlib, pkgutil, sys, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print('textual' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_no_shell_true_and_only_safe_yaml_loads():
    bad = []
    for p in list((ROOT / "engine").rglob("*.py")) + list((ROOT / "po_tui").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                if isinstance(node.value, ast.Constant) and node.value.value is True:
                    bad.append(f"{p}: shell=True")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = node.func
                if isinstance(func.value, ast.Name) and func.value.id == "yaml" and func.attr in {"load", "unsafe_load", "full_load", "load_all"}:
                    loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
                    safe = isinstance(loader, ast.Attribute) and loader.attr in {"SafeLoader", "CSafeLoader"}
                    if func.attr != "load" or not safe:
                        bad.append(f"{p}:{node.lineno}: yaml.{func.attr} without a safe Loader")
    assert bad == []


def _engine_imports(path: Path) -> set[str]:
    """Full dotted names of the engine modules `path` imports (absolute imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("engine."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("engine"):
            names.add(node.module)
    return names


def test_providers_and_data_never_import_the_stages_that_use_them():
    """engine.providers serves the teacher and eval stages and engine.data the concept generator
    and the synthetic writer: they sit below the stages, so neither reaches back up."""
    above = ("engine.stages", "engine.commands", "engine.pipeline", "engine.cli", "engine.views")
    offenders = [
        f"{p.relative_to(ROOT)}: {name}"
        for package in ("providers", "data")
        for p in (ROOT / "engine" / package).rglob("*.py")
        for name in sorted(_engine_imports(p))
        if name.startswith(above)
    ]
    assert offenders == []
