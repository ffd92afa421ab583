"""The documentation agrees with the code it describes.

- docs/cli.md is the CLI reference: every option the live argparse parser knows (every command,
  nested ones such as `export gguf` included) is named in that command's section, and every
  option named in a section exists on that command. The parser is walked as `po-tui` builds it,
  so however the flags come to be (hand-written or generated from settings models), a flag
  added without its documentation, or documentation left behind by a removed flag, fails here.
- Every `po-tui ...` command line written anywhere in README.md or docs/ (inline code or a code
  block) names a real command and only options that command has.
- Every relative link in README.md and docs/ points at a file that exists, and every `#anchor`
  at a heading of that file.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

Path_ = tuple[str, ...]

# An option token: one or two dashes, a letter, then letters, digits and dashes; not inside a
# word (`non-goals`), not a number (`-100`).
FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9-]*)")
# `po-tui` (or `.venv/bin/po-tui`) as a program name: not `po-tui.yaml`, `po-tui-run/1`,
# `DIR/.po-tui.lock`, `po-tui's`, nor a JSON string such as an event's recorded argv.
PROGRAM_RE = re.compile(r"(?:^|(?<=[\s($])|(?<=bin/))po-tui(?![\w.'/\"-])")
# Where a command line ends inside a line of shell: a pipe, a list, a redirection, a subshell.
END_RE = re.compile(r"\s(?:\||&&|\|\||;|>|2>)\s|[)`]|\s#\s")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
COMMAND_HEADING_RE = re.compile(r"^`po-tui((?: [a-z][a-z-]*)*)`$")
FENCE_RE = re.compile(r"^\s*(```+|~~~+)")
LINK_RE = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


# --- the live parser --------------------------------------------------------------------------


@dataclass
class Command:
    options: set[str] = field(default_factory=set)  # every option string, hidden ones included
    shown: set[str] = field(default_factory=set)  # those `--help` shows
    positionals: list[str] = field(default_factory=list)  # metavars
    subcommands: set[str] = field(default_factory=set)


def parser_commands() -> dict[Path_, Command]:
    """Every command path of the real parser (`()` is `po-tui` itself) and its options."""
    found: dict[Path_, Command] = {}

    def walk(parser: argparse.ArgumentParser, path: Path_) -> None:
        cmd = found.setdefault(path, Command())
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    cmd.subcommands.add(name)
                    walk(sub, path + (name,))
            elif action.option_strings:
                cmd.options.update(action.option_strings)
                if action.help is not argparse.SUPPRESS:
                    cmd.shown.update(action.option_strings)
            else:
                cmd.positionals.append(str(action.metavar or action.dest.upper()))

    walk(build_parser(), ())
    return found


COMMANDS = parser_commands()
COMMON = COMMANDS[()].options  # -h/--help/--debug: every command has them, documented once
ALL_OPTIONS = set().union(*(c.options for c in COMMANDS.values()))


def label(path: Path_) -> str:
    return " ".join(("po-tui", *path))


# --- reading Markdown -------------------------------------------------------------------------


@dataclass
class Code:
    """One piece of code: an inline span or a (continuation-joined) line of a code block."""

    text: str
    line: int


def split_markdown(text: str) -> tuple[str, list[Code]]:
    """(prose with the code taken out, the code pieces)."""
    prose: list[str] = []
    code: list[Code] = []
    lines = text.split("\n")
    fence: str | None = None
    pending = ""
    pending_line = 0
    for number, raw in enumerate(lines, 1):
        match = FENCE_RE.match(raw)
        if fence is not None:
            if match and set(raw.strip()) == {fence[0]} and len(raw.strip()) >= len(fence):
                fence = None
                continue
            body = re.sub(r"^\s*\$\s+", "", raw)  # a console prompt
            if not pending:
                pending_line = number
            if body.rstrip().endswith("\\"):
                pending += body.rstrip()[:-1] + " "
                continue
            code.append(Code(pending + body, pending_line))
            pending = ""
            continue
        if match:
            fence = match.group(1)
            prose.append("")
            continue
        prose.append(raw)
    joined = "\n".join(prose)
    # Inline spans may wrap over a line break; backslashes do not escape inside them.
    outside: list[str] = []
    position = 0
    for span in re.finditer(r"(`+)(.+?)\1", joined, re.DOTALL):
        outside.append(joined[position:span.start()])
        line = joined.count("\n", 0, span.start()) + 1
        code.append(Code(" ".join(span.group(2).split()), line))
        position = span.end()
    outside.append(joined[position:])
    return "".join(outside), code


@dataclass
class Invocation:
    path: Path_
    flags: list[str]
    unknown: str | None  # a word after the command that is no sub-command of it
    text: str


def invocations(code: str) -> list[Invocation]:
    """Every `po-tui ...` command line in a piece of code, with the command it names."""
    found: list[Invocation] = []
    for match in PROGRAM_RE.finditer(code):
        rest = END_RE.split(code[match.end():], maxsplit=1)[0]
        words = rest.split()
        path: Path_ = ()
        unknown = None
        while words:
            word = words[0]
            if word in COMMANDS.get(path, Command()).subcommands:
                path += (word,)
                words.pop(0)
                continue
            if COMMANDS[path].subcommands and re.fullmatch(r"[a-z][a-z-]*", word):
                unknown = word
            break
        found.append(Invocation(path, FLAG_RE.findall(" ".join(words)), unknown, code))
    return found


def foreign(code: str) -> bool:
    """Code that is another program's command line (`wc -l`, `pip install -e`)."""
    first = code.split()[0] if code.split() else ""
    return bool(re.fullmatch(r"[A-Za-z_.][\w./=-]*", first)) and not PROGRAM_RE.search(code) and bool(FLAG_RE.search(code))


# --- docs/cli.md, section by section ------------------------------------------------------------


@dataclass
class Section:
    path: Path_ | None  # None: not a command's section
    heading: str
    line: int
    text: str


def sections(text: str) -> list[Section]:
    """Split at headings; a command section runs to the next heading of its level or above, or to
    the next command heading, so `export` does not swallow `export merge`."""
    out: list[Section] = [Section(None, "(top)", 1, "")]
    levels: list[int] = [0]
    fence = None
    for number, raw in enumerate(text.split("\n"), 1):
        match = FENCE_RE.match(raw)
        if match:
            fence = None if fence else match.group(1)
        heading = HEADING_RE.match(raw) if fence is None and not match else None
        if heading:
            level, title = len(heading.group(1)), heading.group(2)
            command = COMMAND_HEADING_RE.match(title)
            if command or level <= levels[-1] or out[-1].path is None:
                path = tuple(command.group(1).split()) if command else None
                out.append(Section(path, title, number, ""))
                levels.append(level)
                continue
        out[-1].text += raw + "\n"
    return out


CLI_SECTIONS = sections(CLI_MD.read_text(encoding="utf-8"))
BY_PATH = {s.path: s for s in CLI_SECTIONS if s.path is not None}


def test_every_command_has_one_section_in_cli_md():
    documented = [s.path for s in CLI_SECTIONS if s.path is not None]
    duplicates = sorted({label(p) for p in documented if documented.count(p) > 1})
    assert not duplicates, f"docs/cli.md documents these commands twice: {duplicates}"
    missing = sorted(label(p) for p in COMMANDS if p not in BY_PATH)
    assert not missing, f"commands without a '## `po-tui ...`' section in docs/cli.md: {missing}"
    stale = sorted(label(p) for p in BY_PATH if p not in COMMANDS)
    assert not stale, f"docs/cli.md documents commands the parser does not have: {stale}"


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=label)
def test_every_option_of_the_parser_is_documented(path):
    """Each option `--help` shows, and each positional, is named in the command's section."""
    cmd = COMMANDS[path]
    section = BY_PATH.get(path)
    assert section is not None, f"no section for {label(path)} in docs/cli.md"
    named = set(FLAG_RE.findall(section.text))
    wanted = cmd.shown if path == () else cmd.shown - COMMON
    missing = sorted(wanted - named)
    assert not missing, f"docs/cli.md, {label(path)} (line {section.line}): options not documented: {missing}"
    for metavar in cmd.positionals:
        for word in re.findall(r"[A-Z][A-Z_.]*", metavar):
            assert re.search(rf"(?<![\w.]){re.escape(word)}", section.text), (
                f"docs/cli.md, {label(path)}: positional {metavar} not named")


@pytest.mark.parametrize("section", CLI_SECTIONS, ids=lambda s: s.heading)
def test_every_option_documented_in_cli_md_exists(section):
    """Options named in a command's section exist on that command (or, written as part of a
    `po-tui OTHER ...` line, on that other command); outside command sections, on some command."""
    if section.path is not None and section.path not in COMMANDS:
        pytest.skip("a stale section: reported by test_every_command_has_one_section_in_cli_md")
    allowed = ALL_OPTIONS if section.path is None else COMMANDS[section.path].options | COMMON
    prose, code = split_markdown(section.text)
    wrong = [(section.line, flag) for flag in FLAG_RE.findall(prose) if flag not in allowed]
    for piece in code:
        if PROGRAM_RE.search(piece.text) or foreign(piece.text):
            continue  # checked as a command line below, or another program's options
        wrong += [(section.line + piece.line - 1, f) for f in FLAG_RE.findall(piece.text) if f not in allowed]
    where = label(section.path) if section.path is not None else section.heading
    assert not wrong, f"docs/cli.md, section {where}: options this command does not have: {wrong}"


def _command_line_problems(path: Path) -> list[str]:
    problems: list[str] = []
    _prose, code = split_markdown(path.read_text(encoding="utf-8"))
    for piece in code:
        for inv in invocations(piece.text):
            where = f"{path.relative_to(ROOT)}:{piece.line}: `{' '.join(inv.text.split())[:90]}`"
            if inv.unknown:
                problems.append(f"{where}: {label(inv.path)} has no sub-command {inv.unknown!r}")
                continue
            options = COMMANDS[inv.path].options | COMMON
            bad = [flag for flag in inv.flags if flag not in options]
            if bad:
                problems.append(f"{where}: {label(inv.path)} has no {', '.join(bad)}")
    return problems


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_po_tui_command_line_in_the_docs_parses(path):
    problems = _command_line_problems(path)
    assert not problems, "\n".join(problems)


# --- links ------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, markup and punctuation dropped, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text.replace("`", ""))
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    fence = None
    for raw in path.read_text(encoding="utf-8").split("\n"):
        match = FENCE_RE.match(raw)
        if match:
            fence = None if fence else match.group(1)
            continue
        heading = HEADING_RE.match(raw) if fence is None else None
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    prose, _code = split_markdown(path.read_text(encoding="utf-8"))
    broken: list[str] = []
    for target in LINK_RE.findall(prose):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


# --- the checker itself -----------------------------------------------------------------------


def test_the_checker_catches_drift():
    """Guards against a checker that passes everything: each kind of drift is seen."""
    assert invocations("po-tui export gguf --merged --bogus") [0].path == ("export", "gguf")
    assert invocations("po-tui export gguf --merged --bogus")[0].flags == ["--merged", "--bogus"]
    assert invocations("po-tui exprt merge")[0].unknown == "exprt"
    assert invocations("x=$(po-tui eval --tag t) | jq -c .")[0].flags == ["--tag"]
    assert not invocations('DIR/.po-tui.lock po-tui.yaml po-tui-run/1 ["po-tui","teach","--api-key"]')
    assert invocations(".venv/bin/po-tui init --force")[0].path == ("init",)
    prose, code = split_markdown("a `--x` b\n```bash\npo-tui score F \\\n  --metric po-v1\n```\n")
    assert "--x" not in prose and [c.text for c in code][0].split() == ["po-tui", "score", "F", "--metric", "po-v1"]
    assert foreign("wc -l dataset.jsonl") and not foreign("--epochs 4") and not foreign("po-tui run -x")
    parts = sections("## `po-tui export`\nA `--a`\n### `po-tui export merge`\nB\n#### Details\nC `--c`\n## Other\nD\n")
    assert [(s.path, s.text.split()) for s in parts[1:]] == [
        (("export",), ["A", "`--a`"]),
        (("export", "merge"), ["B", "####", "Details", "C", "`--c`"]),
        (None, ["D"]),
    ]
    assert slug("`po-tui export gguf`") == "po-tui-export-gguf" and slug("A. Schema (16 checks)") == "a-schema-16-checks"
