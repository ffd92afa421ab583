"""GPU memory ESTIMATES for LoRA / QLoRA training of a Qwen2 shape (the per-card table in docs/gpu.md).

    .venv/bin/python bench/gpu_memory.py            # the table for Qwen2.5-7B at the seeds' settings
    .venv/bin/python bench/gpu_memory.py --shape qwen2.5-0.5b --seq-len 1600

These are computed from the model's dimensions, not measured: no GPU had run po-tui when they
were written. `bench/gpu_check.py` prints the measured peak of a LoRA and a QLoRA step beside
this estimate for the same tokens, so a run on a GPU box shows how far off they are.

What is counted (bytes; T = batch x sequence tokens, V = vocabulary, h = hidden size,
I = MLP width, L = layers):
- weights: LoRA keeps the base in bf16/fp16 (2 bytes a parameter). QLoRA stores the linear
  layers in nf4 with double quantisation (0.5 bytes + about 0.13 bits of scales a parameter),
  and peft's `prepare_model_for_kbit_training` casts everything else -- embeddings, the untied
  output head, norms -- to fp32.
- the adapter: LoRA A and B on every linear layer of every block (`all-linear`), kept in fp32
  with its gradient and Adam's two moments: 16 bytes a parameter.
- logits and loss: bf16 logits (2TV), the fp32 copy the loss takes (4TV), log-softmax's fp32
  output kept for the backward pass (4TV) and its fp32 gradient at the backward peak: about 12TV.
  This is what makes batch 4 x 2,048 tokens of a 152k vocabulary cost ~15 GB before any layer.
- activations: per token and layer about 35h + 10I bytes in bf16 (norms upcast to fp32, the
  inputs of q/k/v/o and the MLP with their LoRA dropout copies, attention's q/k/v/out, the MLP's
  gate/up/act/product). With gradient checkpointing only each layer's input is kept (2h bytes, 4h
  for QLoRA whose residual stream is fp32 after the fp32 embeddings) plus one layer recomputed.
- the CUDA context and allocator slack: 1 GiB, added before comparing with a card.

Evaluation (`po-tui eval`, greedy with a KV cache) needs the weights (nf4 without the fp32 casts
of training: embeddings and head stay 16-bit), the KV cache (2 x layers x KV width x 2 bytes a
token, for prompt + answer) and the prefill's MLP temporaries (about 6I + 10h bytes a prompt
token); transformers computes the logits of the last position only.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import SHAPES  # noqa: E402 - the same shapes the checks build

GIB = 2**30
CONTEXT_GIB = 1.0
# Memory a process can use on each card (nvidia-smi's total, in GiB).
CARDS = {"T4 16 GB": 15.0, "L4 24 GB": 22.5, "A100 40 GB": 39.5, "A100 80 GB": 79.1, "H100 80 GB": 79.1}
# The seeds' recipe (po-tui train's defaults): r 32 on all linear layers, batch 4, 2,048 tokens.
SEED_RANK, SEED_BATCH, SEED_SEQ = 32, 4, 2048


@dataclass(frozen=True)
class Dims:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    @classmethod
    def of(cls, shape: str) -> "Dims":
        s = SHAPES[shape]
        return cls(s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"], s["num_attention_heads"],
                   s["num_key_value_heads"], s["vocab_size"], bool(s["tie_word_embeddings"]))

    @property
    def kv(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one block: q, k, v, o, gate, up, down."""
        h, i, kv = self.hidden, self.intermediate, self.kv
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linears())

    def other_params(self) -> int:
        """Embeddings, the output head when untied, norms and q/k/v biases: not quantised."""
        embed = self.vocab * self.hidden * (1 if self.tied else 2)
        return embed + self.layers * (2 * self.hidden + self.hidden + 2 * self.kv) + self.hidden

    def lora_params(self, rank: int) -> int:
        return self.layers * sum(rank * (a + b) for a, b in self.linears())


def training_bytes(d: Dims, *, qlora: bool, batch: int, seq: int, checkpointing: bool, rank: int = SEED_RANK) -> dict[str, float]:
    """The parts of one training step's peak, in bytes (see the module docstring)."""
    tokens = batch * seq
    if qlora:
        weights = d.linear_params() * (0.5 + 0.13 / 8) + d.other_params() * 4
    else:
        weights = (d.linear_params() + d.other_params()) * 2
    adapter = d.lora_params(rank) * 16
    logits = 12 * tokens * d.vocab
    per_layer = tokens * (35 * d.hidden + 10 * d.intermediate)
    if checkpointing:
        activations = d.layers * tokens * d.hidden * (4 if qlora else 2) + per_layer
    else:
        activations = d.layers * per_layer
    return {"weights": weights, "adapter": adapter, "logits": logits, "activations": activations}


def eval_bytes(d: Dims, *, nf4: bool, batch: int, prompt: int = 1000, answer: int = 1200) -> float:
    """Peak bytes of greedy decoding at `batch`: weights, KV cache, prefill temporaries."""
    if nf4:
        weights = d.linear_params() * (0.5 + 0.13 / 8) + d.other_params() * 2
    else:
        weights = (d.linear_params() + d.other_params()) * 2
    kv = batch * (prompt + answer) * 2 * d.layers * d.kv * 2
    prefill = batch * prompt * (6 * d.intermediate + 10 * d.hidden)
    return weights + kv + prefill


def estimate_gib(d: Dims, **kw) -> float:
    return sum(training_bytes(d, **kw).values()) / GIB


def verdict(need_gib: float, card_gib: float) -> str:
    total = need_gib + CONTEXT_GIB
    if total <= 0.9 * card_gib:
        return "fits"
    if total <= card_gib:
        return "tight"
    return "no"


def table(shape: str = "qwen2.5-7b", seq: int = SEED_SEQ) -> str:
    """Markdown: one row per (method, batch, checkpointing), the estimate and a verdict per card."""
    d = Dims.of(shape)
    head = "| method | batch x tokens | gradient checkpointing | estimate GiB | " + " | ".join(CARDS) + " |"
    lines = [head, "|---|---|---|---:|" + "---|" * len(CARDS)]
    for qlora in (False, True):
        for batch in (SEED_BATCH, 1):
            for ckpt in (True, False):
                need = estimate_gib(d, qlora=qlora, batch=batch, seq=seq, checkpointing=ckpt)
                cells = " | ".join(verdict(need, gib) for gib in CARDS.values())
                lines.append(f"| {'QLoRA (nf4)' if qlora else 'LoRA (16-bit)'} | {batch} x {seq:,} | {'on' if ckpt else 'off'} | "
                             f"{need:.1f} | {cells} |")
    return "\n".join(lines)


def eval_table(shape: str = "qwen2.5-7b") -> str:
    """Markdown: `po-tui eval` (1,000-token prompts, 1,200-token answers) per weights and batch."""
    d = Dims.of(shape)
    lines = ["| eval weights | batch | estimate GiB | " + " | ".join(CARDS) + " |", "|---|---:|---:|" + "---|" * len(CARDS)]
    for nf4, batch in ((False, 8), (True, 8), (True, 16)):
        need = eval_bytes(d, nf4=nf4, batch=batch) / GIB
        cells = " | ".join(verdict(need, gib) for gib in CARDS.values())
        lines.append(f"| {'nf4 (--load-4bit)' if nf4 else '16-bit'} | {batch} | {need:.1f} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=tuple(SHAPES), default="qwen2.5-7b")
    ap.add_argument("--seq-len", type=int, default=SEED_SEQ, help="tokens of the longest example in a batch")
    args = ap.parse_args()
    print(table(args.shape, args.seq_len))
    print()
    print(eval_table(args.shape))


if __name__ == "__main__":
    main()
