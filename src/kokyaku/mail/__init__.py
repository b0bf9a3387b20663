"""Outgoing mail: messages rendered from templates in Japanese or English, sent only after the transaction
that asked for them commits (through a background job with retries)."""
