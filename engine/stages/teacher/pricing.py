"""What each teacher call costs: a per-model price table in dollars per million tokens.

Defaults are Google's published paid-tier prices for the Gemini 2.5 models (prompts up to 200k
tokens; thinking tokens are billed as output), as of PRICES_AS_OF. Prices change: override them
with a YAML/JSON file (`--prices FILE`) or the pipeline config. A model missing from the table
costs 0 and is reported as unpriced, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from engine.configfile import load_yaml_file
from engine.errors import InputError

PRICES_AS_OF = "2025-07-22"


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


DEFAULT_PRICES: dict[str, Price] = {
    "gemini-2.5-pro": Price(1.25, 10.00),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "gemini-2.5-flash-lite": Price(0.10, 0.40),
    "synthetic-po-1": Price(0.0, 0.0),
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

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        price = self.lookup(model)
        return None if price is None else price.cost(input_tokens, output_tokens)

    def merged(self, overrides: Mapping[str, Price], as_of: str | None = None) -> "PriceTable":
        return PriceTable({**self.prices, **overrides}, as_of or self.as_of)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "usd_per_million_tokens": {
                k: {"input": v.input_per_mtok, "output": v.output_per_mtok} for k, v in sorted(self.prices.items())
            },
        }


def load_prices(path: str | Path) -> PriceTable:
    """A price file: `{as_of: DATE, models: {name: {input: $/Mtok, output: $/Mtok}}}`."""
    p = Path(path)
    doc, _lines = load_yaml_file(p)
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise InputError("expected a mapping with a 'models' mapping", path=p, field="models")
    overrides: dict[str, Price] = {}
    for name, entry in doc["models"].items():
        try:
            overrides[str(name)] = Price(float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise InputError("expected {input: number, output: number}", path=p, field=f"models.{name}") from exc
    return PriceTable().merged(overrides, str(doc.get("as_of") or "unknown"))
