"""Tests of microexpr.tracking: stable face ids on synthetic moving faces.

The faces are one real MediaPipe detection (skimage's astronaut, or a frame of
the shared clip) whose identity geometry is stretched to make other "people",
then rotated, scaled, moved and jittered frame by frame.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from microexpr.errors import LandmarkError, ParameterError
from microexpr.landmarks import MEDIAPIPE478, FaceLandmarks
from microexpr.tracking import FaceTracker, shape_signature, signature_distance

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLIP = SHARED / "data" / "faces" / "pyfeat_WolfgangLanger_Pexels.mp4"


def _first_frame_of_clip() -> np.ndarray | None:
    if not CLIP.is_file():
        return None
    import av

    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    return None


@pytest.fixture(scope="module")
def base_shape() -> np.ndarray:
    """One real face's 478 landmarks, centred, scaled to face size 1, shape (478, 2)."""
    from microexpr.landmarks import FaceLandmarker, find_face_model

    try:
        find_face_model()
    except FileNotFoundError as exc:
        pytest.skip(f"no face model to take a real face from: {exc}")
    image = None
    if importlib.util.find_spec("skimage") is not None:
        import skimage.data

        image = skimage.data.astronaut()
    if image is None:
        image = _first_frame_of_clip()
    if image is None:
        pytest.skip("needs scikit-image (astronaut) or ../shared/data/faces for a real face")
    with FaceLandmarker(blendshapes=False) as landmarker:
        faces = landmarker.detect(image, 0.0)
    assert len(faces) == 1
    points = faces[0].points.astype(np.float64)
    points -= (points.min(axis=0) + points.max(axis=0)) / 2
    return points / faces[0].size


def _person(base: np.ndarray, *, width: float, lower_face: float, eye_spread: float) -> np.ndarray:
    """Another identity: stretch face width, lower-face length and eye spacing."""
    shape = base.copy()
    nose_tip_y = shape[1, 1]
    shape[:, 0] *= width
    below = shape[:, 1] > nose_tip_y
    shape[below, 1] = nose_tip_y + (shape[below, 1] - nose_tip_y) * lower_face
    above_eyes = shape[:, 1] < nose_tip_y - 0.08
    shape[above_eyes, 0] *= eye_spread
    shape -= (shape.min(axis=0) + shape.max(axis=0)) / 2
    return shape / math.sqrt(np.prod(shape.max(axis=0) - shape.min(axis=0)))


@pytest.fixture(scope="module")
def people(base_shape: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "A": base_shape,
        "B": _person(base_shape, width=1.12, lower_face=0.9, eye_spread=1.0),
        "C": _person(base_shape, width=0.9, lower_face=1.15, eye_spread=1.0),
        "D": _person(base_shape, width=1.06, lower_face=1.1, eye_spread=1.1),
        "stranger": _person(base_shape, width=1.3, lower_face=0.65, eye_spread=1.1),
    }


def _render(shape, center, size, angle, rng, noise_px=0.5) -> FaceLandmarks:
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = shape @ rotation.T * size + np.asarray(center) + rng.normal(0, noise_px, shape.shape)
    return FaceLandmarks(points=points, scheme="mediapipe478")


def _frame_times(fps: float | str, duration: float, rng) -> np.ndarray:
    if fps == "vfr":
        intervals = rng.uniform(1 / 60, 1 / 15, size=int(duration * 60))
        times = np.concatenate([[0.0], np.cumsum(intervals)])
        return times[times < duration]
    return np.arange(round(duration * fps)) / fps


def _run(tracker, times, scene, rng):
    """Feed a scene (time -> {person: FaceLandmarks}); return person -> set of ids per frame."""
    seen: dict[str, list[tuple[float, int]]] = {}
    for t in times:
        faces = scene(t)
        names = list(faces)
        rng.shuffle(names)
        result = tracker.update([faces[name] for name in names], t)
        assert [face for _, face in result] == [faces[name] for name in names]
        for name, (track_id, _) in zip(names, result):
            seen.setdefault(name, []).append((t, track_id))
    return seen


@pytest.mark.parametrize("fps", [25, 200, "vfr"])
def test_crossing_leaving_and_new_faces_keep_their_ids(people, fps):
    rng = np.random.default_rng(7)
    times = _frame_times(fps, 4.0, rng)

    def scene(t):
        faces = {
            # A and B walk towards each other and meet at t = 1.5 s, x = 400.
            "A": _render(people["A"], (100 + 200 * t, 300), 150, 0.05 * math.sin(3 * t), rng),
            "B": _render(people["B"], (700 - 200 * t, 306), 160, -0.05 * math.sin(2 * t), rng),
        }
        if not 1.0 <= t < 2.0:  # C leaves for 1 s and comes back a little moved
            shift = 20 if t >= 2.0 else 0
            faces["C"] = _render(people["C"], (1050 + shift, 620 - shift), 140, 0.0, rng)
        if t >= 2.5:
            faces["D"] = _render(people["D"], (250, 650), 150, 0.1, rng)
        return faces

    seen = _run(FaceTracker(), times, scene, rng)
    ids = {name: {track_id for _, track_id in frames} for name, frames in seen.items()}
    assert all(len(found) == 1 for found in ids.values()), ids
    assert len({next(iter(found)) for found in ids.values()}) == 4, ids
    assert next(iter(ids["D"])) > max(next(iter(ids[name])) for name in "ABC")


@pytest.mark.parametrize("fps", [25, 200])
def test_face_hidden_while_crossing_gets_its_id_back(people, fps):
    rng = np.random.default_rng(3)
    times = _frame_times(fps, 3.0, rng)

    def scene(t):
        faces = {"A": _render(people["A"], (100 + 200 * t, 300), 150, 0.0, rng)}
        if not 1.35 <= t < 1.65:  # B passes behind A
            faces["B"] = _render(people["B"], (700 - 200 * t, 300), 150, 0.0, rng)
        return faces

    seen = _run(FaceTracker(), times, scene, rng)
    assert len({track_id for _, track_id in seen["A"]}) == 1
    assert len({track_id for _, track_id in seen["B"]}) == 1
    assert seen["A"][0][1] != seen["B"][0][1]


def test_stranger_at_a_lost_faces_place_gets_a_new_id(people):
    assert signature_distance(
        shape_signature(people["C"], MEDIAPIPE478.rigid),
        shape_signature(people["stranger"], MEDIAPIPE478.rigid),
    ) > FaceTracker().max_signature_distance
    rng = np.random.default_rng(11)
    times = _frame_times(25, 3.0, rng)

    def scene(t):
        faces = {}
        if t < 1.0 or t >= 2.2:  # C leaves at 1.0 s and comes back at 2.2 s, beside the stranger
            faces["C"] = _render(people["C"], (500 if t < 1.0 else 700, 400), 150, 0.0, rng)
        if t >= 1.5:  # the stranger walks in where C was
            faces["stranger"] = _render(people["stranger"], (505, 400), 150, 0.0, rng)
        return faces

    seen = _run(FaceTracker(), times, scene, rng)
    c_ids = {track_id for _, track_id in seen["C"]}
    stranger_ids = {track_id for _, track_id in seen["stranger"]}
    assert len(c_ids) == 1 and len(stranger_ids) == 1
    assert c_ids != stranger_ids


def test_face_lost_longer_than_max_lost_gets_a_fresh_id(people):
    rng = np.random.default_rng(5)
    tracker = FaceTracker(max_lost=2.0)
    first = tracker.update([_render(people["A"], (300, 300), 150, 0.0, rng)], 0.0)[0][0]
    assert tracker.update([], 1.0) == []
    assert [track.lost for track in tracker.tracks] == [True]
    tracker.update([], 2.5)
    assert tracker.tracks == []
    again = tracker.update([_render(people["A"], (300, 300), 150, 0.0, rng)], 2.6)[0][0]
    assert again > first


def test_lost_face_within_max_lost_is_reidentified_at_any_frame_rate(people):
    rng = np.random.default_rng(9)
    tracker = FaceTracker(max_lost=2.0)
    face_id = tracker.update([_render(people["B"], (300, 300), 150, 0.0, rng)], 10.0)[0][0]
    back = tracker.update([_render(people["B"], (330, 290), 150, 0.2, rng)], 11.9)[0][0]
    assert back == face_id


def test_nan_landmarks_are_rejected_and_tracker_unchanged(people):
    rng = np.random.default_rng(1)
    tracker = FaceTracker()
    tracker.update([_render(people["A"], (300, 300), 150, 0.0, rng)], 0.0)
    broken = _render(people["A"], (302, 300), 150, 0.0, rng)
    broken.points[[5, 17]] = np.nan
    with pytest.raises(LandmarkError, match=r"5, 17"):
        tracker.update([broken], 0.04)
    with pytest.raises(LandmarkError, match="NaN"):
        FaceLandmarks(points=np.full((478, 2), np.nan), scheme="mediapipe478")
    assert len(tracker.tracks) == 1 and tracker.tracks[0].last_seen == 0.0
    assert tracker.update([_render(people["A"], (303, 300), 150, 0.0, rng)], 0.04)[0][0] == 0


def test_bad_times_inputs_and_options_raise_parameter_error(people):
    rng = np.random.default_rng(2)
    tracker = FaceTracker()
    tracker.update([_render(people["A"], (300, 300), 150, 0.0, rng)], 1.0)
    with pytest.raises(ParameterError, match="must not decrease"):
        tracker.update([], 0.5)
    with pytest.raises(ParameterError, match="finite"):
        tracker.update([], float("nan"))
    with pytest.raises(ParameterError, match="FaceLandmarks"):
        tracker.update([np.zeros((478, 2))], 1.1)
    with pytest.raises(ParameterError, match="list of FaceLandmarks"):
        tracker.update(None, 1.1)
    for bad in ({"max_lost": 0}, {"max_speed": -1.0}, {"max_signature_distance": 2.0},
                {"velocity_time_constant": float("inf")}):
        with pytest.raises(ParameterError):
            FaceTracker(**bad)


def test_repeated_timestamp_keeps_ids(people):
    rng = np.random.default_rng(4)
    tracker = FaceTracker()
    faces = [_render(people["A"], (300, 300), 150, 0.0, rng),
             _render(people["B"], (700, 300), 150, 0.0, rng)]
    first = [track_id for track_id, _ in tracker.update(faces, 0.5)]
    again = [track_id for track_id, _ in tracker.update(faces[::-1], 0.5)]
    assert again == first[::-1]


def test_signature_ignores_similarity_transforms_and_sees_identity(people):
    shape = people["A"] * 150 + 300
    angle = 0.4
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = (shape @ rotation.T) * 1.7 + (40, -25)
    rigid = MEDIAPIPE478.rigid
    assert signature_distance(shape_signature(shape, rigid), shape_signature(moved, rigid)) < 1e-12
    other = people["B"] * 150 + 300
    assert signature_distance(shape_signature(shape, rigid), shape_signature(other, rigid)) > 0.03


def test_ibug68_faces_are_tracked_and_never_share_a_track_with_mediapipe_faces(people):
    rng = np.random.default_rng(6)
    ibug_shape = rng.uniform(-0.5, 0.5, (68, 2))
    tracker = FaceTracker()
    ids = set()
    for k in range(25):
        t = k / 25
        center = np.array([300 + 50 * t, 300])
        mediapipe_face = _render(people["A"], center, 150, 0.0, rng)
        ibug_face = FaceLandmarks(
            points=ibug_shape * 150 + center + rng.normal(0, 0.5, (68, 2)), scheme="ibug68"
        )
        ids.add(tuple(track_id for track_id, _ in tracker.update([mediapipe_face, ibug_face], t)))
    assert ids == {(0, 1)}
