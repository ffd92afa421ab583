"""The core never imports the UI (by statement or by name), and no module uses shell=True or an unsafe YAML load."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


UI = ("po_tui", "textual")
# A module path (optionally `module:attr`) in the UI's packages: `po_tui`, `po_tui.cli`, `textual.app:App`,
# or the head of one being built (`po_tui.` in f"po_tui.{name}"). Data names such as the results
# field `po_tui` or the file `po_tui_train.json` are not: the first is exempted by where it stands
# (see _ui_module_strings), the second never matches.
UI_MODULE = re.compile(r"(po_tui|textual)(\.\w*)*(:\w+)?")
IMPORTERS = {"import_module", "__import__", "find_spec", "run_module", "import_string", "load_module"}


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def _static_prefix(node: ast.AST) -> str | None:
    """The text a string argument starts with, when the source says it (a constant, an f-string, a + b)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return _static_prefix(node.values[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _static_prefix(node.left)
    return None


def _ui_module_strings(source: str) -> list[str]:
    """Where `source` reaches the UI by name rather than by import statement.

    Two nets: a call to an importer (`importlib.import_module`, `__import__`, `find_spec`,
    `runpy.run_module`, ...) whose argument starts with a UI package; and any other string (not a
    docstring) that is a UI module path, such as a `-m po_tui` argument or a name kept for a later
    `import_module`. The bare word is data where it is a key (`doc["po_tui"]`, `{"po_tui": ...}`,
    `header.get("po_tui")`): that is the results format's field, not the package.
    """
    tree = ast.parse(source)
    docs, keys, found = _docstrings(tree), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            keys.add(id(node.slice))
        elif isinstance(node, ast.Dict):
            keys.update(id(k) for k in node.keys if k is not None)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in {"get", "pop", "setdefault"} and node.args):
            keys.add(id(node.args[0]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            prefix = _static_prefix(node.args[0])
            if name in IMPORTERS and prefix is not None and prefix.startswith(UI) and UI_MODULE.match(prefix):
                found.append(f"{node.lineno}: {name}({prefix!r})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if UI_MODULE.fullmatch(node.value.strip()) and not (node.value in UI and id(node) in keys):
                found.append(f"{node.lineno}: {node.value!r}")
    return found


def test_engine_never_names_the_tui_as_a_module_to_load():
    """The static-import test above misses `importlib.import_module("po_tui.cli")`: the UI hands the
    engine a cockpit instead (engine/commands/__init__.py), so no engine module names it."""
    offenders = [
        f"{p.relative_to(ROOT)}:{where}"
        for p in sorted((ROOT / "engine").rglob("*.py"))
        for where in _ui_module_strings(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize("source", [
    'import importlib\nimportlib.import_module("po_tui.cli").attach(run)',
    'from importlib import import_module\ncockpit = import_module("po_tui.cli")',
    'ui = __import__("po_tui.cli", fromlist=["attach"])',
    'mod = __import__("textual")',
    'name = "cli"\nm = importlib.import_module(f"po_tui.{name}")',
    'm = importlib.import_module("po_tui." + name)',
    'spec = importlib.util.find_spec("po_tui")',
    'runpy.run_module("po_tui", run_name="__main__")',
    'COCKPIT = "po_tui.cli"\nimportlib.import_module(COCKPIT)',
    'subprocess.run([sys.executable, "-m", "po_tui", "attach", run])',
    'ENTRY = "po_tui.cli:main"',
])
def test_the_string_import_net_catches(source):
    assert _ui_module_strings(source)


@pytest.mark.parametrize("source", [
    '"""Opens the cockpit (`po_tui.cli`) through the launcher it is handed."""',
    'def f():\n    """po_tui.cli hands us the cockpit."""',
    'x = header.get("po_tui") if isinstance(header.get("po_tui"), dict) else {}',
    'doc = {"po_tui": {"format": 2}}\nspeed = doc["po_tui"]["speed"]',
    'RUN_INFO = "po_tui_train.json"',
    'label = f"{path} (po_tui.train)"',
    'help = "adapter or training folder (po_tui_train.json, loss_history.json)"',
    'importlib.import_module(f"engine.commands.{name}")',
])
def test_the_string_import_net_leaves_data_names_alone(source):
    assert _ui_module_strings(source) == []


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
                if (isinstance(func.value, ast.Name) and func.value.id == "yaml"
                        and func.attr in {"load", "unsafe_load", "full_load", "load_all"}):
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


def _textual_private_names() -> set[str]:
    """Underscore names of Textual's App, Screen, Widget and Pilot (class and instance attributes)
    that po_tui does not define itself: reaching for one ties a test to Textual's internals."""
    from textual.app import App
    from textual.pilot import Pilot
    from textual.screen import Screen
    from textual.widget import Widget

    names = {n for cls in (App, Screen, Widget, Pilot) for n in dir(cls)}
    names |= set(vars(App())) | set(vars(Screen()))
    ours = {n for p in (ROOT / "po_tui").rglob("*.py") for n in re.findall(r"\b_[a-z]\w*", p.read_text(encoding="utf-8"))}
    return {n for n in names if n.startswith("_") and not n.startswith("__")} - ours


def _private_textual_uses(source: str, private: set[str]) -> list[str]:
    tree = ast.parse(source)
    modules = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return [f"{node.lineno}: .{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in private
            and not (isinstance(node.value, ast.Name) and node.value.id in modules)]  # os._exit is not Textual's


def test_tests_use_only_textuals_public_testing_api():
    """Pilot, queries, export_screenshot, get_style_at, get_line_filters, notify: never
    `_compositor`, `_notifications`, `_filters` or `_driver`, which change between releases."""
    private = _textual_private_names()
    assert {"_compositor", "_notifications", "_filters", "_driver"} <= private
    offenders = [f"{p.relative_to(ROOT)}:{where}" for p in sorted((ROOT / "tests").rglob("*.py"))
                 for where in _private_textual_uses(p.read_text(encoding="utf-8"), private)]
    assert offenders == []
