"""Durable storage: append-only JSONL and atomic whole-file writes."""
