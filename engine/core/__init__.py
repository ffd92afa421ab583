"""The Product Owner domain: block extraction, the metric, prompts and record formats."""
