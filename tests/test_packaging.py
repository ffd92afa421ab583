"""Packaging: a wheel carries everything the commands need (the prompts above all), and runs without the checkout.

prompts/ stays at the top of the repository as the one source; pyproject maps it to the package
`engine.prompts` (engine/prompts/ in the wheel). The old `package-data engine = ["prompts/*.md"]`
matched nothing, so a non-editable install had no prompts and `po-tui teacher` failed at once.
The wheel test builds offline with this venv's setuptools (PEP 517 backend, no pip download),
installs with `--no-deps` into a fresh venv that sees this interpreter's site-packages but not
the checkout, and runs `po-tui concepts`, `po-tui teacher --provider synthetic` and `po-tui score`
from a temporary directory.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.core import prompts

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "engine", "prompts", "po_tui")  # what a build reads
MIN_SETUPTOOLS = 77  # pyproject's build-system floor (PEP 639 license string, bdist_wheel built in)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _tree_packages() -> set[str]:
    """Every folder with an __init__.py under engine/ and po_tui/, as dotted names."""
    found = set()
    for top in ("engine", "po_tui"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_the_listed_packages_are_the_tree_plus_the_prompts():
    """The list in pyproject is explicit (engine.prompts has no folder of its own): it must not drift."""
    tool = _pyproject()["tool"]["setuptools"]
    assert set(tool["packages"]) == _tree_packages() | {"engine.prompts"}
    assert tool["package-dir"] == {"engine.prompts": "prompts"}
    assert tool["package-data"]["engine.prompts"] == ["*.md"]
    assert tool["package-data"]["engine.data"] == ["*.json"]  # the concept pools
    shipped = {p.name for p in (ROOT / "prompts").glob("*.md")}
    assert {prompts.TEACHER_PROMPT_FILE, prompts.STUDENT_PROMPT_FILE} <= shipped


def test_the_po_tui_script_is_the_ui_side_which_hands_the_engine_its_cockpit():
    """The engine never imports the UI, so the script that opens the cockpit lives in po_tui
    (po_tui/cli.py) and calls `engine.cli.main` with it; `python -m po_tui` is the same."""
    module, _, func = _pyproject()["project"]["scripts"]["po-tui"].partition(":")
    assert module.split(".")[0] == "po_tui"
    assert callable(getattr(importlib.import_module(module), func))
    assert (ROOT / "po_tui" / "__main__.py").is_file() and (ROOT / "engine" / "__main__.py").is_file()


def test_prompts_dir_prefers_the_installed_package_then_the_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("PO_TUI_PROMPTS_DIR", raising=False)
    installed = tmp_path / "site" / "engine" / "prompts"
    installed.mkdir(parents=True)
    (installed / prompts.TEACHER_PROMPT_FILE).write_text("x", encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = SimpleNamespace(submodule_search_locations=[str(empty), str(installed)])
    monkeypatch.setattr(prompts.importlib.util, "find_spec", lambda name: spec if name == "engine.prompts" else None)
    assert prompts.prompts_dir() == installed
    monkeypatch.setattr(prompts.importlib.util, "find_spec", lambda name: None)  # a checkout, no install
    assert prompts.prompts_dir() == ROOT / "prompts"
    monkeypatch.setenv("PO_TUI_PROMPTS_DIR", str(empty))
    assert prompts.prompts_dir() == empty


def _setuptools_can_build() -> str | None:
    """Why this venv cannot build the wheel offline, or None when it can."""
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools is not installed in this venv"
    version = importlib.metadata.version("setuptools")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return f"setuptools {version}: cannot tell its version"
    if major < MIN_SETUPTOOLS:
        return f"setuptools {version} < {MIN_SETUPTOOLS} (pip install -e '.[test]' brings it)"
    return None


def _site_dirs() -> list[str]:
    """This interpreter's package folders (the dependencies), never the checkout's root.

    Named in a .pth they are only appended to sys.path: their own .pth files (this venv's
    editable-install finder among them) are not run, so `engine` cannot come from the checkout.
    """
    return [entry for entry in sys.path
            if entry and os.path.isdir(entry) and Path(entry).name in ("site-packages", "dist-packages")
            and Path(entry).resolve() != ROOT]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd[:3]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_installs_without_the_checkout_and_runs_teacher_and_score(tmp_path):
    why_not = _setuptools_can_build()
    if why_not:
        pytest.skip(why_not)
    src = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info, never into the checkout
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PO_TUI_PROMPTS_DIR"}
    built = _run([sys.executable, "-c", "import sys\nfrom setuptools import build_meta\nprint(build_meta.build_wheel(sys.argv[1]))",
                  str(dist)], cwd=src, env=env)
    wheel = dist / built.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    for md in (ROOT / "prompts").glob("*.md"):
        assert f"engine/prompts/{md.name}" in names
    assert "po_tui/po_tui.tcss" in names
    data = [str(p.relative_to(ROOT)) for p in (ROOT / "engine" / "data").iterdir() if p.suffix == ".json"]
    assert "engine/data/concept_pools.json" in data and not set(data) - names, "data files left out of the wheel"
    missing = [str(p.relative_to(ROOT)) for top in ("engine", "po_tui") for p in (ROOT / top).rglob("*.py")
               if "__pycache__" not in p.parts and str(p.relative_to(ROOT)) not in names]
    assert missing == [], "modules left out of the wheel"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--no-compile",
          "--disable-pip-version-check", "--quiet", str(wheel)], cwd=tmp_path, env=env)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path, env=env).stdout.strip())
    (site / "zz_dependencies.pth").write_text("\n".join(_site_dirs()) + "\n", encoding="utf-8")

    work = tmp_path / "work"
    work.mkdir()
    run_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    where = json.loads(_run([str(python), "-c", "import json, engine, po_tui\nfrom engine.core.prompts import prompts_dir\n"
                             "print(json.dumps([engine.__file__, po_tui.__file__, str(prompts_dir())]))"],
                            cwd=work, env=run_env).stdout)
    for path in where:
        assert Path(path).resolve().is_relative_to(site.resolve()), where  # the installed copy, not the checkout
    po_tui = venv / "bin" / "po-tui"
    _run([str(po_tui), "concepts", "--count", "4", "--seed", "3", "-o", "concepts.jsonl"], cwd=work, env=run_env)
    teacher = _run([str(po_tui), "teacher", "--concepts", "concepts.jsonl", "--out", "out", "--provider", "synthetic",
                    "--max-records", "3", "--seed", "3"], cwd=work, env=run_env)
    assert "3/3 accepted" in teacher.stderr
    dataset = work / "out" / "po_teacher_dataset.jsonl"
    _run([str(po_tui), "score", str(dataset), "-o", "scores.jsonl"], cwd=work, env=run_env)
    rows = [json.loads(line) for line in (work / "scores.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3 and all(r["valid"] and r["score"] > 0 for r in rows)
