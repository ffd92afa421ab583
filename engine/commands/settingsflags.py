"""A stage's settings model becomes its flags, and config file plus typed flags become its settings.

Why: a setting used to live in four places (the model, a hand-written flag list with its default
copied into the help, an overlay function per command, and the pipeline turning config back into
flags), and the copies drifted. Now the pydantic model is the only declaration (in the spirit of
TRL's TrlParser / HfArgumentParser): `add_settings_flags` derives each flag's name, type,
choices and help (its "(default: ...)" taken from the model) from the fields, and
`resolve_settings` lays the flags the user actually typed over the `--config` file's values.

Every generated flag defaults to `argparse.SUPPRESS`, so an untyped flag is absent from the
namespace: a flag wins over the config file only where it was typed, even when it is typed with
the model's default value. Errors stay one line naming the culprit: an argparse type error names
the flag (`argument --batch-size: invalid int value`), a pydantic error on a typed value names
the flag (`--batch-size: Input should be ...`), one on a file's value names the file, line and
dotted key (`cfg.yaml:4: train.batch_size: ...`).
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from engine.commands import argtypes
from engine.configfile import SEED_MAX, KeyPath, load_section, validate
from engine.errors import InputError
from engine.flagmeta import Flag

M = TypeVar("M", bound=BaseModel)
_NO_FLAG = Flag()


@dataclass(frozen=True)
class SettingFlag:
    """One generated flag: its option string, the field path it sets and argparse's arguments."""

    flag: str  # --synthetic-latency
    path: tuple[str, ...]  # ("synthetic", "latency_s"): the config key, dotted
    field: FieldInfo
    kwargs: dict[str, Any]

    @property
    def dest(self) -> str:
        """argparse's attribute: the dotted config key (`synthetic.latency_s`)."""
        return ".".join(self.path)


def _meta(field: FieldInfo) -> Flag:
    found = [m for m in field.metadata if isinstance(m, Flag)]
    return found[-1] if found else _NO_FLAG


def _plain(annotation: Any) -> Any:
    """`X | None` -> X (a null default is how a setting says "unset"); anything else unchanged."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _nested(annotation: Any) -> type[BaseModel] | None:
    plain = _plain(annotation)
    return plain if isinstance(plain, type) and issubclass(plain, BaseModel) else None


def _bounds(field: FieldInfo) -> tuple[Any, Any]:
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    return low, high


def _show(value: Any) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _help(owner: str, field: FieldInfo, meta: Flag, switch: bool) -> str:
    text = field.description or ""
    default: str | None = None
    if not field.is_required() and not switch:
        value = field.get_default(call_default_factory=True)
        if value is None or value == "":
            default = meta.default_means
        elif meta.default_means is not None:
            raise ValueError(f"{owner}: default_means describes a null or empty default; the default {value!r} is shown from the model")
        else:
            default = _show(value)
    if default is not None:
        text = f"{text} (default: {default})" if text else f"default: {default}"
    return text.replace("%", "%%")  # argparse %-formats help strings


def _kwargs(owner: str, field: FieldInfo, meta: Flag, hidden: bool) -> dict[str, Any]:
    annotation = _plain(field.annotation)
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS}
    switch = annotation is bool
    if switch:
        if field.default is not False:
            raise ValueError(f"{owner}: a switch (store_true) must default to false")
        kwargs["action"] = "store_true"
    elif typing.get_origin(annotation) is Literal:
        kwargs["choices"] = tuple(typing.get_args(annotation))
    elif annotation is int:
        # A seed parses as every other command's --seed: out of range is argparse's usage line.
        kwargs["type"] = argtypes.seed if _bounds(field) == (0, SEED_MAX) else int
    elif annotation is float:
        kwargs["type"] = float
    elif annotation is not str:
        raise TypeError(f"{owner}: no command-line form for {field.annotation!r}: mark it CONFIG_ONLY or give it a simpler type")
    if meta.choices is not None:
        kwargs["choices"] = meta.choices
    if meta.bare is not None:
        kwargs.update(nargs="?", const=meta.bare)
    if meta.metavar is not None:
        kwargs["metavar"] = meta.metavar
    kwargs["help"] = argparse.SUPPRESS if hidden or meta.hidden else _help(owner, field, meta, switch)
    return kwargs


def setting_flags(model: type[BaseModel]) -> list[SettingFlag]:
    """Every flag a settings model declares, nested models included, in field order."""
    return list(_walk(model, (), "", False))


def _walk(model: type[BaseModel], path: tuple[str, ...], prefix: str, hidden: bool):
    for name, field in model.model_fields.items():
        meta = _meta(field)
        if meta.config_only:
            continue
        words = meta.name or name.replace("_", "-")
        if prefix:
            words = f"{prefix}-{words}"
        nested = _nested(field.annotation)
        owner = f"{model.__name__}.{name}"
        if nested is not None:
            yield from _walk(nested, path + (name,), words, hidden or meta.hidden)
            continue
        yield SettingFlag(f"--{words}", path + (name,), field, _kwargs(owner, field, meta, hidden))


def add_settings_flags(parser: argparse.ArgumentParser, model: type[BaseModel], *, config_help: str) -> None:
    """`--config FILE` and one flag per field of `model` (see the module docstring)."""
    parser.add_argument("--config", metavar="FILE", help=config_help)
    for spec in setting_flags(model):
        parser.add_argument(spec.flag, dest=spec.dest, **spec.kwargs)


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any, config: str | None, lines: dict[KeyPath, int], prefix: KeyPath) -> None:
    """data[path] = value through nested mappings; a file's non-mapping on the way is its error."""
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is not None and not isinstance(child, dict):
            key = prefix + path[: i + 1]
            raise InputError(f"expected a mapping of settings, got {type(child).__name__}", path=config,
                             line=lines.get(key), field=".".join(map(str, key)))
        node[part] = child = dict(child or {})
        node = child
    node[path[-1]] = value


def resolve_settings(model: type[M], args: argparse.Namespace, *, section: str) -> M:
    """The settings: model defaults < `--config` file (its `section:` or the whole file) < typed flags."""
    data: dict[str, Any] = {}
    lines: dict[KeyPath, int] = {}
    prefix: KeyPath = ()
    config = getattr(args, "config", None)
    if config:
        data, lines, prefix = load_section(config, section)
    specs = setting_flags(model)
    typed: dict[tuple[str, ...], str] = {}
    for spec in specs:
        value = getattr(args, spec.dest, argparse.SUPPRESS)
        if value is not argparse.SUPPRESS:  # typed: absent otherwise (the SUPPRESS default)
            _put(data, spec.path, value, config, lines, prefix)
            typed[spec.path] = spec.flag
    flags = {spec.path: spec.flag for spec in specs}
    for name, field in model.model_fields.items():
        if field.is_required() and name not in data:
            raise InputError("required", field=flags.get((name,), name))
    try:
        return validate(model, data, path=config, lines=lines, prefix=prefix)
    except InputError as exc:
        raise _name_the_flag(exc, typed, prefix) from None


def _name_the_flag(exc: InputError, typed: dict[tuple[str, ...], str], prefix: KeyPath) -> InputError:
    """An error about a value the user typed names the flag, not the config file's key."""
    if not exc.field:
        return exc
    loc = tuple(exc.field.split("."))
    if loc[: len(prefix)] == tuple(map(str, prefix)):
        loc = loc[len(prefix):]
    for path, flag in typed.items():
        if loc[: len(path)] == path:
            exc.field, exc.path, exc.line = flag, None, None
            break
    return exc
