"""NAS-Bench-101 cells (the cells of the NAS-Bench-1shot1 spaces): graphs, fingerprints, ground truth."""
