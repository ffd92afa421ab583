"""`po-tui eval`: evaluate a local model (base or base + LoRA) or a teacher provider on concepts."""
