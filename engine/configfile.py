"""Configuration files: safe YAML loading, and pydantic errors turned into one located line.

A user who misspells a key gets `config.yaml:12: teacher.min_scor: unknown key (did you mean
'min_score'?)` instead of a traceback; the line comes from the YAML node the key sits on.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError

from engine.errors import InputError
from engine.store.inputfile import read_text

M = TypeVar("M", bound=BaseModel)

# Seeds go to random, numpy and torch; the last two take 0 .. 2**32 - 1 only.
SEED_MAX = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
KeyPath = tuple[str | int, ...]


def _index_lines(node: yaml.Node, path: KeyPath, out: dict[KeyPath, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            out[path + (name,)] = key.start_mark.line + 1
            _index_lines(value, path + (name,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), out)


# A config file is a few kilobytes; anything this large is the wrong file (or an attack).
CONFIG_MAX_BYTES = 1024 * 1024
# Anchors and aliases may share blocks, but the document they expand to stays small: a
# "billion laughs" file is a few hundred bytes that expand to billions of nodes.
ALIAS_EXPANSION_MAX = 10_000
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that a config file must not be (alias bomb, recursive alias)."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing documents whose aliases expand beyond ALIAS_EXPANSION_MAX nodes.

    Each node's expanded size (itself plus its children, an alias counting as the whole node it
    names) is computed as it is composed, so a bomb is refused in time linear in the file's
    length, before anything is constructed or walked. An alias to an anchor that is still open
    (a node containing itself) is refused too: nothing downstream can walk a cycle.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark
        node = super().compose_node(parent, index)
        if isinstance(node, yaml.ScalarNode) and _SURROGATE.search(node.value):
            # "\ud800" escapes decode to surrogates, which no file, log or request can encode.
            raise _Refused(None, None, "not UTF-8 text: a \\u escape names half of a surrogate pair", mark)
        if alias:
            if id(node) not in self._sizes:
                raise _Refused(None, None, "recursive alias: an anchor used inside its own value", mark)
            self._aliases += 1
            return node
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        size = 1 + sum(self._sizes[id(child)] for child in children)
        if size > ALIAS_EXPANSION_MAX:
            why = (
                f"aliases expand this document beyond {ALIAS_EXPANSION_MAX:,} values: refused (an alias bomb?)"
                if self._aliases
                else f"more than {ALIAS_EXPANSION_MAX:,} values: too many for a config file"
            )
            raise _Refused(None, None, why, mark)
        self._sizes[id(node)] = size
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # Constructors raise plain ValueErrors on odd scalars (2025-13-45, a 5000-digit int):
        # give them the node's position like any other YAML error.
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, f"invalid value: {exc}", node.start_mark) from exc


def load_yaml_file(path: str | Path) -> tuple[Any, dict[KeyPath, int]]:
    """(document, {key path: line}) of a YAML file; YAML errors name their line.

    Bounded: at most CONFIG_MAX_BYTES of UTF-8 text, aliases expanding to at most
    ALIAS_EXPANSION_MAX values, nesting within the interpreter's stack.
    """
    p = Path(path)
    text = read_text(p, what="a YAML file", max_bytes=CONFIG_MAX_BYTES)
    loader = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        doc = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:  # a control character: located by its position
        line = text.count("\n", 0, exc.position) + 1
        raise InputError(f"invalid YAML: unacceptable character #x{exc.character:04x} ({exc.reason})", path=p, line=line) from exc
    except _Refused as exc:
        mark = exc.problem_mark
        raise InputError(str(exc.problem), path=p, line=mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"invalid YAML: {problem}", path=p, line=mark.line + 1 if mark else None) from exc
    except RecursionError:
        raise InputError("invalid YAML: nested too deeply", path=p) from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return doc, lines


def load_section(path: str | Path, section: str) -> tuple[dict[str, Any], dict[KeyPath, int], KeyPath]:
    """(settings, lines, key prefix) from a settings file or a pipeline config's `section:`.

    The stage commands take either; whatever the file holds, it must come down to a mapping
    (a list, a scalar or `section: 5` is one located line, not a TypeError).
    """
    doc, lines = load_yaml_file(path)
    prefix: KeyPath = ()
    if isinstance(doc, dict) and section in doc:
        doc, prefix = doc[section], (section,)
    if doc is None:
        return {}, lines, prefix
    if not isinstance(doc, dict):
        where = ".".join(map(str, prefix)) or None
        raise InputError(f"expected a mapping of settings, got {type(doc).__name__}", path=path,
                         line=_nearest_line(lines, prefix), field=where)
    return dict(doc), lines, prefix


def _nearest_line(lines: dict[KeyPath, int], loc: KeyPath) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _model_at(model: type[BaseModel], loc: KeyPath) -> type[BaseModel] | None:
    """The settings model at `loc` (through nested models and lists of them), None if none."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):  # an item of a list: the list's item type
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0] if len(args) == 1 else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap_optional(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_optional(ann: Any) -> Any:
    """`X | None` -> X; a list stays a list (its items are unwrapped by an int in the path)."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(ann) if a is not type(None)]
        return members[0] if len(members) == 1 else None
    return ann


def validate(
    model: type[M],
    data: Any,
    *,
    path: str | Path | None = None,
    lines: dict[KeyPath, int] | None = None,
    prefix: KeyPath = (),
) -> M:
    """`model(**data)` or an InputError naming file, line and dotted key, with a suggestion."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also leaves the right one missing: "unknown key (did you mean ...)" says why.
        err = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
        loc: KeyPath = tuple(err.get("loc", ()))
        dotted = ".".join(str(p) for p in prefix + loc) or None
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden" and loc:
            parent = _model_at(model, loc[:-1])
            if parent is not None:
                close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
                message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif err.get("type") == "missing":
            message = "required value missing"
        line = _nearest_line(lines or {}, prefix + loc) if lines is not None else None
        # Not chained: pydantic's own text repeats the input value, which may be a secret
        # pasted into the wrong field (and --debug tracebacks can end up in job logs).
        raise InputError(message, path=path, line=line, field=dotted) from None
