"""The word pools behind the synthetic concepts, read once from `concept_pools.json`.

Why a data file: the pools are text, not logic. The generator (`engine.stages.concepts`) combines
them so that 1,000+ concepts stay distinct while every requirement still belongs to the concept's
domain (a Product Owner review can only judge alignment when the requirements are on-topic), and
the synthetic teacher's writer (`engine.providers.po_writer`) reads the same pools to recognise a
concept's domain. All text is original to po-tui.

The file is read at import (once per process) and handed out in the shapes the generator draws
from: JSON arrays become tuples, so `random.Random` makes the same choices from them as it did
from the literals these pools used to be, and a seed gives byte-identical concepts.

Names and shapes (the JSON key in lower case):
- PRIORITIES: a tuple of words. The tiers are the domain's (`engine.core.records.TIERS`, one
  definition for the generator, the readers and the statistics): every tier-keyed table below has
  exactly those as keys, in that order.
- NEAR_FAMILIES: family -> frozenset of families close enough that a requirement from one would
  not read as out of scope in the other (injected conflicts come from neither).
- DOMAINS: dicts with key, family, label (strings) and stems, audiences, entities, actors,
  systems, features, pains, constraints (tuples of strings).
- PRODUCT_SUFFIXES, GENERIC_AUDIENCES, GENERIC_FEATURES, HEADCOUNTS, OPENERS, SCOPERS,
  PAIN_SENTENCES, DESCRIPTIONS: tuples of strings.
- PRODUCT_KINDS, TIER_PHRASES, TIER_REMARKS: tier -> tuple of strings.
- REGIONS: tuple of (name, phrases); REGION_CONSTRAINTS: name -> the region's constraint.
- FOCI: focus -> (phrases used in text, requirement templates).
- NFRS, CONSTRAINTS: tuples of (text, tiers it suits, usual priority); the file spells each entry
  as {"text", "tiers", "priority"}.

Placeholders: `{entity}`, `{actor}`, `{system}` are filled from the concept's own domain;
`{a_kind}` / `{A_kind}` / `{a_label}` carry their article ("an enterprise platform"). Entities
and actors are plural noun phrases so every template reads as English.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from engine.core.records import TIERS

DATA_FILE = "concept_pools.json"
_DOMAIN_TEXT = ("key", "family", "label")
_DOMAIN_LISTS = ("stems", "audiences", "entities", "actors", "systems", "features", "pains", "constraints")


def _tuples(value: Any) -> Any:
    """JSON arrays as tuples, all the way down."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _require(ok: bool, where: str) -> None:
    # A broken pool file is a defect of the package, not of the user's input: fail at import,
    # naming the entry, rather than with a KeyError in the middle of a generated concept.
    if not ok:
        raise ValueError(f"engine/data/{DATA_FILE}: {where}")


def _tiered(entries: list[dict], key: str, tiers: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    out = []
    for i, entry in enumerate(entries):
        _require(set(entry) == {"text", "tiers", "priority"}, f"{key}[{i}] needs exactly text, tiers, priority")
        _require(bool(entry["tiers"]) and set(entry["tiers"]) <= set(tiers), f"{key}[{i}].tiers must be among {tiers}")
        out.append((entry["text"], tuple(entry["tiers"]), entry["priority"]))
    return tuple(out)


def load(text: str) -> dict[str, Any]:
    """The pools of one JSON document, by their module-level names (ValueError names a bad entry)."""
    raw = json.loads(text)
    priorities = tuple(raw["priorities"])
    for key in ("product_kinds", "tier_phrases", "tier_remarks"):
        _require(tuple(raw[key]) == TIERS, f"{key} must have the tiers {TIERS} as keys, in that order")
    for i, domain in enumerate(raw["domains"]):
        fields = _DOMAIN_TEXT + _DOMAIN_LISTS
        _require(set(domain) == set(fields), f"domains[{i}] needs exactly {', '.join(fields)}")
        _require(all(domain[k] for k in _DOMAIN_LISTS), f"domains[{i}] ({domain['key']}) has an empty list")
    regions = tuple((r["name"], tuple(r["phrases"])) for r in raw["regions"])
    names = {name for name, _ in regions}
    _require(names == set(raw["region_constraints"]), "every region needs one region_constraint")
    pools = {
        "PRIORITIES": priorities,
        "NEAR_FAMILIES": {family: frozenset(near) for family, near in raw["near_families"].items()},
        "DOMAINS": _tuples(raw["domains"]),
        "PRODUCT_SUFFIXES": _tuples(raw["product_suffixes"]),
        "PRODUCT_KINDS": _tuples(raw["product_kinds"]),
        "GENERIC_AUDIENCES": _tuples(raw["generic_audiences"]),
        "REGIONS": regions,
        "REGION_CONSTRAINTS": dict(raw["region_constraints"]),
        "FOCI": {focus: (tuple(f["phrases"]), tuple(f["templates"])) for focus, f in raw["foci"].items()},
        "GENERIC_FEATURES": _tuples(raw["generic_features"]),
        "NFRS": _tiered(raw["nfrs"], "nfrs", TIERS),
        "CONSTRAINTS": _tiered(raw["constraints"], "constraints", TIERS),
        "TIER_PHRASES": _tuples(raw["tier_phrases"]),
        "OPENERS": _tuples(raw["openers"]),
        "SCOPERS": _tuples(raw["scopers"]),
        "TIER_REMARKS": _tuples(raw["tier_remarks"]),
        "HEADCOUNTS": _tuples(raw["headcounts"]),
        "PAIN_SENTENCES": _tuples(raw["pain_sentences"]),
        "DESCRIPTIONS": _tuples(raw["descriptions"]),
    }
    _require(all(p in priorities for _, _, p in pools["NFRS"] + pools["CONSTRAINTS"]), f"priorities must be among {priorities}")
    return pools


_POOLS = load(resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8"))

PRIORITIES: tuple[str, ...] = _POOLS["PRIORITIES"]
NEAR_FAMILIES: dict[str, frozenset[str]] = _POOLS["NEAR_FAMILIES"]
DOMAINS: tuple[dict, ...] = _POOLS["DOMAINS"]
PRODUCT_SUFFIXES: tuple[str, ...] = _POOLS["PRODUCT_SUFFIXES"]
PRODUCT_KINDS: dict[str, tuple[str, ...]] = _POOLS["PRODUCT_KINDS"]
GENERIC_AUDIENCES: tuple[str, ...] = _POOLS["GENERIC_AUDIENCES"]
REGIONS: tuple[tuple[str, tuple[str, ...]], ...] = _POOLS["REGIONS"]
REGION_CONSTRAINTS: dict[str, str] = _POOLS["REGION_CONSTRAINTS"]
FOCI: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = _POOLS["FOCI"]
GENERIC_FEATURES: tuple[str, ...] = _POOLS["GENERIC_FEATURES"]
NFRS: tuple[tuple[str, tuple[str, ...], str], ...] = _POOLS["NFRS"]
CONSTRAINTS: tuple[tuple[str, tuple[str, ...], str], ...] = _POOLS["CONSTRAINTS"]
TIER_PHRASES: dict[str, tuple[str, ...]] = _POOLS["TIER_PHRASES"]
OPENERS: tuple[str, ...] = _POOLS["OPENERS"]
SCOPERS: tuple[str, ...] = _POOLS["SCOPERS"]
TIER_REMARKS: dict[str, tuple[str, ...]] = _POOLS["TIER_REMARKS"]
HEADCOUNTS: tuple[str, ...] = _POOLS["HEADCOUNTS"]
PAIN_SENTENCES: tuple[str, ...] = _POOLS["PAIN_SENTENCES"]
DESCRIPTIONS: tuple[str, ...] = _POOLS["DESCRIPTIONS"]
