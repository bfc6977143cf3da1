"""The MEGC baselines (MDMD, LBP feature difference) on synthetic aligned crops.

A real face (the astronaut of skimage.data, 128 px) is deformed by a smooth
Gaussian displacement bump whose amplitude rises and falls (raised cosine),
plus per-frame sensor noise. The noise sigma of 0.75 grey levels is what a
sigma 1.5 camera leaves after the face is resampled down to a 128 px crop.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from microexpr.baselines import (
    LBP_WINDOWS_S,
    MDMD_WINDOWS_S,
    SpottedInterval,
    _lbp_labels,
    _mdmd_frame_feature,
    lbp_spot,
    mdmd_spot,
)
from microexpr.errors import ParameterError
from microexpr.evaluate import evaluate_videos, interval_iou, time_to_frame

SIZE = 128
NOISE = 0.75


def face() -> np.ndarray:
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey[50:210, 155:315], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def deformed_sequence(
    fps, duration_s, onset_s=None, length_s=0.0, *, amplitude=3.5, seed=0, drop_every=0
):
    """Crops, their times and the truth frame interval (None without event).

    The bump (sigma 12 px, below the mouth corner) moves the texture up to
    ``amplitude`` px; its amplitude follows a raised cosine from ``onset_s``
    over ``length_s``. ``drop_every`` removes every n-th frame (a variable
    frame rate timeline)."""
    base = face().astype(np.float32)
    rng = np.random.default_rng(seed)
    times = np.arange(int(round(duration_s * fps))) / fps
    if drop_every:
        times = np.delete(times, np.arange(drop_every - 1, len(times), drop_every))
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    bump = np.exp(-((xs - 64) ** 2 + (ys - 88) ** 2) / (2 * 12.0**2)).astype(np.float32)
    level = np.zeros(len(times))
    if onset_s is not None:
        u = (times - onset_s) / length_s
        inside = (u > 0) & (u < 1)
        level[inside] = 0.5 - 0.5 * np.cos(2 * np.pi * u[inside])
    crops = []
    for a in level:
        image = (
            base
            if a == 0
            else cv2.remap(base, xs, ys + np.float32(amplitude * a) * bump, cv2.INTER_LINEAR)
        )
        noisy = image + rng.normal(0.0, NOISE, image.shape)
        crops.append(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    moving = np.flatnonzero(level > 0)
    truth = (int(moving[0]), int(moving[-1])) if moving.size else None
    return crops, times, truth


def frames_of(spotted: SpottedInterval, times: np.ndarray) -> tuple[int, int]:
    return time_to_frame(spotted.onset, times), time_to_frame(spotted.offset, times)


def best_iou(spotted, times, truth) -> float:
    return max((interval_iou(truth, frames_of(s, times)) for s in spotted), default=0.0)


@pytest.fixture(scope="module")
def micro_30fps():
    # 0.3 s raised cosine: 8 frames move. MDMD's published run lengths keep
    # 7 to 16 frames at 30 fps, so a shorter movement could not be spotted.
    return deformed_sequence(30, 4.0, 2.0, 0.3)


@pytest.fixture(scope="module")
def macro_200fps():
    # 8 s: MDMD halves its 1.3 s macro window on videos shorter than 6 k.
    return deformed_sequence(200, 8.0, 3.0, 1.5, amplitude=4.0)


@pytest.fixture(scope="module")
def static_30fps():
    return deformed_sequence(30, 4.0, seed=1)


# ---------------------------------------------------------------------------
# Spotting
# ---------------------------------------------------------------------------
def test_mdmd_spots_a_micro_expression_at_30_fps(micro_30fps):
    crops, times, truth = micro_30fps
    spotted = mdmd_spot(crops, times, expression="micro")
    assert best_iou(spotted, times, truth) >= 0.5
    assert all(s.kind == "micro" and s.onset <= s.apex <= s.offset for s in spotted)


def test_lbp_spots_a_micro_expression_at_30_fps(micro_30fps):
    crops, times, truth = micro_30fps
    spotted = lbp_spot(crops, times, expression="micro")
    strongest = max(spotted, key=lambda s: s.score)
    assert interval_iou(truth, frames_of(strongest, times)) >= 0.5
    # The interval is the peak +- k.
    assert strongest.offset - strongest.onset == pytest.approx(
        2 * LBP_WINDOWS_S["micro"], abs=1 / 30
    )


def test_both_spot_a_macro_expression_at_200_fps(macro_200fps):
    crops, times, truth = macro_200fps
    mdmd = mdmd_spot(crops, times, expression="macro", flow="fast")
    assert best_iou(mdmd, times, truth) >= 0.5
    lbp = lbp_spot(crops, times, expression="macro")
    strongest = max(lbp, key=lambda s: s.score)
    assert interval_iou(truth, frames_of(strongest, times)) >= 0.5


def test_static_face_gives_few_detections(static_30fps, micro_30fps):
    crops, times, _ = static_30fps
    # MDMD's run-length limits leave noise without detections.
    assert len(mdmd_spot(crops, times)) <= 1
    # LBP's threshold is relative to the video's own maximum, so a static
    # video still has peaks above it; they stay weaker than a real movement.
    static = lbp_spot(crops, times, expression="micro")
    event = lbp_spot(*micro_30fps[:2], expression="micro")
    assert max(s.score for s in static) < 0.8 * max(s.score for s in event)


def test_windows_follow_real_timestamps_with_dropped_frames():
    crops, times, truth = deformed_sequence(30, 4.0, 2.0, 0.3, drop_every=9)
    assert np.ptp(np.diff(times)) > 0  # the timeline is irregular
    assert best_iou(mdmd_spot(crops, times, expression="micro"), times, truth) >= 0.5


def test_custom_flow_function_and_evaluator_round_trip(micro_30fps):
    crops, times, truth = micro_30fps

    def farneback(prev, nxt):
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    spotted = mdmd_spot(crops, times, expression="micro", flow=farneback)
    truth_doc = {
        "video": "synthetic",
        "frame_times": times.tolist(),
        "events": [{"onset_frame": truth[0], "offset_frame": truth[1], "kind": "micro"}],
    }
    result = evaluate_videos([(truth_doc, {"events": [s.to_dict() for s in spotted]})])
    assert result.micro.tp == 1


# ---------------------------------------------------------------------------
# Features on known input
# ---------------------------------------------------------------------------
def test_mdmd_feature_is_the_main_direction_magnitude_difference():
    moving = np.zeros((SIZE, SIZE, 2), np.float32)
    moving[..., 0] = 1.5  # every pixel moved 1.5 px right from i-k to i
    still = np.zeros_like(moving)
    assert _mdmd_frame_feature(moving, still) == pytest.approx(1.5)  # back at i+k
    assert _mdmd_frame_feature(moving, moving) == pytest.approx(0.0)  # stayed moved
    # Only a third of the blocks move: the 12 largest of 36 are averaged.
    partial = moving.copy()
    partial[:, SIZE // 3 :] = 0
    assert _mdmd_frame_feature(partial, still) == pytest.approx(1.5, rel=0.01)


def test_lbp_codes_match_scikit_image_uniform_lbp():
    feature = pytest.importorskip("skimage.feature")
    image = face()
    ours = _lbp_labels(image[None].astype(np.float32))[0].ravel()
    theirs = (
        feature.local_binary_pattern(image, 8, 3, method="nri_uniform")[3:-3, 3:-3]
        .astype(int)
        .ravel()
    )
    # The two number the 59 patterns differently: map each of ours to the
    # label scikit-image gives most of its pixels; the map must be one-to-one
    # and agree almost everywhere (ties after interpolation may differ).
    labels = np.unique(ours)
    mapping = {a: np.bincount(theirs[ours == a]).argmax() for a in labels}
    assert len(labels) == 59 and len(set(mapping.values())) == 59
    agreement = np.mean([mapping[a] == b for a, b in zip(ours, theirs)])
    assert agreement > 0.995


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def test_bad_input_is_named(micro_30fps):
    crops, times, _ = micro_30fps
    with pytest.raises(ParameterError, match="uint8"):
        mdmd_spot([c.astype(np.float32) for c in crops], times)
    with pytest.raises(ParameterError, match="one presentation time per crop"):
        lbp_spot(crops, times[:-1])
    with pytest.raises(ParameterError, match="strictly increase"):
        lbp_spot(crops, np.r_[times[:10], times[9:-1]])
    with pytest.raises(ParameterError, match="expression"):
        mdmd_spot(crops, times, expression="tiny")
    with pytest.raises(ParameterError, match="p must be"):
        lbp_spot(crops, times, p=1.5)
    with pytest.raises(ParameterError, match="at least 24 px"):
        lbp_spot([c[:16, :16].copy() for c in crops], times)
    with pytest.raises(ParameterError, match="flow function must return"):
        mdmd_spot(
            crops, times, expression="micro", flow=lambda a, b: np.zeros((4, 4, 2), np.float32)
        )


def test_too_short_video_warns_and_spots_nothing(micro_30fps):
    crops, times, _ = micro_30fps
    with pytest.warns(UserWarning, match="too few"):
        assert mdmd_spot(crops[:5], times[:5], expression="macro") == []
    with pytest.warns(UserWarning, match="too few"):
        assert lbp_spot(crops[:2], times[:2], expression="micro") == []
    assert MDMD_WINDOWS_S == {"micro": 0.4, "macro": 1.3}
