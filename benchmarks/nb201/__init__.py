"""NAS-Bench-201: cell space, ground-truth table and DARTS supernet."""
