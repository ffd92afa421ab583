"""`po-tui export config`: print the consuming pipeline's `roles.product_owner` block.

Registered by `engine.commands.export` as one of its actions; the block and the server check
live in `engine.stages.export_config`.
"""

from __future__ import annotations

import argparse
import sys

from engine.core.inert import one_line
from engine.stages.export import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE
from engine.stages.export_config import OLLAMA_API, config_block


def register_config(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    c = actions.add_parser(
        "config",
        parents=[common],
        help="print the consuming pipeline's config.yaml block for the exported model",
        description=(
            "Print the `roles: product_owner:` YAML block that points the consuming pipeline at the model: "
            "--name is the name it was created or served under (`export ollama --name`, vLLM's LoRA module, "
            "llama-server's --alias). --check asks that server's OpenAI-compatible model list first and "
            "refuses a name it does not serve."
        ),
    )
    c.add_argument("--name", default="po-student-v1",
                   help="the model name as created (`ollama create NAME`) or served (default: %(default)s)")
    c.add_argument("--provider", default="ollama",
                   help="the consuming pipeline's provider for that server (default: %(default)s, as in its seeds)")
    c.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE, help="default: %(default)s")
    c.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N", help="default: %(default)s")
    c.add_argument(
        "--check", nargs="?", const=OLLAMA_API, default=None, metavar="URL",
        help=f"first make sure URL serves --name (GET URL/models; alone: Ollama at {OLLAMA_API})",
    )
    c.set_defaults(func=run_config)
    return c


def run_config(args: argparse.Namespace) -> int:
    text = config_block(
        args.name, temperature=args.temperature, max_tokens=args.max_tokens, provider=args.provider,
        check_url=args.check,
    )
    if args.check is not None:
        sys.stderr.write(f"po-tui export config: {one_line(args.name)} is served at {one_line(args.check)}\n")
    sys.stdout.write(text)
    return 0
