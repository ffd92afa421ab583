"""Read-only views of run directories for the terminal (`po-tui status`, `po-tui runs`).

Built only on the run directory contract (docs/runs.md) and the event logs (docs/events.md):
the engine process need not be alive, or even on this machine. Never imports textual.
"""
