"""Migration scripts, one per schema revision. Never edit one that shipped."""
