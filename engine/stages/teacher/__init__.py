"""The teacher stage: generate a scored Product Owner dataset from a premium model."""
