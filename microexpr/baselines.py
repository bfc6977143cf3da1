"""The two classic MEGC spotting baselines, for comparison on the research sets.

Both are **offline** methods, as published: each frame is compared with frames
``k`` seconds before *and after* it, and the threshold is set from the whole
video's contrast curve (``T = mean + p * (max - mean)``). They cannot stream.
Input is a sequence of grey face crops already aligned by the caller, with
the real presentation time of every crop. Windows are defined in seconds and
mapped to frames through those times (the frame shown closest to ``t - k``),
so variable frame rates work; at the datasets' constant rates they give the
published frame counts noted below.

MDMD (:func:`mdmd_spot`)
    Main directional maximal difference, Wang et al. (Neurocomputing 2017),
    as run by the MEGC2020 baseline (HeyingGithub/Baseline-project-for-
    MEGC2020_spotting): ``MDMD_codes/MDMD.m`` (feature), ``MDMD_codes/cmd.m``
    (k, contrast, threshold), ``MDMD_results/MDMDmat_to_txt.m`` (runs of
    above-threshold frames become intervals), ``MDMD_results/
    gen_MEGC2020_log_file.py`` (p index 1, i.e. p = 0.01, and the length
    limits).
LBP feature difference (:func:`lbp_spot`)
    Moilanen et al. (ICPR 2014), with the parameters of the MEGC2019 LBP
    baseline (jingtingEmmaLi/MEGC_spotting, ``CAS(ME)2_LBP/``:
    ``configuration.m`` (LBP 8 points radius 3 "u2", N, k, p, 12 of 36
    blocks), ``chiSquareDst_longVid.m``, ``detectAvecSeuil_longVid.m``).

Differences from the published code are listed in each function's Notes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from microexpr.errors import ParameterError

__all__ = [
    "SpottedInterval",
    "mdmd_spot",
    "lbp_spot",
    "MDMD_WINDOWS_S",
    "MDMD_RUN_LIMITS_S",
    "LBP_WINDOWS_S",
]

#: MDMD offset k, seconds: cmd.m uses 12 / 39 frames at 30 fps (CAS(ME)^2)
#: and 80 / 260 at 200 fps (SAMM-LV), i.e. 0.4 s and 1.3 s at both rates.
MDMD_WINDOWS_S = {"micro": 0.4, "macro": 1.3}
#: Kept run lengths (first to last frame plus one frame period), seconds;
#: micro includes both bounds, macro is anything longer than 0.535 s.
#: The baseline keeps 7-16 frames (micro) and >= 17 (macro) at 30 fps, 47-105
#: and >= 106 at 200 fps. One bound in seconds cannot give both: 0.232-0.535 s
#: is exact at 30 fps and keeps 47-107 frames at 200 fps.
MDMD_RUN_LIMITS_S = {"micro": (0.232, 0.535), "macro": (0.535, math.inf)}
#: LBP half window k, seconds; a spotted interval is the peak frame +- k.
#: Micro: the MEGC2019 configuration.m has N = 10, k = ceil((N-1)/2) = 5
#: frames at 30 fps (SAMM: N = 61, k = 30 at 200 fps); 0.16 s gives 5 frames
#: at 30 fps and 32 at 200 fps. Macro (the MEGC2019 baseline spotted micro
#: only): 0.6 s, half the typical macro-expression length (18 frames at
#: 30 fps, 111 at 200 fps in the project's notes on the field).
LBP_WINDOWS_S = {"micro": 0.16, "macro": 0.6}
_GRID = 6  # 6 x 6 blocks in both baselines
_TOP_BLOCKS = _GRID * _GRID // 3  # the 12 largest block values are averaged
_LBP_RADIUS = 3
_LBP_POINTS = 8
_LBP_BINS = _LBP_POINTS * (_LBP_POINTS - 1) + 3  # uniform patterns + 1 ("u2": 59)
_MIN_SIDE = 24


@dataclass(frozen=True)
class SpottedInterval:
    """One spotted expression.

    Attributes
    ----------
    onset, apex, offset : float
        Presentation times in seconds of the first, strongest and last frame.
    score : float
        The method's contrast value at the apex (its own units).
    kind : {"micro", "macro"}
        Which window spotted it.
    """

    onset: float
    apex: float
    offset: float
    score: float
    kind: str

    def to_dict(self) -> dict:
        """An ``events`` entry in the prediction format of :mod:`microexpr.evaluate`."""
        return {
            "onset": self.onset,
            "apex": self.apex,
            "offset": self.offset,
            "score": self.score,
            "kind": self.kind,
        }


# ---------------------------------------------------------------------------
# Input checks and time arithmetic
# ---------------------------------------------------------------------------
def _check_inputs(crops: Sequence[np.ndarray], times) -> tuple[list[np.ndarray], np.ndarray]:
    crops = list(crops)
    if not crops:
        raise ParameterError("crops is empty: expected a sequence of uint8 arrays of shape (S, S)")
    first = np.asarray(crops[0])
    if first.ndim != 2 or first.dtype != np.uint8:
        raise ParameterError(
            f"crops must be grey uint8 arrays of shape (H, W), got {first.dtype} {first.shape}"
        )
    if min(first.shape) < _MIN_SIDE:
        raise ParameterError(f"crops must be at least {_MIN_SIDE} px on a side, got {first.shape}")
    for i, crop in enumerate(crops):
        crop = np.asarray(crop)
        if crop.shape != first.shape or crop.dtype != np.uint8:
            raise ParameterError(
                f"crops[{i}] is {crop.dtype} {crop.shape}; every crop must be uint8 {first.shape}"
            )
        crops[i] = np.ascontiguousarray(crop)
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (len(crops),):
        raise ParameterError(
            f"times must hold one presentation time per crop: {len(crops)} crops, "
            f"times of shape {times.shape}"
        )
    if not np.all(np.isfinite(times)):
        raise ParameterError("times holds non-finite values")
    if np.any(np.diff(times) <= 0):
        first_bad = int(np.argmax(np.diff(times) <= 0)) + 1
        raise ParameterError(
            f"times must strictly increase; frame {first_bad} ({times[first_bad]} s) "
            f"is not after frame {first_bad - 1}"
        )
    return crops, times


def _expressions(expression: str) -> tuple[str, ...]:
    if expression == "both":
        return ("micro", "macro")
    if expression in ("micro", "macro"):
        return (expression,)
    raise ParameterError(f"expression must be 'micro', 'macro' or 'both', got {expression!r}")


def _check_p(p: float) -> float:
    try:
        value = float(p)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(p, bool) or not 0.0 <= value <= 1.0:
        raise ParameterError(f"p must be a number in [0, 1], got {p!r}")
    return value


def _frame_period(times: np.ndarray) -> float:
    return float(np.median(np.diff(times))) if len(times) > 1 else 1.0


def _shifted(times: np.ndarray, shift_s: float) -> tuple[np.ndarray, np.ndarray]:
    """For every frame, the frame shown closest to ``t + shift_s``, and whether
    that time lies inside the video (half a frame period of slack)."""
    target = times + shift_s
    k = np.clip(np.searchsorted(times, target), 1, len(times) - 1)
    earlier = target - times[k - 1] <= times[k] - target
    index = np.where(earlier, k - 1, k)
    slack = 0.5 * _frame_period(times)
    inside = (target >= times[0] - slack) & (target <= times[-1] + slack)
    return index, inside


def _frame_durations(times: np.ndarray) -> np.ndarray:
    return np.append(np.diff(times), _frame_period(times))


def _threshold(contrast: np.ndarray, p: float) -> float:
    mean = float(contrast.mean())
    return mean + p * (float(contrast.max()) - mean)


def _interval(times, contrast, first: int, last: int, kind: str) -> SpottedInterval:
    apex = first + int(np.argmax(contrast[first : last + 1]))
    return SpottedInterval(
        onset=float(times[first]),
        apex=float(times[apex]),
        offset=float(times[last]),
        score=float(contrast[apex]),
        kind=kind,
    )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index of every run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def _blocks(array: np.ndarray) -> np.ndarray:
    """(H, W, ...) -> (36, pixels per block, ...) over a 6 x 6 grid; the last
    H % 6 rows and W % 6 columns are left out, as in MDMD.m."""
    h, w = array.shape[0] // _GRID, array.shape[1] // _GRID
    cut = array[: h * _GRID, : w * _GRID]
    tail = cut.shape[2:]
    grid = cut.reshape(_GRID, h, _GRID, w, *tail).swapaxes(1, 2)
    return grid.reshape(_GRID * _GRID, h * w, *tail)


def _top_blocks_mean(block_values: np.ndarray) -> np.ndarray:
    """Mean of the 12 largest of 36 block values, along the last axis."""
    return -np.sort(-block_values, axis=-1)[..., :_TOP_BLOCKS].mean(axis=-1)


# ---------------------------------------------------------------------------
# MDMD
# ---------------------------------------------------------------------------
def _mdmd_frame_feature(flow_now: np.ndarray, flow_after: np.ndarray) -> float:
    """MDMD.m for one frame: per block, the main direction of the flow from
    frame i-k to i, then the mean of the top third of |flow(i-k -> i)| -
    |flow(i-k -> i+k)| over that direction's pixels; then the mean of the 12
    largest block values."""
    u, v = flow_now[..., 0], flow_now[..., 1]
    # Quadrant of the angle: 0 [-180, -90), 1 [-90, 0), 2 [0, 90), 3 [90, 180].
    angle_positive = v >= 0
    quadrant = _blocks(2 * angle_positive.astype(np.int8) + (angle_positive != (u >= 0)))
    counts = np.stack([(quadrant == q).sum(axis=1) for q in range(4)], axis=1)
    main = counts.argmax(axis=1)
    in_main = quadrant == main[:, None].astype(np.int8)
    magnitude_now = np.sqrt(u * u + v * v)
    magnitude_after = np.sqrt(flow_after[..., 0] ** 2 + flow_after[..., 1] ** 2)
    difference = _blocks(magnitude_now) - _blocks(magnitude_after)
    ranked = -np.sort(-np.where(in_main, difference, -np.inf), axis=1)
    n_main = counts[np.arange(len(main)), main]
    # MATLAB round (half away from zero) of a third, at least one pixel.
    n_top = np.maximum(1, np.floor(n_main / 3 + 0.5)).astype(np.int64)
    take = np.arange(ranked.shape[1])[None, :] < n_top[:, None]
    block_values = np.where(take, ranked, 0.0).sum(axis=1) / n_top
    return float(_top_blocks_mean(block_values))


def _flow_function(flow) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if callable(flow):
        return flow
    if isinstance(flow, str):
        from microexpr.core import FLOW_PRESETS, dense_flow

        if flow not in FLOW_PRESETS:
            raise ParameterError(
                f"flow must be one of {list(FLOW_PRESETS)} or a callable, got {flow!r}"
            )
        return lambda a, b: dense_flow(a, b, preset=flow)
    raise ParameterError(
        f"flow must be a preset name or a callable (prev, next) -> flow, got {flow!r}"
    )


def _mdmd_contrast(crops, times, k_s: float, flow_fn) -> np.ndarray | None:
    """The contrast curve C of cmd.m (NaN where undefined), or None when the
    video is too short even after halving k."""
    period = _frame_period(times)
    n = len(times)
    # cmd.m (auto_k): halve k until the video holds at least 6 k frames.
    while n - 6 * round(k_s / period) < 0:
        k_s /= 2
        if round(k_s / period) < 2:
            return None
    before, has_before = _shifted(times, -k_s)
    after, has_after = _shifted(times, +k_s)
    valid = has_before & has_after
    feature = np.full(n, np.nan)
    shape = crops[0].shape
    for i in np.flatnonzero(valid):
        flow_now = np.asarray(flow_fn(crops[before[i]], crops[i]))
        flow_after = np.asarray(flow_fn(crops[before[i]], crops[after[i]]))
        if flow_now.shape != (*shape, 2) or flow_after.shape != (*shape, 2):
            raise ParameterError(
                f"the flow function must return arrays of shape {(*shape, 2)}, "
                f"got {flow_now.shape} and {flow_after.shape}"
            )
        feature[i] = _mdmd_frame_feature(flow_now, flow_after)
    # Contrast against the features m = k - 1 frames away on both sides.
    m_s = k_s - period
    left, has_left = _shifted(times, -m_s)
    right, has_right = _shifted(times, +m_s)
    contrast = feature - 0.5 * (feature[left] + feature[right])
    contrast[~(valid & has_left & has_right)] = np.nan
    return contrast


def mdmd_spot(
    crops: Sequence[np.ndarray],
    times: Sequence[float] | np.ndarray,
    *,
    expression: str = "both",
    p: float = 0.01,
    flow: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "balanced",
) -> list[SpottedInterval]:
    """Spot expressions with the MEGC2020 MDMD baseline.

    For every frame i, dense optical flow from frame i-k to i and from i-k to
    i+k; per block of a 6 x 6 grid, the pixels of the flow's main direction
    (one of four quadrants) give ``|flow(i-k, i)| - |flow(i-k, i+k)|``, whose
    top third is averaged; the 12 largest block values are averaged into the
    frame feature F. The contrast ``C(i) = F(i) - (F(i-m) + F(i+m)) / 2``
    (m = k - 1 frames) is thresholded at ``mean(C) + p (max(C) - mean(C))``
    over the video, and every run of consecutive frames above it whose
    length fits :data:`MDMD_RUN_LIMITS_S` is one interval.

    Parameters
    ----------
    crops : sequence of uint8 arrays of shape (S, S)
        Aligned grey face crops, one per frame, S >= 24 px.
    times : array of shape (N,)
        Presentation time of every crop in seconds, strictly increasing.
    expression : {"micro", "macro", "both"}
        Which window(s) to run: k = 0.4 s (micro) and 1.3 s (macro)
        (:data:`MDMD_WINDOWS_S`). "both" returns both lists together.
    p : float in [0, 1]
        Threshold position between the mean and the max of C. The MEGC2020
        baseline's released results use p = 0.01.
    flow : {"fast", "balanced", "accurate"} or callable
        A :func:`microexpr.dense_flow` preset, or ``f(prev, next)`` returning
        float (S, S, 2) flow ``(dx, dy)`` in pixels (for example a wrapper of
        OpenCV's TV-L1 or Farneback).

    Returns
    -------
    list of SpottedInterval
        Sorted by onset. Empty when nothing crosses the threshold, or when
        the video is too short (fewer than 6 k frames after halving k, as the
        baseline does, down to k = 2 frames; a warning says so).

    Notes
    -----
    Differences from the published code: the flow is microexpr's dense flow
    (MDMD.m calls RLOF; TV-L1 and Farneback are the other usual choices, and
    any of them can be passed as ``flow``); the direction bins are the four
    quadrants of the paper (MDMD.m's ``atan(u ./ v)`` only ever fills two of
    them); the baseline crops faces with its own detector, here the caller
    aligns them; the
    interval score is the largest contrast in the run (the baseline writes
    1.0); the run limits are in seconds (see :data:`MDMD_RUN_LIMITS_S`);
    cmd.m never restores k after halving it for a short video, so the videos
    after one run with the smaller k, where here every call starts from the
    published k.
    """
    crops, times = _check_inputs(crops, times)
    p = _check_p(p)
    flow_fn = _flow_function(flow)
    durations = _frame_durations(times)
    spotted: list[SpottedInterval] = []
    for kind in _expressions(expression):
        contrast = _mdmd_contrast(crops, times, MDMD_WINDOWS_S[kind], flow_fn)
        if contrast is None or not np.any(np.isfinite(contrast)):
            warnings.warn(
                f"MDMD ({kind}): {len(crops)} frames over {times[-1] - times[0]:.2f} s are too "
                f"few for the window k = {MDMD_WINDOWS_S[kind]} s; nothing spotted",
                UserWarning,
                stacklevel=2,
            )
            continue
        defined = np.isfinite(contrast)
        positive = defined & (contrast > _threshold(contrast[defined], p))
        contrast[~defined] = -np.inf
        shortest, longest = MDMD_RUN_LIMITS_S[kind]
        for first, last in _runs(positive):
            length_s = times[last] - times[first] + durations[last]
            # Micro includes both limits; macro starts just above micro's top.
            fits = shortest <= length_s <= longest if kind == "micro" else length_s > shortest
            if fits:
                spotted.append(_interval(times, contrast, first, last, kind))
    return sorted(spotted, key=lambda s: s.onset)


# ---------------------------------------------------------------------------
# LBP feature difference
# ---------------------------------------------------------------------------
def _uniform_labels() -> np.ndarray:
    """Map the 256 LBP(8) codes to 59 labels: one per uniform pattern (at
    most two circular 0/1 transitions), 58 for all the others ("u2")."""
    codes = np.arange(256)
    bits = (codes[:, None] >> np.arange(_LBP_POINTS)) & 1
    transitions = (bits != np.roll(bits, 1, axis=1)).sum(axis=1)
    uniform = transitions <= 2
    labels = np.full(256, _LBP_BINS - 1, dtype=np.int64)
    labels[uniform] = np.arange(int(uniform.sum()))
    return labels


_UNIFORM_LABELS = _uniform_labels()
# Sample points on the circle, as in Heikkila's lbp.m: (-R sin, R cos).
_LBP_OFFSETS = [
    (
        round(-_LBP_RADIUS * math.sin(2 * math.pi * i / _LBP_POINTS), 6),
        round(_LBP_RADIUS * math.cos(2 * math.pi * i / _LBP_POINTS), 6),
    )
    for i in range(_LBP_POINTS)
]
_LBP_TIE_TOLERANCE = 1e-4  # grey levels; keeps interpolation rounding out of ties
_LBP_BATCH = 64


def _lbp_labels(frames: np.ndarray) -> np.ndarray:
    """Uniform LBP(8, 3) labels of the interior pixels: (B, H, W) float32 ->
    (B, H - 6, W - 6) int64 in [0, 59). Neighbours off the pixel grid are
    bilinearly interpolated; a neighbour >= the centre sets its bit."""
    r = _LBP_RADIUS
    _, height, width = frames.shape
    h, w = height - 2 * r, width - 2 * r
    centre = frames[:, r : r + h, r : r + w] - _LBP_TIE_TOLERANCE

    def shifted(dy: int, dx: int) -> np.ndarray:
        return frames[:, r + dy : r + dy + h, r + dx : r + dx + w]

    code = np.zeros(centre.shape, dtype=np.uint8)
    for bit, (dy, dx) in enumerate(_LBP_OFFSETS):
        y0, x0 = math.floor(dy), math.floor(dx)
        fy, fx = dy - y0, dx - x0
        if fy == 0 and fx == 0:
            sample = shifted(y0, x0)
        else:
            sample = (
                (1 - fy) * (1 - fx) * shifted(y0, x0)
                + (1 - fy) * fx * shifted(y0, x0 + 1)
                + fy * (1 - fx) * shifted(y0 + 1, x0)
                + fy * fx * shifted(y0 + 1, x0 + 1)
            )
        code |= (sample >= centre).astype(np.uint8) << np.uint8(bit)
    return _UNIFORM_LABELS[code]


def _lbp_histograms(crops: list[np.ndarray]) -> np.ndarray:
    """Normalised uniform LBP(8, 3) histograms per block of the 6 x 6 grid:
    (N, 36, 59). Pixels within the radius of the border have no code."""
    r = _LBP_RADIUS
    height, width = crops[0].shape
    rows = np.minimum(np.arange(r, height - r) // (height // _GRID), _GRID)
    cols = np.minimum(np.arange(r, width - r) // (width // _GRID), _GRID)
    inside = (rows[:, None] < _GRID) & (cols[None, :] < _GRID)
    block = (rows[:, None] * _GRID + cols[None, :])[inside]
    n_cells = _GRID * _GRID * _LBP_BINS
    histograms = np.empty((len(crops), _GRID * _GRID, _LBP_BINS))
    for start in range(0, len(crops), _LBP_BATCH):
        batch = np.stack(crops[start : start + _LBP_BATCH]).astype(np.float32)
        labels = _lbp_labels(batch)[:, inside]
        cells = block[None, :] * _LBP_BINS + labels + n_cells * np.arange(len(batch))[:, None]
        counts = np.bincount(cells.ravel(), minlength=n_cells * len(batch))
        counts = counts.reshape(len(batch), _GRID * _GRID, _LBP_BINS)
        histograms[start : start + len(batch)] = counts / counts.sum(axis=2, keepdims=True)
    return histograms


def _chi_squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, (a - b) ** 2 / safe, 0.0).sum(axis=-1)


def _lbp_contrast(histograms: np.ndarray, times: np.ndarray, k_s: float):
    """The contrasted difference vector of detectAvecSeuil_longVid.m (>= 0)
    and the k it used, or None when no frame has both neighbours."""
    n = len(times)
    period = _frame_period(times)
    # chiSquareDst_longVid.m: halve k when the video has fewer than 2k+1 frames.
    if n < 2 * round(k_s / period) + 1:
        k_s /= 2
    before, has_before = _shifted(times, -k_s)
    after, has_after = _shifted(times, +k_s)
    valid = has_before & has_after & (before != np.arange(n)) & (after != np.arange(n))
    if not np.any(valid):
        return None
    average = 0.5 * (histograms[before] + histograms[after])
    difference = _top_blocks_mean(_chi_squared(histograms, average))
    # The first and last k frames take the first and last defined value.
    defined = np.flatnonzero(valid)
    difference = difference[np.clip(np.arange(n), defined[0], defined[-1])]
    contrast = difference - 0.5 * (difference[before] + difference[after])
    contrast[~valid] = 0.0
    return np.maximum(contrast, 0.0), k_s


def lbp_spot(
    crops: Sequence[np.ndarray],
    times: Sequence[float] | np.ndarray,
    *,
    expression: str = "both",
    p: float = 0.15,
) -> list[SpottedInterval]:
    """Spot expressions with the LBP chi-squared feature difference baseline.

    Uniform LBP (8 points, radius 3) histograms per block of a 6 x 6 grid;
    for every frame i, the chi-squared distance of each block's histogram to
    the mean of the histograms of frames i-k and i+k; the 12 largest block
    distances are averaged into F(i). The contrast
    ``C(i) = max(0, F(i) - (F(i-k) + F(i+k)) / 2)`` is thresholded at
    ``mean(C) + p (max(C) - mean(C))`` over the video; every peak of C above
    it, at least k apart, is the apex of one interval from k before to k
    after it (:data:`LBP_WINDOWS_S`).

    Parameters
    ----------
    crops : sequence of uint8 arrays of shape (S, S)
        Aligned grey face crops, one per frame, S >= 24 px.
    times : array of shape (N,)
        Presentation time of every crop in seconds, strictly increasing.
    expression : {"micro", "macro", "both"}
        Which window(s) to run: k = 0.16 s (micro) and 0.6 s (macro).
        "both" returns both lists together.
    p : float in [0, 1]
        Threshold position between the mean and the max of C: 0.15 in the
        MEGC2019 baseline's CAS(ME)^2 configuration (0.05 for SAMM).

    Returns
    -------
    list of SpottedInterval
        Sorted by onset; empty when nothing is spotted.

    Notes
    -----
    Peaks are Moilanen et al.'s rule. The MEGC2019 code instead thresholds
    1 s windows overlapping by 0.3 s and groups above-threshold frames in
    fixed chunks (15 frames, at least 6 above: ``saveTPFPFN_forMEinterval_lbp.m``);
    that needs six frames above threshold where a clean 0.3 s expression at
    30 fps gives three or four, and cuts expressions at chunk boundaries, so
    it is not replicated. Other differences: the blocks are a plain 6 x 6
    grid over the aligned crop (the baseline placed 36 landmark-anchored
    blocks enlarged by 20 % / 30 %); k is in seconds (32 frames at 200 fps
    where the SAMM configuration had 30); the macro window is this project's
    extension. The score is C at the peak.
    """
    from scipy.signal import find_peaks

    crops, times = _check_inputs(crops, times)
    p = _check_p(p)
    kinds = _expressions(expression)
    histograms = _lbp_histograms(crops)
    period = _frame_period(times)
    spotted: list[SpottedInterval] = []
    for kind in kinds:
        result = _lbp_contrast(histograms, times, LBP_WINDOWS_S[kind])
        if result is None:
            warnings.warn(
                f"LBP ({kind}): {len(crops)} frames are too few for the window "
                f"k = {LBP_WINDOWS_S[kind]} s; nothing spotted",
                UserWarning,
                stacklevel=2,
            )
            continue
        contrast, k_s = result
        # find_peaks keeps heights >= the bound; the baseline keeps C > T.
        height = np.nextafter(_threshold(contrast, p), np.inf)
        peaks, _ = find_peaks(contrast, height=height, distance=max(1, round(k_s / period)))
        for peak in peaks:
            first = int(np.argmin(np.abs(times - max(times[0], times[peak] - k_s))))
            last = int(np.argmin(np.abs(times - min(times[-1], times[peak] + k_s))))
            spotted.append(
                SpottedInterval(
                    onset=float(times[first]),
                    apex=float(times[peak]),
                    offset=float(times[last]),
                    score=float(contrast[peak]),
                    kind=kind,
                )
            )
    return sorted(spotted, key=lambda s: s.onset)
