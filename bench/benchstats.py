"""Figures the benchmarks print (imported by the scripts beside it: `python bench/NAME.py`)."""

from __future__ import annotations


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]
