"""The Dagster layer: one module per domain, thin wiring of the pure packages."""
