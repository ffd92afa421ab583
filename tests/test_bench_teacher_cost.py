"""bench/teacher_cost.py keeps working: a tiny synthetic run priced for every model, mode and
thinking budget, each row the price table applied to the measured counts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.stages.teacher.pricing import DEFAULT_PRICES

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("teacher_cost", ROOT / "bench" / "teacher_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cost_table_prices_the_measured_counts(capsys):
    script = load_script()
    assert script.main(["--records", "6", "--json", "--dynamic-flash", "1500"]) == 0
    doc = json.loads(capsys.readouterr().out)
    m, rows = doc["measured"], doc["rows"]
    assert 0 < m["records"] <= 6 and m["records"] + m["rejected"] == 6
    assert m["requests_per_accepted"] >= 1 and m["input_tokens_per_request"] > 0
    by = {(r["model"], r["mode"], r["thinking_budget"]): r for r in rows}
    assert ("gemini-2.5-pro", "interactive", "off") not in by  # pro cannot turn thinking off
    assert len(rows) == 2 * 4 + 2 * 3
    assert by[("gemini-2.5-flash", "interactive", "dynamic")]["thinking_tokens_per_request"] == 1500
    for (model, mode, _budget), r in by.items():
        price = DEFAULT_PRICES[model]
        rate_in, rate_out = price.rates(batch=mode == "batch")
        per_request = (m["input_tokens_per_request"] * rate_in
                       + (m["answer_tokens_per_request"] + r["thinking_tokens_per_request"]) * rate_out) / 1e6
        assert r["usd_per_1000_accepted"] == pytest.approx(1000 * m["requests_per_accepted"] * per_request, abs=1e-4)
    flash_1024 = by[("gemini-2.5-flash", "interactive", "1024")]["usd_per_1000_accepted"]
    assert by[("gemini-2.5-flash", "batch", "1024")]["usd_per_1000_accepted"] == pytest.approx(flash_1024 / 2, abs=1e-4)
    assert by[("gemini-2.5-flash", "interactive", "off")]["usd_per_1000_accepted"] < flash_1024
    assert script.main(["--records", "3"]) == 0
    table = capsys.readouterr().out
    assert "| gemini-2.5-pro | batch | 8192 | 8,192 |" in table and "requests per accepted record" in table
