"""The kokyaku command: one Typer group per domain."""
