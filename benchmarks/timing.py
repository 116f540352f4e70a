"""Paired timing for the benchmarks: alternating batches, medians, and the median ratio."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple


class Comparison(NamedTuple):
    """Two routes timed in paired batches: median seconds per call of each, and the median of
    the pairs' ratios (the anchor's time over ours: above 1, ours is faster)."""

    ours: float
    theirs: float
    ratio: float


class BenchmarkFailed(Exception):
    """A benchmark's own check failed: its routes disagree, or a command did not do its work."""


def _batch_size(function: Callable[[], object]) -> int:
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            function()
        if time.perf_counter() - start > 0.02:
            return batch
        batch *= 2


def compare(ours: Callable[[], object], theirs: Callable[[], object], seconds: float) -> Comparison:
    """Median seconds per call of each, and the median of their ratios.

    Batches of the two alternate, so a change in the machine's speed during the run (a
    neighbour's load, frequency scaling) touches both sides alike.
    """
    batches = (_batch_size(ours), _batch_size(theirs))
    mine: list[float] = []
    other: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(mine) < 7:
        for function, batch, samples in ((ours, batches[0], mine), (theirs, batches[1], other)):
            start = time.perf_counter()
            for _ in range(batch):
                function()
            samples.append((time.perf_counter() - start) / batch)
    ratios = [b / a for a, b in zip(mine, other, strict=True)]
    return Comparison(statistics.median(mine), statistics.median(other), statistics.median(ratios))


def settle() -> None:
    """Keep the objects built so far out of every later collection, for both routes alike."""
    gc.collect()
    gc.freeze()


def machine() -> str:
    """The line every benchmark prints first: what the figures were measured on."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"machine: {platform.machine()}, {os.cpu_count()} cores, {python}"
