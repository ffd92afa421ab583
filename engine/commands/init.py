"""`po-tui init [FILE]`: write a commented pipeline config with every setting at its default."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.core.inert import one_line
from engine.errors import InputError
from engine.store.atomic import atomic_write_text
from engine.store.outpath import check_out_file


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "init",
        parents=[common],
        help="write an example pipeline config (every setting, commented)",
        description="Write a commented pipeline config covering every setting, at the seeds' values.",
    )
    p.add_argument("file", nargs="?", default="po-tui.yaml", metavar="FILE", help="default: %(default)s ('-' for stdout)")
    p.add_argument("--force", action="store_true", help="overwrite FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.pipeline.example import example_config

    text = example_config()
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.file)
    if path.exists() and not args.force:
        raise InputError("already exists (pass --force to overwrite)", path=path)
    check_out_file(path, field="FILE")
    atomic_write_text(path, text)
    print(one_line(f"po-tui init: wrote {path}; run it with `po-tui run {path} --headless`"))
    return 0
