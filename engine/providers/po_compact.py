"""The `compact` style of the synthetic Product Owner: short answers a tiny student can learn.

Why it exists: the full writer's answers paraphrase the concept (a few hundred tokens of varied
prose per answer), which a model trained for two minutes on two CPU cores cannot reproduce, so
the demo's student never showed that training teaches the task (issue 14). A compact answer
keeps every key the metric gives full points for and cites every requirement id, but its free
text is fixed sentences with only the product name and the ids slotted in. What varies from
one concept to the next is exactly what the student must read from its prompt: the product's
name, the requirement ids, and which functional requirements fall outside the product's domain.

How it reviews: the same reading as the full writer (`po_writer.read_brief`): out-of-scope
functional requirements (`Brief.conflicts`) go under `conflicts`, every other requirement under
`aligned`. It invents no gaps (the full writer's gaps are drawn at random, which a student
cannot infer from the concept), so the status is `aligned`, or `misaligned` when a functional
requirement conflicts, and always agrees with the lists. Nothing is drawn at random: the same
concept always gets the same answer.

Scores: po-v2 1.0 on every concept without a conflict. A conflict costs only the metric's
structure term (`8 x aligned / requirements` of 120 points), which the full writer loses too:
an out-of-scope requirement is not aligned.
"""

from __future__ import annotations

from typing import Any

from engine.providers.po_writer import Brief, Requirement, _Findings, _ids, _verb

# One date for every answer: a date that changed with the concept would be noise to learn.
LAST_UPDATED = "2025-11-17"
# The metric's thresholds for full points (docs/metric.md, sections B and D).
MIN_SUMMARY_CHARS = 120
MIN_NARRATIVE_CHARS = 160

TARGET_USERS = ("Day-to-day users of {name}", "Managers who report on its results")
VALUE_PROPOSITION = ("Less manual work for the team", "Decisions based on current, trustworthy records")
SUCCESS_METRICS = ("80% of invited users active in the first month", "Manual handoffs reduced by 20% in the pilot")
# For the rare concept with fewer than two in-scope functional requirements.
FALLBACK_CAPABILITIES = ("A shared workflow for the first release", "Reports on the results of the first release")


def _pad(text: str, minimum: int, filler: str) -> str:
    """`text`, lengthened with a fixed sentence when a very short product name left it short."""
    while len(text) < minimum:
        text += filler
    return text


def _findings(brief: Brief) -> _Findings:
    conflicts = [r for r in brief.requirements if r.id in brief.conflicts]
    aligned = [r for r in brief.requirements if r.id not in brief.conflicts]
    return _Findings(aligned, [], conflicts)


def _first_in_scope(f: _Findings) -> Requirement | None:
    functional = [r for r in f.aligned if r.kind == "functional"]
    return (functional or f.aligned or [None])[0]


def compact_vision(brief: Brief) -> dict[str, Any]:
    f = _findings(brief)
    name = brief.name
    capabilities = [r.ref for r in f.aligned if r.kind == "functional"]
    if len(capabilities) < 2:
        capabilities += list(FALLBACK_CAPABILITIES[: 2 - len(capabilities)])
    summary = (
        f"{name} turns the concept into a first release that its users can adopt quickly, "
        "with every requirement traced to a capability."
    )
    return {
        "product_name": name,
        "product_summary": _pad(summary, MIN_SUMMARY_CHARS, " It starts small and grows with its users."),
        "target_users": [t.format(name=name) for t in TARGET_USERS],
        "value_proposition": list(VALUE_PROPOSITION),
        "key_capabilities": capabilities,
        "non_goals": [r.ref for r in f.conflicts],
        "success_metrics": list(SUCCESS_METRICS),
        "last_updated": LAST_UPDATED,
    }


def compact_review(brief: Brief) -> dict[str, Any]:
    f = _findings(brief)
    name = brief.name
    first = _first_in_scope(f)
    opening = f"This review checks the requirements of {name} against its vision."
    if f.conflicts:
        ids = _ids(f.conflicts)
        summary = [
            f"{name} has requirements outside its scope.",
            f"{ids} {_verb(f.conflicts, 'conflicts', 'conflict')} with the vision.",
        ]
        actions = [f"Remove {ids} from the backlog."]
        narrative = (
            f"{opening} {ids} {_verb(f.conflicts, 'falls', 'fall')} outside that vision and should "
            "leave the backlog before the first release starts."
        )
    elif brief.requirements:
        summary = [f"{name} has every requirement in scope.", "No gap blocks the first release."]
        actions = []
        narrative = (
            f"{opening} Every requirement is in scope, none conflicts with the vision, and the "
            "first release can start."
        )
    else:
        summary = [f"{name} lists no requirement items.", "Alignment cannot be traced yet."]
        actions = [f"Write the requirements of {name} with ids."]
        narrative = f"{opening} No requirement items were given, so nothing can be traced to it yet."
    if first is not None:
        actions.append(f"Prioritise {first.ref} for the first release.")
    if len(actions) < 2:
        actions.append("Demo the first release to users early.")
    return {
        "status": f.status,
        "summary": summary,
        "requirements_alignment": {
            "aligned": [r.ref for r in f.aligned],
            "gaps": [],
            "conflicts": [r.ref for r in f.conflicts],
        },
        "recommended_actions": actions,
        "narrative": _pad(narrative, MIN_NARRATIVE_CHARS, " The team revisits it after the first release."),
    }
