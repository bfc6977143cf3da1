"""Fixtures for the core benchmarks; makes ``bench/`` run on its own.

Run from the repository root (the project's pytest ``testpaths`` holds only
``tests/``, so the benchmarks run only when named)::

    python -m pytest bench --benchmark-only

Everything runs on one thread (``cv2.setNumThreads(1)``; the microexpr core
is single-threaded). Inputs are fixed-seed face images: flow pairs from
:mod:`microexpr.flowtruth`, the 640 x 480 frame, landmarks and region maps
from ``bench/core_frame.py``. After the pytest-benchmark tables, a summary
prints each benchmark's median as a ratio to the OpenCV (or numpy/scipy)
baselines of its group, measured in the same session.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

# So the benchmarks import ``core_frame`` whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Per group, the labels other results are divided by in the summary.
BASELINES = ("DIS medium", "DIS ultrafast", "OpenCV warpAffine", "numpy+scipy")

_medians_key = pytest.StashKey[dict]()


def pytest_configure(config: pytest.Config) -> None:
    import cv2

    cv2.setNumThreads(1)
    config.stash[_medians_key] = {}


@lru_cache(maxsize=None)
def _flow_pair(size: int):
    from microexpr.flowtruth import make_flow_pair

    return make_flow_pair(size, seed=0, noise=1.5)


@pytest.fixture(scope="session")
def flow_pairs():
    """``size -> FlowPair``: the seed-0 face crop pair of ``size`` px with known flow."""
    return _flow_pair


@pytest.fixture(scope="session")
def landmark_traces():
    """40 landmark-like traces of 30 s at about 30 Hz.

    Returns
    -------
    t : float64 (N,) strictly increasing, s, with +-3 ms timestamp jitter
    x : float64 (40, N), px: slow drift, a 4 Hz tone and noise
    """
    n_channels, duration, rate = 40, 30.0, 30.0
    rng = np.random.default_rng(0)
    n = int(duration * rate)
    t = np.arange(n) / rate + rng.uniform(-0.003, 0.003, n)
    drift = np.cumsum(rng.normal(0.0, 0.05, (n_channels, n)), axis=1)
    tone = 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi, (n_channels, 1)))
    x = drift + tone + rng.normal(0.0, 0.2, (n_channels, n))
    return t, np.ascontiguousarray(x)


@pytest.fixture
def compare(benchmark, request):
    """Benchmark one call under a group and label; keep its median for the summary.

    Use as ``compare(group, label, function, *args)``; returns the
    function's result.
    """
    medians = request.config.stash[_medians_key]

    def run(group: str, label: str, function, *args, **kwargs):
        benchmark.group = group
        benchmark.extra_info["label"] = label
        result = benchmark(function, *args, **kwargs)
        if benchmark.stats:
            medians.setdefault(group, {})[label] = benchmark.stats["median"]
        return result

    return run


def _format_seconds(seconds: float) -> str:
    return f"{seconds * 1e6:9.2f} us" if seconds < 1e-4 else f"{seconds * 1e3:9.3f} ms"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    medians = config.stash.get(_medians_key, {})
    if not medians:
        return
    write = terminalreporter.write_line
    terminalreporter.section("median ratios to the baselines of each group (same session)")
    for group, by_label in medians.items():
        baselines = [b for b in BASELINES if b in by_label]
        write(group)
        for label, median in by_label.items():
            ratios = "  ".join(f"{median / by_label[b]:6.2f}x {b}" for b in baselines)
            write(f"  {label:<22}{_format_seconds(median)}  {ratios}")
