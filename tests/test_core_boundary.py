"""The boundary between Python and the compiled core.

Wrong dtypes raise TypeError naming what was expected and what came; wrong
shapes, layouts, sizes and values raise ParameterError (a ValueError) with a
precise message; nothing is copied silently; ``out=`` is written in place;
garbage never crashes the interpreter; results do not depend on threads or
on earlier calls; and the GIL is released while the kernels run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import microexpr as me
from microexpr.errors import ParameterError
from microexpr.flowtruth import make_flow_pair

REPO = Path(__file__).resolve().parents[1]
U8 = np.zeros((16, 20), np.uint8)
F32 = np.zeros((16, 20), np.float32)
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def flow_and_labels(h: int = 6, w: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(h, w, 2)).astype(np.float32), rng.integers(-1, 3, (h, w)).astype(np.int32)


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a crash there cannot take the test session down)."""
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: me.dense_flow(U8.astype(np.float64), U8.astype(np.float64)),
         "prev: expected uint8 or float32 array of shape (H, W), got float64 array of shape (16, 20)"),
        (lambda: me.dense_flow(U8, F32),
         "next: expected uint8 or float32 array of shape (H, W), got float32 array of shape (16, 20)"),
        (lambda: me.dense_flow(U8, U8, out=np.zeros((16, 20, 2))),
         "out: expected float32 array of shape (H, W, 2), got float64 array of shape (16, 20, 2)"),
        (lambda: me.warp_affine(U8.astype(np.int16), IDENTITY, (4, 4)),
         "image: expected uint8 or float32 array of shape (H, W), got int16 array of shape (16, 20)"),
        (lambda: me.warp_affine(U8, IDENTITY.astype(np.float32), (4, 4)),
         "M: expected float64 array of shape (2, 3), got float32 array of shape (2, 3)"),
        (lambda: me.estimate_similarity(np.zeros((3, 2), np.float32), np.zeros((3, 2))),
         "src: expected float64 array of shape (N, 2), got float32 array of shape (3, 2)"),
        (lambda: me.region_stats(flow_and_labels()[0].astype(np.float64), flow_and_labels()[1], n_regions=3),
         "flow: expected float32 array of shape (H, W, 2), got float64 array of shape (6, 7, 2)"),
        (lambda: me.region_stats(flow_and_labels()[0], flow_and_labels()[1].astype(np.int64), n_regions=3),
         "labels: expected int32 array of shape (6, 7), got int64 array of shape (6, 7)"),
        (lambda: me.Spectra(2, rate=30.0, window=1.0, bands=[(3.0, 6.0)]).push(0.0, np.zeros(2, np.float32)),
         "values: expected float64 array of shape (2,), got float32 array of shape (2,)"),
        (lambda: me.spectrogram(np.arange(5, dtype=np.float32), np.zeros(5), rate=10.0, window=0.3, hop=0.1),
         "t: expected float64 array of shape (N,), got float32 array of shape (5,)"),
        (lambda: me.spectrogram(np.arange(5.0), np.zeros(5, np.int64), rate=10.0, window=0.3, hop=0.1),
         "x: expected float64 array of shape (5,), got int64 array of shape (5,)"),
    ],
)
def test_wrong_dtype_raises_type_error_naming_expected_and_got(call, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        call()


# ------------------------------------------------------- shapes and values
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: me.dense_flow(np.zeros((16, 20, 3), np.uint8), np.zeros((16, 20, 3), np.uint8)),
         "prev: expected uint8 or float32 array of shape (H, W), got uint8 array of shape (16, 20, 3)"),
        (lambda: me.dense_flow(U8, U8[:15]),
         "next: expected uint8 or float32 array of shape (H, W), got uint8 array of shape (15, 20)"),
        (lambda: me.dense_flow(U8[:7], U8[:7]), "images must be at least 8x8 pixels, got 20x7"),
        (lambda: me.dense_flow(np.zeros((16, 5), np.uint8), np.zeros((16, 5), np.uint8)),
         "images must be at least 8x8 pixels, got 5x16"),
        (lambda: me.dense_flow(F32, np.where(np.arange(320).reshape(16, 20) == 64, np.nan, F32).astype(np.float32)),
         "next: image holds a non-finite value at pixel 64"),
        (lambda: me.dense_flow(np.where(np.arange(320).reshape(16, 20) == 3, np.inf, F32).astype(np.float32), F32),
         "prev: image holds a non-finite value at pixel 3"),
        (lambda: me.dense_flow(U8, U8, out=np.zeros((16, 19, 2), np.float32)),
         "out: expected float32 array of shape (16, 20, 2), got float32 array of shape (16, 19, 2)"),
        (lambda: me.dense_flow(U8, U8, preset="fastest"),
         "unknown flow preset 'fastest': expected 'fast', 'balanced' or 'accurate'"),
        (lambda: me.dense_flow(U8, U8, levels=11), "levels must be in [0, 10], got 11"),
        (lambda: me.dense_flow(U8, U8, relaxation=2.0), "relaxation must be in (0, 2)"),
        (lambda: me.dense_flow(U8, U8, highpass=65), "highpass must be in [0, 64], got 65"),
        (lambda: me.warp_affine(U8, IDENTITY, (4, 4), border="reflect"),
         "border must be 'replicate' or 'constant', got 'reflect'"),
        (lambda: me.warp_affine(U8, IDENTITY, (0, 4)),
         "size must be (width, height) with each in [1, 16384], got (0, 4)"),
        (lambda: me.warp_affine(U8, np.zeros((2, 3)), (4, 4)), "affine matrix is singular or not finite"),
        (lambda: me.warp_affine(U8, np.full((2, 3), np.nan), (4, 4)), "affine matrix is not finite"),
        (lambda: me.warp_affine(np.zeros((0, 4), np.uint8), IDENTITY, (4, 4)), "image is empty"),
        (lambda: me.estimate_similarity(np.zeros((3, 2)), np.zeros((4, 2))),
         "src and dst must hold the same number of points, got 3 and 4"),
        (lambda: me.estimate_similarity(np.ones((3, 2)), np.zeros((3, 2))), "source points are all coincident"),
        (lambda: me.region_stats(flow_and_labels()[0], np.full((6, 7), 3, np.int32), n_regions=3),
         "label 3 at pixel 0 is not below n_regions=3"),
        (lambda: me.region_stats(np.where(np.arange(84).reshape(6, 7, 2) == 13, np.nan, 0).astype(np.float32),
                                 np.zeros((6, 7), np.int32), n_regions=3),
         "flow is not finite at pixel 6"),
        (lambda: me.region_stats(flow_and_labels()[0], np.zeros((6, 8), np.int32), n_regions=3),
         "labels: expected int32 array of shape (6, 7), got int32 array of shape (6, 8)"),
        (lambda: me.region_stats(*flow_and_labels(), n_regions=3, reference=3),
         "reference region 3 is not below n_regions=3"),
        (lambda: me.region_stats(*flow_and_labels(), n_regions=3, reference=-2),
         "reference must be a region index >= 0 or None, got -2"),
        (lambda: me.region_stats(*flow_and_labels(), n_regions=3, top_fraction=0.0), "top_fraction must be in (0, 1]"),
        (lambda: me.Spectra(2, rate=30.0, window=1.0, bands=[]), "at least one band is needed"),
        (lambda: me.Spectra(2, rate=30.0, window=1.0, bands=[(6.0, 3.0)]), "band 0 must satisfy 0 <= lo <= hi"),
        (lambda: me.Spectra(2, rate=30.0, window=1.0, bands=[(3.0, 6.0), (8.0, 16.0)]),
         "band 1 reaches 16.000000 Hz, above the Nyquist frequency 15.000000 Hz of rate 30.000000"),
        (lambda: me.Spectra(2, rate=30.0, window=0.05, bands=[(3.0, 6.0)]),
         "window * rate must cover at least 2 samples"),
        (lambda: me.Spectra(2, rate=30.0, window=1.0, bands=[(3.0, 6.0)]).push(0.0, np.zeros(3)),
         "values: expected float64 array of shape (2,), got float64 array of shape (3,)"),
        (lambda: me.spectrogram(np.array([0.0, 0.2, 0.1]), np.zeros(3), rate=10.0, window=0.3, hop=0.1),
         "times must increase strictly (sample 2)"),
        (lambda: me.spectrogram(np.arange(5.0), np.zeros(4), rate=10.0, window=0.3, hop=0.1),
         "x: expected float64 array of shape (5,), got float64 array of shape (4,)"),
        (lambda: me.spectrogram(np.arange(5.0), np.zeros(5), rate=10.0, window=0.3, hop=0.0),
         "hop must be a positive number of seconds"),
    ],
)
def test_invalid_values_raise_parameter_error_with_a_precise_message(call, message):
    with pytest.raises(ParameterError, match=re.escape(message)) as info:
        call()
    assert isinstance(info.value, ValueError)


def test_decreasing_timestamps_are_rejected_and_the_state_is_kept():
    spectra = me.Spectra(1, rate=30.0, window=1.0, bands=[(3.0, 6.0)])
    times = np.arange(0, 2, 1 / 30)
    for t in times:
        before = spectra.push(t, np.array([np.sin(2 * np.pi * 4 * t)]))
    for bad_t in (times[-1], times[-1] - 0.5):
        with pytest.raises(ParameterError, match=r"timestamps must increase: got .* s after .* s"):
            spectra.push(bad_t, np.array([100.0]))
    # The refused samples left no trace: the analysis goes on where it was.
    np.testing.assert_array_equal(spectra.energies(), before)


# ---------------------------------------------------------- no silent copy
@pytest.mark.parametrize(
    "call",
    [
        lambda: me.dense_flow(np.asfortranarray(np.zeros((16, 20), np.uint8)), np.zeros((16, 20), np.uint8)),
        lambda: me.dense_flow(np.zeros((16, 40), np.uint8)[:, ::2], np.zeros((16, 20), np.uint8)),
        lambda: me.dense_flow(U8, U8, out=np.zeros((16, 40, 2), np.float32)[:, ::2]),
        lambda: me.warp_affine(np.asfortranarray(np.zeros((16, 20), np.float32)), IDENTITY, (4, 4)),
        lambda: me.warp_affine(U8, np.asfortranarray(IDENTITY), (4, 4)),
        lambda: me.estimate_similarity(np.zeros((3, 4))[:, ::2], np.zeros((3, 2))),
        lambda: me.region_stats(np.zeros((6, 14, 2), np.float32)[:, ::2], np.zeros((6, 7), np.int32), n_regions=1),
        lambda: me.region_stats(np.zeros((6, 7, 2), np.float32), np.asfortranarray(np.zeros((6, 7), np.int32)),
                                n_regions=1),
        lambda: me.Spectra(2, rate=30.0, window=1.0, bands=[(3.0, 6.0)]).push(0.0, np.zeros(4)[::2]),
        lambda: me.spectrogram(np.arange(10.0)[::2], np.zeros(5), rate=10.0, window=0.3, hop=0.1),
        lambda: me.spectrogram(np.arange(5.0), np.asfortranarray(np.zeros((2, 5))), rate=10.0, window=0.3, hop=0.1),
    ],
)
def test_non_contiguous_arrays_are_rejected_not_copied(call):
    with pytest.raises(ParameterError, match="C-contiguous"):
        call()


def test_out_is_written_in_place_and_returned():
    pair = make_flow_pair(32, seed=3)
    fresh = me.dense_flow(pair.prev, pair.next)
    out = np.full((32, 32, 2), np.nan, np.float32)
    assert me.dense_flow(pair.prev, pair.next, out=out) is out
    np.testing.assert_array_equal(out, fresh)
    # A C-contiguous view into a larger buffer is written through, not copied.
    buffer = np.zeros((3, 32, 32, 2), np.float32)
    result = me.dense_flow(pair.prev, pair.next, out=buffer[1])
    assert np.shares_memory(result, buffer)
    np.testing.assert_array_equal(buffer[1], fresh)
    assert not buffer[0].any() and not buffer[2].any()


def test_contiguous_views_are_accepted_without_a_copy():
    pair = make_flow_pair(40, seed=4)
    rows = slice(4, 36)  # a row slice of a C-ordered image is itself C-contiguous
    crop_prev, crop_next = pair.prev[rows], pair.next[rows]
    assert crop_prev.flags.c_contiguous and not crop_prev.flags.owndata
    np.testing.assert_array_equal(
        me.dense_flow(crop_prev, crop_next), me.dense_flow(crop_prev.copy(), crop_next.copy())
    )


# ----------------------------------------------------- tiny and huge inputs
def test_tiny_valid_inputs_work():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (8, 8), dtype=np.uint8), rng.integers(0, 256, (8, 8), dtype=np.uint8)
    for preset in me.FLOW_PRESETS:
        flow = me.dense_flow(a, b, preset=preset)
        assert flow.shape == (8, 8, 2) and np.isfinite(flow).all()
    assert me.warp_affine(np.full((1, 1), 7, np.uint8), IDENTITY, (1, 1))[0, 0] == 7
    assert me.warp_affine(np.full((1, 1), 7, np.float32), IDENTITY * 3, (5, 2)).tolist() == [[7.0] * 5] * 2
    np.testing.assert_allclose(me.estimate_similarity(np.array([[0.0, 0.0], [1.0, 0.0]]),
                                                      np.array([[0.0, 0.0], [0.0, 1.0]])),
                               [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]], atol=1e-15)
    stats = me.region_stats(np.array([[[3.0, 4.0]]], np.float32), np.zeros((1, 1), np.int32), n_regions=1)
    np.testing.assert_allclose(stats.table[0, :5], [1, 5, 3, 4, 5])
    spectra = me.Spectra(1, rate=2.0, window=1.0, bands=[(0.0, 0.0)])  # window * rate == 2, a 0 Hz band
    assert spectra.push(0.0, np.array([1.0])).shape == (1, 1)
    times, freqs, power = me.spectrogram(np.array([0.0]), np.array([1.0]), rate=10.0, window=0.2, hop=0.1)
    assert times.shape == (0,) and freqs.shape == (2,) and power.shape == (0, 2)
    times, freqs, power = me.spectrogram(np.array([0.0, 0.1]), np.array([1.0, -1.0]), rate=10.0, window=0.2, hop=0.1,
                                         detrend=False)
    np.testing.assert_allclose(times, [0.1])
    np.testing.assert_allclose(power, [[1.0, 1.0]], atol=1e-12)  # Hann [0, 1] keeps only -1


def test_huge_valid_inputs_work():
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (768, 1024), dtype=np.uint8)
    flow = me.dense_flow(big, np.roll(big, 1, axis=1), preset="fast")
    assert flow.shape == (768, 1024, 2) and np.isfinite(flow).all()
    long_strip = rng.integers(0, 256, (8, 5000), dtype=np.uint8)
    assert np.isfinite(me.dense_flow(long_strip, long_strip)).all()
    wide = me.warp_affine(np.arange(256, dtype=np.uint8)[None, :].copy(), IDENTITY, (16384, 1))
    assert wide.shape == (1, 16384) and wide[0, 300] == 255
    tall = me.warp_affine(np.ones((4, 4), np.float32), IDENTITY, (1, 16384))
    assert tall.shape == (16384, 1) and (tall == 1).all()
    stats = me.region_stats(np.ones((50, 50, 2), np.float32), np.zeros((50, 50), np.int32), n_regions=5000,
                            direction_bins=360)
    assert stats.table.shape == (5000, 7) and np.isnan(stats.table[1:, 1:]).all()
    spectra = me.Spectra(300, rate=200.0, window=4.0, bands=[(0.0, 100.0)])
    assert spectra.probe_frequencies.size == 401
    assert np.isfinite(spectra.push(0.0, rng.normal(size=300))).all()
    t = np.arange(20000) / 200.0
    times, freqs, power = me.spectrogram(t, rng.normal(size=(2, 20000)), rate=200.0, window=1.0, hop=0.5)
    assert power.shape == (2, len(times), 101) and np.isfinite(power).all()


# ------------------------------------------------------------------- fuzz
FUZZ = """
    import numpy as np
    from hypothesis import HealthCheck, given, settings, strategies as st
    from hypothesis.extra import numpy as hnp
    import microexpr as me

    dtypes = st.sampled_from(["uint8", "int8", "int32", "int64", "float32", "float64", ">f4", "bool", "complex64"])
    arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12))
    views = arrays.map(lambda a: a.T) | arrays.map(lambda a: a[::2] if a.ndim else a)
    garbage = (arrays | views | st.none() | st.integers(-3, 300) | st.floats() | st.text(max_size=3)
               | st.lists(st.floats(), max_size=4))
    # The right dtypes and layouts with garbage values (NaN, inf, extremes, empty) reach the kernels.
    images = hnp.arrays(st.sampled_from([np.uint8, np.float32]),
                        hnp.array_shapes(min_dims=2, max_dims=2, min_side=6, max_side=24))
    flows = hnp.arrays(np.float32,
                       hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=8).map(lambda s: s + (2,)))
    signals = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=40))
    matrices = hnp.arrays(np.float64, (2, 3))
    points = hnp.arrays(np.float64, st.tuples(st.integers(0, 6), st.just(2)))

    def dense_flow(a, b, c):
        return me.dense_flow(a, b, preset=c)

    def warp(a, b, c):
        return me.warp_affine(a, b, (c, c) if isinstance(c, int) else c, border="constant", fill=2.0)

    def fitted_labels(a, b):
        # Garbage values of b as int32 labels of a's shape, so they reach the kernel.
        shape = np.shape(a)[:2]
        if not isinstance(b, np.ndarray) or b.size == 0 or np.iscomplexobj(b) or len(shape) < 2:
            return b
        with np.errstate(all="ignore"):
            return np.resize(np.nan_to_num(b.astype(np.float64)), shape).clip(-5, 50).astype(np.int32)

    def regions(a, b, c):
        return me.region_stats(a, fitted_labels(a, b), n_regions=c)

    def spectra(a, b, c):
        channels = a.size if isinstance(a, np.ndarray) and a.ndim == 1 and a.size else 1
        s = me.Spectra(channels, rate=c, window=1.0, bands=[(0.0, min(abs(c) / 2, 50.0))])
        s.push(0.0, a)
        return s.push(0.1, b)

    def spectrogram(a, b, c):
        t = a
        if isinstance(b, np.ndarray) and b.ndim and not (isinstance(a, np.ndarray) and a.shape == b.shape[-1:]):
            t = np.arange(b.shape[-1], dtype=np.float64) / 10.0  # valid times, so x reaches the kernel
        if isinstance(b, np.ndarray) and b.ndim == 2 and b.shape[0] == 0:
            return None  # known crash: see test_spectrogram_with_zero_channels_does_not_crash
        return me.spectrogram(t, b, rate=c, window=0.5, hop=0.1)

    def similarity(a, b, c):
        return me.estimate_similarity(a, b)

    def fuzz(kernel, a, b, c):
        @settings(max_examples=150, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(a=a, b=b, c=c)
        def call(a, b, c):
            try:
                kernel(a, b, c)
            except Exception:
                pass  # any Python exception is fine here; only a crash is not

        call()
        print("fuzzed", kernel.__name__, flush=True)

    # Rates stay below 1e3 Hz: far larger ones hang push (see test_a_huge_rate_is_rejected_not_looped_on).
    rates = st.floats(-10.0, 500.0) | st.sampled_from([0.0, float("nan"), float("inf"), -float("inf")])
    fuzz(dense_flow, images | garbage, images | garbage, st.sampled_from(me.FLOW_PRESETS) | garbage)
    fuzz(warp, images | garbage, matrices | garbage, st.integers(-2, 64) | garbage)
    fuzz(regions, flows | garbage, arrays | garbage, st.integers(-2, 8) | garbage)
    fuzz(spectra, signals | garbage, signals | garbage, rates)
    fuzz(spectrogram, signals | garbage, signals | garbage, rates)
    fuzz(similarity, points | garbage, points | garbage, st.none())
    print("fuzz finished")
"""


def test_garbage_inputs_never_crash_the_interpreter():
    result = run_python(FUZZ, timeout=240)
    assert result.returncode == 0, f"interpreter died ({result.returncode}):\n{result.stderr[-3000:]}"
    assert "fuzz finished" in result.stdout


# ---------------------------------------------------- threads and repeats
def test_results_do_not_depend_on_threads_or_earlier_calls():
    pairs = [make_flow_pair(size, seed=seed) for seed, size in enumerate([48, 64, 40, 64, 56, 48])]
    jobs = [(pair, preset) for pair in pairs for preset in me.FLOW_PRESETS]

    def flow(job):
        pair, preset = job
        return me.dense_flow(pair.prev, pair.next, preset=preset)

    sequential = [flow(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(flow, jobs))
    # Reversed order: each call follows a call of another size and preset.
    repeated = [flow(job) for job in reversed(jobs)][::-1]
    for a, b, c in zip(sequential, concurrent, repeated):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_other_kernels_agree_across_threads():
    rng = np.random.default_rng(7)
    flows = [rng.normal(size=(40, 50, 2)).astype(np.float32) for _ in range(6)]
    labels = rng.integers(-1, 5, (40, 50)).astype(np.int32)
    images = [rng.random((60, 70)).astype(np.float32) for _ in range(6)]
    t = np.cumsum(rng.uniform(0.02, 0.05, 400))
    signals = [rng.normal(size=(3, 400)) for _ in range(6)]
    m = np.array([[1.1, 0.2, -3.0], [-0.2, 1.1, 4.0]])

    def work(i):
        return (
            me.region_stats(flows[i], labels, n_regions=5, reference=1).table,
            me.warp_affine(images[i], m, (64, 64)),
            me.spectrogram(t, signals[i], rate=30.0, window=1.0, hop=0.25)[2],
        )

    sequential = [work(i) for i in range(6)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(work, range(6)))
    for a, b in zip(sequential, concurrent):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_dense_flow_releases_the_gil():
    """A Python thread counts while a long dense_flow runs in this one.

    The switch interval is raised so that, were the GIL held through the
    call, the counting thread could not run at all until it returned: the
    count it makes during the call is then 0.
    """
    rng = np.random.default_rng(8)
    prev = rng.integers(0, 256, (256, 256), dtype=np.uint8)
    nxt = np.roll(prev, 1, axis=1)
    me.dense_flow(prev, nxt, preset="accurate", sweeps=40)  # warm the per-thread engine
    count = [0]
    stop = [False]

    def counter():
        while not stop[0]:
            count[0] += 1

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    thread = threading.Thread(target=counter)
    try:
        thread.start()
        progress = []
        for _ in range(3):
            before = count[0]
            me.dense_flow(prev, nxt, preset="accurate", sweeps=40)
            progress.append(count[0] - before)
    finally:
        stop[0] = True
        sys.setswitchinterval(old_interval)
        thread.join()
    assert max(progress) > 1000, f"the counting thread made {progress} steps during dense_flow"


# ------------------------------------------- regressions (bugs found by these tests)
def test_spectrogram_with_zero_channels_is_an_error_not_a_crash():
    """Regression: x of shape (0, N) read the first result of an empty list (SIGSEGV)."""
    result = run_python(
        """
        import numpy as np, microexpr as me
        t = np.arange(10) / 10.0
        try:
            me.spectrogram(t, np.zeros((0, 10)), rate=10.0, window=0.5, hop=0.1)
        except me.ParameterError as error:
            assert "channel" in str(error)
        else:
            raise AssertionError("no error")
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("fill", [float("nan"), float("inf")])
def test_non_finite_fill_for_uint8_is_rejected(fill):
    with pytest.raises(ParameterError):
        me.warp_affine(U8, np.array([[1.0, 0.0, 50.0], [0.0, 1.0, 0.0]]), (4, 4), border="constant", fill=fill)


@pytest.mark.parametrize(
    "call",
    [
        lambda: me.dense_flow(U8, U8, levels=2.5),
        lambda: me.dense_flow(U8, U8, smoothness="0.1"),
        lambda: me.region_stats(*flow_and_labels(), n_regions=3, reference=0.5),
        lambda: me.Spectra(1, rate=30.0, window=1.0, bands=[(1.0, 2.0, 3.0)]),
    ],
)
def test_non_integer_or_malformed_options_raise_type_or_parameter_error(call):
    with pytest.raises((TypeError, ParameterError)):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: me.dense_flow(U8.tolist(), U8),
        lambda: me.spectrogram(np.arange(5.0), [0.0] * 5, rate=10.0, window=0.3, hop=0.1),
    ],
)
def test_non_array_inputs_raise_type_error(call):
    with pytest.raises(TypeError):
        call()


def test_finite_extreme_float_images_give_a_finite_flow():
    image = np.full((16, 16), 3e38, np.float32)
    image[0, 0] = -3e38
    assert np.isfinite(me.dense_flow(image, image)).all()


def test_a_huge_rate_is_rejected_not_looped_on():
    result = run_python(
        """
        import numpy as np, microexpr as me
        try:
            spectra = me.Spectra(1, rate=1e300, window=1.0, bands=[(0.0, 50.0)])
            spectra.push(0.0, np.zeros(1))
            spectra.push(0.1, np.zeros(1))
        except ValueError:
            pass
        """,
        timeout=5,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_huge_window_is_rejected_not_left_without_probes():
    """Regression: floor((hi - lo) * window) overflowed int and left the band with no probe."""
    with pytest.raises(ParameterError):
        me.Spectra(1, rate=30.0, window=1e9, bands=[(3.0, 6.0)])
    with pytest.raises(ParameterError, match="4096"):
        me.Spectra(1, rate=30.0, window=10000.0, bands=[(0.5, 6.0)])
