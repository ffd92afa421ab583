"""Make untrusted text (model output, names from result files) inert before showing it.

Model answers and fields read from files can hold ANSI escape sequences, other control
characters, Markdown syntax or fence lines. Printed raw, they could move the cursor, retitle
the terminal or turn a report into different Markdown. Everything shown to a user goes
through one of these first.
"""

from __future__ import annotations

import re

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), other two-byte ESC sequences, and the
# 8-bit C1 forms of CSI/OSC.
_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x9d[^\x07\x9c]*[\x07\x9c]?"
)
# C0 controls except tab and newline, DEL, C1 controls, and bidi overrides that reorder text.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BACKTICKS_RE = re.compile(r"`+")
# Characters that start Markdown/HTML constructs inline: escapes, code, emphasis, links and
# images, HTML tags and entities, headings, table pipes, strikethrough, math, email autolinks.
# (`-`, `.`, `:` only matter at a line start or in `www.` / `scheme://` autolinks, handled below.)
_MD_SPECIAL = set("\\`*_{}[]<>#+!|~&$@")
_WWW_RE = re.compile(r"(?i)\b(www)\.")


def clean(text: object) -> str:
    """The text without escape sequences or control characters; CRLF/CR become LF."""
    s = "" if text is None else str(text)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _ANSI_RE.sub("", s)
    return _CONTROL_RE.sub("", s)


def one_line(text: object, limit: int | None = None) -> str:
    """Cleaned, whitespace collapsed to single spaces, cut at `limit` characters with an ellipsis."""
    s = " ".join(clean(text).split())
    if limit is not None and len(s) > limit:
        s = s[: max(limit - 1, 0)] + "…"
    return s


def md_inline(text: object, limit: int | None = 120) -> str:
    """Text safe inside a Markdown paragraph or table cell (not at a line start): one line,
    every character that could start markup, a link or an autolink escaped."""
    s = one_line(text, limit)
    s = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in s)
    # CommonMark allows a backslash before any ASCII punctuation: these break GFM autolinks.
    return _WWW_RE.sub(r"\1\\.", s).replace("://", "\\://")


def md_code_span(text: object, limit: int | None = 120, *, table: bool = False) -> str:
    """Text as an inline code span (shown literally, no links or HTML), one line.

    In a GitHub table cell a `|` splits the cell even inside a code span, so `table=True`
    escapes it (GFM removes the backslash before rendering the span).
    """
    s = one_line(text, limit)
    if not s:
        return "-"
    ticks = "`" * (max((len(m.group(0)) for m in _BACKTICKS_RE.finditer(s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    if table:
        s = s.replace("|", "\\|")
    return f"{ticks}{pad}{s}{pad}{ticks}"


def fence_for(text: str, char: str = "`") -> str:
    """A fence longer than any run of backticks in `text` (at least three), so it cannot close early."""
    longest = max((len(m.group(0)) for m in _BACKTICKS_RE.finditer(text)), default=0)
    return char * max(3, longest + 1)


def md_code_block(text: object, info: str = "text") -> str:
    """Untrusted text as a fenced Markdown code block that nothing inside can break out of."""
    body = clean(text).rstrip("\n")
    fence = fence_for(body)
    return f"{fence}{info}\n{body}\n{fence}"
