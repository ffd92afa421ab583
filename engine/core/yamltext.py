"""Safe YAML parsing shared by block validation and the metric. Only yaml.safe_load, ever."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class YamlProblem:
    """Why a YAML text did not load: the parser's message and 1-based line/column when known."""

    message: str
    line: int | None = None
    column: int | None = None

    def describe(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        return f"{where}{self.message}"


def load_yaml(text: str) -> tuple[Any, YamlProblem | None]:
    """Parse `text`; return (value, None) or (None, problem). Never raises on bad YAML."""
    try:
        return yaml.safe_load(text), None
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
