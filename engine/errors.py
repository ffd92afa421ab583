"""Errors a user can fix. The CLI prints them as one line and exits 2; anything else is a bug."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input: names the file, the line (1-based) and the field when they are known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field

    def located(self, *, path: str | Path | None = None, line: int | None = None) -> "InputError":
        """Fill in a location the raiser did not know (e.g. a parser called on one record)."""
        if self.path is None and path is not None:
            self.path = str(path)
        if self.line is None and line is not None:
            self.line = line
        return self

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class StageFailed(Exception):
    """A stage ran but could not finish its work for a reason outside the user's input (e.g. a
    provider that kept failing). One line, exit 1, no traceback; what was done is kept."""
