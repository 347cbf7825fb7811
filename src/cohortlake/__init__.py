"""cohortlake: declarative cohorts over claims in a Delta lakehouse."""

__version__ = "0.1.0"
