"""Configuration files: safe YAML loading, and pydantic errors turned into one located line.

A user who misspells a key gets `config.yaml:12: teacher.min_scor: unknown key (did you mean
'min_score'?)` instead of a traceback; the line comes from the YAML node the key sits on.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from engine.errors import InputError

M = TypeVar("M", bound=BaseModel)
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


def load_yaml_file(path: str | Path) -> tuple[Any, dict[KeyPath, int]]:
    """(document, {key path: line}) of a YAML file; YAML errors name their line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("no such file", path=p) from exc
    except IsADirectoryError as exc:
        raise InputError("is a directory, expected a YAML file", path=p) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"invalid YAML: {problem}", path=p, line=mark.line + 1 if mark else None) from exc
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return doc, lines


def _nearest_line(lines: dict[KeyPath, int], loc: KeyPath) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _model_at(model: type[BaseModel], loc: KeyPath) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or isinstance(part, int):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        current = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return current


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
        err = exc.errors()[0]
        loc: KeyPath = tuple(err.get("loc", ()))
        dotted = ".".join(str(p) for p in prefix + loc) or None
        message = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden" and loc:
            parent = _model_at(model, loc[:-1])
            if parent is not None:
                close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
                message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif err.get("type") == "missing":
            message = "required value missing"
        line = _nearest_line(lines or {}, prefix + loc) if lines is not None else None
        raise InputError(message, path=path, line=line, field=dotted) from exc
