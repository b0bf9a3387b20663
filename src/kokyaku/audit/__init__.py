"""The audit trail: who changed what, when, old -> new."""
