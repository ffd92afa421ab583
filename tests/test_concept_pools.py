"""The concept pools are a data file (engine/data/concept_pools.json), not code, and moving them
there changed nothing: the hashes below were computed from the Python literals they replaced."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path

import pytest

from engine.data import concept_pools as P
from engine.providers.po_writer import write_answer
from engine.stages.concepts import generate_concepts

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "engine" / "data" / P.DATA_FILE

# sha256 of json.dumps(rows, sort_keys=True, ensure_ascii=False), computed before the move.
CONCEPTS_50_7 = "91d609c6d18bf922e2bc50b9cd34133256781cdf342b8a7c0b22afc6f3a49486"
CONCEPTS_300_11_CONFLICTS = "502990e4f1c6f3e19b797c2662282b3903303a08b58cf5d18bb08f8f65e81939"
# sha256 of the synthetic writer's answers (both styles) to generate_concepts(40, 3, conflict_rate=0.3).
WRITER_40_3 = "bc221ccec44ea09a80f359c90a83c25ece54bfa1e955b3bd057fe2ed0422f415"


def _digest(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def test_generated_concepts_are_byte_identical_to_the_literal_pools():
    assert _digest(generate_concepts(50, 7)) == CONCEPTS_50_7
    assert _digest(generate_concepts(300, 11, conflict_rate=0.5)) == CONCEPTS_300_11_CONFLICTS


def test_the_synthetic_writer_reads_the_same_pools():
    rows = generate_concepts(40, 3, conflict_rate=0.3)
    texts = [
        write_answer(r["concept"], r["requirements_yaml"], random.Random(r["concept_id"]), style=style)
        for style in ("full", "compact")
        for r in rows
    ]
    assert hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest() == WRITER_40_3


def test_the_pools_are_the_shipped_data_file_and_no_module_repeats_them():
    pools = P.load(DATA.read_text(encoding="utf-8"))
    assert {name: getattr(P, name) for name in pools} == pools
    assert isinstance(P.NFRS[0][1], tuple) and isinstance(P.DOMAINS[0]["features"], tuple)
    assert not (ROOT / "engine" / "stages" / "concept_pools.py").exists()
    feature = P.DOMAINS[0]["features"][0]
    holders = [str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py") if feature in p.read_text(encoding="utf-8")]
    assert holders == []  # the text lives in the JSON only


def _break_tier(doc: dict) -> None:
    doc["nfrs"][0]["tiers"] = ["enterprise"]


def _drop_priority(doc: dict) -> None:
    del doc["constraints"][2]["priority"]


def _unknown_priority(doc: dict) -> None:
    doc["nfrs"][1]["priority"] = "Urgent"


def _tier_table(doc: dict) -> None:
    del doc["tier_remarks"]["medium"]


def _domain_field(doc: dict) -> None:
    doc["domains"][3]["features"] = []


def _region(doc: dict) -> None:
    doc["regions"].append({"name": "Mars", "phrases": ["Mars"]})


@pytest.mark.parametrize(
    "damage, where",
    [
        (_break_tier, r"nfrs\[0\]\.tiers"),
        (_drop_priority, r"constraints\[2\] needs exactly text, tiers, priority"),
        (_unknown_priority, "priorities must be among"),
        (_tier_table, "tier_remarks must have the tiers"),
        (_domain_field, r"domains\[3\] \(.+\) has an empty list"),
        (_region, "every region needs one region_constraint"),
    ],
)
def test_a_damaged_pool_file_names_the_entry(damage, where):
    doc = copy.deepcopy(json.loads(DATA.read_text(encoding="utf-8")))
    damage(doc)
    with pytest.raises(ValueError, match=where):
        P.load(json.dumps(doc))
