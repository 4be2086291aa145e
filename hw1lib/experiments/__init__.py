"""One module per report section: config dataclass, PROFILES, run function."""
