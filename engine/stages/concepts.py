"""Deterministic synthetic product concepts: the input the teacher and the student both see.

Why this shape:
- Each concept draws from its own `random.Random` seeded by (seed, index, attempt), never the
  global RNG or the clock, so the same (count, seed, start_index) gives byte-identical output and
  a longer run starts with exactly the concepts of a shorter one.
- Requirements come from per-domain pools, so a Product Owner review can judge alignment; a
  seeded fraction of concepts (`conflict_rate`) gets one or two functional requirements from an
  unrelated domain, listed in `metadata.injected_conflicts`, so teachers also produce
  `needs_adjustment` / `misaligned` reviews.
- Concept texts and (title, requirements) pairs are kept distinct: a collision is regenerated
  with the next attempt seed, and `PoolExhaustedError` is raised when the pools run dry.
- Requirement ids and counts vary per concept: numbering starts at one of `ID_OFFSETS`
  (FR001…, FR010…, FR100…) and each section has its own count. One concept's answer then cites
  ids that most other concepts do not have, so a student that copies one memorised answer
  cannot pass; it has to read the requirements it is given.
"""

from __future__ import annotations

import random
from typing import Iterable, Sequence

import yaml

from engine.core.records import TIERS
from engine.data import concept_pools as P
from engine.errors import InputError

GENERATOR = "po-tui-concepts/1"
MAX_ATTEMPTS = 64
# Every concept is built in memory before the file is written atomically: a count this large is
# gigabytes (and far more than any teacher budget covers), so it is refused as a typo.
MAX_COUNT = 100_000

# Where a concept's requirement numbering starts (the same start for its three sections), and
# how many items each section gets. Ids stay `PREFIX` + at least two digits, the form the
# metric's id rules read (`([A-Za-z]{1,4})-?(\d{2,})`).
ID_OFFSETS = (1, 10, 100)
FR_COUNTS = (2, 3, 4, 5, 6)
NFR_COUNTS = (1, 2, 3)
C_COUNTS = (1, 2)


def requirement_id(prefix: str, offset: int, position: int) -> str:
    """The id of the item at 0-based `position` of a section numbered from `offset`."""
    return f"{prefix}{offset + position:03d}"


class PoolExhaustedError(InputError):
    """The pools cannot give another distinct concept within `MAX_ATTEMPTS` tries."""


# libyaml's emitter writes the same text as PyYAML's pure-Python one for these documents (a test
# checks it) and is ~25x faster, which keeps 1,500 concepts well under a second.
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_requirements(requirements: dict) -> str:
    """`yaml.safe_dump(sort_keys=False, allow_unicode=True, width=88)`, libyaml-accelerated."""
    return yaml.dump(
        requirements, Dumper=_SAFE_DUMPER, sort_keys=False, allow_unicode=True, width=88
    )


def concept_id(index: int) -> str:
    """POCON-0001 … POCON-9999, then five digits and more (`%04d` widens by itself)."""
    return "POCON-%04d" % index


def normalize_tiers(tiers: Iterable[str]) -> tuple[str, ...]:
    """Known tiers in canonical order, duplicates dropped; ValueError names unknown ones."""
    wanted = [t.strip().lower() for t in tiers if t and t.strip()]
    unknown = sorted({t for t in wanted if t not in TIERS})
    if unknown:
        raise ValueError(f"unknown tier(s) {', '.join(unknown)}; choose from {', '.join(TIERS)}")
    result = tuple(t for t in TIERS if t in wanted)
    if not result:
        raise ValueError(f"no tiers given; choose from {', '.join(TIERS)}")
    return result


def generate_concepts(
    count: int,
    seed: int,
    *,
    tiers: Sequence[str] = TIERS,
    conflict_rate: float = 0.1,
    start_index: int = 1,
) -> list[dict]:
    """`count` distinct concept records with ids from `start_index`; tiers cycle by index."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if not 0.0 <= conflict_rate <= 1.0:
        raise ValueError("conflict_rate must be between 0 and 1")
    if start_index < 1:
        raise ValueError("start_index must be at least 1")
    tiers = normalize_tiers(tiers)

    seen_concepts: set[str] = set()
    seen_requirements: set[tuple] = set()
    rows: list[dict] = []
    for index in range(start_index, start_index + count):
        tier = tiers[(index - 1) % len(tiers)]
        for attempt in range(MAX_ATTEMPTS):
            rng = random.Random(f"{GENERATOR}:{seed}:{index}:{attempt}")
            row, req_key = _build_concept(rng, seed=seed, index=index, tier=tier,
                                          conflict_rate=conflict_rate)
            if row["concept"] not in seen_concepts and req_key not in seen_requirements:
                break
        else:
            raise PoolExhaustedError(
                f"could not make concept {concept_id(index)} distinct from the {len(rows)} "
                f"before it in {MAX_ATTEMPTS} tries; the pools are exhausted "
                "(use a smaller count)",
                field="--count",
            )
        seen_concepts.add(row["concept"])
        seen_requirements.add(req_key)
        rows.append(row)
    return rows


def _fill(template: str, ctx: dict) -> str:
    return template.format(**ctx)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _with_article(noun_phrase: str) -> str:
    return ("an " if noun_phrase[:1].lower() in "aeiou" else "a ") + noun_phrase


def _priority(rng: random.Random, usual: str | None = None) -> str:
    """Mostly the usual priority when one is given, otherwise weighted towards High/Medium."""
    if usual is not None and rng.random() < 0.7:
        return usual
    return rng.choices(P.PRIORITIES, weights=(5, 4, 2))[0]


def _conflict_domain(rng: random.Random, domain: dict) -> dict:
    """A domain from an unrelated family, so its requirement reads as clearly out of scope."""
    near = P.NEAR_FAMILIES.get(domain["family"], set()) | {domain["family"]}
    candidates = [d for d in P.DOMAINS if d["family"] not in near]
    return rng.choice(candidates)


def _build_concept(
    rng: random.Random, *, seed: int, index: int, tier: str, conflict_rate: float
) -> tuple[dict, tuple]:
    """One concept record and its requirement key (title plus every description)."""
    offset = rng.choice(ID_OFFSETS)
    n_fr, n_nfr, n_c = rng.choice(FR_COUNTS), rng.choice(NFR_COUNTS), rng.choice(C_COUNTS)
    domain = rng.choice(P.DOMAINS)
    focus = rng.choice(sorted(P.FOCI))
    focus_phrases, focus_templates = P.FOCI[focus]
    region, region_phrases = rng.choice(P.REGIONS)
    if rng.random() < 0.6:
        audience = rng.choice(domain["audiences"])
    else:
        audience = rng.choice(P.GENERIC_AUDIENCES)
    title = f"{rng.choice(domain['stems'])} {rng.choice(P.PRODUCT_SUFFIXES)}"

    ctx = {
        "Product": title,
        "label": domain["label"],
        "kind": rng.choice(P.PRODUCT_KINDS[tier]),
        "audience": audience,
        "Audience": _cap(audience),
        "region": rng.choice(region_phrases),
        "tier_phrase": rng.choice(P.TIER_PHRASES[tier]),
        "focus_phrase": rng.choice(focus_phrases),
        "headcount": rng.choice(P.HEADCOUNTS),
    }
    ctx["a_kind"] = _with_article(ctx["kind"])
    ctx["A_kind"] = _cap(ctx["a_kind"])
    ctx["a_label"] = _with_article(ctx["label"])

    sentences = [_fill(rng.choice(P.OPENERS), ctx), _fill(rng.choice(P.SCOPERS), ctx)]
    remark_p = {"simple": 0.45, "medium": 0.5, "corporate": 0.85}[tier]
    if rng.random() < remark_p:
        sentences.append(_fill(rng.choice(P.TIER_REMARKS[tier]), ctx))
    if rng.random() < 0.5:
        pain = rng.choice(P.PAIN_SENTENCES).format(pain=rng.choice(domain["pains"]))
        if rng.random() < 0.5:
            sentences.insert(1, pain)  # the problem right after the product...
        else:
            sentences.append(pain)  # ...or as the closing motivation
    concept = " ".join(sentences)

    functional = _functional(rng, domain, focus_templates, n_fr)
    injected: list[str] = []
    conflict_domain = None
    if rng.random() < conflict_rate:
        other = _conflict_domain(rng, domain)
        conflict_domain = other["key"]
        # At least one requirement stays in scope: a concept made only of conflicts has no product.
        count = min(rng.choice((1, 2)), n_fr - 1)
        positions = sorted(rng.sample(range(n_fr), count))
        replacements = rng.sample(other["features"], len(positions))
        for pos, text in zip(positions, replacements, strict=True):
            functional[pos] = (text, _priority(rng))
            injected.append(requirement_id("FR", offset, pos))

    nfrs = _pick_tiered(rng, P.NFRS, tier, n_nfr, must_tier_specific=tier == "corporate")
    constraints = _constraints(rng, domain, region, tier, n_c)

    def items(prefix: str, entries: list[tuple[str, str]]) -> list[dict]:
        return [
            {"id": requirement_id(prefix, offset, i), "description": text, "priority": prio}
            for i, (text, prio) in enumerate(entries)
        ]

    requirements = {
        "title": title,
        "description": _fill(rng.choice(P.DESCRIPTIONS), ctx),
        "functional_requirements": items("FR", functional),
        "non_functional_requirements": items("NFR", nfrs),
        "constraints": items("C", constraints),
        "meta": {"original_request": concept},
    }
    requirements_yaml = dump_requirements(requirements)
    row = {
        "concept_id": concept_id(index),
        "concept": concept,
        "requirements_yaml": requirements_yaml,
        "tier": tier,
        "metadata": {
            "generator": GENERATOR,
            "seed": seed,
            "index": index,
            "title": title,
            "domain": domain["key"],
            "focus": focus,
            "region": region,
            "audience": audience,
            "injected_conflicts": injected,
            "conflict_domain": conflict_domain,
            "id_offset": offset,
        },
    }
    req_key = (
        title,
        tuple(t for t, _ in functional),
        tuple(t for t, _ in nfrs),
        tuple(t for t, _ in constraints),
    )
    return row, req_key


def _functional(
    rng: random.Random, domain: dict, focus_templates: tuple, count: int
) -> list[tuple[str, str]]:
    """`count` items: the first carries the concept's emphasis; the rest are domain features
    plus up to two generic ones."""
    slots = {
        "entity": rng.choice(domain["entities"]),
        "actor": rng.choice(domain["actors"]),
        "system": rng.choice(domain["systems"]),
    }
    first = _cap(rng.choice(focus_templates).format(**slots))
    n_generic = min(rng.choice((0, 1, 1, 2)), count - 1)
    picked = rng.sample(domain["features"], count - 1 - n_generic)
    for template in rng.sample(P.GENERIC_FEATURES, n_generic):
        slots = {
            "entity": rng.choice(domain["entities"]),
            "actor": rng.choice(domain["actors"]),
            "system": rng.choice(domain["systems"]),
        }
        picked.insert(rng.randrange(len(picked) + 1), _cap(template.format(**slots)))
    out = [(first, "High" if rng.random() < 0.75 else "Medium")]
    out.extend((text, _priority(rng)) for text in picked)
    return out


def _pick_tiered(
    rng: random.Random, pool: tuple, tier: str, n: int, *, must_tier_specific: bool = False
) -> list[tuple[str, str]]:
    """`n` distinct entries that suit `tier`; tier-only entries weigh double."""
    fits = [entry for entry in pool if tier in entry[1]]
    chosen: list[tuple] = []
    if must_tier_specific:
        chosen.append(rng.choice([e for e in fits if e[1] == (tier,)]))
    while len(chosen) < n:
        weights = [1 if len(e[1]) == len(TIERS) else 2 for e in fits]
        entry = rng.choices(fits, weights=weights)[0]
        if entry not in chosen:
            chosen.append(entry)
    rng.shuffle(chosen)
    return [(text, _priority(rng, usual)) for text, _, usual in chosen]


def _constraints(
    rng: random.Random, domain: dict, region: str, tier: str, count: int
) -> list[tuple[str, str]]:
    """`count` constraints: regional, domain or tier-fitting ones, never the same text twice."""
    system = rng.choice(domain["systems"])
    candidates: list[tuple[str, str]] = [
        (P.REGION_CONSTRAINTS[region], "High"),
        (rng.choice(domain["constraints"]), "High"),
    ]
    candidates.extend(
        (text.format(system=system), usual) for text, tiers, usual in P.CONSTRAINTS if tier in tiers
    )
    # Regional and domain constraints are the most telling, so they come up more often.
    weights = [4, 3] + [1] * (len(candidates) - 2)
    chosen: list[tuple[str, str]] = []
    while len(chosen) < count:
        entry = rng.choices(candidates, weights=weights)[0]
        if entry not in chosen:
            chosen.append(entry)
    return [(text, _priority(rng, usual)) for text, usual in chosen]
