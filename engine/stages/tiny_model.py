"""A tiny Qwen2-shaped causal LM with its own BPE tokenizer, built offline from our own corpus.

Why it exists: model hubs are unreachable here, yet tests and the demo need a real model to
tokenize, train a LoRA on and generate with. This one is small enough to build in seconds on a
CPU and shaped like the real student (Qwen2 architecture, ChatML template), so the same code
paths run on it.

Why these choices:
- The tokenizer is trained on what the student will actually see (student prompts and synthetic
  Product Owner answers), so 2k tokens cover the task text compactly.
- transformers 5 rebuilds a `qwen2` tokenizer on load with Qwen2's own normalizer (NFC) and
  pre-tokenizer (regex Split + ByteLevel). We train with exactly those components, and after
  saving we reload and compare encodings, so a mismatch fails here instead of silently in
  training.
- `initializer_range` (`--init-range`): 0.3 by default, since with the usual 0.02 and the embeddings
  frozen the logits stay flat and the loss does not move. The demo instead builds with 0.02 and trains
  the tied embeddings beside the adapter (`train.modules_to_save: embed_tokens`): a quiet base only
  grows features shared across examples, so the answer format generalises to held-out concepts
  (docs/BENCHMARKS.md, "Learning on CPU"). The 0.3 reasoning below is kept for the frozen case:
  loss does not move; 0.3 learns.
- Same seed -> byte-identical files: the corpus comes from seeded generators, the weights from a
  forked torch RNG (the caller's global RNG is left untouched), and nothing records the clock.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator

from engine.core.prompts import render_student_prompt, template_id
from engine.errors import InputError
from engine.providers.po_writer import STYLE_FULL, STYLES, write_answer
from engine.stages.concepts import generate_concepts
from engine.store import outpath

FORMAT = "po-tui-tiny-model/1"
MARKER_FILE = "tiny_model.json"

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)

# transformers/models/qwen2/tokenization_qwen2.py: PRETOKENIZE_REGEX. Must stay identical, since
# that is what AutoTokenizer rebuilds the pre-tokenizer with when it loads a qwen2 folder.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# ChatML as in Qwen2.5, without its default system message or tool handling: a system turn is
# rendered only when given, and the generation prompt opens the assistant turn.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

# The 256 byte symbols plus the specials, and a little room for merges.
MIN_VOCAB = 512
MAX_VOCAB = 65536
# A tiny model is for tests and the demo: sizes that would need gigabytes are a typo.
MAX_PARAMETERS = 50_000_000
MAX_CORPUS = 100_000
SAMPLE_EXTRA = "Gestión ñandú café — naïve façade, Straße, 東京, emoji 🚀, tabs\tand\r\nCRLF."


def check_sizes(
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int | None,
    vocab_size: int,
    corpus_size: int,
) -> int:
    """InputError (naming the CLI flag) for a shape Qwen2 cannot build; returns intermediate."""
    if layers < 1:
        raise InputError(f"must be at least 1, got {layers}", field="--layers")
    if heads < 1:
        raise InputError(f"must be at least 1, got {heads}", field="--heads")
    if kv_heads < 1 or heads % kv_heads:
        raise InputError(
            f"must be >= 1 and divide --heads ({heads}), got {kv_heads}", field="--kv-heads"
        )
    if hidden < 1 or hidden % heads:
        raise InputError(f"must be divisible by --heads ({heads}), got {hidden}", field="--hidden")
    if (hidden // heads) % 2:
        # Rotary embeddings rotate pairs of dimensions.
        raise InputError(
            f"head size {hidden}/{heads} = {hidden // heads} must be even (rotary embeddings)",
            field="--hidden",
        )
    if intermediate is None:
        # The usual 4x MLP ratio; Qwen2 uses ~5.4x, but at this size 4x is plenty.
        intermediate = 4 * hidden
    if intermediate < 1:
        raise InputError(f"must be at least 1, got {intermediate}", field="--intermediate")
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise InputError(
            f"must be between {MIN_VOCAB} and {MAX_VOCAB}, got {vocab_size}", field="--vocab-size"
        )
    if not 1 <= corpus_size <= MAX_CORPUS:
        raise InputError(f"must be between 1 and {MAX_CORPUS}, got {corpus_size}", field="--corpus-size")
    # embeddings (tied) + per layer: attention (q, o and the smaller k, v) and the gated MLP
    estimate = vocab_size * hidden + layers * (2 * hidden * hidden + 2 * hidden * (hidden // heads) * kv_heads + 3 * hidden * intermediate)
    if estimate > MAX_PARAMETERS:
        raise InputError(
            f"about {estimate:,} parameters: more than a tiny model's {MAX_PARAMETERS:,} (lower --layers, --hidden or --intermediate)",
            field="--layers",
        )
    return intermediate


def build_corpus(corpus_size: int, seed: int, *, style: str = STYLE_FULL) -> list[str]:
    """Student prompts and synthetic answers for `corpus_size` concepts (deterministic per seed).

    `style` is the synthetic writer's (`full` or `compact`): a tokenizer trained on the answers
    the student will be taught encodes them in fewer tokens, which is what the demo's short
    training needs."""
    texts: list[str] = []
    for row in generate_concepts(corpus_size, seed):
        concept, requirements = row["concept"], row["requirements_yaml"]
        texts.append(render_student_prompt(concept, requirements))
        rng = random.Random(f"{FORMAT}:{seed}:{row['concept_id']}")
        texts.append(write_answer(concept, requirements, rng, style=style))
    return texts


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE wrapped as a transformers tokenizer, with Qwen2's exact pipeline."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    # Same BPE options as Qwen2Tokenizer builds on load (no unk, no prefixes, no byte fallback).
    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        # Every byte gets a token even if the corpus never shows it, so any text round-trips.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        unk_token=None,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def _sample_text(texts: list[str]) -> str:
    user = f"{IM_START}user\n{texts[0]}\n{SAMPLE_EXTRA}{IM_END}\n"
    return f"{user}{IM_START}assistant\n{texts[1]}{IM_END}"


def _verify_reload(out_dir: Path, tokenizer: Any, sample: str) -> None:
    """Reload through AutoTokenizer (as training will) and insist on identical encodings."""
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(str(out_dir))
    problems = []
    if len(reloaded) != len(tokenizer):
        problems.append(f"vocabulary {len(tokenizer)} -> {len(reloaded)}")
    for name in ("eos_token_id", "pad_token_id"):
        if getattr(reloaded, name) != getattr(tokenizer, name):
            problems.append(f"{name} {getattr(tokenizer, name)} -> {getattr(reloaded, name)}")
    if reloaded.encode(sample) != tokenizer.encode(sample):
        problems.append("a sample prompt and answer encode differently")
    if problems:
        raise RuntimeError(
            f"the tiny tokenizer changes when reloaded from {out_dir}: {'; '.join(problems)} "
            "(does the pipeline still match transformers' Qwen2Tokenizer?)"
        )


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """No transformers progress bar for a one-shard save: the command reports one line itself."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _fresh_dir(out_dir: Path, kind: str) -> Path:
    """A new hidden sibling of `out_dir`; plain mkdir, so it gets the umask's usual mode."""
    for _ in range(100):
        path = out_dir.parent / f".{out_dir.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary folder beside {out_dir}")


def check_out_dir(out_dir: Path) -> None:
    """Only a missing or empty folder, or an earlier tiny model, may become the output."""
    outpath.check_out_dir(out_dir)
    if not out_dir.exists():
        return
    if any(out_dir.iterdir()) and not (out_dir / MARKER_FILE).is_file():
        raise InputError(
            f"is not empty and holds no {MARKER_FILE}; refusing to overwrite it",
            field="--out",
            path=out_dir,
        )


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished build into place (checked again: the folder may have changed)."""
    check_out_dir(out_dir)
    if out_dir.exists():
        old = _fresh_dir(out_dir, "old")
        os.replace(out_dir, old / "dir")
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def make_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int | None = None,
    vocab_size: int = 2048,
    corpus_size: int = 400,
    style: str = STYLE_FULL,
    init_range: float = 0.3,
) -> Path:
    """Build the tokenizer and a randomly initialised Qwen2ForCausalLM into `out_dir`.

    The folder loads with `AutoTokenizer` / `AutoModelForCausalLM.from_pretrained(out_dir)`.
    It is written beside its final place and moved in when complete, so a failed build never
    leaves half a model; an existing folder is replaced only if it is an earlier tiny model.
    """
    intermediate = check_sizes(
        hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, intermediate=intermediate,
        vocab_size=vocab_size, corpus_size=corpus_size,
    )
    if style not in STYLES:
        raise InputError(f"must be one of {', '.join(STYLES)}, got {style!r}", field="--style")
    out_dir = Path(out_dir)
    check_out_dir(out_dir)  # before the build, not after seconds of work

    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    texts = build_corpus(corpus_size, seed, style=style)
    tokenizer = train_tokenizer(texts, vocab_size)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        initializer_range=init_range,
        tie_word_embeddings=True,
        bos_token_id=pad_id,  # Qwen2 has no BOS in use; its config names <|endoftext|>
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=pad_id, eos_token_id=eos_id, pad_token_id=pad_id
    )
    parameters = sum(p.numel() for p in model.parameters())

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_dir(out_dir, "tmp")
    try:
        with _quiet_progress():
            model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        _verify_reload(tmp, tokenizer, _sample_text(texts))
        info = {
            "format": FORMAT,
            "architecture": "Qwen2ForCausalLM",
            "seed": seed,
            "hidden": hidden,
            "layers": layers,
            "heads": heads,
            "kv_heads": kv_heads,
            "intermediate": intermediate,
            "vocab_size_requested": vocab_size,
            "vocab_size": len(tokenizer),
            "parameters": parameters,
            "initializer_range": config.initializer_range,
            "corpus_size": corpus_size,
            "corpus_style": style,
            "corpus": "generate_concepts -> render_student_prompt + po_writer.write_answer",
            "student_template": template_id(),
        }
        (tmp / MARKER_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_info(model_dir: str | Path) -> dict:
    """The `tiny_model.json` a build wrote (sizes, seed, parameter count)."""
    return json.loads((Path(model_dir) / MARKER_FILE).read_text(encoding="utf-8"))
