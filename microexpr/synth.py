"""Synthetic ground truth: face videos with expression events of known timing.

A real face photo (scikit-image's astronaut, or any photo through
:func:`face_from_photo`) is deformed by smooth Action Unit (AU) displacement fields
(sums of anisotropic Gaussian radial-basis displacements anchored at facial
landmarks), then moved by a global head pose, relit, given sensor noise and
encoded as H.264. Every expression event and every nuisance (blinks, head
turns, speech, lighting changes) is written to a truth JSON file with its
real presentation times.

Coordinates: ``(x, y)`` pixels, ``y`` down. ``left`` / ``right`` in anchor
names mean the side of the *image* (the viewer's left is the subject's right).
A displacement field ``d`` is applied as a backward warp: output pixel ``p``
takes the source pixel at ``p - d(p)``, so content moves by about ``+d``.

Frame pipeline: base face -> AU and blink warp (``cv2.remap``, bilinear,
reflect border, face box only) -> head pose (2-D similarity) -> illumination
gain/offset -> Gaussian sensor noise -> (``write_clip`` only) H.264.

Truth JSON layout::

    {"video": "clip.mp4", "fps": 30.0, "n_frames": N, "size": [640, 480],
     "frame_times": [0.0, ...],
     "events": [{"onset", "apex", "offset", "onset_frame", "apex_frame",
                 "offset_frame", "kind": "micro" | "macro", "subtle",
                 "regions": [...], "aus": {"12": 0.8, ...}, "emotion",
                 "side": null | "left" | "right", "amplitude_px"}],
     "blinks": [{"onset", "offset", "onset_frame", "offset_frame"}],
     "nuisances": [{"type": "head_turn" | "speech" | "illumination",
                    "start", "end", "start_frame", "end_frame", ...}],
     "spec": {...ClipSpec...}, "face": "skimage astronaut"}

Times are seconds (real presentation times); frames are 0-based, inclusive.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from microexpr.aus import PROTOTYPES
from microexpr.errors import ParameterError, VideoError

__all__ = [
    "ANCHOR_NAMES",
    "AU_REGIONS",
    "EMOTION_AUS",
    "REFERENCE_IOD_PX",
    "TIME_BASE",
    "FaceImage",
    "DEFAULT_FACE_NAME",
    "default_face",
    "face_from_photo",
    "TruthEvent",
    "Truth",
    "ClipSpec",
    "ClipFrames",
    "render_clip",
    "write_clip",
    "write_benchmark_set",
]

#: Inter-ocular distance (eye centre to eye centre, px) at which displacement
#: amplitudes are quoted; fields scale with the face.
REFERENCE_IOD_PX = 70.0

#: Presentation-time unit of written videos; 25, 30, 60 and 200 fps are exact in it.
TIME_BASE = Fraction(1, 90000)

ANCHOR_NAMES = (
    "brow_inner_left", "brow_mid_left", "brow_outer_left",
    "brow_inner_right", "brow_mid_right", "brow_outer_right",
    "eye_outer_left", "eye_inner_left", "lid_upper_left", "lid_lower_left",
    "eye_outer_right", "eye_inner_right", "lid_upper_right", "lid_lower_right",
    "nose_tip", "nose_wing_left", "nose_wing_right", "cheek_left", "cheek_right",
    "mouth_corner_left", "mouth_corner_right",
    "lip_upper", "lip_upper_inner", "lip_lower_inner", "lip_lower",
    "chin_boss", "chin",
)

# Found once with MediaPipe FaceLandmarker (IMAGE mode, face_landmarker.task)
# on skimage.data.astronaut(); mesh indices: brows = mean of the upper and
# lower brow edge (55/107, 105/52, 46/70; 285/336, 334/282, 276/300), eye
# corners 33/133, 263/362, lids 159/145, 386/374, nose 1/98/327, cheeks
# 50/280, mouth 61/291, lips 0/13/14/17, chin 199/152.
_ASTRONAUT_ANCHORS: dict[str, tuple[float, float]] = {
    "brow_inner_left": (215.7, 92.4),
    "brow_mid_left": (198.1, 88.2),
    "brow_outer_left": (188.9, 91.8),
    "brow_inner_right": (235.2, 93.1),
    "brow_mid_right": (253.5, 91.0),
    "brow_outer_right": (262.7, 95.8),
    "eye_outer_left": (195.3, 100.6),
    "eye_inner_left": (213.6, 103.6),
    "lid_upper_left": (202.6, 97.8),
    "lid_lower_left": (204.2, 104.2),
    "eye_outer_right": (255.3, 103.8),
    "eye_inner_right": (236.4, 104.9),
    "lid_upper_right": (248.1, 100.2),
    "lid_lower_right": (245.9, 106.5),
    "nose_tip": (223.5, 131.1),
    "nose_wing_left": (211.3, 129.5),
    "nose_wing_right": (236.3, 130.7),
    "cheek_left": (191.0, 119.7),
    "cheek_right": (257.8, 123.2),
    "mouth_corner_left": (202.3, 139.2),
    "mouth_corner_right": (244.5, 140.6),
    "lip_upper": (223.4, 140.6),
    "lip_upper_inner": (223.3, 143.2),
    "lip_lower_inner": (223.0, 149.2),
    "lip_lower": (222.7, 154.7),
    "chin_boss": (221.8, 169.6),
    "chin": (221.4, 177.4),
}

#: The skimage astronaut's name in truth files (clips from :func:`default_face`).
DEFAULT_FACE_NAME = "skimage astronaut"

# The MediaPipe mesh points behind each anchor (several are averaged), as
# listed above; "left" / "right" as seen in the image.
_MESH_ANCHORS: dict[str, tuple[int, ...]] = {
    "brow_inner_left": (55, 107), "brow_mid_left": (105, 52), "brow_outer_left": (46, 70),
    "brow_inner_right": (285, 336), "brow_mid_right": (334, 282), "brow_outer_right": (276, 300),
    "eye_outer_left": (33,), "eye_inner_left": (133,), "lid_upper_left": (159,), "lid_lower_left": (145,),
    "eye_outer_right": (263,), "eye_inner_right": (362,), "lid_upper_right": (386,), "lid_lower_right": (374,),
    "nose_tip": (1,), "nose_wing_left": (98,), "nose_wing_right": (327,),
    "cheek_left": (50,), "cheek_right": (280,),
    "mouth_corner_left": (61,), "mouth_corner_right": (291,),
    "lip_upper": (0,), "lip_upper_inner": (13,), "lip_lower_inner": (14,), "lip_lower": (17,),
    "chin_boss": (199,), "chin": (152,),
}

#: EMFACS prototypes (the spotter's own table); two tuples are two variants.
EMOTION_AUS = PROTOTYPES
_UNILATERAL_EMOTIONS = frozenset({"contempt"})

#: Regions each rendered AU moves (names shared across microexpr).
AU_REGIONS: dict[int, tuple[str, ...]] = {
    1: ("brows",), 2: ("brows",), 4: ("brows",),
    5: ("eyes",), 6: ("cheeks", "eyes"), 7: ("eyes",),
    9: ("nose",), 10: ("mouth", "nose"),
    12: ("mouth",), 14: ("mouth",), 15: ("mouth",), 16: ("mouth",),
    17: ("chin", "mouth"), 20: ("mouth",), 23: ("mouth",), 25: ("mouth",),
    26: ("chin", "mouth"),
}

# The three areas a subtle (partial) expression may be confined to.
_SUBTLE_AREAS: dict[str, frozenset[int]] = {
    "brows": frozenset({1, 2, 4}),
    "eyes": frozenset({5, 6, 7}),
    "mouth": frozenset({10, 12, 14, 15, 16, 17, 20, 23, 25, 26}),
}

# AU field components: (anchor, lateral, vertical, weight, sigma_u, sigma_v).
# Anchors without a side suffix are expanded to _left and _right; lateral > 0
# points away from the face midline, vertical > 0 points down (face frame);
# sigmas are in inter-ocular distances along / across the eye line.
_AU_COMPONENTS: dict[int, tuple[tuple[str, float, float, float, float, float], ...]] = {
    1: (("brow_inner", 0.0, -1.0, 1.0, 0.16, 0.14), ("glabella", 0.0, -1.0, 0.5, 0.12, 0.12)),
    2: (("brow_outer", 0.0, -1.0, 1.0, 0.16, 0.14), ("brow_mid", 0.0, -1.0, 0.6, 0.14, 0.14)),
    4: (("brow_inner", -0.5, 0.85, 1.0, 0.16, 0.13), ("brow_mid", -0.2, 0.9, 0.6, 0.14, 0.13),
        ("glabella", 0.0, 0.4, 0.4, 0.10, 0.10)),
    5: (("lid_upper", 0.0, -1.0, 1.0, 0.15, 0.07),),
    6: (("cheek", 0.1, -1.0, 1.0, 0.22, 0.18), ("lid_lower", 0.0, -1.0, 0.6, 0.14, 0.07),
        ("eye_outer", -0.4, -0.4, 0.35, 0.10, 0.10)),
    7: (("lid_lower", 0.0, -1.0, 1.0, 0.15, 0.07), ("lid_upper", 0.0, 1.0, 0.4, 0.15, 0.06)),
    9: (("nose_wing", -0.2, -1.0, 1.0, 0.12, 0.12), ("nose_tip", 0.0, -1.0, 0.3, 0.10, 0.10),
        ("lip_upper", 0.0, -1.0, 0.4, 0.20, 0.10)),
    10: (("lip_upper", 0.0, -1.0, 1.0, 0.22, 0.10), ("lip_upper_side", 0.0, -1.0, 0.8, 0.12, 0.10),
         ("nose_wing", 0.0, -1.0, 0.3, 0.12, 0.12)),
    12: (("mouth_corner", 0.55, -0.85, 1.0, 0.17, 0.15), ("cheek", 0.2, -1.0, 0.3, 0.22, 0.20)),
    14: (("mouth_corner", -0.9, -0.2, 1.0, 0.12, 0.12),),
    15: (("mouth_corner", 0.15, 1.0, 1.0, 0.15, 0.17),),
    16: (("lip_lower", 0.0, 1.0, 1.0, 0.20, 0.10), ("lip_lower_side", 0.2, 1.0, 0.7, 0.12, 0.10)),
    17: (("chin_boss", 0.0, -1.0, 1.0, 0.25, 0.18), ("lip_lower", 0.0, -1.0, 0.6, 0.20, 0.10)),
    20: (("mouth_corner", 1.0, 0.15, 1.0, 0.15, 0.15),),
    23: (("lip_upper", 0.0, 1.0, 0.8, 0.20, 0.07), ("lip_lower", 0.0, -1.0, 0.8, 0.20, 0.07),
         ("mouth_corner", -0.5, 0.0, 0.5, 0.10, 0.10)),
    25: (("lip_lower_inner", 0.0, 1.0, 1.0, 0.22, 0.07), ("lip_upper_inner", 0.0, -1.0, 0.4, 0.20, 0.06)),
    26: (("chin", 0.0, 1.0, 1.0, 0.40, 0.30), ("chin_boss", 0.0, 1.0, 0.9, 0.35, 0.25),
         ("lip_lower", 0.0, 1.0, 0.7, 0.25, 0.12), ("mouth_corner", 0.0, 1.0, 0.3, 0.12, 0.12)),
}
# Peak displacement of each AU relative to the event amplitude: thin
# structures (lids, lips) move less than brows, cheeks and the jaw.
_AU_GAIN: dict[int, float] = {
    1: 1.0, 2: 1.0, 4: 1.0, 5: 0.6, 6: 1.0, 7: 0.6, 9: 0.8, 10: 0.8, 12: 1.0,
    14: 0.6, 15: 0.8, 16: 0.8, 17: 0.8, 20: 0.9, 23: 0.6, 25: 0.8, 26: 1.2,
}

_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                 "veryslow", "placebo")
_MICRO_DURATION_S = (1.0 / 25.0, 0.45)  # upper end kept off the 0.5 s micro/macro border
_MACRO_DURATION_S = (0.6, 4.0)
_EVENT_GAP_S = 1.0
_EDGE_S = 0.5
_BLINK_DURATION_S = (0.1, 0.4)
_BLINKS_PER_MINUTE = (10.0, 20.0)
_SPEECH_DURATION_S = (1.0, 4.0)
_SPEECH_RATE_HZ = (3.0, 6.0)
_HEAD_MOVE_DURATION_S = (0.2, 0.8)
_LIGHT_CHANGE_DURATION_S = (1.0, 3.0)


# ---------------------------------------------------------------------------
# Face source
# ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FaceImage:
    """A face photo and its named anchor points.

    Parameters
    ----------
    image : np.ndarray
        RGB uint8, shape (H, W, 3).
    anchors : dict of str to (float, float)
        Pixel ``(x, y)`` of every name in ``ANCHOR_NAMES`` (``left`` / ``right``
        as seen in the image).
    name : str, optional
        Says which face this is; clips rendered from it record it in their truth,
        and a benchmark set reuses a clip only for the same name. Default
        ``"unnamed (sha1 ...)"``, with the pixels' fingerprint.
    """

    image: np.ndarray
    anchors: dict[str, tuple[float, float]]
    name: str | None = None

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = (f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__)
            raise ParameterError(f"FaceImage.image: expected RGB uint8 array of shape (H, W, 3), got {got}")
        if not isinstance(self.anchors, Mapping):
            raise ParameterError(
                f"FaceImage.anchors: expected a dict name -> (x, y), got {type(self.anchors).__name__}"
            )
        missing = [name for name in ANCHOR_NAMES if name not in self.anchors]
        if missing:
            raise ParameterError(f"FaceImage.anchors: missing {missing}; every name in ANCHOR_NAMES is needed")
        height, width = image.shape[:2]
        clean: dict[str, tuple[float, float]] = {}
        for name in ANCHOR_NAMES:
            try:
                x, y = (float(v) for v in self.anchors[name])
            except (TypeError, ValueError):
                raise ParameterError(
                    f"FaceImage.anchors[{name!r}]: expected (x, y) numbers, got {self.anchors[name]!r}"
                ) from None
            if not (math.isfinite(x) and math.isfinite(y) and 0 <= x < width and 0 <= y < height):
                raise ParameterError(
                    f"FaceImage.anchors[{name!r}] = ({x}, {y}) is not inside the {width}x{height} image"
                )
            clean[name] = (x, y)
        object.__setattr__(self, "anchors", clean)
        object.__setattr__(self, "image", np.ascontiguousarray(image))
        if self.name is None:
            object.__setattr__(self, "name", _fingerprinted("unnamed", self.image))
        elif not isinstance(self.name, str):
            raise ParameterError(f"FaceImage.name must be a string, got {type(self.name).__name__}")


def _fingerprinted(label: str, image: np.ndarray) -> str:
    """``label`` with the first 8 hex digits of the image's SHA-1: tells two photos of one name apart."""
    return f"{label} (sha1 {hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()[:8]})"


def default_face() -> FaceImage:
    """Return the astronaut photo shipped in scikit-image with its anchors.

    Returns
    -------
    FaceImage
        512 x 512 RGB image, inter-ocular distance about 42 px.
    """
    try:
        from skimage import data
    except ImportError as exc:
        raise ParameterError(
            "default_face() needs scikit-image (pip install scikit-image), or pass face=FaceImage(...)"
        ) from exc
    return FaceImage(data.astronaut(), dict(_ASTRONAUT_ANCHORS), name=DEFAULT_FACE_NAME)


def _video_frame(path: Path, at: float) -> tuple[np.ndarray, str]:
    """The frame of a video shown at ``at`` seconds (the first at or after it), and its label."""
    from microexpr.video import open_video

    if not (_is_real(at) and math.isfinite(at) and at >= 0):
        raise ParameterError(f"face_from_photo: at must be a time in seconds >= 0, got {at!r}")
    with open_video(path) as video:
        for frame in video:
            if frame.t >= at - 1e-6:
                return frame.image, f"{path.name} at {frame.t:.3f} s"
    raise ParameterError(f"{path}: the video ends before {at:g} s")


def face_from_photo(photo: str | Path | np.ndarray, *, at: float | None = None,
                    model: str | Path | None = None, name: str | None = None) -> FaceImage:
    """Make a :class:`FaceImage` of the largest face in a photo, its anchors found
    by MediaPipe's Face Landmarker, so clips can be rendered from any face.

    Parameters
    ----------
    photo : str, Path or np.ndarray
        An image file (anything OpenCV reads: PNG, JPEG, ...) or an RGB uint8
        array of shape (H, W, 3); with ``at``, a video file. A frontal face
        with a closed mouth and open eyes renders best: expressions are drawn
        on top of the one it shows.
    at : float, optional
        Take the video's first frame shown at or after ``at`` seconds.
    model : str or Path, optional
        ``face_landmarker.task``; default :func:`microexpr.landmarks.find_face_model`.
    name : str, optional
        Recorded in the truth of clips made from it; default the file name
        (``"photo"`` for an array) and the first 8 hex digits of the pixels' SHA-1.

    Raises
    ------
    ParameterError
        The file cannot be read as an image, or no face is found in it.
    ModelNotFoundError
        No face model (see :func:`microexpr.landmarks.find_face_model`).
    """
    from microexpr.landmarks import FaceLandmarker

    if at is not None:
        if isinstance(photo, np.ndarray):
            raise ParameterError("face_from_photo: at picks a frame of a video file; an array is one image already")
        image, label = _video_frame(Path(photo), at)
    elif isinstance(photo, np.ndarray):
        image, label = photo, "photo"
    else:
        path = Path(photo)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if bgr is None:
            raise ParameterError(f"{path}: not found or not an image file OpenCV can read")
        image, label = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), path.name
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ParameterError(f"face_from_photo: expected an RGB uint8 image of shape (H, W, 3), got {got}")
    landmarker = FaceLandmarker(model=model, max_faces=4, blendshapes=False)
    try:
        faces = landmarker.detect(image, 0.0)
    finally:
        landmarker.close()
    if not faces:
        raise ParameterError(f"face_from_photo: no face found in {label}")
    points = np.asarray(max(faces, key=lambda face: face.size).points, dtype=np.float64)
    height, width = image.shape[:2]
    anchors = {anchor: tuple(float(v) for v in np.clip(points[list(indices)].mean(axis=0),
                                                        0, [width - 1, height - 1]))
               for anchor, indices in _MESH_ANCHORS.items()}
    return FaceImage(image, anchors, name=_fingerprinted(label, image) if name is None else name)


# ---------------------------------------------------------------------------
# Truth
# ---------------------------------------------------------------------------
@dataclass
class TruthEvent:
    """One expression event.

    Times are presentation times in seconds; frames are 0-based and inclusive:
    ``onset_frame`` is the first frame at or after ``onset`` and
    ``offset_frame`` the last frame at or before ``offset``; ``apex`` is the
    time of ``apex_frame`` (intensity 1). ``aus`` maps AU number to intensity
    in [0, 1]; ``regions`` lists every region those AUs move (``AU_REGIONS``;
    a subtle event renders only the AUs of one area: brows, eyes or mouth,
    so an eyes-only AU6 still lists "cheeks"); ``side`` is ``"left"`` /
    ``"right"`` (image side) for a
    one-sided event, else None; ``amplitude_px`` is the apex displacement in
    this video's pixels of an AU at intensity 1.
    """

    onset: float
    apex: float
    offset: float
    onset_frame: int
    apex_frame: int
    offset_frame: int
    kind: str
    subtle: bool
    regions: list[str]
    aus: dict[int, float]
    emotion: str
    side: str | None = None
    amplitude_px: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["aus"] = {str(au): value for au, value in self.aus.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TruthEvent:
        try:
            return cls(
                onset=float(data["onset"]), apex=float(data["apex"]), offset=float(data["offset"]),
                onset_frame=int(data["onset_frame"]), apex_frame=int(data["apex_frame"]),
                offset_frame=int(data["offset_frame"]), kind=str(data["kind"]), subtle=bool(data["subtle"]),
                regions=[str(r) for r in data["regions"]],
                aus={int(au): float(value) for au, value in data["aus"].items()},
                emotion=str(data["emotion"]), side=data.get("side"),
                amplitude_px=float(data.get("amplitude_px", 0.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ParameterError(f"truth event {dict(data)!r} is malformed: {exc}") from None


@dataclass
class Truth:
    """Ground truth of one synthetic clip.

    Attributes
    ----------
    video : str
        File name of the video, relative to the truth file's folder ("" in memory).
    fps : float
        Nominal frame rate.
    frame_times : list of float
        Presentation time of every frame, seconds (exact multiples of ``TIME_BASE``).
    events : list of TruthEvent
    blinks : list of (float, float)
        ``(onset, offset)`` seconds.
    nuisances : list of dict
        ``{"type": "head_turn" | "speech" | "illumination", "start", "end",
        "start_frame", "end_frame", ...}``.
    size : (int, int) or None
        ``(width, height)`` of the frames.
    spec : dict or None
        The ``ClipSpec`` that made the clip, as plain JSON values.
    face : str or None
        The name of the :class:`FaceImage` it was rendered from.
    """

    video: str
    fps: float
    frame_times: list[float]
    events: list[TruthEvent]
    blinks: list[tuple[float, float]]
    nuisances: list[dict[str, Any]]
    size: tuple[int, int] | None = None
    spec: dict[str, Any] | None = None
    face: str | None = None

    @property
    def n_frames(self) -> int:
        return len(self.frame_times)

    def frame_range(self, onset: float, offset: float) -> tuple[int, int]:
        """Inclusive frames ``(first at or after onset, last at or before offset)``."""
        return _frame_range(np.asarray(self.frame_times), onset, offset)

    def to_dict(self) -> dict[str, Any]:
        times = np.asarray(self.frame_times)
        blinks = []
        for onset, offset in self.blinks:
            first, last = _frame_range(times, onset, offset)
            blinks.append({"onset": onset, "offset": offset, "onset_frame": first, "offset_frame": last})
        return {
            "video": self.video,
            "fps": self.fps,
            "n_frames": self.n_frames,
            "size": list(self.size) if self.size is not None else None,
            "frame_times": list(self.frame_times),
            "events": [event.to_dict() for event in self.events],
            "blinks": blinks,
            "nuisances": [dict(item) for item in self.nuisances],
            "spec": self.spec,
            "face": self.face,
        }

    def to_json(self) -> str:
        """Return the truth as JSON text (layout in the module docstring)."""
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path: str | Path) -> Path:
        """Write ``to_json()`` to ``path`` and return it."""
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, source: str | Path) -> Truth:
        """Read a truth from a file path, or from JSON text starting with ``{``."""
        if isinstance(source, str) and source.lstrip().startswith("{"):
            text, where = source, "truth JSON text"
        else:
            try:
                text, where = Path(source).read_text(encoding="utf-8"), str(source)
            except OSError as exc:
                raise ParameterError(f"cannot read truth file {source}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ParameterError(f"{where}: expected a JSON object, got {type(data).__name__}")
        missing = [key for key in ("video", "fps", "frame_times", "events", "blinks", "nuisances") if key not in data]
        if missing:
            raise ParameterError(f"{where}: missing keys {missing}")
        size = data.get("size")
        return cls(
            video=str(data["video"]),
            fps=float(data["fps"]),
            frame_times=[float(t) for t in data["frame_times"]],
            events=[TruthEvent.from_dict(item) for item in data["events"]],
            blinks=[(float(item["onset"]), float(item["offset"])) for item in data["blinks"]],
            nuisances=[dict(item) for item in data["nuisances"]],
            size=(int(size[0]), int(size[1])) if size is not None else None,
            spec=data.get("spec"),
            face=data.get("face"),
        )


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _frame_range(times: np.ndarray, onset: float, offset: float) -> tuple[int, int]:
    first = int(np.searchsorted(times, onset, side="left"))
    last = int(np.searchsorted(times, offset, side="right")) - 1
    first = min(first, len(times) - 1)
    return first, max(first, last)


# ---------------------------------------------------------------------------
# Clip specification
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipSpec:
    """What to render.

    Parameters
    ----------
    fps : float
        Nominal frame rate (25, 30, 60, 200 are the benchmark rates).
    duration : float
        Clip length, seconds.
    size : (int, int)
        ``(width, height)``, both even (H.264 4:2:0).
    seed : int
        Everything random follows from it.
    n_micro, n_macro : int or None
        Whole-face micro / macro events; None = one per 10 s / 15 s
        (at least one micro in clips of 1.5 s or more).
    n_subtle : int or None
        Region-confined events (each micro or macro); None = one per 15 s.
    blinks, head_motion, speech, noise, illumination : bool
        Nuisance switches.
    crf : int
        x264 constant rate factor (0-51) used by ``write_clip``.
    vfr : bool
        Jitter presentation times by up to +-30 % of a frame interval.
    face_scale : float
        Inter-ocular distance as a fraction of the frame width (0.11 gives
        70 px at 640 px).
    background : {"photo", "blurred"}
        The photo's own surroundings (its edge pixels repeat where a small
        face leaves the photo short of the frame), or the head and shoulders
        over a static blurred copy.
    emotions : tuple of str or None
        Restrict events to these emotions (keys of ``EMOTION_AUS``).
    micro_amplitude_px, macro_amplitude_px : (float, float)
        Range of apex displacement at ``REFERENCE_IOD_PX``.
    preset : str
        x264 speed preset used by ``write_clip``.
    """

    fps: float = 30.0
    duration: float = 30.0
    size: tuple[int, int] = (640, 480)
    seed: int = 0
    n_micro: int | None = None
    n_macro: int | None = None
    n_subtle: int | None = None
    blinks: bool = True
    head_motion: bool = True
    speech: bool = True
    noise: bool = True
    illumination: bool = True
    crf: int = 23
    vfr: bool = False
    face_scale: float = 0.11
    background: str = "photo"
    emotions: tuple[str, ...] | None = None
    micro_amplitude_px: tuple[float, float] = (0.8, 3.0)
    macro_amplitude_px: tuple[float, float] = (2.0, 6.0)
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        if not (_is_real(self.fps) and math.isfinite(self.fps) and 1.0 <= self.fps <= 1000.0):
            raise ParameterError(f"ClipSpec.fps must be a number in [1, 1000] frames per second, got {self.fps!r}")
        if not (_is_real(self.duration) and math.isfinite(self.duration) and self.duration > 0):
            raise ParameterError(f"ClipSpec.duration must be a positive number of seconds, got {self.duration!r}")
        try:
            width, height = (int(v) for v in self.size)
        except (TypeError, ValueError):
            raise ParameterError(f"ClipSpec.size must be (width, height), got {self.size!r}") from None
        if width < 32 or height < 32 or width % 2 or height % 2:
            raise ParameterError(f"ClipSpec.size must be even and at least 32x32 (H.264 4:2:0), got {self.size!r}")
        object.__setattr__(self, "size", (width, height))
        for name in ("n_micro", "n_macro", "n_subtle"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0):
                raise ParameterError(f"ClipSpec.{name} must be None or an integer >= 0, got {value!r}")
        if not (isinstance(self.crf, (int, np.integer)) and not isinstance(self.crf, bool) and 0 <= self.crf <= 51):
            raise ParameterError(f"ClipSpec.crf must be an integer in [0, 51], got {self.crf!r}")
        if not (_is_real(self.face_scale) and 0.02 <= self.face_scale <= 0.5):
            raise ParameterError(
                "ClipSpec.face_scale (inter-ocular distance / frame width) must be in [0.02, 0.5], "
                f"got {self.face_scale!r}"
            )
        if self.face_scale * width < 16:
            warnings.warn(
                f"ClipSpec: inter-ocular distance {self.face_scale * width:.1f} px is below 16 px; "
                "expression motion will be sub-pixel",
                stacklevel=3,
            )
        if self.preset not in _X264_PRESETS:
            raise ParameterError(f"ClipSpec.preset must be one of {list(_X264_PRESETS)}, got {self.preset!r}")
        if self.background not in ("photo", "blurred"):
            raise ParameterError(f"ClipSpec.background must be 'photo' or 'blurred', got {self.background!r}")
        if self.emotions is not None:
            emotions = tuple(self.emotions)
            unknown = [e for e in emotions if e not in EMOTION_AUS]
            if unknown or not emotions:
                raise ParameterError(
                    f"ClipSpec.emotions must be a non-empty subset of {sorted(EMOTION_AUS)}, got {self.emotions!r}"
                )
            object.__setattr__(self, "emotions", emotions)
        for name in ("micro_amplitude_px", "macro_amplitude_px"):
            low_high = getattr(self, name)
            try:
                low, high = (float(v) for v in low_high)
            except (TypeError, ValueError):
                raise ParameterError(f"ClipSpec.{name} must be (low, high) pixels, got {low_high!r}") from None
            if not (0 < low <= high <= 20):
                raise ParameterError(f"ClipSpec.{name} must satisfy 0 < low <= high <= 20 px, got {low_high!r}")
            object.__setattr__(self, name, (low, high))

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.duration * self.fps)))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out


# ---------------------------------------------------------------------------
# Face rig: geometry, AU unit fields, eyelid model, warping
# ---------------------------------------------------------------------------
@dataclass
class _EyeModel:
    rows: slice  # inside the rig box
    cols: slice
    v: np.ndarray  # (h, w) across it, down, px
    lid_upper: np.ndarray  # (h, w) v of the upper lid margin at this column
    opening: np.ndarray  # (h, w) lower minus upper lid, 0 outside the corners
    skin_height: float  # px of upper-lid skin stretched over the eye


class _FaceRig:
    """The face placed in the output frame, with its unit AU fields."""

    def __init__(self, face: FaceImage, *, size: tuple[int, int], face_scale: float, background: str) -> None:
        width, height = size
        src = {name: np.asarray(xy, dtype=np.float64) for name, xy in face.anchors.items()}
        eye_l = (src["eye_outer_left"] + src["eye_inner_left"]) / 2
        eye_r = (src["eye_outer_right"] + src["eye_inner_right"]) / 2
        src_iod = float(np.linalg.norm(eye_r - eye_l))
        if src_iod < 4:
            raise ParameterError(f"FaceImage anchors: eye centres are {src_iod:.1f} px apart; expected a visible face")
        self.iod = face_scale * width
        scale = self.iod / src_iod
        mouth = (src["mouth_corner_left"] + src["mouth_corner_right"]) / 2
        face_centre = ((eye_l + eye_r) / 2 + mouth) / 2
        target = np.array([(width - 1) / 2, (height - 1) / 2])  # pixel centres: mirror-symmetric
        photo_size = scale * np.array(face.image.shape[1::-1], dtype=np.float64)
        for axis, frame_size in enumerate((width, height)):
            if photo_size[axis] >= frame_size:
                # shift the face off-centre rather than show smeared photo borders
                low = frame_size - photo_size[axis] + scale * face_centre[axis]
                target[axis] = np.clip(target[axis], low, scale * face_centre[axis])
        placement = np.array([[scale, 0, target[0] - scale * face_centre[0]],
                              [0, scale, target[1] - scale * face_centre[1]]])
        image = face.image
        if scale < 1:
            image = cv2.GaussianBlur(image, (0, 0), 0.45 / scale)  # anti-alias before shrinking
        self.base = cv2.warpAffine(image, placement, (width, height), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REPLICATE)
        self.size = (width, height)
        self.anchors = {name: placement[:, :2] @ xy + placement[:, 2] for name, xy in src.items()}
        self._add_derived_anchors()
        a = self.anchors
        axis = ((a["eye_outer_right"] + a["eye_inner_right"]) - (a["eye_outer_left"] + a["eye_inner_left"])) / 2
        self.ex = axis / np.linalg.norm(axis)
        self.ey = np.array([-self.ex[1], self.ex[0]])
        self.centre = (a["eye_inner_left"] + a["eye_inner_right"] + a["nose_tip"] + a["lip_upper"]) / 4

        self._eye_geometry = {side: self._eye_shape(side) for side in ("left", "right")}
        self.box = self._face_box()
        y0, y1, x0, x1 = self.box
        self.grid_x, self.grid_y = np.meshgrid(np.arange(x0, x1, dtype=np.float32),
                                               np.arange(y0, y1, dtype=np.float32))
        self.fields = self._unit_fields()
        self.eyes = [self._eye_model(side) for side in ("left", "right")]

        self.background = None
        self.head_mask = None
        if background == "blurred":
            self.background = cv2.GaussianBlur(self.base, (0, 0), max(3.0, 0.4 * self.iod)).astype(np.float32)
            mask = np.zeros((height, width), np.float32)
            angle = math.degrees(math.atan2(self.ex[1], self.ex[0]))
            # head, then neck and shoulders: (centre offset down, half axes) in inter-ocular distances
            for down, axes in ((-0.3, (1.5, 2.0)), (2.0, (1.0, 1.2)), (3.6, (2.6, 1.2))):
                centre = tuple(int(round(c)) for c in self.centre + down * self.iod * self.ey)
                half_axes = (int(round(axes[0] * self.iod)), int(round(axes[1] * self.iod)))
                cv2.ellipse(mask, centre, half_axes, angle, 0, 360, 1.0, -1)
            self.head_mask = cv2.GaussianBlur(mask, (0, 0), 0.15 * self.iod)

    def _add_derived_anchors(self) -> None:
        a = self.anchors
        a["glabella"] = (a["brow_inner_left"] + a["brow_inner_right"]) / 2
        for side in ("left", "right"):
            a[f"lip_upper_side_{side}"] = (a["lip_upper"] + a[f"mouth_corner_{side}"]) / 2
            a[f"lip_lower_side_{side}"] = (a["lip_lower"] + a[f"mouth_corner_{side}"]) / 2

    def _components(self, au: int) -> list[tuple[str, np.ndarray, np.ndarray, float, float, float]]:
        """Expand one AU into (side, anchor xy, image direction, weight, sigma_u px, sigma_v px)."""
        out = []
        for anchor, lateral, vertical, weight, sigma_u, sigma_v in _AU_COMPONENTS[au]:
            if anchor in self.anchors:
                sides = [("mid", anchor, 0.0)]
            else:
                sides = [("left", f"{anchor}_left", -1.0), ("right", f"{anchor}_right", 1.0)]
            for side, name, outward in sides:
                direction = lateral * outward * self.ex + vertical * self.ey
                direction = direction / max(np.linalg.norm(direction), 1e-9)
                out.append((side, self.anchors[name], direction, weight, sigma_u * self.iod, sigma_v * self.iod))
        return out

    def _face_box(self) -> tuple[int, int, int, int]:
        width, height = self.size
        points = []
        for au in _AU_COMPONENTS:
            for _, xy, _, _, sigma_u, sigma_v in self._components(au):
                reach = 3.5 * max(sigma_u, sigma_v)
                points += [xy - reach, xy + reach]
        for geometry in self._eye_geometry.values():
            points += list(geometry["corners"])
        points = np.array(points)
        x0, y0 = np.floor(points.min(axis=0)).astype(int)
        x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 1
        return max(0, y0), min(height, y1), max(0, x0), min(width, x1)

    def _unit_fields(self) -> dict[tuple[int, str], np.ndarray]:
        ex, ey = self.ex, self.ey
        fields: dict[tuple[int, str], np.ndarray] = {}
        for au in _AU_COMPONENTS:
            parts = {side: np.zeros(self.grid_x.shape + (2,), np.float32) for side in ("left", "right", "mid")}
            for side, xy, direction, weight, sigma_u, sigma_v in self._components(au):
                dx, dy = self.grid_x - xy[0], self.grid_y - xy[1]
                along, across = dx * ex[0] + dy * ex[1], dx * ey[0] + dy * ey[1]
                bump = weight * np.exp(-0.5 * ((along / sigma_u) ** 2 + (across / sigma_v) ** 2))
                parts[side] += bump[..., None] * direction.astype(np.float32)
            both = parts["left"] + parts["right"] + parts["mid"]
            norm = float(np.sqrt((both ** 2).sum(axis=2)).max())
            gain = _AU_GAIN[au] / norm
            fields[(au, "both")] = both * gain
            fields[(au, "left")] = (parts["left"] + parts["mid"]) * gain
            fields[(au, "right")] = (parts["right"] + parts["mid"]) * gain
        return fields

    def _eye_shape(self, side: str) -> dict[str, Any]:
        a = self.anchors
        outer, inner = a[f"eye_outer_{side}"], a[f"eye_inner_{side}"]
        upper, lower = a[f"lid_upper_{side}"], a[f"lid_lower_{side}"]
        centre = (outer + inner) / 2

        def local(p: np.ndarray) -> tuple[float, float]:
            return float((p - centre) @ self.ex), float((p - centre) @ self.ey)

        (uo, vo), (ui, vi), (uu, vu), (ul, vl) = local(outer), local(inner), local(upper), local(lower)
        upper_curve = np.polyfit([uo, uu, ui], [vo, vu, vi], 2)
        lower_curve = np.polyfit([uo, ul, ui], [vo, vl, vi], 2)
        u_lo, u_hi = min(uo, ui), max(uo, ui)
        samples = np.linspace(u_lo, u_hi, 64)
        max_open = float(np.max(np.polyval(lower_curve, samples) - np.polyval(upper_curve, samples)))
        skin = 0.7 * max(max_open, 1.0)
        top = float(np.min(np.polyval(upper_curve, samples))) - skin - 2
        bottom = float(np.max(np.polyval(lower_curve, samples))) + 2
        corners = [centre + u * self.ex + v * self.ey for u in (u_lo - 2, u_hi + 2) for v in (top, bottom)]
        return {"centre": centre, "upper": upper_curve, "lower": lower_curve, "u_range": (u_lo, u_hi),
                "skin": skin, "corners": corners}

    def _eye_model(self, side: str) -> _EyeModel:
        geometry = self._eye_geometry[side]
        corners = np.array(geometry["corners"])
        y0, y1, x0, x1 = self.box
        cx0, cy0 = np.floor(corners.min(axis=0)).astype(int)
        cx1, cy1 = np.ceil(corners.max(axis=0)).astype(int) + 1
        rows = slice(max(cy0, y0) - y0, min(cy1, y1) - y0)
        cols = slice(max(cx0, x0) - x0, min(cx1, x1) - x0)
        gx, gy = self.grid_x[rows, cols], self.grid_y[rows, cols]
        dx, dy = gx - geometry["centre"][0], gy - geometry["centre"][1]
        u = (dx * self.ex[0] + dy * self.ex[1]).astype(np.float32)
        v = (dx * self.ey[0] + dy * self.ey[1]).astype(np.float32)
        upper = np.polyval(geometry["upper"], u).astype(np.float32)
        lower = np.polyval(geometry["lower"], u).astype(np.float32)
        u_lo, u_hi = geometry["u_range"]
        inside = (u > u_lo) & (u < u_hi)
        opening = np.where(inside, np.maximum(lower - upper, 0), 0).astype(np.float32)
        return _EyeModel(rows, cols, v, upper, opening, float(geometry["skin"]))

    def add_eyelid_closure(self, displacement: np.ndarray, closure: float) -> None:
        """Add the blink field for ``closure`` in [0, 1] (1 = lid on the lower lid).

        The upper-lid skin band above each eye is stretched down to cover the
        eye (the lash line keeps its thickness); the lid margin is an
        occluding edge, so the field jumps there.
        """
        for eye in self.eyes:
            covered = closure * eye.opening
            top = eye.lid_upper - eye.skin_height
            margin = eye.lid_upper + covered
            under_lid = (eye.v >= top) & (eye.v < margin) & (eye.opening > 0)
            span = eye.skin_height + covered
            # source = top + skin * tau**r keeps the lash line its own thickness (slope 1
            # at the margin) and stretches the plain skin above it instead
            tau = np.clip((eye.v - top) / span, 0, 1)
            source = top + eye.skin_height * tau ** (span / eye.skin_height)
            shift = np.where(under_lid, eye.v - source, 0).astype(np.float32)
            displacement[eye.rows, eye.cols, 0] += shift * np.float32(self.ey[0])
            displacement[eye.rows, eye.cols, 1] += shift * np.float32(self.ey[1])

    def warp(self, displacement: np.ndarray | None) -> np.ndarray:
        """Backward-warp the face box of the base image; (H, W, 3) uint8."""
        frame = self.base.copy()
        if displacement is not None:
            y0, y1, x0, x1 = self.box
            frame[y0:y1, x0:x1] = cv2.remap(
                self.base, self.grid_x - displacement[..., 0], self.grid_y - displacement[..., 1],
                cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT,
            )
        return frame

    def move_head(self, frame: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Apply pose ``(tx px, ty px, rotation deg, scale)`` about the face centre."""
        tx, ty, angle, scale = (float(p) for p in pose)
        if self.background is None and tx == 0 and ty == 0 and angle == 0 and scale == 1:
            return frame
        matrix = cv2.getRotationMatrix2D((float(self.centre[0]), float(self.centre[1])), angle, scale)
        matrix[:, 2] += (tx, ty)
        width, height = self.size
        moved = cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        if self.background is None:
            return moved
        mask = cv2.warpAffine(self.head_mask, matrix, (width, height), flags=cv2.INTER_LINEAR)[..., None]
        out = self.background + mask * (moved.astype(np.float32) - self.background)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------
def _frame_times(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    n = spec.n_frames
    nominal = np.arange(n) / spec.fps
    if spec.vfr and n > 1:
        nominal[1:] += rng.uniform(-0.3, 0.3, n - 1) / spec.fps
    ticks = np.round(nominal / float(TIME_BASE)).astype(np.int64)
    return ticks * float(TIME_BASE)


def _snap(times: np.ndarray, t: float) -> int:
    k = int(np.searchsorted(times, t))
    if k == 0:
        return 0
    if k >= len(times):
        return len(times) - 1
    return k - 1 if t - times[k - 1] <= times[k] - t else k


def _rise_fall(times: np.ndarray, onset: float, apex: float, offset: float) -> np.ndarray:
    out = np.zeros(len(times))
    rising = (times > onset) & (times <= apex)
    out[rising] = 0.5 - 0.5 * np.cos(np.pi * (times[rising] - onset) / (apex - onset))
    falling = (times > apex) & (times < offset)
    out[falling] = 0.5 + 0.5 * np.cos(np.pi * (times[falling] - apex) / (offset - apex))
    return out


def _smooth_step(times: np.ndarray, start: float, end: float) -> np.ndarray:
    phase = np.clip((times - start) / (end - start), 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * phase)


def _slow_wander(rng: np.random.Generator, times: np.ndarray, band_hz: tuple[float, float]) -> np.ndarray:
    """Smooth random signal of peak about 1 made of three slow sinusoids."""
    out = np.zeros(len(times))
    for weight in (1.0, 0.6, 0.35):
        freq = rng.uniform(*band_hz)
        out += weight * np.sin(2 * np.pi * freq * times + rng.uniform(0, 2 * np.pi))
    return out / 1.95


def _free_segments(span: tuple[float, float], blocked: list[tuple[float, float]]) -> list[tuple[float, float]]:
    segments = [span]
    for b0, b1 in sorted(blocked):
        kept = []
        for s0, s1 in segments:
            if b1 <= s0 or b0 >= s1:
                kept.append((s0, s1))
                continue
            if b0 > s0:
                kept.append((s0, b0))
            if b1 < s1:
                kept.append((b1, s1))
        segments = kept
    return segments


def _overlaps(interval: tuple[float, float], blocked: list[tuple[float, float]]) -> bool:
    return any(interval[0] < b1 and b0 < interval[1] for b0, b1 in blocked)


def _place_intervals(
    rng: np.random.Generator, count: int, length_s: tuple[float, float], span: tuple[float, float],
    blocked: list[tuple[float, float]], *, gap_s: float,
) -> list[tuple[float, float]]:
    """Place up to ``count`` intervals inside ``span`` avoiding ``blocked`` and each other."""
    placed: list[tuple[float, float]] = []
    for _ in range(count):
        avoid = blocked + [(a - gap_s, b + gap_s) for a, b in placed]
        segments = [(a, b) for a, b in _free_segments(span, avoid) if b - a >= length_s[0]]
        if not segments:
            break
        lengths = np.array([b - a for a, b in segments])
        s0, s1 = segments[int(rng.choice(len(segments), p=lengths / lengths.sum()))]
        length = rng.uniform(length_s[0], min(length_s[1], s1 - s0))
        start = rng.uniform(s0, s1 - length)
        placed.append((start, start + length))
    return sorted(placed)


def _pick_prototype(rng: np.random.Generator, emotion: str) -> tuple[int, ...]:
    variants = EMOTION_AUS[emotion]
    return variants[int(rng.integers(len(variants)))]


def _plan_events(spec: ClipSpec, times: np.ndarray, rng: np.random.Generator, iod: float) -> list[TruthEvent]:
    duration = spec.duration
    n_micro = spec.n_micro if spec.n_micro is not None else max(int(duration >= 1.5), round(duration / 10))
    n_macro = spec.n_macro if spec.n_macro is not None else round(duration / 15)
    n_subtle = spec.n_subtle if spec.n_subtle is not None else round(duration / 15)
    emotions = list(spec.emotions or EMOTION_AUS)
    micro_range = (max(_MICRO_DURATION_S[0], 2.0 / spec.fps), _MICRO_DURATION_S[1])
    if micro_range[0] > micro_range[1]:
        raise ParameterError(f"at {spec.fps} fps a 2-frame micro-expression is longer than {micro_range[1]} s")

    kinds: list[tuple[str, bool]] = [("micro", False)] * n_micro + [("macro", False)] * n_macro
    kinds += [("micro" if rng.random() < 0.5 else "macro", True) for _ in range(n_subtle)]
    order = rng.permutation(len(kinds))
    kinds = [kinds[i] for i in order]
    if not kinds:
        return []
    ranges = [micro_range if kind == "micro" else _MACRO_DURATION_S for kind, _ in kinds]
    gap = _EVENT_GAP_S + 1.5 / spec.fps  # apex snapping moves each event by under a frame
    available = duration - 2 * _EDGE_S - (len(kinds) - 1) * gap
    needed = sum(low for low, _ in ranges)
    if needed > available:
        raise ParameterError(
            f"a {duration:g} s clip cannot hold {n_micro} micro + {n_macro} macro + {n_subtle} subtle events "
            f"with {_EVENT_GAP_S:g} s gaps; it needs at least {needed + duration - available:.2f} s"
        )
    durations = []
    for index, (low, high) in enumerate(ranges):
        reserve = sum(r[0] for r in ranges[index + 1:])
        durations.append(rng.uniform(low, max(low, min(high, available - sum(durations) - reserve))))
    slack = available - sum(durations)
    extra = rng.dirichlet(np.ones(len(kinds) + 1)) * slack

    events = []
    start = _EDGE_S + extra[0]
    scale_px = iod / REFERENCE_IOD_PX
    for index, ((kind, subtle), length) in enumerate(zip(kinds, durations)):
        rise = rng.uniform(0.3, 0.5) * length
        apex_frame = _snap(times, start + rise)
        apex = float(times[apex_frame])
        onset, offset = apex - rise, apex - rise + length
        emotion, aus_tuple, side = _pick_expression(rng, emotions, subtle)
        amplitude_range = spec.micro_amplitude_px if kind == "micro" else spec.macro_amplitude_px
        aus = {au: round(float(rng.uniform(0.6, 1.0)), 3) for au in aus_tuple}
        regions = sorted({region for au in aus for region in AU_REGIONS[au]})
        onset_frame, offset_frame = _frame_range(times, onset, offset)
        events.append(TruthEvent(
            onset=onset, apex=apex, offset=offset, onset_frame=onset_frame, apex_frame=apex_frame,
            offset_frame=offset_frame, kind=kind, subtle=subtle, regions=regions, aus=aus, emotion=emotion,
            side=side, amplitude_px=float(rng.uniform(*amplitude_range) * scale_px),
        ))
        start += length + gap + extra[index + 1]
    return events


def _pick_expression(
    rng: np.random.Generator, emotions: list[str], subtle: bool
) -> tuple[str, tuple[int, ...], str | None]:
    if not subtle:
        emotion = emotions[int(rng.integers(len(emotions)))]
        aus = _pick_prototype(rng, emotion)
    else:
        options = [(emotion, area, tuple(au for au in variant if au in _SUBTLE_AREAS[area]))
                   for emotion in emotions for variant in EMOTION_AUS[emotion] for area in _SUBTLE_AREAS]
        options = [option for option in options if option[2]]
        emotion, _, aus = options[int(rng.integers(len(options)))]
    side = ("left" if rng.random() < 0.5 else "right") if emotion in _UNILATERAL_EMOTIONS else None
    return emotion, aus, side


@dataclass
class _Plan:
    times: np.ndarray  # (n,) s
    field_keys: list[tuple[int, str]]
    coefficients: np.ndarray  # (n, n_fields) px
    closure: np.ndarray  # (n,) eyelid closure in [0, 1]
    pose: np.ndarray  # (n, 4) tx px, ty px, rotation deg, scale
    gain: np.ndarray  # (n,) global illumination gain
    slope: np.ndarray  # (n,) gain change across the frame width
    offset: np.ndarray  # (n,) grey levels
    noise_sigma: float
    noise_seed: int
    truth: Truth = field(repr=False)


def _warn_no_room(what: str, duration: float) -> None:
    warnings.warn(f"a {duration:g} s clip has no room for a {what}; none rendered", stacklevel=5)


def _plan_clip(spec: ClipSpec, rig: _FaceRig) -> _Plan:
    streams = np.random.SeedSequence(spec.seed).spawn(7)
    rng_time, rng_events, rng_blinks, rng_head, rng_speech, rng_light, rng_noise = (
        np.random.default_rng(s) for s in streams
    )
    times = _frame_times(spec, rng_time)
    duration = spec.duration
    events = _plan_events(spec, times, rng_events, rig.iod)

    field_keys = list(rig.fields)
    column = {key: i for i, key in enumerate(field_keys)}
    coefficients = np.zeros((len(times), len(field_keys)), np.float32)
    for event in events:
        profile = _rise_fall(times, event.onset, event.apex, event.offset)
        for au, intensity in event.aus.items():
            coefficients[:, column[(au, event.side or "both")]] += profile * event.amplitude_px * intensity

    def near(events_kept: list[TruthEvent], margin: float) -> list[tuple[float, float]]:
        return [(e.onset - margin, e.offset + margin) for e in events_kept]

    # nuisances keep away from the clip's first and last quarter second
    edge = min(_EDGE_S / 2, duration / 4)
    span = (edge, duration - edge)
    scale_px = rig.iod / REFERENCE_IOD_PX
    nuisances: list[tuple[str, float, float, dict[str, Any]]] = []
    blinks: list[tuple[float, float]] = []
    closure = np.zeros(len(times))
    if spec.blinks:
        blocked = near([e for e in events if "eyes" in e.regions], 0.1)
        blinks, closure = _plan_blinks(rng_blinks, times, span, blocked)
    if spec.speech:
        blocked = near([e for e in events if {"mouth", "chin"} & set(e.regions)], 0.2)
        nuisances += _plan_speech(rng_speech, times, span, blocked, coefficients, column, scale_px)
    pose = np.tile([0.0, 0.0, 0.0, 1.0], (len(times), 1))
    if spec.head_motion:
        # a quick turn during a micro-expression would hide it
        blocked = near([e for e in events if e.kind == "micro"], 0.15)
        nuisances += _plan_head_motion(rng_head, times, span, blocked, pose, scale_px)
    gain, slope, offset = np.ones(len(times)), np.zeros(len(times)), np.zeros(len(times))
    if spec.illumination:
        nuisances += _plan_lighting(rng_light, times, span, gain, slope, offset)

    records = []
    for kind, start, end, extra in sorted(nuisances, key=lambda item: item[1]):
        first, last = _frame_range(times, start, end)
        records.append({"type": kind, "start": start, "end": end, "start_frame": first, "end_frame": last, **extra})
    noise_sigma = float(rng_noise.uniform(1.0, 3.0)) if spec.noise else 0.0
    truth = Truth(
        video="", fps=float(spec.fps), frame_times=[float(t) for t in times], events=events,
        blinks=blinks, nuisances=records, size=spec.size, spec=spec.to_dict(),
    )
    return _Plan(times, field_keys, coefficients, closure, pose, gain, slope, offset, noise_sigma,
                 int(rng_noise.integers(2**31)), truth)


def _plan_blinks(
    rng: np.random.Generator, times: np.ndarray, span: tuple[float, float], blocked: list[tuple[float, float]],
) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Blink intervals (s) and the per-frame eyelid closure in [0, 1]."""
    duration = span[0] + span[1]  # span sits symmetrically inside the clip
    rate = rng.uniform(*_BLINKS_PER_MINUTE) / 60.0
    candidates, t = [], rng.uniform(0.2, 1.0 / rate)
    while t < duration:
        candidates.append((float(t), float(t + rng.uniform(*_BLINK_DURATION_S))))
        t = candidates[-1][1] + 0.6 + rng.exponential(max(1.0 / rate - 0.8, 0.1))
    blinks = [(a, b) for a, b in candidates if span[0] <= a and b <= span[1] and not _overlaps((a, b), blocked)]
    if not blinks:
        blinks = [(float(a), float(b)) for a, b in _place_intervals(rng, 1, _BLINK_DURATION_S, span, blocked,
                                                                    gap_s=0.0)]
        if not blinks:
            _warn_no_room("blink (away from eye events)", duration)
    closure = np.zeros(len(times))
    for onset, offset in blinks:
        depth = rng.uniform(0.85, 1.0)
        # the lid closes faster than it reopens; its lowest point falls on a frame
        apex = float(times[_snap(times, onset + rng.uniform(0.3, 0.45) * (offset - onset))])
        apex = min(max(apex, onset + 1e-3), offset - 1e-3)
        closure = np.maximum(closure, depth * _rise_fall(times, onset, apex, offset))
    return blinks, closure


def _plan_speech(
    rng: np.random.Generator, times: np.ndarray, span: tuple[float, float], blocked: list[tuple[float, float]],
    coefficients: np.ndarray, column: dict[tuple[int, str], int], scale_px: float,
) -> list[tuple[str, float, float, dict[str, Any]]]:
    """Add jaw/lip opening at a syllable rate to ``coefficients``; return the bursts."""
    duration = span[0] + span[1]  # span sits symmetrically inside the clip
    bursts = _place_intervals(rng, max(1, round(duration / 15)), _SPEECH_DURATION_S, span, blocked, gap_s=1.0)
    if not bursts:
        _warn_no_room("speech burst (>= 1 s, away from mouth events)", duration)
    records = []
    for start, end in bursts:
        rate_hz = rng.uniform(*_SPEECH_RATE_HZ)
        amplitude = rng.uniform(2.0, 5.0) * scale_px
        cycles = np.arange(start, end + 1.0 / rate_hz, 1.0 / rate_hz)
        loudness = np.interp(times, cycles, rng.uniform(0.35, 1.0, len(cycles)))
        envelope = _smooth_step(times, start, start + 0.15) * (1 - _smooth_step(times, end - 0.15, end))
        phase = 2 * np.pi * rate_hz * (times - start)
        opening = amplitude * envelope * loudness * (0.5 - 0.5 * np.cos(phase))
        rounding = amplitude * envelope * 0.3 * (0.5 + 0.5 * np.sin(0.5 * phase + rng.uniform(0, 2 * np.pi)))
        coefficients[:, column[(25, "both")]] += 0.5 * opening
        coefficients[:, column[(26, "both")]] += opening
        coefficients[:, column[(14, "both")]] += rounding
        records.append(("speech", float(start), float(end), {"rate_hz": round(float(rate_hz), 3)}))
    return records


def _plan_head_motion(
    rng: np.random.Generator, times: np.ndarray, span: tuple[float, float], blocked: list[tuple[float, float]],
    pose: np.ndarray, scale_px: float,
) -> list[tuple[str, float, float, dict[str, Any]]]:
    """Fill ``pose`` (tx px, ty px, rotation deg, scale) with drift and quick moves; return the moves."""
    duration = span[0] + span[1]  # span sits symmetrically inside the clip
    band = (0.02, 0.2)
    pose[:, 0] = 3.0 * scale_px * _slow_wander(rng, times, band)
    pose[:, 1] = 2.0 * scale_px * _slow_wander(rng, times, band)
    pose[:, 2] = 0.8 * _slow_wander(rng, times, band)
    pose[:, 3] = 1.0 + 0.01 * _slow_wander(rng, times, band)
    moves = _place_intervals(rng, max(1, round(duration / 10)), _HEAD_MOVE_DURATION_S, span, blocked, gap_s=0.5)
    if not moves:
        _warn_no_room("quick head turn (away from micro-expressions)", duration)
    held = np.zeros(3)  # offsets left by earlier step moves
    records = []
    for start, end in moves:
        motion = "turn" if rng.random() < 0.5 else "nod"
        shift = rng.uniform(4.0, 10.0) * scale_px
        if motion == "turn":
            delta = np.array([shift, 0.2 * shift, rng.uniform(1.0, 4.0)])
        else:
            delta = np.array([0.2 * shift, shift, rng.uniform(0.0, 1.0)])
        delta *= rng.choice([-1.0, 1.0], 3)
        if rng.random() < 0.5:  # look away and back
            profile = np.sin(np.pi * np.clip((times - start) / (end - start), 0, 1)) ** 2
        else:  # move to a new pose, towards the centre when already off it
            delta = np.where(np.abs(held + delta) > np.abs(held - delta), -delta, delta)
            held += delta
            profile = _smooth_step(times, start, end)
        pose[:, :3] += profile[:, None] * delta
        records.append(("head_turn", float(start), float(end), {"motion": motion}))
    return records


def _plan_lighting(
    rng: np.random.Generator, times: np.ndarray, span: tuple[float, float],
    gain: np.ndarray, slope: np.ndarray, offset: np.ndarray,
) -> list[tuple[str, float, float, dict[str, Any]]]:
    """Add slow gain/offset drift and gradual lighting changes in place; return the changes."""
    duration = span[0] + span[1]  # span sits symmetrically inside the clip
    band = (0.02, 0.15)
    gain += 0.02 * _slow_wander(rng, times, band)
    offset += 2.0 * _slow_wander(rng, times, band)
    changes = _place_intervals(rng, max(1, round(duration / 20)), _LIGHT_CHANGE_DURATION_S, span, [], gap_s=1.0)
    if not changes:
        _warn_no_room("lighting change (>= 1 s)", duration)
    level = np.zeros(2)
    records = []
    for start, end in changes:
        delta = np.array([rng.uniform(0.04, 0.10), rng.uniform(0.04, 0.12)])
        # alternate the sign so repeated changes stay within a few percent
        delta *= np.where(level != 0, -np.sign(level), rng.choice([-1.0, 1.0], 2))
        level += delta
        step = _smooth_step(times, start, end)
        gain += delta[0] * step
        slope += delta[1] * step
        records.append(("illumination", float(start), float(end), {}))
    return records


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------
class ClipFrames:
    """Lazily rendered frames of a clip; iterate for ``(frame, t)`` pairs.

    Each frame is RGB uint8 of shape (height, width, 3); ``t`` its
    presentation time in seconds. Iterating twice renders the same frames.
    """

    _NOISE_BANK = 8
    _NOISE_PAD = 32

    def __init__(self, rig: _FaceRig, plan: _Plan) -> None:
        self._rig = rig
        self._plan = plan
        self.times = plan.times
        self._noise_bank: np.ndarray | None = None
        #: Anchor ``(x, y)`` in output pixels before head motion, with derived
        #: midpoints (``glabella``, ``lip_upper_side_left``, ...).
        self.anchors = {name: (float(xy[0]), float(xy[1])) for name, xy in rig.anchors.items()}
        #: Inter-ocular distance in output pixels.
        self.iod = float(rig.iod)
        #: ``(y0, y1, x0, x1)`` of the box that ``displacement_at`` covers.
        self.face_box = tuple(int(v) for v in rig.box)
        width, height = rig.size
        self._ramp = (np.arange(width, dtype=np.float32) - width / 2) / width
        self._buffers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.times)

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        for index in range(len(self.times)):
            yield self.frame_at(index), float(self.times[index])

    def displacement_at(self, index: int) -> np.ndarray | None:
        """Expression + blink displacement of frame ``index`` on the face box, (h, w, 2) px; None if still."""
        plan, rig = self._plan, self._rig
        row = plan.coefficients[index]
        active = np.flatnonzero(np.abs(row) > 1e-4)
        if len(active) == 0 and plan.closure[index] <= 1e-4:
            return None
        displacement = np.zeros(rig.grid_x.shape + (2,), np.float32)
        for column in active:
            displacement += row[column] * rig.fields[plan.field_keys[column]]
        if plan.closure[index] > 1e-4:
            rig.add_eyelid_closure(displacement, float(plan.closure[index]))
        return displacement

    def frame_at(self, index: int) -> np.ndarray:
        """Render frame ``index`` (negative counts from the end); (H, W, 3) uint8 RGB."""
        n = len(self.times)
        if not -n <= index < n:
            raise IndexError(f"frame index {index} is out of range for a clip of {n} frames")
        index %= n
        plan, rig = self._plan, self._rig
        frame = rig.move_head(rig.warp(self.displacement_at(index)), plan.pose[index])
        gain, slope, offset = plan.gain[index], plan.slope[index], plan.offset[index]
        if plan.noise_sigma == 0 and gain == 1 and slope == 0 and offset == 0:
            return frame
        if self._buffers is None:
            # reused every frame: fresh multi-megabyte arrays cost more in page faults than the arithmetic
            width, height = rig.size
            ramp_map = np.ascontiguousarray(np.broadcast_to(self._ramp[None, :, None], (height, width, 3)))
            self._buffers = (ramp_map, np.empty_like(ramp_map), np.empty_like(ramp_map))
        ramp_map, gain_map, light = self._buffers
        np.multiply(ramp_map, np.float32(slope), out=gain_map)
        gain_map += np.float32(gain)
        cv2.multiply(frame, gain_map, dst=light, dtype=cv2.CV_32F)
        noise = self._noise(index) if plan.noise_sigma > 0 else light
        weight = 1.0 if plan.noise_sigma > 0 else 0.0
        # saturating, rounding conversion to uint8 in the same pass
        return cv2.addWeighted(light, 1.0, noise, weight, float(offset), dtype=cv2.CV_8U)

    def _noise(self, index: int) -> np.ndarray:
        width, height = self._rig.size
        pad = self._NOISE_PAD
        if self._noise_bank is None:
            # a bank of noise images sampled at random offsets costs one add per frame
            rng = np.random.default_rng(self._plan.noise_seed)
            self._noise_bank = rng.standard_normal((self._NOISE_BANK, height + pad, width + pad, 3),
                                                   dtype=np.float32) * np.float32(self._plan.noise_sigma)
        pick = np.random.default_rng([self._plan.noise_seed, index]).integers(0, [self._NOISE_BANK, pad, pad])
        k, dy, dx = (int(v) for v in pick)
        return self._noise_bank[k, dy:dy + height, dx:dx + width]


def render_clip(spec: ClipSpec, *, face: FaceImage | None = None) -> tuple[ClipFrames, Truth]:
    """Plan and lazily render a clip in memory (no compression).

    Parameters
    ----------
    spec : ClipSpec
    face : FaceImage, optional
        Defaults to ``default_face()``.

    Returns
    -------
    frames : ClipFrames
        ``len(frames)`` frames; iterate for ``(frame (H, W, 3) uint8 RGB, t s)``,
        or ``frames.frame_at(i)``.
    truth : Truth
        With ``video == ""``.
    """
    if not isinstance(spec, ClipSpec):
        raise ParameterError(f"spec must be a ClipSpec, got {type(spec).__name__}")
    if face is None:
        face = default_face()
    elif not isinstance(face, FaceImage):
        raise ParameterError(f"face must be a FaceImage or None, got {type(face).__name__}")
    rig = _FaceRig(face, size=spec.size, face_scale=spec.face_scale, background=spec.background)
    plan = _plan_clip(spec, rig)
    plan.truth.face = face.name
    return ClipFrames(rig, plan), plan.truth


def _truth_path(video_path: Path) -> Path:
    return video_path.with_name(video_path.stem + ".truth.json")


def write_clip(path: str | Path, spec: ClipSpec, *, face: FaceImage | None = None) -> Truth:
    """Render ``spec`` to an H.264 ``.mp4`` and write ``<stem>.truth.json`` beside it.

    Frames carry their exact presentation times (time base ``TIME_BASE``).

    Returns
    -------
    Truth
        With ``video`` set to the mp4's file name.
    """
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ParameterError(f"write_clip writes H.264 .mp4 files; got a path ending in {path.suffix!r}")
    frames, truth = render_clip(spec, face=face)
    path.parent.mkdir(parents=True, exist_ok=True)
    _encode(path, frames, spec)
    truth.video = path.name
    truth.save(_truth_path(path))
    return truth


def _encode(path: Path, frames: ClipFrames, spec: ClipSpec) -> None:
    import av

    width, height = spec.size
    ticks = np.round(frames.times / float(TIME_BASE)).astype(np.int64)
    try:
        container = av.open(str(path), mode="w")
    except (OSError, av.FFmpegError) as exc:
        raise VideoError(f"cannot create {path}: {exc}") from exc
    try:
        stream = container.add_stream("libx264", rate=Fraction(spec.fps).limit_denominator(1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE  # else frame pts are rounded to 1/fps
        stream.options = {"crf": str(int(spec.crf)), "preset": spec.preset}
        for index, (frame, _) in enumerate(frames):
            # OpenCV's I420 is the same limited-range BT.601 as swscale's default, and faster
            video_frame = av.VideoFrame.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            video_frame.pts = int(ticks[index])
            video_frame.time_base = TIME_BASE
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
        container.close()
    except (av.FFmpegError, ValueError) as exc:
        container.close()
        path.unlink(missing_ok=True)
        raise VideoError(f"H.264 encoding of {path} failed: {exc}") from exc


def write_benchmark_set(
    out_dir: str | Path,
    *,
    n_clips: int = 20,
    duration: float = 30.0,
    seed: int = 0,
    fps_cycle: Sequence[float] = (25, 30, 60, 200),
    size: tuple[int, int] = (640, 480),
    face: FaceImage | None = None,
) -> list[Path]:
    """Write a fixed benchmark set of clips with every nuisance switched on.

    Clip ``i`` uses ``fps_cycle[i % len(fps_cycle)]``, seed ``seed * 1000 + i``,
    and variable frame rate on every other pass through ``fps_cycle``. The
    crf (20/23/26/28) moves on by one more step each pass, so every frame
    rate meets every compression level rather than always the same one.
    Clips whose truth file already holds the same spec and face are kept, so
    an interrupted run resumes. ``out_dir/index.json`` lists every clip.
    ``face`` (default :func:`default_face`) renders the set from another face.

    Returns
    -------
    list of Path
        The mp4 files, in clip order.
    """
    if not isinstance(n_clips, (int, np.integer)) or n_clips < 1:
        raise ParameterError(f"n_clips must be a positive integer, got {n_clips!r}")
    fps_cycle = tuple(fps_cycle)
    if not fps_cycle:
        raise ParameterError("fps_cycle must name at least one frame rate")
    if face is None:
        face = default_face()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, entries = [], []
    for index in range(n_clips):
        spec = _benchmark_clip_spec(index, fps_cycle=fps_cycle, duration=duration, seed=seed, size=size)
        fps = spec.fps
        path = out_dir / f"clip_{index:03d}_{fps:g}fps.mp4"
        truth_path = _truth_path(path)
        if not (path.exists() and truth_path.exists() and _same_spec(truth_path, spec, face)):
            truth = write_clip(path, spec, face=face)
        else:
            truth = Truth.from_json(truth_path)
        kinds = {item["type"] for item in truth.nuisances}
        missing = {"head_turn", "speech", "illumination"} - kinds
        if missing or not truth.blinks:
            warnings.warn(f"{path.name}: no room for {sorted(missing) or ['blinks']} in {duration:g} s",
                          stacklevel=2)
        paths.append(path)
        entries.append({
            "video": path.name, "truth": truth_path.name, "fps": fps, "vfr": spec.vfr, "seed": spec.seed,
            "duration": duration, "crf": spec.crf, "n_events": len(truth.events),
        })
    index_doc = {"generator": "microexpr.synth", "n_clips": n_clips, "face": face.name, "clips": entries}
    (out_dir / "index.json").write_text(json.dumps(index_doc, indent=1), encoding="utf-8")
    return paths


_BENCHMARK_CRFS = (20, 23, 26, 28)


def _benchmark_clip_spec(index: int, *, fps_cycle: Sequence[float], duration: float, seed: int,
                         size: tuple[int, int]) -> ClipSpec:
    """The spec of clip ``index`` of :func:`write_benchmark_set`."""
    rate_pass = index // len(fps_cycle)
    return ClipSpec(
        fps=float(fps_cycle[index % len(fps_cycle)]), duration=duration, size=size, seed=seed * 1000 + index,
        crf=_BENCHMARK_CRFS[(index + rate_pass) % len(_BENCHMARK_CRFS)], vfr=rate_pass % 2 == 1,
    )


def _same_spec(truth_path: Path, spec: ClipSpec, face: FaceImage) -> bool:
    try:
        stored = json.loads(truth_path.read_text(encoding="utf-8"))
        stored_spec, stored_face = stored.get("spec"), stored.get("face", DEFAULT_FACE_NAME)
    except (OSError, json.JSONDecodeError, AttributeError):
        return False
    # truth files from before faces were named all come from the default face
    return stored_spec == json.loads(json.dumps(spec.to_dict())) and stored_face == face.name
