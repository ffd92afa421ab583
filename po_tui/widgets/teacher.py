"""Teacher panel: throughput, rates, cost, score histogram, review statuses, recent retries."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.core.timefmt import duration
from engine.views.headline import batch_text
from po_tui.model import CockpitModel
from po_tui.samples import HIST_BINS, SampleTally
from po_tui.widgets.chart import histogram, score_bins
from po_tui.widgets.text import bar, inert, num, pct

REVIEW_STATUSES = ("aligned", "needs_adjustment", "misaligned", "invalid")


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    return grid


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def fresh_counts(stats: dict[str, Any], samples: SampleTally) -> dict[str, Any]:
    """Accepted and rejected as the larger of two counts that can each only lag the truth: the
    teacher's stats (sent at most twice a second, and counting samples finished before this log
    began) and the sample events folded here (each one as it finishes); attempted and the
    acceptance rate are recomputed from the counts shown, so the rows agree with each other and
    with the histogram's stated total."""
    accepted = max(_count(stats.get("accepted")), samples.accepted)
    rejected = max(_count(stats.get("rejected")), samples.rejected)
    if not accepted and not rejected and stats.get("accepted") is None:
        return {}  # nothing known yet: the panel shows its dashes
    done = accepted + rejected
    return {"accepted": accepted, "rejected": rejected, "attempted": done, "acceptance_rate": accepted / done if done else None}


def histogram_title(samples: SampleTally, shown: dict[str, Any]) -> Text:
    """What the histogram counts, in numbers that add up: its total is accepted + rejected samples with a score."""
    title = Text("score histogram", style="bold")
    title.append(f"   n={samples.scored} scored samples: {samples.scored_accepted} accepted + {samples.scored_rejected} rejected")
    notes = []
    if samples.unscored:
        notes.append(f"{samples.unscored} without a score not binned")
    earlier = _count(shown.get("attempted")) - (samples.accepted + samples.rejected)
    if earlier > 0:
        notes.append(f"{earlier} more counted by the teacher (earlier runs or not reported yet)")
    if notes:
        title.append("   (" + "; ".join(notes) + ")", style="dim")
    return title


class TeacherPanel(VerticalScroll):
    """Folded from teacher_stats (the stage's own running numbers) and teacher_sample events."""

    def compose(self):
        yield Static("No teacher job in this run yet.", id="teacher-body")

    def show(self, model: CockpitModel, now: float) -> None:
        job = model.teacher_job()
        if job is None:
            return
        stats: dict[str, Any] = dict(job.extra.get("teacher", {}))
        full = job.extra.get("teacher_full", {})
        stats.update({k: v for k, v in full.items() if k not in stats})
        stats.update(fresh_counts(stats, model.samples))
        top = _grid()
        accepted, target = stats.get("accepted"), stats.get("target")
        top.add_row("accepted", Text(f"{num(accepted)} / {num(target)} target"))
        top.add_row("attempted", Text(f"{num(stats.get('attempted'))}   rejected {num(stats.get('rejected'))}   "
                                      f"in flight {num(stats.get('in_flight'))}"))
        top.add_row("rate", Text(f"{num(stats.get('records_per_min'), '{:,.1f}')} records/min"))
        top.add_row("acceptance", Text(f"{pct(stats.get('acceptance_rate'))}   retry success {pct(stats.get('retry_success_rate'))}   "
                                       f"retries {num(stats.get('retries'))}"))
        eta = job.eta_at(now) if job.state == "running" else (0.0 if job.state == "succeeded" else None)
        top.add_row("ETA", Text(f"{duration(eta)}   state {job.state}"))
        top.add_row("cost", Text(f"${num(stats.get('cost_usd'), '{:,.4f}')} so far   "
                                 f"${num(stats.get('cost_per_accepted_usd'), '{:,.4f}')} per accepted"))
        if stats.get("thinking_tokens"):  # Gemini's thoughts: billed as output, the largest cost lever
            top.add_row("tokens", Text(f"output {num(stats.get('output_tokens'), '{:,.0f}')}   "
                                       f"of it thinking {num(stats.get('thinking_tokens'), '{:,.0f}')}"))
        batch = batch_text(job)
        if batch:  # --mode batch: the Gemini batch jobs' states
            top.add_row("batch", inert(batch.removeprefix("batch jobs: "), limit=100))
        parts: list[Any] = [top, Text("")]
        phases = self._phases(stats)
        if phases is not None:
            parts += [Text("phases", style="bold"), phases, Text("")]
        parts.append(histogram_title(model.samples, stats))
        parts.append(histogram(model.samples.bins, score_bins(HIST_BINS)))
        parts.append(Text("review status", style="bold"))
        parts.append(self._statuses(model, stats))
        reasons = stats.get("reject_reasons")
        if isinstance(reasons, dict) and reasons:
            parts.append(Text("reject reasons", style="bold"))
            grid = _grid()
            for name, count in sorted(reasons.items(), key=lambda kv: -kv[1] if isinstance(kv[1], int) else 0)[:8]:
                grid.add_row(inert(name, limit=40), Text(num(count)))
            parts.append(grid)
        per_model = stats.get("per_model")
        if isinstance(per_model, dict) and len(per_model) > 1 and phases is None:  # the phases show the models
            parts.append(Text("per model", style="bold"))
            grid = _grid()
            for name, counts in list(per_model.items())[:8]:
                counts = counts if isinstance(counts, dict) else {}
                tally = f"accepted {num(counts.get('accepted', 0))}  rejected {num(counts.get('rejected', 0))}"
                grid.add_row(inert(name, limit=40), Text(tally))
            parts.append(grid)
        shown = list(model.retries)[-max(5, self.app.size.height - 30):]  # a taller terminal shows more of the log
        parts.append(Text(f"recent retries (last {len(shown)} of {len(model.retries)} kept)" if len(shown) < len(model.retries)
                          else f"recent retries ({len(shown)})", style="bold"))
        for retry in shown:
            line = Text("  ")
            line.append(inert(f"{retry.get('concept_id', '?')}/{retry.get('variant', '?')} attempt {retry.get('attempt', '?')}", limit=50))
            line.append(": ")
            line.append(inert(retry.get("reason"), "bold", limit=30))
            if retry.get("detail") is not None:
                line.append(" ")
                line.append(inert(retry.get("detail"), limit=80))
            parts.append(line)
        self.query_one("#teacher-body", Static).update(Group(*parts))

    @staticmethod
    def _phases(stats: dict[str, Any]) -> Table | None:
        """A planned run's phases (teacher.phases), one short row each, the running one marked."""
        rows = stats.get("per_phase")
        if not isinstance(rows, list) or not rows:
            return None
        grid = Table.grid(padding=(0, 1))
        for _ in range(4):
            grid.add_column(no_wrap=True)
        for row in rows[:8]:
            if not isinstance(row, dict):
                continue
            mark = "▶" if row.get("phase") is not None and row.get("phase") == stats.get("phase") else " "
            thinking = f"  thinking {num(row.get('thinking_tokens'), '{:,.0f}')}" if row.get("thinking_tokens") else ""
            grid.add_row(Text(f"{mark}{num(row.get('phase'))}"), inert(row.get("model"), limit=28),
                         Text(f"{num(row.get('accepted'))}/{num(row.get('target'))} accepted  {num(row.get('rejected'))} rejected"),
                         Text(f"${num(row.get('cost_usd'), '{:,.4f}')}{thinking}"))
        return grid

    @staticmethod
    def _statuses(model: CockpitModel, stats: dict[str, Any]) -> Table:
        from_stats = stats.get("statuses")
        counts = dict(from_stats) if isinstance(from_stats, dict) and from_stats else {}
        if sum(model.samples.statuses.values()) > sum(c for c in counts.values() if isinstance(c, int)):
            counts = dict(model.samples.statuses)  # the stats lag the samples (sent at most twice a second)
        names = list(REVIEW_STATUSES) + sorted(k for k in counts if k not in REVIEW_STATUSES)
        biggest = max([c for c in counts.values() if isinstance(c, int)], default=0)
        grid = _grid()
        for name in names:
            count = counts.get(name, 0)
            count = count if isinstance(count, int) else 0
            grid.add_row(inert(name, limit=24), Text(f"{bar(count, biggest, 30)} {count}"))
        return grid
