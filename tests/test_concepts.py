"""Synthetic concept generator and `po-tui concepts`: determinism, distinctness, YAML shape,
injected conflicts, and the CLI's exit codes and files."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import yaml

from engine.cli import main
from engine.data import concept_pools as P
from engine.stages import concepts as C
from engine.stages.concepts import PoolExhaustedError, generate_concepts

PRIORITIES = {"High", "Medium", "Low"}
FEATURES_BY_DOMAIN = {d["key"]: set(d["features"]) for d in P.DOMAINS}


# libyaml's safe loader builds the same objects as yaml.safe_load, ~20x faster; a test checks
# the two agree on a sample so the 1,500-record checks stay quick.
_FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.fixture(scope="module")
def many() -> list[dict]:
    return generate_concepts(1500, 2024)


@pytest.fixture(scope="module")
def parsed(many) -> list[dict]:
    return [yaml.load(r["requirements_yaml"], Loader=_FAST_SAFE_LOADER) for r in many]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_same_output():
    a = generate_concepts(60, 7, conflict_rate=0.3)
    b = generate_concepts(60, 7, conflict_rate=0.3)
    assert json.dumps(a) == json.dumps(b)


def test_different_seed_different_output():
    a = generate_concepts(30, 1)
    b = generate_concepts(30, 2)
    assert [r["concept"] for r in a] != [r["concept"] for r in b]
    assert len({r["concept"] for r in a} & {r["concept"] for r in b}) < 3


def test_longer_run_starts_with_the_shorter_one():
    assert generate_concepts(10, 3) == generate_concepts(40, 3)[:10]


def test_ids_follow_start_index_and_widen_past_9999():
    rows = generate_concepts(3, 0, start_index=9998)
    assert [r["concept_id"] for r in rows] == ["POCON-9998", "POCON-9999", "POCON-10000"]
    assert [r["metadata"]["index"] for r in rows] == [9998, 9999, 10000]
    assert generate_concepts(2, 0)[0]["concept_id"] == "POCON-0001"


# --- distinctness and shape -----------------------------------------------------------------


def test_1500_concepts_are_distinct(many, parsed):
    assert len(many) == 1500
    assert len({r["concept"] for r in many}) == 1500
    assert len({r["concept_id"] for r in many}) == 1500
    keys = set()
    for req in parsed:
        keys.add((
            req["title"],
            tuple(i["description"] for i in req["functional_requirements"]),
            tuple(i["description"] for i in req["non_functional_requirements"]),
            tuple(i["description"] for i in req["constraints"]),
        ))
    assert len(keys) == 1500


def test_safe_load_agrees_with_the_fast_loader(many, parsed):
    for r, req in list(zip(many, parsed, strict=True))[::10]:
        assert yaml.safe_load(r["requirements_yaml"]) == req


def test_requirements_yaml_has_the_exact_shape(many, parsed):
    for r, req in zip(many, parsed, strict=True):
        assert list(req) == [
            "title", "description", "functional_requirements",
            "non_functional_requirements", "constraints", "meta",
        ], r["concept_id"]
        assert isinstance(req["title"], str) and req["title"].strip()
        assert isinstance(req["description"], str) and req["description"].strip()
        offset = r["metadata"]["id_offset"]
        assert offset in C.ID_OFFSETS
        for key, prefix, counts in (
            ("functional_requirements", "FR", C.FR_COUNTS),
            ("non_functional_requirements", "NFR", C.NFR_COUNTS),
            ("constraints", "C", C.C_COUNTS),
        ):
            items = req[key]
            n = len(items)
            assert n in counts, (r["concept_id"], key, n)
            # consecutive from the concept's offset, the same start in every section
            assert [i["id"] for i in items] == [f"{prefix}{k:03d}" for k in range(offset, offset + n)]
            for item in items:
                assert set(item) == {"id", "description", "priority"}
                assert isinstance(item["description"], str) and item["description"].strip()
                assert item["priority"] in PRIORITIES
            assert len({i["description"] for i in items}) == n
        assert req["meta"] == {"original_request": r["concept"]}
        assert req["title"] == r["metadata"]["title"]


# The metric's id rule (docs/metric.md, po-v2 id match): letters, an optional hyphen, at least two digits.
METRIC_ID = re.compile(r"^([A-Za-z]{1,4})-?(\d{2,})$")


def test_ids_and_counts_vary_so_one_answer_cannot_fit_all(many, parsed):
    """Issue 14: copying one answer must not pass, so concepts may not share one id list."""
    id_sets = Counter()
    shapes = Counter()
    for req in parsed:
        ids = tuple(
            i["id"]
            for key in ("functional_requirements", "non_functional_requirements", "constraints")
            for i in req[key]
        )
        assert all(METRIC_ID.match(i) for i in ids), ids
        assert len(set(ids)) == len(ids)
        id_sets[ids] += 1
        shapes[tuple(len(req[k]) for k in ("functional_requirements", "non_functional_requirements", "constraints"))] += 1
    offsets = Counter(r["metadata"]["id_offset"] for r in many)
    # every start and every count is used, none dominates
    assert set(offsets) == set(C.ID_OFFSETS)
    assert min(offsets.values()) > len(many) / len(C.ID_OFFSETS) / 2
    assert {s[0] for s in shapes} == set(C.FR_COUNTS)
    assert {s[1] for s in shapes} == set(C.NFR_COUNTS)
    assert {s[2] for s in shapes} == set(C.C_COUNTS)
    # the most common id list is shared by a few percent of the concepts at most
    assert id_sets.most_common(1)[0][1] / len(many) < 0.05
    assert len(id_sets) >= 60
    # ...and the old fixed layout (FR001-FR004, NFR001-NFR003, C001-C002) is no longer the rule
    fixed = ("FR001", "FR002", "FR003", "FR004", "NFR001", "NFR002", "NFR003", "C001", "C002")
    assert id_sets[fixed] / len(many) < 0.05


def test_id_layout_is_deterministic_per_seed():
    a = [r["metadata"]["id_offset"] for r in generate_concepts(40, 5)]
    assert a == [r["metadata"]["id_offset"] for r in generate_concepts(40, 5)]
    assert a != [r["metadata"]["id_offset"] for r in generate_concepts(40, 6)]


def test_concept_paragraph_names_product_audience_tier(many):
    openers = set()
    for r in many:
        text = r["concept"]
        assert 2 <= len(_sentences(text)) <= 4, text
        assert r["tier"] in {"simple", "medium", "corporate"}
        assert r["tier"] in text
        assert r["metadata"]["title"] in text
        assert r["metadata"]["audience"].lower() in text.lower()
        openers.add(text.split()[0])
    assert len(openers) >= 5  # varied phrasing, not one sentence template


def test_record_and_metadata_fields(many):
    for r in many[:50]:
        assert list(r) == ["concept_id", "concept", "requirements_yaml", "tier", "metadata"]
        meta = r["metadata"]
        assert meta["generator"] == "po-tui-concepts/1"
        assert meta["seed"] == 2024
        for key in ("domain", "focus", "region", "audience"):
            assert isinstance(meta[key], str) and meta[key]
        assert isinstance(meta["injected_conflicts"], list)


def test_tiers_cycle_and_corporate_mentions_compliance_more(many):
    assert [r["tier"] for r in many[:6]] == ["simple", "medium", "corporate"] * 2
    pattern = re.compile(r"single sign-on|SSO|compliance|audit|scale|users", re.I)

    def share(tier: str) -> float:
        rows = [r for r in many if r["tier"] == tier]
        return sum(bool(pattern.search(r["concept"])) for r in rows) / len(rows)

    assert share("corporate") > 0.7
    assert share("corporate") > share("simple") + 0.3


def test_tier_subset():
    rows = generate_concepts(10, 5, tiers=("corporate", "simple"))
    assert [r["tier"] for r in rows] == ["simple", "corporate"] * 5
    with pytest.raises(ValueError):
        generate_concepts(3, 5, tiers=("gold",))


def test_functional_requirements_stay_in_domain_without_conflicts(many, parsed):
    for r, req in zip(many, parsed, strict=True):
        if r["metadata"]["injected_conflicts"]:
            continue
        others = set().union(
            *(f for key, f in FEATURES_BY_DOMAIN.items() if key != r["metadata"]["domain"])
        )
        assert not {i["description"] for i in req["functional_requirements"]} & others


# --- injected conflicts ---------------------------------------------------------------------


def test_default_conflict_rate_is_about_ten_percent(many):
    rate = sum(bool(r["metadata"]["injected_conflicts"]) for r in many) / len(many)
    assert 0.06 <= rate <= 0.14


def test_injected_conflicts_are_real_out_of_domain_requirements():
    rows = generate_concepts(200, 11, conflict_rate=1.0)
    for r in rows:
        meta = r["metadata"]
        ids = meta["injected_conflicts"]
        assert 1 <= len(ids) <= 2
        req = yaml.load(r["requirements_yaml"], Loader=_FAST_SAFE_LOADER)
        by_id = {i["id"]: i["description"] for i in req["functional_requirements"]}
        assert set(ids) <= set(by_id)
        assert len(ids) < len(by_id)  # at least one requirement stays in scope
        other = meta["conflict_domain"]
        assert other and other != meta["domain"]
        families = {d["key"]: d["family"] for d in P.DOMAINS}
        assert families[other] != families[meta["domain"]]
        for fid in ids:
            assert by_id[fid] in FEATURES_BY_DOMAIN[other]
            assert by_id[fid] not in FEATURES_BY_DOMAIN[meta["domain"]]


def test_zero_conflict_rate_injects_nothing():
    rows = generate_concepts(200, 11, conflict_rate=0.0)
    assert all(r["metadata"]["injected_conflicts"] == [] for r in rows)
    assert all(r["metadata"]["conflict_domain"] is None for r in rows)


# --- internals that the guarantees rest on --------------------------------------------------


def test_fast_dumper_writes_what_safe_dump_writes(many, parsed):
    for r, doc in list(zip(many, parsed, strict=True))[:150]:
        assert r["requirements_yaml"] == yaml.safe_dump(
            doc, sort_keys=False, allow_unicode=True, width=88
        )


def test_exhausted_pools_raise(monkeypatch):
    real = C._build_concept

    def always_the_same(rng, **kw):
        import random

        return real(random.Random(0), **kw)

    monkeypatch.setattr(C, "_build_concept", always_the_same)
    assert len(generate_concepts(1, 0, tiers=("simple",))) == 1
    with pytest.raises(PoolExhaustedError, match="exhausted"):
        generate_concepts(2, 0, tiers=("simple",))


# --- CLI ------------------------------------------------------------------------------------


def test_cli_writes_file_deterministically(tmp_path, capsys):
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl"
    argv = ["concepts", "--count", "25", "--seed", "9", "--conflict-rate", "0.2"]
    assert main([*argv, "-o", str(out1)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "25 concepts" in err and str(out1) in err
    assert main([*argv, "-o", str(out2)]) == 0
    assert out1.read_bytes() == out2.read_bytes()
    rows = [json.loads(line) for line in out1.read_text(encoding="utf-8").splitlines()]
    assert rows == generate_concepts(25, 9, conflict_rate=0.2)


def test_cli_options_reach_the_generator(tmp_path, capsys):
    out = tmp_path / "c.jsonl"
    rc = main([
        "concepts", "--count", "4", "--seed", "1", "-o", str(out),
        "--tiers", "corporate, medium", "--conflict-rate", "1", "--start-index", "101",
    ])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["concept_id"] for r in rows] == [f"POCON-{i:04d}" for i in range(101, 105)]
    assert {r["tier"] for r in rows} == {"medium", "corporate"}
    assert all(r["metadata"]["injected_conflicts"] for r in rows)
    assert "4 with injected conflicts" in capsys.readouterr().err


def test_cli_stdout(capsys):
    assert main(["concepts", "--count", "3", "--seed", "4", "-o", "-"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [json.loads(line)["concept_id"] for line in lines] == [
        "POCON-0001", "POCON-0002", "POCON-0003",
    ]
    assert "stdout" in captured.err
    assert main(["concepts", "--count", "3", "--seed", "4"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--count", "0"], "--count"),
        (["--count", "5", "--tiers", "bogus"], "--tiers"),
        (["--count", "5", "--tiers", ","], "--tiers"),
        (["--count", "5", "--conflict-rate", "1.5"], "--conflict-rate"),
        (["--count", "5", "--start-index", "0"], "--start-index"),
    ],
)
def test_cli_bad_input_exits_2_without_output(tmp_path, capsys, extra, flag):
    out = tmp_path / "bad.jsonl"
    assert main(["concepts", *extra, "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("po-tui concepts: error: ") and flag in captured.err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
