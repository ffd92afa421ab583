"""Command palette entries: report, cancel/resume/retry (saying why when they cannot work), tabs, cases."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.core.inert import one_line


class CockpitCommands(Provider):
    """The cockpit's actions, found by name in ctrl+p."""

    def entries(self) -> list[tuple[str, str, object]]:
        """(name, help, callback) of every command now: what ctrl+p lists and searches."""
        app = self.app
        found = app.controls

        def control(help_text: str, c) -> str:
            return help_text if c.ok else f"unavailable: {one_line(c.why, 120)}"

        out: list[tuple[str, str, object]] = [
            ("Open report", "show report.md of this run", app.action_open_report),
            ("Cancel run", control("stop the run through its engine (po-tui cancel)", found.cancel), app.action_cancel_run),
            ("Resume run", control("continue the run: unchanged finished jobs are skipped (po-tui run --resume)", found.resume),
             app.action_resume_run),
            ("Retry failed stage", control("run the failed stage again and continue (--retry-failed)", found.retry),
             partial(app.action_resume_run, True)),
        ]
        if app.back:
            out.append(("Back to runs", "the list of runs, to open or start another", app.action_back))
        for tab_id, title in app.tab_titles():
            out.append((f"Go to {title}", f"show the {title} tab", partial(app.action_show_tab, tab_id)))
        for concept, tier, status in app.cases():
            out.append((f"Case {one_line(concept, 40)}", f"diff of baseline and student ({one_line(tier, 12)}, {one_line(status, 40)})",
                        partial(app.open_case, concept)))
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self.entries():
            if not name.startswith("Case "):  # cases are found by typing, not listed
                yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self.entries():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
