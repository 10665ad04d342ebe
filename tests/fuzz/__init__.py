"""Figures of the fuzz tier for the run's summary: per (service, role), requests sent and how many the application
answered."""

figures: dict[tuple[str, str], dict[str, int]] = {}
