"""Privacy enforced at the source: policy, scope, redaction, masks, consent, controls."""
