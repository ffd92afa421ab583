"""argparse types for numbers a user can get wrong: refused at parse time as one usage line.

A seed outside what numpy and torch accept, a negative count or a NaN would otherwise get past
argparse's `type=int` / `type=float` and fail later as a traceback (or, worse, run).
"""

from __future__ import annotations

import argparse
import math

from engine.configfile import SEED_MAX


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _int(text, "a positive integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def seed(text: str) -> int:
    """A random seed every library takes: 0 to 2**32 - 1."""
    value = _int(text, "an integer seed")
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {SEED_MAX}, got {value}")
    return value


def seconds(text: str) -> float:
    """A finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text}")
    return value
