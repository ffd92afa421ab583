"""What a settings field says about its command-line flag, beyond its type and its `Field`.

A stage's settings are declared once, as a pydantic model: the type, the default, the bounds and
the description (`Field(description=...)`) are the flag's type, default, checks and help.
`engine.commands.settingsflags` builds the argparse flags from the model; a field annotated with
a `Flag` adjusts only what the model cannot say (a shorter flag name, a placeholder, a hidden
flag, what a null default means), and `CONFIG_ONLY` marks the rare setting that has no flag.

This module holds data only, so the settings models (engine/stages) need not import the
commands (engine/commands) to describe their flags.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    """A settings field's command-line form; use as `Annotated[type, Flag(...)]`.

    name: the flag's words when they differ from the field's (`timeout_s` -> `Flag("timeout")`
        is `--timeout`); under a nested model they follow its prefix (`synthetic.latency_s` with
        `Flag("latency")` is `--synthetic-latency`). On a nested model's field it is the prefix.
    metavar: the placeholder --help shows for the value.
    choices: the values the flag offers, where fewer than the type allows (`--provider` omits
        `local`, which is what leaving it out means).
    hidden: accepted but left out of --help (an older spelling, a test knob); on a nested model's
        field it hides every flag under it.
    default_means: what a null or empty default means, shown as "(default: ...)". A default that
        is a value is always shown from the model: writing it here is refused.
    config_only: no flag; the setting is set in a config file only.
    bare: the value the flag means when given without one (`--gradient-checkpointing` alone is
        `on`); the flag then takes an optional value.
    """

    name: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    hidden: bool = False
    default_means: str | None = None
    config_only: bool = False
    bare: str | None = None


CONFIG_ONLY = Flag(config_only=True)
