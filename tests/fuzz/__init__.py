"""Figures of the fuzz tier, for the run's summary: per (service, role), test cases generated and requests answered."""

figures: dict[tuple[str, str], dict[str, int]] = {}
