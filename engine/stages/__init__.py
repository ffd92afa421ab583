"""Pipeline stages: each runs as its own job and reports through the run event log."""
