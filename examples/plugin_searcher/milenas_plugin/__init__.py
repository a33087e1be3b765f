"""An example searcher plug-in for dnas-harness (``searcher.Milenas``)."""
