"""Exact distributions of digital sample values in bounded memory.

WFDB samples are integers, so a histogram of digital values is a lossless summary of a signal:
mean, std, min, max and percentiles follow from it exactly, in one pass over the data, as long
as the histogram fits its budget.

- `DenseCounter`: one bin per code of a narrow format (at most 65,536 bins). Fastest: a
  `np.bincount` per window. Used when the signal has enough samples to fill it.
- `RangeCounter`: bins over the range of values actually seen: a one-sample signal costs one
  bin, not 65,536 (a record of 2,000 short signals stays small), a 24-bit signal what its
  values span. Past `cap` bins it coarsens to power-of-two buckets and keeps the exact sum,
  the sum of squares (about a value near the mean), min and max; the few ranks the
  percentiles need are then found exactly by further passes over the data, each narrowing
  the bucket that holds a rank (`RankSearch`).
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
    stored_sum: int  # sum of the column as stored (NaN codes included), at least modulo 2**16

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


def sum_mod16(values: np.ndarray, counts: np.ndarray) -> int:
    """sum(values * counts) modulo 2**16. The low 16 bits of each factor (two's complement, so
    negative values too) make products below 2**32; a histogram has at most a few million
    entries, so their sum stays inside int64."""
    return int(((values & 0xFFFF) * (counts & 0xFFFF)).sum()) % 65536


def histogram_distribution(hist: Histogram, nan: int | None, extra_invalid: int = 0,
                           stored_sum: int | None = None) -> Distribution:
    """The distribution of a complete histogram; `extra_invalid` samples (skew padding, or NaN
    codes counted apart) are invalid samples not in the histogram. `stored_sum` defaults to the
    histogram's own sum (modulo 2**16, all a checksum needs)."""
    stored = sum_mod16(hist.values, hist.counts) if stored_sum is None else stored_sum
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


class DenseCounter:
    """Counts of every code of a narrow format."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        self.counts = np.zeros(1 << fmt.bits, np.int64)

    def add(self, codes: np.ndarray) -> None:
        self.counts += np.bincount(codes, minlength=self.counts.size)

    def histogram(self) -> Histogram:
        idx = np.flatnonzero(self.counts)
        if self.fmt.code not in ("80", "160"):
            # Two's complement: the codes of the negative values (top half) sort first. A
            # rotation, not a sort: this runs once per signal, for thousands of small records.
            split = int(np.searchsorted(idx, 1 << (self.fmt.bits - 1)))
            idx = np.concatenate([idx[split:], idx[:split]])
        return Histogram(code_values(self.fmt, idx), self.counts[idx])


@dataclass
class RangeCounter:
    """Counts over the range of values seen so far, `counts[i]` for key `base + i`, where a key
    is a value (exact) or, past `cap` bins, the value's power-of-two bucket `value >> shift`
    (then with exact moments). A one-sample signal costs one bin, not 65,536, and a wide
    format costs what its values span, not 2**24 or 2**32 bins. Invalid samples (the NaN
    value) are counted apart."""

    nan: int | None
    cap: int
    shift: int = 0  # bucket width is 2**shift; 0: exact values
    base: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_invalid: int = 0
    # Once bucketed: moments about a reference value `ref` (set when coarsening, near the
    # mean), an exact integer sum and a float sum of squares; deviations from a value near
    # the mean keep the variance free of cancellation.
    ref: int = 0
    dev_sum: int = 0
    dev_squares: float = 0.0
    vmin: int | None = None  # valid values seen (kept once bucketed)
    vmax: int | None = None
    _lo: int = 0
    _hi: int = 0

    def add(self, values: np.ndarray) -> None:
        if not values.size:
            return
        # int64 first: differences of int16/int32 values (FLAC, format 32) overflow their type.
        values = values.astype(np.int64, copy=False)
        lo = int(values.min())
        if self.nan is not None and lo == self.nan:  # the NaN value is the format's minimum
            invalid = values == self.nan
            self.n_invalid += int(np.count_nonzero(invalid))
            values = values[~invalid]
            if not values.size:
                return
            lo = int(values.min())
        hi = int(values.max())
        self._cover(lo, hi)  # may coarsen: then the moments so far come from the exact bins
        if self.shift:
            self._moments(values, lo, hi)
        keys = values >> self.shift if self.shift else values - self.base
        if self.shift:
            keys -= self.base
        self.counts += np.bincount(keys, minlength=self.counts.size)

    def _cover(self, lo: int, hi: int) -> None:
        """Grow (and past `cap` bins, coarsen) the range until it holds [lo, hi]."""
        if self.counts.size:
            lo, hi = min(lo, self._lo), max(hi, self._hi)
        self._lo, self._hi = lo, hi
        while (hi >> self.shift) - (lo >> self.shift) + 1 > self.cap:
            self._coarsen()
        k_lo, k_hi = lo >> self.shift, hi >> self.shift
        if self.counts.size and k_lo >= self.base and k_hi < self.base + self.counts.size:
            return
        grown = np.zeros(k_hi - k_lo + 1, np.int64)
        if self.counts.size:
            grown[self.base - k_lo : self.base - k_lo + self.counts.size] = self.counts
        self.base, self.counts = k_lo, grown

    def _moments(self, values: np.ndarray, lo: int, hi: int) -> None:
        if self.vmin is None:  # bucketed before any value was counted: the reference from these
            self.ref = int(round(float(values[:4096].mean())))
        dev = values - self.ref
        self.dev_sum += int(dev.sum())
        dev = dev.astype(np.float64)
        # einsum, not `@`: BLAS dot spins up its thread pool for every call, which costs
        # milliseconds on a busy machine.
        self.dev_squares += float(np.einsum("i,i->", dev, dev))
        self.vmin = lo if self.vmin is None else min(self.vmin, lo)
        self.vmax = hi if self.vmax is None else max(self.vmax, hi)

    def _coarsen(self) -> None:
        if self.shift == 0:  # the moments of what was counted so far, before the bins merge
            keys, counts = self.buckets()
            if keys.size:
                weights = counts.astype(np.float64)
                self.ref = int(round(float((keys * weights).sum() / weights.sum())))
                dev = keys - self.ref
                self.dev_sum = int((dev.astype(object) * counts.astype(object)).sum())
                self.dev_squares = float((dev * dev * weights).sum())
                self.vmin, self.vmax = int(keys[0]), int(keys[-1])
        self.shift += 1
        if self.counts.size:
            new_base = self.base >> 1
            start = self.base - 2 * new_base  # 0 or 1: where the old bins sit in the new pairs
            padded = np.zeros(start + self.counts.size + (start + self.counts.size) % 2, np.int64)
            padded[start : start + self.counts.size] = self.counts
            self.base, self.counts = new_base, padded.reshape(-1, 2).sum(axis=1)

    @property
    def exact(self) -> bool:
        return self.shift == 0

    @property
    def n_valid(self) -> int:
        return int(self.counts.sum())

    @property
    def total_valid(self) -> int:
        """Sum of the valid values: exact once bucketed, else modulo 2**16 (what a checksum needs)."""
        return self.ref * self.n_valid + self.dev_sum if self.shift else sum_mod16(*self.buckets())

    def buckets(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted keys, counts) of the non-empty bins."""
        idx = np.flatnonzero(self.counts)
        return idx.astype(np.int64) + self.base, self.counts[idx]

    def histogram(self) -> Histogram:
        """The exact histogram of the valid values (only while `exact`)."""
        return Histogram(*self.buckets())


@dataclass
class RankSearch:
    """Finds the values at given ranks of a bucketed signal, one pass over the data per step.

    Every pending rank sits in an aligned interval of values [key << bits, (key + 1) << bits)
    with `below` valid samples under it; all intervals share one power-of-two width. A pass
    counts each interval's values in 2**sub sub-buckets (one `searchsorted` and one
    `bincount` over the window, whatever the number of ranks); the rank's sub-bucket becomes
    its next interval, until the width is 1."""

    bits: int
    sub: int
    pending: dict[int, tuple[int, int]]  # rank -> (interval key, valid samples below it)
    vmin: int = 0  # valid values lie in [vmin, vmax]
    vmax: int = 0
    nan: int | None = None
    found: dict[int, int] = field(default_factory=dict)
    _keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _lut: np.ndarray | None = None  # key - _lut_base -> slot (-1: no pending interval), when small
    _lut_base: int = 0

    @classmethod
    def from_buckets(cls, counter: RangeCounter, ranks: list[int], budget: int) -> "RankSearch":
        """The search for `ranks` of a bucketed counter, counting at most about `budget` bins."""
        keys, counts = counter.buckets()
        cum = np.cumsum(counts)
        idx = np.searchsorted(cum, np.asarray(ranks), side="right")
        pending = {rank: (int(keys[i]), int(cum[i - 1]) if i else 0) for rank, i in zip(ranks, idx)}
        n_keys = len({key for key, _ in pending.values()})
        sub = max(1, (max(2, budget // n_keys)).bit_length() - 1)
        search = cls(counter.shift, sub, pending, int(counter.vmin), int(counter.vmax), counter.nan)
        search._start_pass()
        return search

    def _start_pass(self) -> None:
        if self.bits == 0:
            self.found.update({rank: key for rank, (key, _) in self.pending.items()})
            self.pending = {}
            return
        self.sub = min(self.sub, self.bits)
        self._keys = np.unique(np.asarray([key for key, _ in self.pending.values()], np.int64))
        self._counts = np.zeros(self._keys.size << self.sub, np.int64)
        # A lookup table over the keys the values can take is one gather per sample; past a
        # few MB, a binary search over the few interval keys instead.
        # It starts at the key of the NaN value too (the format's minimum), which samples hold
        # but which is never counted: no sample falls outside the table.
        self._lut_base = min(self.vmin, self.nan if self.nan is not None else self.vmin) >> self.bits
        span = (self.vmax >> self.bits) - self._lut_base + 1
        self._lut = None
        if span <= 1 << 22:
            self._lut = np.full(span, -1, np.int32)
            self._lut[self._keys - self._lut_base] = np.arange(self._keys.size, dtype=np.int32)

    @property
    def done(self) -> bool:
        return not self.pending

    def add(self, values: np.ndarray) -> None:
        """Count a window's samples (NaN codes included: they are never counted)."""
        nan = self.nan
        if not values.size or self.done:
            return
        keys = values >> self.bits
        if self._lut is not None:
            keys -= self._lut_base
            slot = self._lut[keys]
            match = slot >= 0
        else:
            slot = np.minimum(np.searchsorted(self._keys, keys), self._keys.size - 1)
            match = self._keys[slot] == keys
        if nan is not None and self._keys[0] == nan >> self.bits:  # NaN shares a bucket with valid values
            match &= values != nan
        fine = (values[match] >> (self.bits - self.sub)) & ((1 << self.sub) - 1)
        self._counts += np.bincount((slot[match] << self.sub) + fine, minlength=self._counts.size)

    def finish_pass(self) -> None:
        width = 1 << self.sub
        for rank, (key, below) in list(self.pending.items()):
            slot = int(np.searchsorted(self._keys, key))
            cum = below + np.cumsum(self._counts[slot * width : (slot + 1) * width])
            i = int(np.searchsorted(cum, rank, side="right"))
            self.pending[rank] = ((key << self.sub) + i, int(cum[i - 1]) if i else below)
        self.bits -= self.sub
        self._start_pass()


def bucketed_distribution(counter: RangeCounter, found: dict[int, int], extra_invalid: int,
                          stored_sum: int) -> Distribution:
    """The distribution of a bucketed counter whose needed ranks were found by `RankSearch`."""
    n_valid = counter.n_valid
    mean_dev = counter.dev_sum / n_valid
    var = max(0.0, counter.dev_squares / n_valid - mean_dev * mean_dev)
    return Distribution(n_valid + counter.n_invalid + extra_invalid, counter.n_invalid + extra_invalid,
                        counter.ref + mean_dev, var, int(counter.vmin), int(counter.vmax), dict(found), stored_sum)
