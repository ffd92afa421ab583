"""A deterministic, rule-based Product Owner: the writer behind the offline `synthetic` teacher.

Why it exists: the demo and the tests need a teacher that costs nothing, needs no network and
still walks every path of the teacher stage (valid answers of varied quality, all three review
statuses, format errors of the kinds real models make, truncation, low scores that trigger
retries). Everything is drawn from the caller's `random.Random`, so the same inputs and rng seed
always give the same text.

How it reviews: it reads the requirement items, recognises the concept's domain with the glossary
the concept generator draws from (`engine.data.concept_pools`), and calls a functional requirement a
conflict when it clearly belongs to an unrelated domain, or when none of its content words appear
in the concept, title, other requirements or the concept's domain glossary (only for outliers: if
most requirements share no words with a thin concept, words cannot tell). A seeded few of the
remaining requirements get a gap (missing acceptance criteria or measurable target).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import yaml

from engine.core.blocks import render_response
from engine.core.yamltext import safe_load
from engine.data import concept_pools as P
from engine.providers.base import FINISH_MAX_TOKENS, FINISH_STOP

QUALITY_FULL = "full"
QUALITY_LOW = "low"
QUALITIES = (QUALITY_FULL, QUALITY_LOW)

# How answers are written: `full` paraphrases the concept in varied prose (a realistic teacher);
# `compact` (po_compact) is fixed sentences with the product name and ids slotted in, short
# enough for the demo's tiny student to learn on a CPU.
STYLE_FULL = "full"
STYLE_COMPACT = "compact"
STYLES = (STYLE_FULL, STYLE_COMPACT)

DEFECTS = ("missing_review", "wrapped_id_line", "bad_status", "truncated", "prose")

_SECTIONS = (
    ("functional_requirements", "functional"),
    ("non_functional_requirements", "non-functional"),
    ("constraints", "constraint"),
)
_FIRST_DATE = date(2025, 9, 1)
_DATE_SPAN_DAYS = 120


# --- tokens --------------------------------------------------------------------------------------

_STOP = frozenset(
    """a an the and or of to in on at by for from with without into onto over under per each every
    all any some no not only is are be been being it its this that these those their them they we
    our you your as so than then when where which who whom what how can could should would must may
    might will shall do does did done has have had make makes made let lets get gets via within
    across between about after before during up down out off new next one two three four five first
    second more most less least other others own same such also just very much many few day days
    week weeks month months year years time times hour hours minute minutes seconds user users
    system systems api apis rest crud product platform app service tool data team teams people
    staff based using use used show track report record provide offer keep send give support
    manage management handle handling relevant need needs item items list view views set sets run
    runs allow allows able enable enables help helps clear clearly simple""".split()
)
_WORD_RE = re.compile(r"[a-z0-9]+")


def _stem(word: str) -> str:
    """A crude suffix stripper: enough to make `vehicle`/`vehicles`/`inspections` meet."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_tokens(text: str) -> set[str]:
    """Stemmed content words of `text`: what a reviewer compares between requirements."""
    out: set[str] = set()
    for word in _WORD_RE.findall(text.lower()):
        if len(word) < 3 or word.isdigit() or word in _STOP:
            continue
        stem = _stem(word)
        if len(stem) >= 3 and stem not in _STOP:
            out.add(stem)
    return out


# --- the domain glossary (from the concept generator's pools) ------------------------------------

_GLOSSARY_FIELDS = (
    "label", "stems", "audiences", "entities", "actors", "systems", "features", "pains",
    "constraints",
)


@dataclass(frozen=True)
class _Glossary:
    vocab: dict[str, frozenset[str]]
    weight: dict[str, float]  # idf over domains; template words weigh nothing
    unknown_weight: float


def _domain_texts(domain: dict) -> list[str]:
    texts: list[str] = []
    for name in _GLOSSARY_FIELDS:
        value = domain.get(name, ())
        texts.extend([value] if isinstance(value, str) else value)
    return texts


@lru_cache(maxsize=1)
def _glossary() -> _Glossary:
    """Per-domain vocabularies, weighted so that words shared by many domains decide little."""
    vocab = {
        d["key"]: frozenset().union(*(content_tokens(t) for t in _domain_texts(d)))
        for d in P.DOMAINS
    }
    templates = list(P.GENERIC_FEATURES) + [t for _, ts in P.FOCI.values() for t in ts]
    generic = set().union(*(content_tokens(re.sub(r"\{\w+\}", " ", t)) for t in templates))
    df = Counter(t for words in vocab.values() for t in words)
    n = len(vocab)
    weight = {t: (0.0 if t in generic else math.log(n / c)) for t, c in df.items()}
    return _Glossary(vocab, weight, math.log(n))


@lru_cache(maxsize=1)
def _domains_by_key() -> dict[str, dict]:
    return {d["key"]: d for d in P.DOMAINS}


def _token_weight(token: str) -> float:
    g = _glossary()
    return g.weight.get(token, g.unknown_weight)


def _cover(tokens: set[str], key: str) -> float:
    """Weighted share of `tokens` that domain `key` knows (0 when nothing weighs anything)."""
    total = sum(_token_weight(t) for t in tokens)
    if total <= 0:
        return 0.0
    vocab = _glossary().vocab[key]
    return sum(_token_weight(t) for t in tokens if t in vocab) / total


def detect_domain(title: str, text: str) -> str | None:
    """The concept's domain key: the title's stem or the label in the text, else strong words."""
    lowered_title, lowered = title.lower(), text.lower()
    for d in P.DOMAINS:
        if any(lowered_title.startswith(stem.lower()) for stem in d["stems"]):
            return d["key"]
    for d in P.DOMAINS:
        if d["label"].lower() in lowered:
            return d["key"]
    words = content_tokens(f"{title} {text}")
    g = _glossary()
    scores = {k: sum(_token_weight(t) for t in words if t in v) for k, v in g.vocab.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] >= 6.0 else None


def _related_families(key: str) -> set[str]:
    family = _domains_by_key()[key]["family"]
    return P.NEAR_FAMILIES.get(family, set()) | {family}


@lru_cache(maxsize=1)
def _feature_owners() -> dict[str, str]:
    """A glossary feature's exact text (lowercased) -> its domain key."""
    return {f.lower(): d["key"] for d in P.DOMAINS for f in d["features"]}


def _foreign_domain(description: str, home: str) -> str | None:
    """The unrelated domain a requirement clearly belongs to, or None when it fits `home`."""
    owner = _feature_owners().get(description.lower())
    if owner is not None:
        unrelated = _domains_by_key()[owner]["family"] not in _related_families(home)
        return owner if unrelated else None
    words = content_tokens(description)
    keys = list(_glossary().vocab)
    best = max(keys, key=lambda k: (_cover(words, k), k == home))
    best_cover, home_cover = _cover(words, best), _cover(words, home)
    if _domains_by_key()[best]["family"] in _related_families(home):
        return None
    if best_cover >= 0.5 and best_cover - home_cover >= 0.2:
        return best
    return None


# --- reading the input -------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    id: str
    description: str
    kind: str  # functional | non-functional | constraint
    priority: str = ""

    @property
    def ref(self) -> str:
        """How items cite it: the id, or a short quote when the id is missing."""
        return self.id or f'"{_clip(self.description, 40)}"'


@dataclass(frozen=True)
class Brief:
    """Everything the writer needs, read once from the concept and the requirements YAML.

    Frozen and cached: a provider asks for the same concept on every retry and variant.
    """

    concept: str
    name: str
    description: str
    requirements: tuple[Requirement, ...]
    domain: str | None
    label: str
    audience: str
    focus: str
    pain: str | None
    conflicts: dict[str, str] = field(default_factory=dict)  # id -> the domain it belongs to

    def of_kind(self, kind: str) -> list[Requirement]:
        return [r for r in self.requirements if r.kind == kind]


def _as_mapping(text: str) -> dict:
    try:
        value = safe_load(text) if text and text.strip() else None
    except yaml.YAMLError:
        return {}
    return value if isinstance(value, dict) else {}


def read_requirements(requirements_yaml: str) -> tuple[dict, list[Requirement]]:
    """The requirements mapping ({} when unusable) and its items, read as the metric reads them."""
    q = _as_mapping(requirements_yaml)
    out: list[Requirement] = []
    for section, kind in _SECTIONS:
        items = q.get(section)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            rid = str(item.get("id") or "").strip()
            desc = " ".join(str(item.get("description") or "").split())
            if rid or desc:
                out.append(Requirement(rid, desc, kind, str(item.get("priority") or "")))
    return q, out


_NOUN_PHRASE_RE = re.compile(
    r"\s*(?:An?|The)\s+([\w-]+(?:\s+[\w-]+){0,2}?)\s+(?:for|to|that|which|with|in)\b"
)


def _product_name(q: dict, concept: str) -> str:
    title = q.get("title")
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())
    match = re.match(r"\s*((?:[A-Z][\w-]+ ){1,4}[A-Z][\w-]+)\b", concept)
    if match and match.group(1).split()[0] not in ("A", "An", "The", "We", "Our"):
        return match.group(1)
    match = _NOUN_PHRASE_RE.match(concept)
    words = match.group(1).split() if match else re.findall(r"[A-Za-z][\w-]*", concept)[:3]
    return " ".join(w.capitalize() for w in words) or "Unnamed Product"


def _all_audiences() -> list[str]:
    found = [a for d in P.DOMAINS for a in d["audiences"]] + list(P.GENERIC_AUDIENCES)
    return sorted(set(found), key=len, reverse=True)


_AUDIENCE_RES = tuple(
    re.compile(p)
    for p in (
        r"\bhelps ([A-Za-z][\w' -]{2,40}?) (?:in|across|with)\b",
        r"\bserving ([A-Za-z][\w' -]{2,40}?) (?:in|across)\b",
        r"\baimed at ([A-Za-z][\w' -]{2,40}?)(?: operating| in|[.,;])",
        r"\bbuilt for ([A-Za-z][\w' -]{2,40}?)(?: in| across|[.,;])",
        r"\bfor ([a-z][\w' -]{2,40}?)(?: in| across|[.,;])",
    )
)


def _audience(text: str, name: str) -> str:
    lowered = text.lower()
    for audience in _all_audiences():
        if re.search(r"(?<![a-z])" + re.escape(audience.lower()) + r"(?![a-z])", lowered):
            return audience
    for pattern in _AUDIENCE_RES:
        match = pattern.search(text)
        if match:
            return match.group(1).strip()
    return f"teams adopting {name}"


def _focus(text: str) -> str:
    for phrases, _templates in P.FOCI.values():
        for phrase in phrases:
            if phrase.lower() in text.lower():
                return phrase
    match = re.search(r"\b(?:focusing on|built around|emphasis on) ([^.;]{3,60})", text)
    if match:
        return match.group(1).strip()
    return "a dependable day-to-day workflow"


def _pain(concept: str) -> str | None:
    match = re.search(
        r"\b(?:Today|Right now|At the moment|The main problem today is that) ([^.]{10,160})\.",
        concept,
    )
    return match.group(1).strip() if match else None


def _label(domain: str | None) -> str:
    if domain is not None:
        return _domains_by_key()[domain]["label"]
    return "core operations"


def find_conflicts(brief: Brief) -> dict[str, str]:
    """Functional requirements that do not belong to this concept: id -> where they belong."""
    out: dict[str, str] = {}
    unrelated: list[str] = []
    anchor = content_tokens(f"{brief.concept} {brief.name} {brief.description}")
    for req in brief.of_kind("functional"):
        if not req.id or not req.description:
            continue
        if brief.domain is not None:
            foreign = _foreign_domain(req.description, brief.domain)
            if foreign is not None:
                out[req.id] = _domains_by_key()[foreign]["label"]
                continue
        others = set().union(
            *(content_tokens(r.description) for r in brief.requirements if r is not req)
        )
        context = anchor | others
        if brief.domain is not None:
            context |= _glossary().vocab[brief.domain]
        words = content_tokens(req.description)
        if words and not words & context:
            unrelated.append(req.id)
    # Word overlap only singles out outliers: when most FRs share nothing with the concept, the
    # concept is too thin to judge by words, and calling them all conflicts would be noise.
    n = len(brief.of_kind("functional"))
    if len(unrelated) < n and len(unrelated) <= max(1, n // 3):
        out.update((rid, "an unrelated area") for rid in unrelated)
    return out


@lru_cache(maxsize=512)
def read_brief(concept: str, requirements_yaml: str) -> Brief:
    """Parse the concept and requirements into a `Brief` (never raises on odd input)."""
    q, reqs = read_requirements(requirements_yaml)
    concept = " ".join((concept or "").split())
    name = _product_name(q, concept)
    description = q.get("description") if isinstance(q.get("description"), str) else ""
    text = f"{concept} {description}"
    domain = detect_domain(name, text)
    brief = Brief(
        concept=concept,
        name=name,
        description=" ".join(description.split()),
        requirements=tuple(reqs),
        domain=domain,
        label=_label(domain),
        audience=_audience(f"{description} {concept}", name),
        focus=_focus(text),
        pain=_pain(concept),
    )
    return replace(brief, conflicts=find_conflicts(brief))


# --- small text helpers ------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    """At most `limit` chars, cut at a word boundary."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;") or text[:limit]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[1].isupper():
        return text  # an acronym: keep it
    return text[:1].lower() + text[1:]


def _safe(text: str) -> str:
    """No ': ' inside items, so every item stays one plain 'ID: reason' string."""
    return text.replace(": ", ", ").replace(" #", " ")


def _ids(reqs: list[Requirement]) -> str:
    refs = [r.ref for r in reqs]
    if len(refs) <= 1:
        return "".join(refs)
    return ", ".join(refs[:-1]) + " and " + refs[-1]


def _verb(reqs: list[Requirement], singular: str, plural: str) -> str:
    return singular if len(reqs) == 1 else plural


def _pick(rng: random.Random, options: tuple[str, ...] | list[str], **ctx: Any) -> str:
    return rng.choice(options).format(**ctx)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


# --- VISION --------------------------------------------------------------------------------------


def _summary(brief: Brief, rng: random.Random) -> str:
    sentences = _sentences(brief.concept)
    extra = " ".join(sentences[1:3])
    opener = _pick(
        rng,
        (
            "{name} is a product for {label} that serves {audience}.",
            "{name} brings {label} into one place for {audience}.",
            "{name} gives {audience} a single, dependable home for {label}.",
            "Built for {audience}, {name} covers {label} end to end.",
        ),
        name=brief.name, label=brief.label, audience=brief.audience,
    )
    closer = _pick(
        rng,
        (
            "The first release centres on {focus} and the requirements reviewed below.",
            "Its scope is set by the requirements below, with {focus} as the guiding outcome.",
            "Success is judged by how well it delivers {focus} to its users.",
        ),
        focus=brief.focus,
    )
    text = " ".join(p for p in (opener, extra, closer) if p)
    if len(text) < 120:
        text += f" It replaces scattered tools with one shared workflow for {brief.audience}."
    return text


def _target_users(brief: Brief, rng: random.Random) -> list[str]:
    users = [_cap(brief.audience)]
    actors: list[str] = []
    if brief.domain is not None:
        all_text = " ".join(r.description.lower() for r in brief.requirements)
        known = _domains_by_key()[brief.domain]["actors"]
        actors = [a for a in known if a in all_text] or [rng.choice(known)]
    for actor in actors[:2]:
        where = rng.choice((" who work in it every day", " at the customer sites", ""))
        users.append(_cap(actor) + where)
    if len(users) < 2 or rng.random() < 0.5:
        users.append(
            rng.choice(
                (
                    f"Administrators who configure {brief.name}",
                    f"Managers who report on {brief.label}",
                    f"Operations leads accountable for {brief.label}",
                )
            )
        )
    return users


def _value_proposition(brief: Brief, rng: random.Random) -> list[str]:
    items = [
        _pick(
            rng,
            (
                "Puts {focus} at the centre of {label}",
                "Delivers {focus} without extra manual work",
                "Makes {focus} the default way {audience} work",
            ),
            focus=brief.focus, label=brief.label, audience=brief.audience,
        )
    ]
    if brief.pain:
        items.append(f"Ends the situation where {_lower_first(brief.pain)}")
    items.append(
        rng.choice(
            (
                f"One shared source of truth for {brief.label}",
                f"Less time spent on routine {brief.label} tasks",
                "Decisions based on current, trustworthy records",
            )
        )
    )
    return items


def _key_capabilities(brief: Brief, rng: random.Random) -> list[str]:
    fitting = [r for r in brief.of_kind("functional") if r.id not in brief.conflicts]
    caps = [
        f"{_clip(r.description, 90)} ({r.id})" if r.id else _clip(r.description, 90)
        for r in fitting
        if r.description
    ]
    if len(caps) < 2:
        caps.append(f"One shared workflow for {brief.label} used by {brief.audience}")
        caps.append(f"Reporting on {brief.focus}")
    return caps[:5]


def _non_goals(brief: Brief, rng: random.Random) -> list[str]:
    goals = [
        f"{_clip(r.description, 80)} (belongs to {brief.conflicts[r.id]})"
        for r in brief.requirements
        if r.id in brief.conflicts
    ]
    scope = " ".join(r.description.lower() for r in brief.requirements)
    pool = [
        text
        for text, word in (
            ("Custom development for individual customers", "custom develop"),
            ("A native desktop client", "desktop"),
            (f"Replacing the systems {brief.audience} already rely on", "replac"),
            ("Offline-first operation in the first release", "offline"),
            ("Billing and invoicing of end customers", "invoic"),
        )
        if word not in scope  # never rule out what a requirement asks for
    ]
    goals.extend(rng.sample(pool, min(len(pool), rng.choice((1, 1, 2)))))
    return goals


def _success_metrics(brief: Brief, rng: random.Random) -> list[str]:
    metrics = [
        _pick(
            rng,
            (
                "{pct}% of target users active weekly within 90 days of launch",
                "At least {pct}% of invited users complete onboarding in the first month",
                "{pct}% of pilot users rate the product 4 of 5 or better after one quarter",
            ),
            pct=rng.choice((60, 70, 75, 80)),
        ),
        _pick(
            rng,
            (
                "Time spent on routine {label} tasks down {pct}% within six months",
                "Manual handoffs in {label} reduced by {pct}% by the end of the pilot",
                "Errors found in {label} reviews down {pct}% quarter over quarter",
            ),
            label=brief.label, pct=rng.choice((20, 25, 30, 40)),
        ),
    ]
    measurable = [r for r in brief.of_kind("non-functional") if re.search(r"\d", r.description)]
    if measurable:
        r = rng.choice(measurable)
        metrics.append(f"{_clip(r.description, 80)}, verified monthly ({r.ref})")
    return metrics


def _last_updated(rng: random.Random) -> str:
    return (_FIRST_DATE + timedelta(days=rng.randrange(_DATE_SPAN_DAYS))).isoformat()


def build_vision(brief: Brief, rng: random.Random) -> dict[str, Any]:
    return {
        "product_name": brief.name,
        "product_summary": _summary(brief, rng),
        "target_users": _target_users(brief, rng),
        "value_proposition": _value_proposition(brief, rng),
        "key_capabilities": _key_capabilities(brief, rng),
        "non_goals": _non_goals(brief, rng),
        "success_metrics": _success_metrics(brief, rng),
        "last_updated": _last_updated(rng),
    }


# --- REVIEW --------------------------------------------------------------------------------------

_GAP_REASONS_VAGUE = (
    "no measurable target, so nobody can tell when it is met",
    "acceptance criteria are missing; define how it will be verified",
    "the expected outcome is not quantified",
)
_GAP_REASONS_FR = (
    "acceptance criteria are missing, including error and edge cases",
    "it names the feature but not who owns it or how success is checked",
    "the expected volume and response time are not stated",
)
_GAP_REASONS_MEASURED = (
    "the target is stated but not how or by whom it is measured",
    "no monitoring or reporting is defined to prove the target",
)
_GAP_REASONS_CONSTRAINT = (
    "its impact on the delivery plan and cost is not spelled out",
    "it is not linked to any functional requirement that depends on it",
)
_ALIGNED_REASONS = (
    "{desc}, which supports {focus} for {audience}",
    "{desc}, core to {label}",
    "{desc}, in line with the vision and the first release",
    "{desc}, directly serving {audience}",
)
_ALIGNED_REASONS_NFR = (
    "{desc}, which keeps {name} dependable at the expected scale",
    "{desc}, a sound quality bar for {audience}",
)
_ALIGNED_REASONS_C = (
    "{desc}, a realistic boundary for this product",
    "{desc}, compatible with the vision",
)


def _gap_reason(req: Requirement, rng: random.Random) -> str:
    if req.kind == "constraint":
        return rng.choice(_GAP_REASONS_CONSTRAINT)
    if re.search(r"\d", req.description):
        return rng.choice(_GAP_REASONS_MEASURED)
    if req.kind == "functional":
        return rng.choice(_GAP_REASONS_FR + _GAP_REASONS_VAGUE[1:])
    return rng.choice(_GAP_REASONS_VAGUE)


def _choose_gaps(brief: Brief, rng: random.Random) -> list[Requirement]:
    """A seeded few of the fitting requirements, vague ones (no number) preferred."""
    fitting = [r for r in brief.requirements if r.id not in brief.conflicts and r.id]
    count = min(rng.choices((0, 1, 2, 3), weights=(30, 30, 25, 15))[0], len(fitting))
    chosen: list[Requirement] = []
    pool = list(fitting)
    while len(chosen) < count and pool:
        weights = [1 if re.search(r"\d", r.description) else 3 for r in pool]
        pick = rng.choices(pool, weights=weights)[0]
        pool.remove(pick)
        chosen.append(pick)
    return sorted(chosen, key=brief.requirements.index)


def _aligned_item(req: Requirement, brief: Brief, rng: random.Random) -> str:
    templates = {
        "functional": _ALIGNED_REASONS,
        "non-functional": _ALIGNED_REASONS_NFR,
        "constraint": _ALIGNED_REASONS_C,
    }[req.kind]
    reason = _pick(
        rng, templates, desc=_clip(req.description, 100) or "It", focus=brief.focus,
        audience=brief.audience, label=brief.label, name=brief.name,
    )
    return f"{req.ref}: {_safe(_cap(reason))}"


def _conflict_item(req: Requirement, brief: Brief, rng: random.Random) -> str:
    reason = _pick(
        rng,
        (
            "{desc}, which belongs to {other}, outside the {label} scope of {name}",
            "{desc}, unrelated to {label}; it would dilute the vision",
            "{desc}, which serves {other} rather than {audience}",
        ),
        desc=_clip(req.description, 100), other=brief.conflicts[req.id], label=brief.label,
        name=brief.name, audience=brief.audience,
    )
    return f"{req.id}: {_safe(_cap(reason))}"


@dataclass
class _Findings:
    aligned: list[Requirement]
    gaps: list[Requirement]
    conflicts: list[Requirement]

    @property
    def status(self) -> str:
        if any(r.kind == "functional" for r in self.conflicts):
            return "misaligned"
        return "needs_adjustment" if self.conflicts or self.gaps else "aligned"


def _findings(brief: Brief, rng: random.Random) -> _Findings:
    conflicts = [r for r in brief.requirements if r.id in brief.conflicts]
    gaps = _choose_gaps(brief, rng)
    aligned = [r for r in brief.requirements if r.id not in brief.conflicts]
    return _Findings(aligned, gaps, conflicts)


def _review_summary(brief: Brief, f: _Findings, rng: random.Random) -> list[str]:
    n = len(brief.requirements)
    items = [
        _pick(
            rng,
            (
                "{k} of {n} requirements support the vision of {name}.",
                "{k} of {n} requirements fit {label} for {audience}.",
                "Most of the scope ({k} of {n} requirements) matches the concept.",
            ),
            k=len(f.aligned), n=n, name=brief.name, label=brief.label, audience=brief.audience,
        )
    ]
    if f.conflicts:
        items.append(
            f"{_ids(f.conflicts)} {_verb(f.conflicts, 'falls', 'fall')} outside the {brief.label} "
            "scope and conflict with the vision."
        )
    if f.gaps:
        items.append(
            f"{_ids(f.gaps)} {_verb(f.gaps, 'needs', 'need')} clearer acceptance criteria or "
            "measurable targets."
        )
    if not f.conflicts and not f.gaps:
        items.append(
            rng.choice(
                (
                    "No gaps or conflicts were found; the scope is coherent.",
                    "Every requirement is specific enough to plan and test.",
                )
            )
        )
    if not brief.requirements:
        items.append("No requirement items were provided, so alignment cannot be traced.")
    return items


def _actions(brief: Brief, f: _Findings, rng: random.Random) -> list[str]:
    actions: list[str] = []
    for req in f.conflicts:
        actions.append(
            _pick(
                rng,
                (
                    "Remove {id} from the {name} backlog or move it to a separate product.",
                    "Drop {id} from this release and confirm it is out of scope.",
                    "Replace {id} with a requirement that serves {label}.",
                ),
                id=req.id, name=brief.name, label=brief.label,
            )
        )
    for req in f.gaps:
        actions.append(
            _pick(
                rng,
                (
                    "Add measurable acceptance criteria to {id} before sprint planning.",
                    "Define a verifiable target and an owner for {id}.",
                    "Rewrite {id} with a testable definition of done.",
                ),
                id=req.ref,
            )
        )
    high = [r for r in f.aligned if r.priority.lower() == "high" and r.id][:3]
    fr = [r for r in f.aligned if r.kind == "functional" and r.id]
    if high:
        actions.append(f"Prioritise {_ids(high)} for the first release.")
    if fr:
        actions.append(
            _pick(
                rng,
                (
                    "Validate {id} with {audience} in a pilot before scaling.",
                    "Demo {id} to {audience} early to confirm the workflow.",
                    "Prototype {id} first to test {focus} with real users.",
                ),
                id=rng.choice(fr).id, audience=brief.audience, focus=brief.focus,
            )
        )
    if len(actions) < 2:
        actions.append(f"Write {brief.label} requirements with ids and acceptance criteria.")
        actions.append(f"Review the vision of {brief.name} with {brief.audience}.")
    return actions


def _narrative(brief: Brief, f: _Findings, rng: random.Random) -> str:
    ctx = dict(
        name=brief.name, label=brief.label, audience=brief.audience, focus=brief.focus,
        n=len(brief.requirements), k=len(f.aligned),
        gaps=_ids(f.gaps), conflicts=_ids(f.conflicts),
        pull=_verb(f.conflicts, "pulls", "pull"), belong=_verb(f.conflicts, "belongs", "belong"),
        lack=_verb(f.gaps, "lacks", "lack"), need=_verb(f.gaps, "needs", "need"),
    )
    first = _pick(
        rng,
        (
            "{name} is a focused {label} product for {audience}, "
            "and {k} of its {n} requirements support that vision.",
            "The requirements for {name} largely describe {label} for {audience}, "
            "centred on {focus}.",
            "Read against the concept, {name} aims to deliver {focus} to {audience}.",
            "This review checks {n} requirements of {name} "
            "against a vision of {focus} for {audience}.",
        ),
        **ctx,
    )
    parts = [first]
    if f.conflicts:
        parts.append(
            _pick(
                rng,
                (
                    "{conflicts} {pull} the scope away from {label} and should leave the backlog.",
                    "The main risk is {conflicts}, which {belong} to a different product.",
                ),
                **ctx,
            )
        )
    if f.gaps:
        parts.append(
            _pick(
                rng,
                (
                    "{gaps} still {lack} measurable acceptance criteria.",
                    "Before planning, {gaps} {need} targets that can be tested.",
                ),
                **ctx,
            )
        )
    if not f.conflicts and not f.gaps:
        parts.append(
            _pick(
                rng,
                (
                    "No conflicts or gaps stand out, so the scope can move to release planning.",
                    "The scope is coherent and testable as written.",
                    "Nothing in the list contradicts the vision or leaves a target undefined.",
                ),
                **ctx,
            )
        )
    if len(parts) < 3:
        parts.append(
            rng.choice(
                (
                    "The recommended actions keep the first release small and measurable.",
                    "A short pilot with real users would confirm the priorities.",
                    f"Keeping {brief.focus} as the yardstick will keep later additions honest.",
                )
            )
        )
    text = " ".join(parts[:4])
    if len(text) < 160:
        text += f" The team should revisit this review after the first {brief.label} pilot."
    return text


def build_review(brief: Brief, rng: random.Random) -> dict[str, Any]:
    f = _findings(brief, rng)
    return {
        "status": f.status,
        "summary": _review_summary(brief, f, rng),
        "requirements_alignment": {
            "aligned": [_aligned_item(r, brief, rng) for r in f.aligned],
            "gaps": [f"{r.ref}: {_safe(_gap_reason(r, rng))}" for r in f.gaps]
            or ([] if brief.requirements else ["No requirement ids were provided to review"]),
            "conflicts": [_conflict_item(r, brief, rng) for r in f.conflicts],
        },
        "recommended_actions": _actions(brief, f, rng),
        "narrative": _narrative(brief, f, rng),
    }


# --- low quality ---------------------------------------------------------------------------------


def _head(item: str) -> str:
    """The cited id of an 'ID: reason' item."""
    return item.split(":")[0]


def degrade(vision: dict, review: dict, brief: Brief, rng: random.Random) -> None:
    """A hurried answer: one item per list, short texts, some ids never cited (scores < 0.80)."""
    for key in ("target_users", "value_proposition", "key_capabilities", "success_metrics"):
        vision[key] = vision[key][:1]
    vision["product_summary"] = (
        f"{_clip(brief.name, 50)} is a tool for {_clip(brief.audience, 40)}. "
        "It covers the basics of the requested scope."
    )
    ids = [r.id for r in brief.requirements if r.id]
    dropped = set(rng.sample(ids, min(len(ids), max(2, len(ids) // 3))))
    align = review["requirements_alignment"]
    align["aligned"] = [
        f"{rid}: {rng.choice(('fits the vision', 'ok', 'in scope'))}"
        for rid in ids
        if rid not in dropped and rid not in brief.conflicts
    ]
    align["gaps"] = [f"{_head(g)}: unclear" for g in align["gaps"] if _head(g) not in dropped]
    align["conflicts"] = [f"{_head(c)}: off scope" for c in align["conflicts"]]
    if review["status"] == "needs_adjustment" and not (align["gaps"] or align["conflicts"]):
        review["status"] = "aligned"
    review["summary"] = [rng.choice(("Requirements look mostly fine.", "Scope is roughly right."))]
    review["recommended_actions"] = [rng.choice(("Refine the backlog.", "Clarify the scope."))]
    review["narrative"] = rng.choice(
        ("Mostly aligned, with a few open points.", "Looks fine overall; some details are open.")
    )


def wobble(vision: dict, review: dict, rng: random.Random) -> None:
    """The small lapses of a good but real teacher, so full-quality scores spread over roughly
    0.93-1.0 instead of all sitting at 1.0 (a dataset histogram worth looking at)."""
    if rng.random() < 0.3 and len(review["summary"]) > 1:
        review["summary"] = review["summary"][:1]
    if rng.random() < 0.3:
        first = _sentences(review["narrative"])[:1]
        if first and len(first[0]) < 160:
            review["narrative"] = first[0]
    if rng.random() < 0.25:
        key = rng.choice(("target_users", "value_proposition", "success_metrics"))
        vision[key] = vision[key][:1]
    aligned = review["requirements_alignment"]["aligned"]
    if rng.random() < 0.25 and len(aligned) > 3:
        del aligned[rng.randrange(len(aligned))]


# --- entry points --------------------------------------------------------------------------------


# libyaml's emitter, when present, writes what yaml.safe_dump writes, several times faster.
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(value: dict) -> str:
    """`yaml.safe_dump(sort_keys=False, allow_unicode=True, width=88)`, libyaml-accelerated."""
    return yaml.dump(value, Dumper=_SAFE_DUMPER, sort_keys=False, allow_unicode=True, width=88)


def write_answer(
    concept: str,
    requirements_yaml: str,
    rng: random.Random,
    *,
    quality: str = QUALITY_FULL,
    style: str = STYLE_FULL,
) -> str:
    """The canonical two-block answer for one concept; `quality="low"` writes a weak one.

    `style="compact"` writes the short fixed-sentence answer of `po_compact` (the same for every
    rng: only a low quality draws on it)."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r} (choose from {', '.join(QUALITIES)})")
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r} (choose from {', '.join(STYLES)})")
    brief = read_brief(concept, requirements_yaml)
    if style == STYLE_COMPACT:
        from engine.providers.po_compact import compact_review, compact_vision  # it imports this module

        vision, review = compact_vision(brief), compact_review(brief)
    else:
        vision, review = build_vision(brief, rng), build_review(brief, rng)
    if quality == QUALITY_LOW:
        degrade(vision, review, brief, rng)
    elif style == STYLE_FULL:
        wobble(vision, review, rng)
    return render_response(dump_yaml(vision), dump_yaml(review))


# --- defects -------------------------------------------------------------------------------------

_PROSE_BEFORE = (
    "Here is the product vision and the requirements review.",
    "Sure! Below are the two requested blocks.",
    "I reviewed the concept and its requirements carefully.",
)
_PROSE_AFTER = (
    "Let me know if you want me to adjust the scope.",
    "I hope this review helps the team plan the first release.",
)


def _review_start(answer: str) -> int:
    index = answer.find("```yaml REVIEW")
    return index if index >= 0 else len(answer)


def _missing_review(answer: str, rng: random.Random) -> str:
    return answer[: _review_start(answer)].rstrip("\n")


def _bad_status(answer: str, rng: random.Random) -> str:
    start = _review_start(answer)
    head, tail = answer[:start], answer[start:]
    return head + re.sub(r"(?m)^status: .*$", "status: gaps", tail, count=1)


def _truncated(answer: str, rng: random.Random) -> str:
    start = _review_start(answer) + len("```yaml REVIEW\n")
    end = answer.rfind("\n```")
    cut = start + int((end - start) * rng.uniform(0.3, 0.85))
    return answer[:cut]


def _prose(answer: str, rng: random.Random) -> str:
    where = rng.choice(("before", "after", "both"))
    before = rng.choice(_PROSE_BEFORE) + "\n\n" if where in ("before", "both") else ""
    after = "\n\n" + rng.choice(_PROSE_AFTER) if where in ("after", "both") else ""
    return before + answer + after


_ITEM_RE = re.compile(r"^(\s*)- (['\"])([A-Z]+-?\d+): ")


def _wrapped_id_line(answer: str, rng: random.Random) -> str:
    """Unquote an 'ID: text' item and wrap its text onto a column-0 line: YAML cannot parse it."""
    start = _review_start(answer)
    head, review = answer[:start], answer[start:]
    lines = review.split("\n")
    hits = [i for i, line in enumerate(lines) if _ITEM_RE.match(line)]
    if not hits:
        lines.insert(2, "  - FR001: the first requirement")
        lines.insert(3, "is wrapped onto the next line")
        return head + "\n".join(lines)
    i = rng.choice(hits)
    indent = _ITEM_RE.match(lines[i]).group(1)
    end = i + 1
    while end < len(lines) and _continues(lines[end], indent):
        end += 1
    item = _unquote(" ".join(part.strip() for part in lines[i:end])[2:])
    rid, _, text = item.partition(": ")
    words = text.split()
    split = max(1, len(words) // 2)
    first = f"{indent}- {rid}: {' '.join(words[:split])}"
    second = " ".join(words[split:]) or "continued"
    return head + "\n".join(lines[:i] + [first, second] + lines[end:])


def _continues(line: str, indent: str) -> bool:
    """Is `line` a continuation of a dumped list item at `indent` (deeper, not a new item)?"""
    return line.startswith(indent + "  ") and not line.strip().startswith("- ")


def _unquote(scalar: str) -> str:
    """The text of a dumped single- or double-quoted one-line scalar."""
    try:
        value = yaml.safe_load(scalar)
    except yaml.YAMLError:
        return scalar.strip("'\"")
    return value if isinstance(value, str) else scalar.strip("'\"")


_DEFECT_FUNCS = {
    "missing_review": _missing_review,
    "wrapped_id_line": _wrapped_id_line,
    "bad_status": _bad_status,
    "truncated": _truncated,
    "prose": _prose,
}


def inject_defect(answer: str, kind: str, rng: random.Random) -> tuple[str, str]:
    """(damaged text, finish reason): the ways real teacher answers go wrong."""
    if kind not in _DEFECT_FUNCS:
        raise ValueError(f"unknown defect {kind!r} (choose from {', '.join(DEFECTS)})")
    text = _DEFECT_FUNCS[kind](answer, rng)
    return text, FINISH_MAX_TOKENS if kind == "truncated" else FINISH_STOP
