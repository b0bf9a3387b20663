"""Interactions and events from every channel, their ingestion, and the one timeline per customer."""
