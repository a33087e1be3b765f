"""NAS-Bench-1shot1 search spaces 1-3 (Zela, Siems, Hutter, ICLR 2020): NB101 cells with fixed parent counts."""
