"""Command palette entries: open the report, cancel the run, jump to a tab."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class CockpitCommands(Provider):
    """The cockpit's actions, found by name in ctrl+p."""

    def _commands(self) -> list[tuple[str, str, object]]:
        app = self.app
        out: list[tuple[str, str, object]] = [
            ("Open report", "show report.md of this run", app.action_open_report),
            ("Cancel run", "stop the run through its engine (po-tui cancel)", app.action_cancel_run),
        ]
        for tab_id, title in app.tab_titles():
            out.append((f"Go to {title}", f"show the {title} tab", partial(app.action_show_tab, tab_id)))
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
