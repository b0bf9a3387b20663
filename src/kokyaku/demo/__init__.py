"""Realistic demo data at any scale; also the benchmark data."""
