"""Accuracy of the compiled kernels against exactly known answers.

Flow is scored on face crops with a known displacement field
(:func:`microexpr.flowtruth.make_flow_pair`, rendered from a real photo) with
an error budget per preset, as OpenCV tests its DIS flow. The other kernels
are checked on hand-made inputs whose answer is known in closed form.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest

import microexpr as me
from microexpr.flowtruth import end_point_error, face_photo, make_flow_pair

SEEDS = (0, 1, 2, 3)
SIZE = 128
# Mean end-point error (px) on the face over SEEDS at 128 px, about 15 % above
# what this build measured: fast 0.328, balanced 0.201, accurate 0.196.
EPE_BUDGET = {"fast": 0.38, "balanced": 0.23, "accurate": 0.23}
# A 3 % brightness change may cost this much mean EPE (measured: -0.001 to 0 px;
# both frames are standardised before matching).
BRIGHTNESS_MARGIN = 0.02


@lru_cache(maxsize=None)
def pair(seed: int, brightness: float = 0.0, size: int = SIZE):
    return make_flow_pair(size, seed=seed, brightness=brightness)


def mean_epe(preset: str, brightness: float = 0.0, size: int = SIZE) -> float:
    errors = []
    for seed in SEEDS:
        p = pair(seed, brightness, size)
        errors.append(end_point_error(me.dense_flow(p.prev, p.next, preset=preset), p.flow, p.mask))
    return float(np.mean(errors))


# ------------------------------------------------------------------- flow
@pytest.mark.parametrize("preset", me.FLOW_PRESETS)
def test_flow_error_is_within_the_preset_budget(preset):
    epe = mean_epe(preset)
    assert epe < EPE_BUDGET[preset], f"{preset}: mean EPE {epe:.3f} px over budget {EPE_BUDGET[preset]} px"
    # Far better than reporting no motion at all.
    still = np.mean([end_point_error(np.zeros_like(pair(s).flow), pair(s).flow, pair(s).mask) for s in SEEDS])
    assert epe < 0.5 * still


@pytest.mark.parametrize("size", [SIZE, 192])
def test_presets_are_ordered_by_accuracy(size):
    assert mean_epe("accurate", size=size) <= mean_epe("balanced", size=size) < mean_epe("fast", size=size)


@pytest.mark.parametrize("preset", me.FLOW_PRESETS)
def test_a_small_brightness_change_barely_matters(preset):
    assert mean_epe(preset, brightness=0.03) < mean_epe(preset) + BRIGHTNESS_MARGIN


@pytest.mark.parametrize("preset", me.FLOW_PRESETS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_zero_motion_gives_zero_flow(preset, dtype):
    image = pair(0).prev.astype(dtype)
    assert np.abs(me.dense_flow(image, image.copy(), preset=preset)).max() < 1e-4


def fourier_shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) px, exactly for its band-limited content (periodic)."""
    ky = np.fft.fftfreq(image.shape[0])[:, None]
    kx = np.fft.fftfreq(image.shape[1])[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (kx * dx + ky * dy))))


@pytest.mark.parametrize("shift", [(0.3, -0.2), (0.7, 0.45), (-0.25, 0.6), (-0.5, -0.5)])
def test_sub_pixel_translation_is_recovered(shift):
    import cv2

    margin = 16
    face = cv2.resize(face_photo(), (SIZE + 2 * margin,) * 2, interpolation=cv2.INTER_AREA).astype(np.float64)
    inner = (slice(margin, -margin),) * 2  # keeps the periodic wrap of the shift out of the crop
    prev = np.ascontiguousarray(face[inner], dtype=np.float32)
    nxt = np.ascontiguousarray(fourier_shift(face, *shift)[inner], dtype=np.float32)
    flow = me.dense_flow(prev, nxt, preset="balanced")
    centre = flow[24:-24, 24:-24].reshape(-1, 2)  # the textured face, away from the borders
    # Measured: 0.022-0.035 px from the true shift.
    assert np.hypot(*(centre.mean(axis=0) - shift)) < 0.05


# ----------------------------------------------------- similarity and warp
def similarity(angle_deg: float, scale: float, shift: tuple[float, float], centre: tuple[float, float]):
    a = math.radians(angle_deg)
    linear = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.hstack([linear, (np.array(centre) - linear @ np.array(centre) + shift)[:, None]])


def test_aligning_a_rotated_scaled_face_gives_back_the_same_crop():
    photo = np.clip(np.rint(face_photo()), 0, 255).astype(np.uint8)
    h, w = photo.shape
    canonical = np.array([[40.0, 50.0], [88.0, 50.0], [64.0, 75.0], [46.0, 100.0], [82.0, 100.0]])
    # Where those points lie in the photo (eyes, nose tip, mouth corners of a 128 px crop).
    points = canonical @ np.array([[1.6, 0.1], [-0.1, 1.6]]).T + np.array([30.0, 20.0])
    turn = similarity(12.0, 1.15, (5.0, -3.0), (w / 2, h / 2))
    turned = me.warp_affine(photo, turn, (w, h))
    turned_points = points @ turn[:, :2].T + turn[:, 2]

    to_crop = me.estimate_similarity(points, canonical)
    back_to_crop = me.estimate_similarity(np.ascontiguousarray(turned_points), canonical)
    # Undoing the turn then cropping is the direct crop: exactly, for the matrices.
    composed = back_to_crop[:, :2] @ turn
    composed[:, 2] += back_to_crop[:, 2]
    np.testing.assert_allclose(composed, to_crop, atol=1e-9)

    direct = me.warp_affine(photo, to_crop, (128, 128)).astype(int)
    via_turn = me.warp_affine(turned, back_to_crop, (128, 128)).astype(int)
    difference = np.abs(direct - via_turn)[8:-8, 8:-8]
    # Two bilinear resamplings instead of one; measured mean 0.8, 95th percentile 3.
    assert difference.mean() < 2.0
    assert np.percentile(difference, 95) <= 5


def test_warp_with_a_pure_translation_moves_pixels_exactly():
    image = np.arange(12 * 10, dtype=np.float32).reshape(12, 10)
    moved = me.warp_affine(image, np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]), (10, 12), border="constant", fill=-1)
    np.testing.assert_array_equal(moved[3:, 2:], image[:-3, :-2])
    assert (moved[:3] == -1).all() and (moved[:, :2] == -1).all()


# ------------------------------------------------------------ region stats
def test_constant_flows_give_their_own_statistics():
    flow = np.zeros((20, 30, 2), np.float32)
    labels = np.full((20, 30), -1, np.int32)
    labels[2:8, 3:13], flow[2:8, 3:13] = 0, (1.5, -0.5)
    labels[10:18, 15:25], flow[10:18, 15:25] = 1, (0.0, 2.0)
    flow[labels < 0] = np.random.default_rng(0).normal(0, 5, (int((labels < 0).sum()), 2))
    stats = me.region_stats(flow, labels, n_regions=3)
    np.testing.assert_array_equal(stats.count, [60, 80, 0])
    np.testing.assert_allclose(stats.mean_vector[:2], [[1.5, -0.5], [0.0, 2.0]], atol=1e-12)
    np.testing.assert_allclose(stats.mean_magnitude[:2], [math.hypot(1.5, 0.5), 2.0], rtol=1e-7)
    np.testing.assert_allclose(stats.mdmd[:2], stats.mean_magnitude[:2], rtol=1e-7)
    bin_width = 2 * math.pi / 8
    for k, angle in enumerate([math.atan2(-0.5, 1.5), math.atan2(2.0, 0.0)]):
        assert abs(stats.main_direction[k] - angle) <= bin_width / 2
    assert np.isnan(stats.table[2, 1:]).all()
    frame = stats.to_frame(["left", "right", "empty"])
    assert list(frame.columns) == list(me.REGION_COLUMNS) and frame.loc["right", "mean_dy"] == 2.0


def test_mdmd_averages_the_largest_vectors_of_the_dominant_direction():
    bin_width = 2 * math.pi / 8
    centres = -math.pi + (np.arange(8) + 0.5) * bin_width
    dominant = 4  # centred on +22.5 degrees
    vectors = []
    # 30 % of the vectors point one way with magnitudes 1..30 px ...
    for magnitude in range(1, 31):
        vectors.append(magnitude * np.array([math.cos(centres[dominant]), math.sin(centres[dominant])]))
    # ... and the other 70 % spread evenly over the other seven directions.
    for b in range(8):
        if b != dominant:
            vectors += [5.0 * np.array([math.cos(centres[b]), math.sin(centres[b])])] * 10
    flow = np.array(vectors, np.float32).reshape(10, 10, 2)
    labels = np.zeros((10, 10), np.int32)
    stats = me.region_stats(flow, labels, n_regions=1, top_fraction=0.2, direction_bins=8)
    # The top 20 % of 30 magnitudes: 25..30.
    assert stats.mdmd[0] == pytest.approx(27.5, rel=1e-5)
    assert stats.main_direction[0] == pytest.approx(centres[dominant], abs=1e-12)
    assert stats.mean_magnitude[0] == pytest.approx((sum(range(1, 31)) + 70 * 5.0) / 100, rel=1e-5)
    whole = me.region_stats(flow, labels, n_regions=1, top_fraction=1.0)
    assert whole.mdmd[0] == pytest.approx(15.5, rel=1e-5)


@pytest.mark.parametrize(
    "field, strain",
    [
        (lambda x, y: (0.03 * x, 0 * y), 0.03),  # stretch along x
        (lambda x, y: (-0.05 * x, 0 * y), 0.05),  # compression reads the same magnitude
        (lambda x, y: (0.02 * x, 0.04 * y), math.hypot(0.02, 0.04)),
        (lambda x, y: (0.06 * y, 0 * x), 0.06 / math.sqrt(2)),  # shear: exy = 0.03
        (lambda x, y: (-0.05 * y, 0.05 * x), 0.0),  # rotation is not strain
    ],
)
def test_strain_of_linear_fields(field, strain):
    y, x = np.mgrid[0:24, 0:32].astype(np.float64)
    u, v = field(x - 16, y - 12)
    flow = np.dstack([u, v]).astype(np.float32)
    labels = np.full((24, 32), -1, np.int32)
    labels[2:-2, 2:-2] = 0  # the interior
    stats = me.region_stats(flow, labels, n_regions=1)
    assert stats.mean_strain[0] == pytest.approx(strain, abs=1e-6)


def test_reference_region_motion_is_subtracted():
    flow = np.zeros((10, 20, 2), np.float32)
    labels = np.zeros((10, 20), np.int32)
    flow[:, :10] = (2.0, 1.0)  # region 0, the nose: residual head motion
    labels[:, 10:] = 1
    flow[:, 10:] = (2.5, 1.0)  # region 1 moves 0.5 px right of the head
    plain = me.region_stats(flow, labels, n_regions=2)
    relative = me.region_stats(flow, labels, n_regions=2, reference=0)
    np.testing.assert_allclose(plain.mean_vector, [[2.0, 1.0], [2.5, 1.0]], atol=1e-12)
    np.testing.assert_allclose(relative.mean_vector, [[0.0, 0.0], [0.5, 0.0]], atol=1e-12)
    np.testing.assert_allclose(relative.mean_magnitude, [0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(relative.mdmd, [0.0, 0.5], atol=1e-12)


# ----------------------------------------------------------------- spectra
BANDS = [(0.5, 3.0), (3.0, 6.0), (6.0, 12.0)]
SLOW, MICRO, FAST = 0, 1, 2


def band_energies(times: np.ndarray, x: np.ndarray, *, rate: float = 30.0, window: float = 1.0) -> np.ndarray:
    """Energies after every sample, shape (len(times), n_bands)."""
    spectra = me.Spectra(1, rate=rate, window=window, bands=BANDS)
    return np.array([spectra.push(t, np.array([value]))[0] for t, value in zip(times, x)])


def jittered_times(seed: int, duration: float = 8.0) -> np.ndarray:
    steps = np.random.default_rng(seed).uniform(1 / 35, 1 / 25, int(duration * 35))
    times = np.cumsum(steps)
    return times[times < duration]


def test_a_4_hz_tone_lands_in_the_3_to_6_hz_band():
    amplitude = 2.0
    t = np.arange(0, 8, 1 / 30)
    energies = band_energies(t, amplitude * np.sin(2 * np.pi * 4 * t) + 7.0)
    settled = energies[t >= 3].mean(axis=0)
    assert settled[MICRO] == pytest.approx(amplitude**2 / 2, rel=0.35)  # measured 1.17 x
    assert settled[MICRO] > 5 * max(settled[SLOW], settled[FAST])


def test_a_step_and_a_drift_do_not_stay_in_the_3_to_6_hz_band():
    t = np.arange(0, 8, 1 / 30)
    step = band_energies(t, np.where(t > 2.0, 5.0, 0.0))
    # A step is broadband for a moment; 2.5 windows later it is gone (measured 0.009).
    assert step[t >= 4.5, MICRO].max() < 0.01 * 5.0**2 / 2
    drift = band_energies(t, 1.0 * t)  # 1 px/s
    tone = 1.0**2 / 2  # what a 1 px, 4 Hz movement reads
    assert drift[t >= 1.0, MICRO].max() < 0.2 * tone  # measured 0.05
    assert drift[-1, SLOW] > drift[-1, MICRO]


@pytest.mark.parametrize("seed", [0, 1])
def test_irregular_timestamps_give_the_same_energies_as_regular_ones(seed):
    amplitude = 2.0
    regular = np.arange(0, 8, 1 / 30)
    jittered = jittered_times(seed)

    def settled(times):
        return band_energies(times, amplitude * np.sin(2 * np.pi * 2.0 * times))[times >= 3].mean(axis=0)

    # Measured: 2.7-3.2 % lower with jitter at 2 Hz.
    assert settled(jittered)[SLOW] == pytest.approx(settled(regular)[SLOW], rel=0.10)


@pytest.mark.xfail(
    strict=True,
    reason="LIMITATION of linear resampling in core/src/spectra.cpp: at 25-35 fps with jitter a 4 Hz tone "
    "reads 11-13 % less than at a steady 30 fps (the interpolation attenuates it)",
)
def test_irregular_timestamps_keep_a_4_hz_tone_within_10_percent():
    t = np.arange(0, 8, 1 / 30)
    jittered = jittered_times(0)
    regular = band_energies(t, 2 * np.sin(2 * np.pi * 4 * t))[t >= 3].mean(axis=0)
    irregular = band_energies(jittered, 2 * np.sin(2 * np.pi * 4 * jittered))[jittered >= 3].mean(axis=0)
    assert irregular[MICRO] == pytest.approx(regular[MICRO], rel=0.10)


@pytest.mark.parametrize("rate", [200.0, 30.0])
def test_a_200_fps_input_works(rate):
    amplitude = 2.0
    t = np.arange(0, 5, 1 / 200)
    energies = band_energies(t, amplitude * np.sin(2 * np.pi * 4 * t), rate=rate)
    settled = energies[t >= 3].mean(axis=0)
    assert settled[MICRO] == pytest.approx(amplitude**2 / 2, rel=0.35)  # measured 1.2 x
    assert settled[MICRO] > 5 * max(settled[SLOW], settled[FAST])


@pytest.mark.parametrize("jitter", [False, True])
def test_spectrogram_peaks_at_the_tone(jitter):
    amplitude = 1.5
    t = jittered_times(3, duration=10.0) if jitter else np.arange(0, 10, 1 / 30)
    times, freqs, power = me.spectrogram(t, amplitude * np.sin(2 * np.pi * 4.0 * t) + 2.0,
                                         rate=30.0, window=2.0, hop=0.5)
    assert len(times) > 10 and np.all(np.diff(times) > 0)
    assert freqs[np.argmax(power.mean(axis=0))] == pytest.approx(4.0)
    peak = power.max(axis=1)
    # A 4 Hz tone falls on a bin: exactly A^2 / 2 with steady frames; linear
    # resampling of jittered frames loses about 12 %.
    assert np.median(peak) == pytest.approx(amplitude**2 / 2, rel=0.02 if not jitter else 0.2)
