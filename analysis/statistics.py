"""How sure a table's numbers are: a bootstrap confidence interval of a mean over seeds, and a permutation test
of two groups of seeds (scipy.stats).

With 4 seeds and standard deviations of 15-19 points most differences between searchers are chance; the tables
therefore carry, for each of our rows, a 95 % confidence interval of the mean and the p-value of the difference
from DARTS under the same preset.

- Confidence interval: the percentile bootstrap of the mean (``scipy.stats.bootstrap``, 10,000 resamples, a fixed
  random state so that a report is reproducible). BCa, scipy's default, is undefined for 4 values that repeat (a
  deterministic all-skip collapse gives 4 equal ones); the percentile interval is, and it is the one a reader can
  recompute. A constant sample's interval is that constant; fewer than 2 values have none.
- Permutation test: the difference of the two means under all relabelings of the pooled seeds
  (``scipy.stats.permutation_test``, independent samples, two-sided), exact while the relabelings number at most
  ``EXACT_RELABELINGS`` (every split of 8 + 8 seeds is 12,870), else 9,999 random ones with the fixed state.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10_000
EXACT_RELABELINGS = 100_000
RANDOM_STATE = 0
TEST_NAME = "two-sided permutation test of the difference of means (exact over all relabelings of the seeds)"
CI_NAME = f"{CONFIDENCE:.0%} percentile-bootstrap interval of the mean"


def random_cell(population: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of a uniformly random cell's look-up (the tables' row, the figures' band)."""
    cells = np.asarray(population, dtype=float)
    return float(cells.mean()), float(cells.std())


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The bootstrap confidence interval of the mean of ``values``; None for fewer than 2 values."""
    sample = np.asarray(values, dtype=float)
    if len(sample) < 2:
        return None
    if np.ptp(sample) == 0:
        return float(sample[0]), float(sample[0])
    result = stats.bootstrap((sample,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                             method="percentile", random_state=np.random.default_rng(RANDOM_STATE))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def permutation_p(first: Sequence[float], second: Sequence[float]) -> float | None:
    """The two-sided p-value of mean(first) - mean(second) under relabeling; None when a group is empty or the
    pooled values are all equal (no relabeling can say anything)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if not len(a) or not len(b):
        return None
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    exact = math.comb(len(a) + len(b), len(a)) <= EXACT_RELABELINGS
    result = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                    permutation_type="independent", alternative="two-sided", vectorized=True,
                                    n_resamples=np.inf if exact else 9_999,
                                    random_state=np.random.default_rng(RANDOM_STATE))
    return float(result.pvalue)


RANDOM_CELL_DRAWS = 100_000
RANDOM_CELL_TEST = "two-sided test against n uniformly random cells of the table (100,000 draws)"


def random_cell_p(values: Sequence[float], population: Sequence[float]) -> float | None:
    """The p-value of the seeds' mean under the null hypothesis that each seed's cell is a uniformly random cell of
    the table (``population``: every cell's look-up): the share of 100,000 draws of as many random cells whose
    mean is at least as far from the population's mean (the permutation test of the seeds against the table,
    with the table as the other group, drawn with replacement); None without values."""
    sample, cells = np.asarray(values, dtype=float), np.asarray(population, dtype=float)
    if not len(sample) or not len(cells):
        return None
    centre = cells.mean()
    draws = np.random.default_rng(RANDOM_STATE).choice(cells, size=(RANDOM_CELL_DRAWS, len(sample))).mean(axis=1)
    extreme = np.abs(draws - centre) >= abs(sample.mean() - centre) - 1e-12
    return float((extreme.sum() + 1) / (RANDOM_CELL_DRAWS + 1))
