"""dNAS harness: run DARTS-family searchers on tabular NAS benchmarks and read each epoch's true cell quality."""

__version__ = "0.1.0"
