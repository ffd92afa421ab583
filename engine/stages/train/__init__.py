"""The training stage: LoRA / QLoRA on transformers' Trainer with a completion-only loss."""
