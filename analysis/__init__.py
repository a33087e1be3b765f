"""Metrics over genotypes and runs (tables and figures come in later modules)."""
