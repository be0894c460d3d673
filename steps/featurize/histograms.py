"""Exact distributions of digital sample values in bounded memory.

WFDB samples are integers, so a histogram of digital values is a lossless summary of a signal:
mean, std, min, max and percentiles follow from it exactly, in one pass over the data.

- `DenseCounter`: one bin per code of a narrow format (at most 65,536 bins). Fastest: a
  `np.bincount` per window. Used when the signal has enough samples to fill it.
- `SparseCounter`: sorted (value, count) pairs of the values actually seen: a one-sample
  signal costs one pair, not 65,536 bins (a record of 2,000 short signals stays small). Past
  `cap` distinct values it coarsens to power-of-two buckets and keeps the exact sum, sum of
  squares, min and max; the few ranks the percentiles need are then found exactly by further
  passes over the data, each narrowing the bucket that holds a rank (`RankSearch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from steps.featurize.formats import Format, code_values

PERCENTILES = (5, 25, 50, 75, 95)


@dataclass
class Histogram:
    """Sorted distinct digital values and how often each occurs (the NaN code included)."""

    values: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def needed_ranks(n_valid: int, percentiles=PERCENTILES) -> list[int]:
    """Ranks (0-based, ascending digital order) whose values numpy's linear percentile reads,
    for the percentiles and their mirror images (a negative gain reverses the order)."""
    ranks = set()
    for q in set(percentiles) | {100 - q for q in percentiles}:
        pos = (n_valid - 1) * q / 100.0
        lo = math.floor(pos)
        ranks.update((lo, min(lo + 1, n_valid - 1)))
    return sorted(ranks)


@dataclass
class Distribution:
    """What the statistics need of one signal's valid samples, in digital units."""

    n: int  # samples, invalid ones included
    n_invalid: int
    mean: float
    var: float  # population variance
    vmin: int
    vmax: int
    rank_values: dict[int, int]  # digital value at each needed rank (ascending order)
    stored_sum: int  # sum of the column as stored (NaN codes included): the checksum's input

    @property
    def n_valid(self) -> int:
        return self.n - self.n_invalid

    def percentile(self, q: float) -> float:
        """numpy's default (linear) percentile of the valid digital values."""
        pos = (self.n_valid - 1) * q / 100.0
        lo = math.floor(pos)
        hi = min(lo + 1, self.n_valid - 1)
        x_lo, x_hi = self.rank_values[lo], self.rank_values[hi]
        return x_lo + (x_hi - x_lo) * (pos - lo)


def histogram_distribution(hist: Histogram, nan: int | None, extra_invalid: int = 0,
                           stored_sum: int | None = None) -> Distribution:
    """The distribution of a complete histogram; `extra_invalid` samples (skew padding, or NaN
    codes counted apart) are invalid samples not in the histogram. `stored_sum` defaults to the
    histogram's own sum (modulo 2**16, all a checksum needs)."""
    stored = stored_sum
    if stored is None:
        stored = int(((hist.values % 65536) * (hist.counts % 65536) % 65536).sum())
    keep = hist.counts > 0
    n_nan = 0
    if nan is not None:
        n_nan = int(hist.counts[hist.values == nan].sum())
        keep &= hist.values != nan
    values, counts = hist.values[keep], hist.counts[keep]
    n_valid = int(counts.sum())
    n = n_valid + n_nan + extra_invalid
    if n_valid == 0:
        return Distribution(n, n - n_valid, math.nan, math.nan, 0, 0, {}, stored)
    # Plain multiply-and-sum, not `@`: BLAS dot spins up its thread pool for every call, which
    # costs milliseconds per signal on a busy machine.
    weights = counts.astype(np.float64)
    mean = float((values * weights).sum() / n_valid)
    dev = values - mean
    var = float((dev * dev * weights).sum()) / n_valid
    cum = np.cumsum(counts)
    ranks = needed_ranks(n_valid)
    at = values[np.searchsorted(cum, np.asarray(ranks), side="right")]
    return Distribution(n, n - n_valid, mean, var, int(values[0]), int(values[-1]),
                        dict(zip(ranks, (int(v) for v in at))), stored)


def exact_sums(x: np.ndarray) -> tuple[int, int]:
    """Exact sum and sum of squares of int values below 2**31 in magnitude, as Python ints.

    x = a * 2**16 + b with 0 <= b < 2**16: every partial sum below stays inside int64 for
    windows of up to 2**23 samples, where x * x summed directly would overflow."""
    x = x.astype(np.int64, copy=False)
    a, b = x >> 16, x & 0xFFFF
    total = int(x.sum())
    squares = (int((a * a).sum()) << 32) + (int((a * b).sum()) << 17) + int((b * b).sum())
    return total, squares


class DenseCounter:
    """Counts of every code of a narrow format."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        self.counts = np.zeros(1 << fmt.bits, np.int64)

    def add(self, codes: np.ndarray) -> None:
        self.counts += np.bincount(codes, minlength=self.counts.size)

    def histogram(self) -> Histogram:
        idx = np.flatnonzero(self.counts)
        values = code_values(self.fmt, idx)
        order = np.argsort(values, kind="stable")
        return Histogram(values[order], self.counts[idx][order])


def _count(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo <= max(1 << 16, 4 * keys.size):
        dense = np.bincount((keys - lo).astype(np.intp, copy=False))
        idx = np.flatnonzero(dense)
        return idx.astype(np.int64) + lo, dense[idx]
    return np.unique(keys, return_counts=True)


def _merge(keys: np.ndarray, counts: np.ndarray, new_keys: np.ndarray, new_counts: np.ndarray):
    if keys.size:
        idx = np.minimum(np.searchsorted(keys, new_keys), keys.size - 1)
        hit = keys[idx] == new_keys
        # new_keys are distinct, so their indices are too: plain fancy-index addition is safe.
        if hit.all():  # the usual case after the first windows: no new distinct value
            counts[idx] += new_counts
            return keys, counts
        counts[idx[hit]] += new_counts[hit]
        new_keys, new_counts = new_keys[~hit], new_counts[~hit]
    keys = np.concatenate([keys, new_keys])
    counts = np.concatenate([counts, new_counts])
    order = np.argsort(keys, kind="stable")
    return keys[order], counts[order]


@dataclass
class SparseCounter:
    """(value, count) pairs of digital values; past `cap` pairs, power-of-two buckets plus
    exact moments. Invalid samples (the NaN value) are counted apart."""

    nan: int | None
    cap: int
    shift: int = 0  # bucket width is 2**shift; 0: exact values
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_invalid: int = 0
    total: int = 0
    squares: int = 0
    vmin: int | None = None
    vmax: int | None = None

    def add(self, values: np.ndarray) -> None:
        # int64 first: differences of int16/int32 values (FLAC, format 32) overflow their type.
        values = values.astype(np.int64, copy=False)
        if self.nan is not None:
            invalid = values == self.nan
            n_bad = int(np.count_nonzero(invalid))
            if n_bad:
                self.n_invalid += n_bad
                values = values[~invalid]
        if not values.size:
            return
        if self.shift:
            self._moments(values)
        keys, counts = _count(values >> self.shift if self.shift else values)
        self.keys, self.counts = _merge(self.keys, self.counts, keys.astype(np.int64), counts.astype(np.int64))
        while self.keys.size > self.cap:
            self._coarsen()

    def _moments(self, values: np.ndarray) -> None:
        total, squares = exact_sums(values)
        self.total += total
        self.squares += squares
        lo, hi = int(values.min()), int(values.max())
        self.vmin = lo if self.vmin is None else min(self.vmin, lo)
        self.vmax = hi if self.vmax is None else max(self.vmax, hi)

    def _coarsen(self) -> None:
        if self.shift == 0:  # exact moments of what was counted so far, before it is lost
            v, c = self.keys.astype(object), self.counts.astype(object)
            self.total, self.squares = int((v * c).sum()), int((v * v * c).sum())
            self.vmin, self.vmax = int(self.keys[0]), int(self.keys[-1])
        self.shift += 1
        keys, inverse = np.unique(self.keys >> 1, return_inverse=True)
        self.keys, self.counts = keys, np.bincount(inverse, weights=self.counts).astype(np.int64)

    @property
    def exact(self) -> bool:
        return self.shift == 0

    def histogram(self) -> Histogram:
        """The exact histogram of the valid values (only while `exact`)."""
        return Histogram(self.keys, self.counts)


@dataclass
class RankSearch:
    """Finds the values at given ranks of a bucketed signal, one pass over the data per step.

    Each pending rank sits in a known value interval [lo, lo + width) with `below` valid
    samples under it. A pass counts the interval's values in `bins` sub-buckets; the rank's
    sub-bucket becomes its next interval, until the width is 1."""

    bins: int
    pending: dict[int, tuple[int, int, int]]  # rank -> (lo, width, below)
    found: dict[int, int] = field(default_factory=dict)
    _intervals: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_buckets(cls, counter: SparseCounter, ranks: list[int], bins: int) -> "RankSearch":
        cum = np.cumsum(counter.counts)
        idx = np.searchsorted(cum, np.asarray(ranks), side="right")
        pending = {}
        for rank, i in zip(ranks, idx):
            below = int(cum[i - 1]) if i else 0
            pending[rank] = (int(counter.keys[i]) << counter.shift, 1 << counter.shift, below)
        search = cls(bins, pending)
        search._settle()
        return search

    def _settle(self) -> None:
        for rank, (lo, width, _) in list(self.pending.items()):
            if width == 1:
                self.found[rank] = lo
                del self.pending[rank]
        self._intervals = {(lo, w): np.zeros(min(self.bins, w), np.int64) for lo, w, _ in self.pending.values()}

    @property
    def done(self) -> bool:
        return not self.pending

    def add(self, values: np.ndarray, nan: int | None) -> None:
        for (lo, width), counts in self._intervals.items():
            sel = values[(values >= lo) & (values < lo + width)]
            if nan is not None:
                sel = sel[sel != nan]
            if sel.size:
                step = -(-width // counts.size)
                counts += np.bincount((sel - lo) // step, minlength=counts.size)[: counts.size]

    def finish_pass(self) -> None:
        for rank, (lo, width, below) in list(self.pending.items()):
            counts = self._intervals[(lo, width)]
            step = -(-width // counts.size)
            cum = below + np.cumsum(counts)
            i = int(np.searchsorted(cum, rank, side="right"))
            self.pending[rank] = (lo + i * step, min(step, lo + width - (lo + i * step)),
                                  int(cum[i - 1]) if i else below)
        self._settle()


def sparse_distribution(counter: SparseCounter, found: dict[int, int], extra_invalid: int, stored_sum: int) -> Distribution:
    """The distribution of a bucketed counter whose needed ranks were found by `RankSearch`."""
    n_valid = int(counter.counts.sum())
    mean = counter.total / n_valid
    # n * sum(x^2) - sum(x)^2 is exact in Python ints: no cancellation.
    var = (n_valid * counter.squares - counter.total * counter.total) / (n_valid * n_valid)
    return Distribution(n_valid + counter.n_invalid + extra_invalid, counter.n_invalid + extra_invalid, mean,
                        float(var), int(counter.vmin), int(counter.vmax), dict(found), stored_sum)
