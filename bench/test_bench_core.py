"""pytest-benchmark timings of every compiled kernel, beside OpenCV baselines.

Sizes 128, 192 and 256 px for everything that has a size; one thread.
Groups (one pytest-benchmark table each):

- ``flow <size> px``: ``dense_flow`` presets fast / balanced / accurate,
  OpenCV DIS ultrafast / fast / medium and Farneback on the seed-0 face
  pair with known flow;
- ``warp 640x480 -> <size> px``: ``warp_affine`` and ``cv2.warpAffine``
  (bilinear, replicated border) from the 640 x 480 face frame to a crop;
- ``estimate_similarity 5 points``;
- ``region_stats 12 regions <size> px`` (nose bridge as reference);
- ``Spectra.push 40 channels`` (one sample per push at 30 Hz);
- ``spectrogram 40 ch x 30 s``: ``spectrogram`` and the same computation
  with numpy interpolation + ``scipy.signal.spectrogram``.

Run ``python -m pytest bench --benchmark-only``. No timing is asserted;
the asserts only check that each call computed what it should.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark", reason="the benchmarks need pytest-benchmark")
pytest.importorskip("microexpr._core", reason="the compiled extension microexpr._core is not built")

import cv2  # noqa: E402
import scipy.signal  # noqa: E402

import microexpr  # noqa: E402

import core_frame  # noqa: E402  (bench/, put on sys.path by bench/conftest.py)

SIZES = (128, 192, 256)  # crop side, px
SPECTROGRAM_RATE = 30.0  # Hz
SPECTROGRAM_WINDOW = 2.0  # s
SPECTROGRAM_HOP = 0.5  # s


def _dis(preset: int):
    dis = cv2.DISOpticalFlow_create(preset)
    # None as the flow: a passed array would be used as the initial estimate.
    return lambda prev, nxt: dis.calc(prev, nxt, None)


def _farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)


OPENCV_FLOW = {
    "DIS ultrafast": lambda: _dis(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
    "DIS fast": lambda: _dis(cv2.DISOPTICAL_FLOW_PRESET_FAST),
    "DIS medium": lambda: _dis(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
    "Farneback": lambda: _farneback,
}


@pytest.mark.parametrize("preset", microexpr.FLOW_PRESETS)
@pytest.mark.parametrize("size", SIZES)
def test_dense_flow(compare, flow_pairs, size: int, preset: str) -> None:
    pair = flow_pairs(size)
    flow = compare(f"flow {size} px", f"microexpr {preset}",
                   microexpr.dense_flow, pair.prev, pair.next, preset=preset)
    assert flow.shape == (size, size, 2) and flow.dtype == np.float32


@pytest.mark.parametrize("method", list(OPENCV_FLOW))
@pytest.mark.parametrize("size", SIZES)
def test_opencv_flow(compare, flow_pairs, size: int, method: str) -> None:
    pair = flow_pairs(size)
    flow = compare(f"flow {size} px", method, OPENCV_FLOW[method](), pair.prev, pair.next)
    assert flow.shape == (size, size, 2)


def _crop_transform(size: int) -> np.ndarray:
    return microexpr.estimate_similarity(core_frame.face_points(), core_frame.canonical_points(size))


@pytest.mark.parametrize("size", SIZES)
def test_warp_affine(compare, size: int) -> None:
    frame, M = core_frame.face_frame(), _crop_transform(size)
    crop = compare(f"warp 640x480 -> {size} px", "microexpr warp_affine",
                   microexpr.warp_affine, frame, M, (size, size))
    assert crop.shape == (size, size) and crop.dtype == np.uint8


@pytest.mark.parametrize("size", SIZES)
def test_opencv_warp_affine(compare, size: int) -> None:
    frame, M = core_frame.face_frame(), _crop_transform(size)
    crop = compare(f"warp 640x480 -> {size} px", "OpenCV warpAffine", cv2.warpAffine, frame, M,
                   (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert crop.shape == (size, size)


def test_estimate_similarity(compare) -> None:
    src, dst = core_frame.face_points(), core_frame.canonical_points()
    M = compare("estimate_similarity 5 points", "microexpr", microexpr.estimate_similarity, src, dst)
    assert M.shape == (2, 3)


@pytest.mark.parametrize("size", SIZES)
def test_region_stats(compare, flow_pairs, size: int) -> None:
    flow = flow_pairs(size).flow
    labels = core_frame.face_regions(size)
    n_regions = len(core_frame.REGION_NAMES)
    stats = compare(f"region_stats {n_regions} regions {size} px", "microexpr",
                    microexpr.region_stats, flow, labels, n_regions=n_regions,
                    reference=core_frame.NOSE_REGION)
    assert np.all(stats.count > 0)


def test_spectra_push(compare) -> None:
    n_channels = core_frame.N_SPECTRA_CHANNELS
    spectra = microexpr.Spectra(n_channels, rate=core_frame.FPS, window=core_frame.SPECTRA_WINDOW,
                                bands=core_frame.SPECTRA_BANDS)
    values = np.random.default_rng(0).normal(0.0, 1.0, n_channels)
    frame_index = [0]

    def push_next_frame() -> np.ndarray:
        frame_index[0] += 1
        return spectra.push(frame_index[0] / core_frame.FPS, values)

    energies = compare(f"Spectra.push {n_channels} channels", "microexpr", push_next_frame)
    assert energies.shape == (n_channels, len(core_frame.SPECTRA_BANDS))


def test_spectrogram(compare, landmark_traces) -> None:
    t, x = landmark_traces
    times, freqs, power = compare("spectrogram 40 ch x 30 s", "microexpr", microexpr.spectrogram, t, x,
                                  rate=SPECTROGRAM_RATE, window=SPECTROGRAM_WINDOW,
                                  hop=SPECTROGRAM_HOP)
    assert power.shape == (x.shape[0], times.size, freqs.size)


def _numpy_scipy_spectrogram(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The same spectrogram: linear resampling in numpy, then scipy.signal."""
    grid = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * SPECTROGRAM_RATE)) + 1) / SPECTROGRAM_RATE
    left = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, t.size - 2)
    weight = (grid - t[left]) / (t[left + 1] - t[left])
    resampled = x[:, left] * (1.0 - weight) + x[:, left + 1] * weight
    segment = round(SPECTROGRAM_WINDOW * SPECTROGRAM_RATE)
    hop = round(SPECTROGRAM_HOP * SPECTROGRAM_RATE)
    _, _, power = scipy.signal.spectrogram(resampled, fs=SPECTROGRAM_RATE, window="hann",
                                           nperseg=segment, noverlap=segment - hop,
                                           detrend="constant", scaling="spectrum")
    return np.moveaxis(power, -1, 1)


def test_numpy_scipy_spectrogram(compare, landmark_traces) -> None:
    t, x = landmark_traces
    power = compare("spectrogram 40 ch x 30 s", "numpy+scipy", _numpy_scipy_spectrogram, t, x)
    _, _, expected = microexpr.spectrogram(t, x, rate=SPECTROGRAM_RATE, window=SPECTROGRAM_WINDOW,
                                           hop=SPECTROGRAM_HOP)
    assert power.shape == expected.shape
    np.testing.assert_allclose(power, expected, rtol=1e-6, atol=1e-12)
