"""``darts``: first-order DARTS. All of its behaviour is the shared base in ``searchers.base``."""
from searchers.base import Searcher


class Darts(Searcher):
    """DARTS-V1 of the NB201 reference (Dong & Yang 2020, Section 5): xi = 0, validation-loss gradient."""
