"""The cockpit's tabs: a TabbedContent that ignores a focus notice overtaken by a later tab key.

Textual's TabbedContent switches to the pane holding a widget that gets focus, by a message
(TabPane.Focused) handled after the keys already read. Two tab keys arriving in one read
(`tmux send-keys 4 1`) therefore ended on the first tab: key 4 focused the evaluation table, key 1
showed the pipeline, then the queued notice from key 4 switched back. A notice whose pane no
longer holds the focus is stale, and is dropped here; a fresh one still switches as Textual does.
"""

from __future__ import annotations

from textual.widgets import TabbedContent, TabPane


class CockpitTabs(TabbedContent):
    """TabbedContent whose focus-follows-pane switch only acts on a focus that is still there."""

    def on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        focused = self.screen.focused
        if focused is None or event.tab_pane not in focused.ancestors_with_self:
            event.stop()
            event.prevent_default()  # Textual's own handler (base class) would switch to that pane
