"""Hand-built Product Owner answers for metric and block tests (written for this project)."""

from __future__ import annotations

import copy

import yaml

REQUIREMENTS = {
    "title": "Field Service Scheduler",
    "description": "Scheduling for field technicians.",
    "functional_requirements": [
        {"id": "FR001", "description": "Dispatch technicians to urgent repair jobs", "priority": "High"},
        {"id": "FR002", "description": "Show technician routes on a live map", "priority": "Medium"},
        {"id": "FR003", "description": "Export completed job reports as PDF", "priority": "Low"},
        {"id": "FR004", "description": "Notify customers about arrival windows", "priority": "High"},
    ],
    "non_functional_requirements": [
        {"id": "NFR001", "description": "Pages load within two seconds", "priority": "High"},
        {"id": "NFR002", "description": "Encrypt customer addresses at rest", "priority": "High"},
        {"id": "NFR003", "description": "Keep 99.9% monthly availability", "priority": "Medium"},
    ],
    "constraints": [
        {"id": "C001", "description": "Deploy on the existing Kubernetes cluster", "priority": "High"},
        {"id": "C002", "description": "Use the corporate SSO provider", "priority": "Medium"},
    ],
    "meta": {"original_request": "A scheduler for field technicians."},
}

VISION = {
    "product_name": "Field Service Scheduler",
    "product_summary": (
        "A scheduling cockpit that lets dispatchers send the right technician to each urgent "
        "repair, track routes live and keep customers informed about arrival windows."
    ),
    "target_users": ["Dispatchers", "Field technicians"],
    "value_proposition": ["Faster dispatch of urgent jobs", "Fewer missed appointments"],
    "key_capabilities": ["Live route map", "Customer arrival notifications"],
    "non_goals": ["Payroll"],
    "success_metrics": ["Time to dispatch under 5 minutes", "Missed appointments down 30%"],
    "last_updated": "2025-11-10",
}

ALL_IDS = ["FR001", "FR002", "FR003", "FR004", "NFR001", "NFR002", "NFR003", "C001", "C002"]

REVIEW = {
    "status": "aligned",
    "summary": ["Requirements match the dispatch vision.", "Security needs are covered."],
    "requirements_alignment": {
        "aligned": [f"{rid} supports the scheduling vision." for rid in ALL_IDS],
        "gaps": [],
        "conflicts": [],
    },
    "recommended_actions": ["Prioritise FR001 in the first release.", "Load-test NFR001 early."],
    "narrative": (
        "Every requirement supports the scheduling vision: dispatch, live routes, customer "
        "notifications and the security and availability targets fit the product as described."
    ),
}


def _with(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DELETE:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def vision(**changes) -> dict:
    return _with(VISION, changes)


def review(**changes) -> dict:
    return _with(REVIEW, changes)


def dump(obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)


DELETE = object()
REQUIREMENTS_YAML = dump(REQUIREMENTS)
