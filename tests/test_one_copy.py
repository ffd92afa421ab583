"""One copy of each helper: the shared formats, guards, readers and constants, and a net for new copies.

Copies drift: the three `duration()` formatters had come to round and dash differently, the eval
command's own `clean` let 8-bit escapes and bidi overrides through, and the concept pools, the
records and the report each had their tuple of tiers. Each now has one home; these tests pin the
behaviour picked and fail when a copy comes back under the old name, another name, or verbatim.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from engine.core.numbers import finite, finite_float, percent
from engine.core.timefmt import duration, utc_stamp

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for top in ("engine", "po_tui") for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), ("12", "-"), (True, "-"), (math.nan, "-"), (math.inf, "-"), (-math.inf, "-"),
    (-3, "0.0s"), (0, "0.0s"), (12.34, "12.3s"), (59.94, "59.9s"),
    (59.96, "1m00s"),  # the old copies said "60.0s"
    (119.7, "2m00s"),  # the cockpit's copy cut it to 1m59s
    (245, "4m05s"), (3599.4, "59m59s"), (3599.6, "1h00m"),
    (3779, "1h03m"),  # 1h02m59s: the old copies cut it to 1h02m
    (6000, "1h40m"), (90000, "25h00m"),
])
def test_one_duration_format_for_every_screen_and_report(seconds, text):
    assert duration(seconds) == text


def test_the_status_screen_the_cockpit_and_the_report_use_it():
    import engine.stages.report.markdown as report
    import engine.views.gpu as gpu
    import engine.views.render as status
    import po_tui.picker as picker
    import po_tui.widgets.overview as overview
    import po_tui.widgets.teacher as teacher
    import po_tui.widgets.training as training

    assert {m.duration for m in (status, report, gpu, picker, overview, teacher, training)} == {duration}


@pytest.mark.parametrize("value, expected", [
    (3, 3), (2.5, 2.5), (0, 0), (-1e300, -1e300),
    (True, None), (False, None), ("1", None), (None, None), ([1], None),
    (math.nan, None), (math.inf, None), (-math.inf, None),
])
def test_finite_is_a_real_number_as_it_was_written(value, expected):
    assert finite(value) == expected and type(finite(value)) is type(expected)
    assert finite_float(value) == (None if expected is None else float(expected))
    assert finite_float(3).__class__ is float


def test_one_utc_stamp_and_no_module_spells_the_format_again():
    assert utc_stamp(0) == "1970-01-01T00:00:00Z" and utc_stamp(1_700_000_000.9) == "2023-11-14T22:13:20Z"
    assert len(utc_stamp()) == 20 and utc_stamp().endswith("Z")
    spelled = [str(p.relative_to(ROOT)) for p in SOURCES if "%Y-%m-%dT%H:%M:%SZ" in p.read_text(encoding="utf-8")]
    assert spelled == ["engine/core/timefmt.py"]


@pytest.mark.parametrize("fraction, text", [(0.8734, "87.3%"), (1, "100.0%"), (0, "0.0%"), (None, "-"), (math.nan, "-"), (True, "-")])
def test_one_percent_for_the_command_lines(fraction, text):
    assert percent(fraction) == text


# --- where each lives -----------------------------------------------------------------------------


def _module_level_names(path: Path) -> dict[str, ast.AST]:
    """Names a module binds at its top level (def, class, assignment) to the node that binds them."""
    out: dict[str, ast.AST] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            out.update((t.id, node.value) for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
    return out


DEFINED = {p: _module_level_names(p) for p in SOURCES}

# Each shared helper or constant, and the one module that defines it.
HOMES = {
    "duration": "engine/core/timefmt.py",
    "utc_stamp": "engine/core/timefmt.py",
    "finite": "engine/core/numbers.py",
    "finite_float": "engine/core/numbers.py",
    "clean": "engine/core/inert.py",
    "Warn": "engine/store/jsonl.py",
    "load_results": "engine/stages/results.py",
    "ROLES": "engine/stages/results.py",
    "TIERS": "engine/core/records.py",
    "ALLOWED_STATUSES": "engine/core/metric.py",
    "JOB_STATES": "engine/runlog/state.py",
    "score_summary": "engine/core/records.py",
    "read_record": "engine/store/jsonfile.py",
    "percent": "engine/core/numbers.py",
    "PROVIDERS": "engine/stages/teacher/settings.py",
}


@pytest.mark.parametrize("name", sorted(HOMES))
def test_each_shared_helper_is_defined_once(name):
    where = [str(p.relative_to(ROOT)) for p, names in DEFINED.items() if name in names]
    assert where == [HOMES[name]]


@pytest.mark.parametrize("name", sorted(n for n in HOMES if n.isupper()))
def test_no_constant_is_copied_under_another_name(name):
    """TIER_ORDER, ROLE_ORDER, RUN_STATES were the tiers, roles and job states again."""
    home = ROOT / HOMES[name]
    value = ast.dump(DEFINED[home][name])
    copies = [f"{p.relative_to(ROOT)}: {other}" for p, names in DEFINED.items() for other, node in names.items()
              if isinstance(node, ast.expr) and ast.dump(node) == value and (p, other) != (home, name)]
    assert copies == []


def test_no_collection_constant_stands_in_two_modules():
    """A module-level tuple, list, set or dict of three or more items written out in two modules is
    one constant copied (the tiers were, three times; the provider names twice): import it instead."""
    seen: dict[str, list[str]] = defaultdict(list)
    for path, names in DEFINED.items():
        for name, node in names.items():
            items = getattr(node, "elts", None) or getattr(node, "keys", None)
            if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) and items is not None and len(items) >= 3:
                seen[ast.dump(node)].append(f"{path.relative_to(ROOT)}: {name}")
    assert [places for places in seen.values() if len(places) > 1] == []


def _body_key(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, int]:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring may differ
    size = sum(1 for stmt in body for _ in ast.walk(stmt))
    return ast.dump(ast.Module(body=body, type_ignores=[])) + ast.dump(fn.args), size


def test_no_function_is_copied_verbatim():
    """Module-level functions and methods with the same parameters and body, wherever they are (the
    stats `_summary`, the providers' `_describe`/`_clip` and the finite-number guards were). A
    one-line expression of under 20 syntax nodes may stand twice: sharing it would cost more than it saves."""
    seen: dict[str, list[str]] = defaultdict(list)
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            functions += [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for fn in functions:
            key, size = _body_key(fn)
            if size >= 20:
                seen[key].append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}")
    assert [places for places in seen.values() if len(places) > 1] == []


def test_every_module_level_function_and_class_has_a_caller_besides_the_tests():
    """A reader only tests call (`read_jsonl`, `ollama_template`, eval's own `load_results` were)
    is a second way to read a file that nothing else exercises: its name must appear in engine/ or
    po_tui/ somewhere other than its own definition."""
    words: Counter = Counter()
    for path in SOURCES:
        words.update(re.findall(r"\b[A-Za-z_]\w*\b", path.read_text(encoding="utf-8")))
    unused = [f"{path.relative_to(ROOT)}: {name}" for path, names in DEFINED.items() for name, node in names.items()
              if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and words[name] == 1]
    assert unused == []
