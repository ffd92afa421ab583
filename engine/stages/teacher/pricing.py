"""What each teacher call costs: a per-model price table in dollars per million tokens.

Defaults are Google's published paid-tier prices for the Gemini 2.5 models (prompts up to 200k
tokens; thinking tokens are billed as output), as of PRICES_AS_OF. The Batch API bills half of
the interactive price (Google's "Batch Mode" page); each model carries its batch price too, so a
price file can set it when Google's discount changes. Prices change: override them with a
YAML/JSON file (`--prices FILE`) or the pipeline config. A model missing from the table costs 0
and is reported as unpriced, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from engine.configfile import load_yaml_file
from engine.errors import InputError

PRICES_AS_OF = "2025-07-22"
# The Batch API's price as a share of the interactive one, when a price file names no batch price.
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens; `output` includes thinking tokens, which Gemini bills as output."""

    input_per_mtok: float
    output_per_mtok: float
    batch_input_per_mtok: float | None = None  # None: BATCH_DISCOUNT of the interactive price
    batch_output_per_mtok: float | None = None

    def rates(self, *, batch: bool = False) -> tuple[float, float]:
        """(input, output) dollars per million tokens for interactive or batch requests."""
        if not batch:
            return self.input_per_mtok, self.output_per_mtok
        bin_ = self.batch_input_per_mtok if self.batch_input_per_mtok is not None else self.input_per_mtok * BATCH_DISCOUNT
        bout = self.batch_output_per_mtok if self.batch_output_per_mtok is not None else self.output_per_mtok * BATCH_DISCOUNT
        return bin_, bout

    def cost(self, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float:
        rate_in, rate_out = self.rates(batch=batch)
        return (input_tokens * rate_in + output_tokens * rate_out) / 1_000_000


DEFAULT_PRICES: dict[str, Price] = {
    "gemini-2.5-pro": Price(1.25, 10.00, 0.625, 5.00),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.15, 1.25),
    "gemini-2.5-flash-lite": Price(0.10, 0.40, 0.05, 0.20),
    "synthetic-po-1": Price(0.0, 0.0, 0.0, 0.0),
}


class PriceTable:
    def __init__(self, prices: Mapping[str, Price] | None = None, as_of: str = PRICES_AS_OF) -> None:
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.as_of = as_of

    def lookup(self, model: str) -> Price | None:
        """Exact name first, then the longest table key the model name starts with
        (`gemini-2.5-flash-001` is priced as `gemini-2.5-flash`, `-lite` stays `-lite`)."""
        name = model.split("/")[-1]
        if name in self.prices:
            return self.prices[name]
        matches = [key for key in self.prices if name.startswith(key)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float | None:
        price = self.lookup(model)
        return None if price is None else price.cost(input_tokens, output_tokens, batch=batch)

    def merged(self, overrides: Mapping[str, Price], as_of: str | None = None) -> "PriceTable":
        return PriceTable({**self.prices, **overrides}, as_of or self.as_of)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "usd_per_million_tokens": {k: _price_dict(v) for k, v in sorted(self.prices.items())},
        }


def _price_dict(price: Price) -> dict[str, float]:
    batch_in, batch_out = price.rates(batch=True)
    return {"input": price.input_per_mtok, "output": price.output_per_mtok, "batch_input": batch_in, "batch_output": batch_out}


def _optional_price(entry: Mapping[str, Any], key: str) -> float | None:
    return None if entry.get(key) is None else float(entry[key])


def load_prices(path: str | Path) -> PriceTable:
    """A price file: `{as_of: DATE, models: {name: {input: $/Mtok, output: $/Mtok,
    batch_input: $/Mtok, batch_output: $/Mtok}}}` (the batch prices optional)."""
    p = Path(path)
    doc, _lines = load_yaml_file(p)
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise InputError("expected a mapping with a 'models' mapping", path=p, field="models")
    overrides: dict[str, Price] = {}
    for name, entry in doc["models"].items():
        try:
            overrides[str(name)] = Price(
                float(entry["input"]), float(entry["output"]),
                _optional_price(entry, "batch_input"), _optional_price(entry, "batch_output"),
            )
            if min(v for v in overrides[str(name)].__dict__.values() if v is not None) < 0:
                raise ValueError("negative price")
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise InputError(
                "expected {input: number, output: number, batch_input: number, batch_output: number}", path=p, field=f"models.{name}"
            ) from exc
    return PriceTable().merged(overrides, str(doc.get("as_of") or "unknown"))
