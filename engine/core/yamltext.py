"""Safe YAML parsing shared by block validation and the metric. Only yaml.safe_load, ever."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

# libyaml's parser when it is built in (several times faster), else the pure-Python one. Both are
# safe loaders: same resolver and constructors, so the same values come out.
if hasattr(yaml, "CSafeLoader"):

    def safe_load(text: str) -> Any:
        return yaml.load(text, Loader=yaml.CSafeLoader)

else:  # pragma: no cover - libyaml missing
    safe_load = yaml.safe_load


@dataclass(frozen=True)
class YamlProblem:
    """Why a YAML text did not load: the parser's message and 1-based line/column when known."""

    message: str
    line: int | None = None
    column: int | None = None

    def describe(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        return f"{where}{self.message}"


@lru_cache(maxsize=1024)
def load_yaml(text: str) -> tuple[Any, YamlProblem | None]:
    """Parse `text`; return (value, None) or (None, problem). Never raises on bad YAML.

    Cached: judging one answer parses the same blocks for validity, the metric and the status,
    and every attempt at a concept parses the same requirements. The value is shared between
    callers, so it must be treated as read-only (every caller in engine/ only reads it).
    """
    try:
        return safe_load(text), None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        if mark is None:
            return None, YamlProblem(message)
        return None, YamlProblem(message, mark.line + 1, mark.column + 1)
    except yaml.YAMLError as exc:
        return None, YamlProblem(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except (ValueError, TypeError, RecursionError) as exc:
        # Constructors can raise on odd scalars (e.g. out-of-range timestamps like 2025-13-45).
        return None, YamlProblem(f"{type(exc).__name__}: {exc}")


def as_mapping(value: Any) -> dict:
    """The metric's rule: anything that is not a mapping counts as the empty mapping."""
    return value if isinstance(value, dict) else {}
