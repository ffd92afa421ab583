"""The pipeline engine: config, plan, runner (docs/runs.md). Never imports textual."""
