"""The lowest layer: errors, atomic files, checksums, paths, cell metrics, the run configuration and record
schemas, and plug-in resolution. It imports nothing from ``benchmarks``, ``searchers``, ``analysis`` or
``harness`` (checked by ``tests/test_layers.py``)."""
