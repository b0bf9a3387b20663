"""Small shared pieces: normalisation, keyset pagination, money and time."""
