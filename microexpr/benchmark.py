"""``microexpr bench``: how fast and how accurate microexpr is on this machine.

Needs no files: every input is synthesised with fixed seeds (the face photo
scikit-image ships, deformed by :mod:`microexpr.synth` or moved by
:func:`moved_frames`; flow pairs with known fields from
:mod:`microexpr.flowtruth`). Nothing is sent anywhere. Sections:

``machine``
    CPU model, cores, the SIMD level the core was built with and the SIMD
    the CPU offers, memory, versions.
``latency``
    Per-stage streaming latency per frame (decode, landmarks, alignment,
    flow, regions, their sum ``core``, spotting; p50 / p95 / p99 in ms) at 640 x 480 and
    1280 x 720 with 1 and 4 faces, end-to-end frames per second and peak
    memory. The frames are synthetic faces (4 faces: four clips in a 2 x 2
    grid), encoded to H.264 and decoded back with
    :func:`microexpr.video.open_video`; the analysis is
    :class:`microexpr.pipeline.Analyzer` in streaming mode.
``offline``
    Whole-file analysis speed: :func:`microexpr.analyze` on a 30 fps
    640 x 480 H.264 clip of a synthetic face, as frames per second and as
    a multiple of real time, beside pushing the same frames one by one on
    one thread (``Analyzer.push``), with the CPU time each took.
``flow``
    The core's dense flow (fast / balanced / accurate) against OpenCV DIS
    (ultrafast / fast / medium) and Farneback on the same crops with known
    flow, one thread: median time of interleaved calls, end-point error,
    ratios, and the project's targets.
``scaling``
    Time per frame of the per-face core work (align, flow, regions, spectra;
    :class:`FrameCore`) for 1, 2, 4, 8 faces and for crop sides 96-256 px;
    the landmarker's time with ``max_faces = N`` on a frame holding N faces.
``accuracy``
    Micro / macro / overall F1 (MEGC rule) of microexpr and of the MDMD and
    LBP baselines on a few synthetic clips with known events
    (:func:`microexpr.megc.spot_frames`: one landmark pass feeds all three).

Results go to ``DIR/bench.json`` and ``DIR/bench.md`` (the tables printed).
``bench.json`` keys: ``"machine"``, ``"latency"``, ``"offline"``, ``"flow"``,
``"scaling"``, ``"accuracy"`` (one per section; a section that could not
run holds ``{"skipped": reason}``), ``"version"`` (the microexpr version
measured), ``"quick"`` (bool), ``"settings"`` (sizes, frame counts, seeds),
``"date"`` (UTC, ISO 8601) and ``"elapsed_s"``. Timings on a shared machine
vary by tens of percent between runs: compare ratios within one run.

The flow comparison and the per-frame core work are also run on their own,
with more repeats, by ``bench/compare_opencv.py`` and ``bench/core_frame.py``
(which import what they need from here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from microexpr.errors import MicroexprError, ModelNotFoundError, ParameterError

__all__ = [
    "SECTIONS",
    "LATENCY_STAGES",
    "BenchSettings",
    "machine_facts",
    "FlowSizeResult",
    "flow_methods",
    "measure_flow",
    "flow_rows",
    "flow_checks",
    "face_frame",
    "face_points",
    "landmark_points",
    "canonical_points",
    "face_regions",
    "head_motion",
    "MovedFrame",
    "moved_frames",
    "FrameCore",
    "per_call_floor_ms",
    "time_core_presets",
    "summarise_stages",
    "tile_faces",
    "synthetic_faces",
    "PerFrameStageTimes",
    "measure_latency",
    "measure_offline",
    "core_cost_vs_faces",
    "core_cost_vs_crop",
    "landmarker_cost_vs_faces",
    "accuracy_specs",
    "measure_accuracy",
    "run_benchmark",
    "section_markdown",
    "markdown_report",
    "build_parser",
    "main",
]

#: Sections in run order; each is a key of ``bench.json``.
SECTIONS = ("machine", "latency", "offline", "flow", "scaling", "accuracy")


# ---------------------------------------------------------------------------
# Machine facts
# ---------------------------------------------------------------------------
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "neon", "asimd", "sve")


def _cpuinfo() -> dict[str, str]:
    """First value of each ``key : value`` line of /proc/cpuinfo ({} elsewhere)."""
    facts: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return facts
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            facts.setdefault(key.strip().lower(), value.strip())
    return facts


def _cpu_simd(cpuinfo: dict[str, str]) -> list[str] | None:
    """SIMD extensions the CPU reports, among :data:`_SIMD_FLAGS`; None when unknown."""
    flags = cpuinfo.get("flags") or cpuinfo.get("features")
    if flags is None and sys.platform == "darwin":
        import subprocess

        try:
            flags = subprocess.run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                                   capture_output=True, text=True, timeout=5, check=False).stdout.lower()
        except (OSError, subprocess.SubprocessError):
            flags = None
        if platform.machine() == "arm64":
            flags = (flags or "") + " neon"
    if flags is None:
        return None
    present = set(flags.lower().replace(".", "_").split())
    return [flag for flag in _SIMD_FLAGS if flag in present]


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on.

    Returns
    -------
    dict
        ``cpu`` (model name), ``arch``, ``system``, ``cores`` (logical),
        ``usable_cores`` (this process's affinity), ``simd_built`` (the
        level :mod:`microexpr._core` was compiled for), ``simd_cpu`` (list
        of extensions the CPU reports, or None), ``memory_gib`` (total
        physical memory, or None) and ``versions`` (python, numpy, opencv,
        mediapipe, av, microexpr).
    """
    import cv2

    import microexpr
    from microexpr import core

    info = _cpuinfo()
    cpu = info.get("model name") or info.get("hardware") or platform.processor() or platform.machine()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        memory = None
    return {
        "cpu": cpu,
        "arch": platform.machine(),
        "system": platform.platform(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "simd_built": core._core.simd,
        "simd_cpu": _cpu_simd(info),
        "memory_gib": None if memory is None else round(memory, 1),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "mediapipe": _package_version("mediapipe"),
            "av": _package_version("av"),
            "microexpr": microexpr.__version__,
        },
    }


# ---------------------------------------------------------------------------
# Dense flow against OpenCV (bench/compare_opencv.py prints the same at length)
# ---------------------------------------------------------------------------
FlowMethod = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Target (a) applies at these crop sides, px.
TARGET_SIZES = (128, 192)
#: Target (a): balanced time <= this x DIS-medium time.
TARGET_BALANCED_TIME_RATIO = 0.5


def microexpr_flow(preset: str) -> FlowMethod:
    """``microexpr.dense_flow`` with a preset, allocating its output like DIS does."""
    from microexpr.core import dense_flow

    def compute(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return dense_flow(prev, nxt, preset=preset)

    return compute


def dis_flow(preset: int) -> FlowMethod:
    """One reused ``cv2.DISOpticalFlow``; ``None`` as flow, so no initial estimate."""
    import cv2

    dis = cv2.DISOpticalFlow_create(preset)

    def compute(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return dis.calc(prev, nxt, None)

    return compute


def farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """OpenCV Farneback with the settings the micro-expression papers use."""
    import cv2

    return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def flow_methods() -> dict[str, FlowMethod]:
    """Every compared flow method by display name, in table order."""
    import cv2

    return {
        "microexpr fast": microexpr_flow("fast"),
        "microexpr balanced": microexpr_flow("balanced"),
        "microexpr accurate": microexpr_flow("accurate"),
        "DIS ultrafast": dis_flow(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
        "DIS fast": dis_flow(cv2.DISOPTICAL_FLOW_PRESET_FAST),
        "DIS medium": dis_flow(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
        "Farneback": farneback,
    }


@dataclass
class FlowSizeResult:
    """Timings and errors of all flow methods at one crop size."""

    size: int
    times_ms: dict[str, np.ndarray]  # method -> (repeats,) ms
    epe: dict[str, np.ndarray]  # method -> (seeds,) px

    def median_ms(self, method: str) -> float:
        return float(np.median(self.times_ms[method]))

    def mean_epe(self, method: str) -> float:
        return float(np.mean(self.epe[method]))


def score_flow(pairs: list, methods: dict[str, FlowMethod]) -> dict[str, np.ndarray]:
    """End-point error on the face of every method on every :class:`~microexpr.flowtruth.FlowPair`, px."""
    from microexpr.flowtruth import end_point_error

    return {
        name: np.array([end_point_error(method(p.prev, p.next), p.flow, p.mask) for p in pairs])
        for name, method in methods.items()
    }


def time_interleaved(
    pairs: list, methods: dict[str, FlowMethod], *, repeats: int, warmup: int
) -> dict[str, np.ndarray]:
    """Wall time of single calls, round-robin over methods, ms.

    Repeat ``r`` runs every method once on pair ``r % len(pairs)``, in an
    order rotated by ``r``, so drifting machine load and cache state hit all
    methods alike.

    Returns
    -------
    dict of str to float64 array of shape (repeats,)
    """
    names = list(methods)
    for r in range(warmup):
        pair = pairs[r % len(pairs)]
        for name in names:
            methods[name](pair.prev, pair.next)
    times = {name: np.empty(repeats) for name in names}
    clock = time.perf_counter_ns
    for r in range(repeats):
        pair = pairs[r % len(pairs)]
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            method = methods[name]
            start = clock()
            method(pair.prev, pair.next)
            times[name][r] = (clock() - start) / 1e6
    return times


def measure_flow(size: int, *, seeds: int, repeats: int, warmup: int) -> FlowSizeResult:
    """Score and time every flow method on ``seeds`` pairs of ``size`` px (noise 1.5)."""
    from microexpr.flowtruth import make_flow_pair

    pairs = [make_flow_pair(size, seed=seed, noise=1.5) for seed in range(seeds)]
    methods = flow_methods()
    epe = score_flow(pairs, methods)
    times = time_interleaved(pairs, methods, repeats=repeats, warmup=warmup)
    return FlowSizeResult(size, times, epe)


def flow_rows(result: FlowSizeResult) -> list[dict[str, Any]]:
    """One row per method: median ms, IQR, mean EPE, and ratios to DIS.

    Returns
    -------
    list of dict
        ``method``, ``ms``, ``ms_p25``, ``ms_p75``, ``epe`` (px),
        ``epe_per_seed``, ``time_vs_dis_medium``, ``time_vs_dis_ultrafast``,
        ``epe_vs_dis_medium``, ``epe_vs_dis_fast``.
    """
    dis_medium_ms = result.median_ms("DIS medium")
    dis_ultrafast_ms = result.median_ms("DIS ultrafast")
    dis_medium_epe = result.mean_epe("DIS medium")
    dis_fast_epe = result.mean_epe("DIS fast")
    rows = []
    for method in result.times_ms:
        row = {
            "method": method,
            "ms": result.median_ms(method),
            "ms_p25": float(np.percentile(result.times_ms[method], 25)),
            "ms_p75": float(np.percentile(result.times_ms[method], 75)),
            "epe": result.mean_epe(method),
            "epe_per_seed": result.epe[method].tolist(),
        }
        row["time_vs_dis_medium"] = row["ms"] / dis_medium_ms
        row["time_vs_dis_ultrafast"] = row["ms"] / dis_ultrafast_ms
        row["epe_vs_dis_medium"] = row["epe"] / dis_medium_epe
        row["epe_vs_dis_fast"] = row["epe"] / dis_fast_epe
        rows.append(row)
    return rows


def _check(label: str, measured: float, limit: float) -> dict[str, Any]:
    return {"check": label, "measured": measured, "limit": limit, "pass": bool(measured <= limit)}


def flow_checks(results: Sequence[FlowSizeResult]) -> list[dict[str, Any]]:
    """The flow targets as ratios, in report order.

    (a) at :data:`TARGET_SIZES`: ``balanced`` EPE <= DIS-medium EPE and
    ``balanced`` time <= :data:`TARGET_BALANCED_TIME_RATIO` x DIS-medium
    time; (b) at every size: ``fast`` time <= DIS-ultrafast time and
    ``fast`` EPE <= DIS-fast EPE.

    Returns
    -------
    list of dict
        ``check`` (label), ``measured``, ``limit``, ``pass``.
    """
    checks = []
    for result in results:
        if result.size not in TARGET_SIZES:
            continue
        s = result.size
        checks.append(_check(f"(a) {s} px balanced EPE / DIS-medium EPE",
                             result.mean_epe("microexpr balanced") / result.mean_epe("DIS medium"), 1.0))
        checks.append(_check(f"(a) {s} px balanced time / DIS-medium time",
                             result.median_ms("microexpr balanced") / result.median_ms("DIS medium"),
                             TARGET_BALANCED_TIME_RATIO))
    for result in results:
        s = result.size
        checks.append(_check(f"(b) {s} px fast time / DIS-ultrafast time",
                             result.median_ms("microexpr fast") / result.median_ms("DIS ultrafast"), 1.0))
        checks.append(_check(f"(b) {s} px fast EPE / DIS-fast EPE",
                             result.mean_epe("microexpr fast") / result.mean_epe("DIS fast"), 1.0))
    return checks


# ---------------------------------------------------------------------------
# The per-face core work on a moving face (bench/core_frame.py prints it at length)
# ---------------------------------------------------------------------------
FRAME_SIZE = (640, 480)  # (width, height), px
CROP_SIDE = 160  # px
FPS = 30.0  # Hz, nominal camera rate
REFERENCE_LAG = 0.13  # s: the flow reference is the crop this long ago
TARGET_TOTAL_MS = 1.5
SPECTRA_BANDS = ((0.5, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 15.0))  # Hz
SPECTRA_WINDOW = 2.0  # s
N_SPECTRA_CHANNELS = 40

# Where the astronaut photo (512 x 512) has its eye centres, nose tip and
# mouth corners, (x, y) px; read off the photo by eye.
_PHOTO_POINTS = np.array(
    [[203.0, 102.0], [247.0, 103.0], [222.0, 123.0], [205.0, 142.0], [243.0, 142.0]]
)
# The same five points in a canonical 112 px face (the ArcFace alignment
# template); scaled to the crop side.
_CANONICAL_112 = np.array(
    [[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]]
)
# 15 more photo points (brows, eyelids, cheeks, lips, chin) that a landmark
# tracker would also follow: with the 5 above, 20 points = 40 channels.
_EXTRA_PHOTO_POINTS = np.array(
    [
        [193.0, 85.0], [210.0, 82.0], [238.0, 82.0], [256.0, 85.0],
        [203.0, 98.0], [247.0, 99.0], [203.0, 106.0], [247.0, 107.0],
        [196.0, 125.0], [250.0, 126.0], [224.0, 137.0], [224.0, 150.0],
        [214.0, 146.0], [234.0, 146.0], [224.0, 168.0],
    ]
)

#: 12 rectangular face regions of the canonical crop used by :class:`FrameCore`.
BOX_REGION_NAMES = (
    "brow_left", "brow_right", "glabella", "eye_left", "eye_right", "nose_bridge",
    "cheek_left", "cheek_right", "mouth_corner_left", "mouth_corner_right",
    "lips", "chin",
)
#: Index of the nose bridge, the head-motion reference, in :data:`BOX_REGION_NAMES`.
NOSE_BOX = BOX_REGION_NAMES.index("nose_bridge")
# (x0, y0, x1, y1) as fractions of the crop side; everything else is -1.
_REGION_BOXES = (
    (0.19, 0.25, 0.44, 0.39), (0.56, 0.25, 0.81, 0.39), (0.44, 0.28, 0.56, 0.42),
    (0.24, 0.40, 0.45, 0.53), (0.55, 0.40, 0.76, 0.53), (0.45, 0.45, 0.55, 0.60),
    (0.25, 0.58, 0.42, 0.73), (0.58, 0.58, 0.75, 0.73), (0.27, 0.75, 0.45, 0.90),
    (0.55, 0.75, 0.73, 0.90), (0.45, 0.74, 0.55, 0.91), (0.37, 0.91, 0.63, 1.00),
)


@lru_cache(maxsize=1)
def _photo_grey() -> np.ndarray:
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)


def _photo_to_frame() -> np.ndarray:
    """2x3 affine placing the 512 px photo, resized to the frame height, centred."""
    width, height = FRAME_SIZE
    photo_side = _photo_grey().shape[0]
    scale = height / photo_side
    return np.array([[scale, 0.0, (width - height) / 2.0], [0.0, scale, 0.0]])


def _apply(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ M[:, :2].T + M[:, 2]


@lru_cache(maxsize=1)
def face_frame() -> np.ndarray:
    """Grey 640 x 480 frame with the astronaut photo centred in it.

    Returns
    -------
    frame : uint8 array of shape (480, 640), read-only
    """
    import cv2

    width, height = FRAME_SIZE
    frame = cv2.warpAffine(_photo_grey(), _photo_to_frame(), (width, height),
                           flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    frame.setflags(write=False)
    return frame


def face_points() -> np.ndarray:
    """The 5 alignment points (eyes, nose tip, mouth corners) in :func:`face_frame`.

    Returns
    -------
    points : float64 array of shape (5, 2), (x, y) px
    """
    return _apply(_photo_to_frame(), _PHOTO_POINTS)


def landmark_points() -> np.ndarray:
    """20 tracked points in :func:`face_frame`: the 5 alignment points first.

    Returns
    -------
    points : float64 array of shape (20, 2), (x, y) px
    """
    return _apply(_photo_to_frame(), np.vstack([_PHOTO_POINTS, _EXTRA_PHOTO_POINTS]))


def canonical_points(side: int = CROP_SIDE) -> np.ndarray:
    """Where the 5 alignment points go in a ``side`` px face crop.

    Returns
    -------
    points : float64 array of shape (5, 2), (x, y) px
    """
    return _CANONICAL_112 * (side / 112.0)


def face_regions(side: int = CROP_SIDE) -> np.ndarray:
    """Label map of 12 rectangular face regions in a ``side`` px canonical crop.

    Region ``k`` is ``BOX_REGION_NAMES[k]``; ``NOSE_BOX`` is the nose bridge.

    Returns
    -------
    labels : int32 array of shape (side, side)
        Region index, -1 outside every region.
    """
    labels = np.full((side, side), -1, np.int32)
    for index, (x0, y0, x1, y1) in enumerate(_REGION_BOXES):
        labels[round(y0 * side):round(y1 * side), round(x0 * side):round(x1 * side)] = index
    return labels


def head_motion(n_frames: int, *, seed: int = 0) -> np.ndarray:
    """Small smooth head motion about the face centre, one 2x3 affine per frame.

    Rotation within about +-2 degrees, shift within about +-4 px, scale
    within about +-2 %: a person sitting still in front of a webcam.

    Returns
    -------
    transforms : float64 array of shape (n_frames, 2, 3)
        Maps :func:`face_frame` coordinates to the moved frame's.
    """
    import cv2

    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / FPS
    phases = rng.uniform(0, 2 * np.pi, 4)
    angle = np.deg2rad(1.5 * np.sin(2 * np.pi * 0.23 * t + phases[0]))
    shift_x = 3.0 * np.sin(2 * np.pi * 0.31 * t + phases[1])
    shift_y = 2.0 * np.sin(2 * np.pi * 0.17 * t + phases[2])
    scale = 1.0 + 0.015 * np.sin(2 * np.pi * 0.11 * t + phases[3])
    # A little tremor on top, so consecutive frames always differ.
    angle += np.deg2rad(rng.normal(0.0, 0.1, n_frames))
    shift_x += rng.normal(0.0, 0.3, n_frames)
    shift_y += rng.normal(0.0, 0.3, n_frames)
    centre = face_points().mean(axis=0)
    transforms = np.empty((n_frames, 2, 3))
    for i in range(n_frames):
        M = cv2.getRotationMatrix2D(tuple(centre), float(np.rad2deg(angle[i])), float(scale[i]))
        M[:, 2] += (shift_x[i], shift_y[i])
        transforms[i] = M
    return transforms


@dataclass(frozen=True)
class MovedFrame:
    """One rendered frame of the head-motion sequence."""

    time: float  # presentation time, s
    frame: np.ndarray  # (480, 640) uint8
    points: np.ndarray  # (5, 2) float64: detected alignment points, px
    displacement: np.ndarray  # (40,) float64: 20 landmarks' (x, y) offsets from frame 0, px


def moved_frames(n_frames: int, *, seed: int = 0, noise: float = 2.0,
                 jitter: float = 0.3) -> Iterator[MovedFrame]:
    """Render the head-motion sequence frame by frame (a generator).

    Parameters
    ----------
    n_frames : int
    seed : int
        Fixes motion, landmark jitter, sensor noise and timestamp jitter.
    noise : float
        Sensor noise standard deviation, grey levels.
    jitter : float
        Landmark detection noise standard deviation, px.

    Yields
    ------
    MovedFrame
    """
    import cv2

    rng = np.random.default_rng(seed + 1)
    base = face_frame()
    width, height = FRAME_SIZE
    rest_landmarks = landmark_points()
    times = np.arange(n_frames) / FPS + rng.uniform(-0.002, 0.002, n_frames)
    start_landmarks = None
    for i, M in enumerate(head_motion(n_frames, seed=seed)):
        moved = cv2.warpAffine(base, M, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        grain = rng.normal(0.0, noise, moved.shape)
        frame = np.clip(moved + grain, 0, 255).astype(np.uint8)
        landmarks = _apply(M, rest_landmarks) + rng.normal(0.0, jitter, rest_landmarks.shape)
        if start_landmarks is None:
            start_landmarks = landmarks
        yield MovedFrame(float(times[i]), frame, landmarks[:5].copy(),
                         (landmarks - start_landmarks).ravel())


class FrameCore:
    """The per-face core state and the per-frame work, stage by stage.

    ``align``: :func:`microexpr.estimate_similarity` from 5 landmark pairs and
    :func:`microexpr.warp_affine` of the grey frame to the crop; ``flow``:
    :func:`microexpr.dense_flow` between this crop and the crop
    :data:`REFERENCE_LAG` s earlier, into a reused buffer; ``regions``:
    :func:`microexpr.region_stats` over 12 regions with the nose bridge as
    reference; ``spectra``: one :meth:`microexpr.Spectra.push` of 40 channels.

    Parameters
    ----------
    preset : str
        :func:`microexpr.dense_flow` preset.
    side : int
        Crop side, px.
    """

    STAGES = ("align", "flow", "regions", "spectra")

    def __init__(self, *, preset: str, side: int = CROP_SIDE) -> None:
        from microexpr.core import Spectra

        self.preset = preset
        self.side = side
        self.canonical = canonical_points(side)
        self.labels = face_regions(side)
        self.flow = np.zeros((side, side, 2), np.float32)
        self.spectra = Spectra(N_SPECTRA_CHANNELS, rate=FPS, window=SPECTRA_WINDOW, bands=SPECTRA_BANDS)
        lag_frames = max(1, round(REFERENCE_LAG * FPS))
        self.history: deque[np.ndarray] = deque(maxlen=lag_frames)

    def process(self, item: MovedFrame) -> np.ndarray:
        """Run the four stages on one frame.

        Returns
        -------
        stage_ns : int64 array of shape (4,)
            Wall time of each stage of :attr:`STAGES`, ns.
        """
        from microexpr.core import dense_flow, estimate_similarity, region_stats, warp_affine

        clock = time.perf_counter_ns
        t0 = clock()
        M = estimate_similarity(item.points, self.canonical)
        crop = warp_affine(item.frame, M, (self.side, self.side))
        t1 = clock()
        reference = self.history[0] if self.history else crop
        dense_flow(reference, crop, preset=self.preset, out=self.flow)
        t2 = clock()
        region_stats(self.flow, self.labels, n_regions=len(BOX_REGION_NAMES), reference=NOSE_BOX)
        t3 = clock()
        self.spectra.push(item.time, item.displacement)
        t4 = clock()
        self.history.append(crop)
        return np.array([t1 - t0, t2 - t1, t3 - t2, t4 - t3], np.int64)


def per_call_floor_ms(*, repeats: int = 2000) -> dict[str, float]:
    """Median time of each stage's calls on the smallest input they accept, ms.

    What is left when the work shrinks to almost nothing: argument checks,
    Python wrappers, pybind11 conversion and result allocation. An upper
    bound on the fixed per-call (Python-side) cost of each stage.
    """
    from microexpr.core import Spectra, dense_flow, estimate_similarity, region_stats, warp_affine

    tiny = np.zeros((8, 8), np.uint8)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    points = canonical_points()
    flow = np.zeros((8, 8, 2), np.float32)
    labels = np.zeros((8, 8), np.int32)
    spectra = Spectra(1, rate=FPS, window=SPECTRA_WINDOW, bands=SPECTRA_BANDS)
    one_value = np.zeros(1)
    calls = {
        "align": lambda i: (estimate_similarity(points, points), warp_affine(tiny, identity, (1, 1))),
        "flow": lambda i: dense_flow(tiny, tiny, out=flow),
        "regions": lambda i: region_stats(flow, labels, n_regions=len(BOX_REGION_NAMES), reference=NOSE_BOX),
        "spectra": lambda i: spectra.push(i / FPS, one_value),
    }
    floors = {}
    for stage, call in calls.items():
        for i in range(50):
            call(i)
        samples = np.empty(repeats)
        for r in range(repeats):
            start = time.perf_counter_ns()
            call(50 + r)
            samples[r] = time.perf_counter_ns() - start
        floors[stage] = float(np.median(samples)) / 1e6
    return floors


def time_core_presets(n_frames: int, *, warmup: int, seed: int,
                      presets: Sequence[str] = ("balanced", "fast")) -> dict[str, np.ndarray]:
    """Process ``warmup + n_frames`` frames with each preset, interleaved.

    Returns
    -------
    dict of str to float64 array of shape (n_frames, 4)
        Per preset, ms per stage (:attr:`FrameCore.STAGES`) and frame.
    """
    cores = {name: FrameCore(preset=name) for name in presets}
    timings = {name: np.zeros((n_frames, len(FrameCore.STAGES))) for name in cores}
    order = list(cores)
    for i, item in enumerate(moved_frames(warmup + n_frames, seed=seed)):
        # Alternate which preset runs first, so neither always finds the frame in cache.
        for name in order if i % 2 == 0 else order[::-1]:
            stage_ns = cores[name].process(item)
            if i >= warmup:
                timings[name][i - warmup] = stage_ns / 1e6
    return timings


def summarise_stages(stage_ms: np.ndarray) -> dict[str, dict[str, float]]:
    """Median and p95 per :class:`FrameCore` stage and of the per-frame total, ms."""
    columns = {stage: stage_ms[:, k] for k, stage in enumerate(FrameCore.STAGES)}
    columns["total"] = stage_ms.sum(axis=1)
    return {
        name: {"median": float(np.median(values)), "p95": float(np.percentile(values, 95))}
        for name, values in columns.items()
    }


# ---------------------------------------------------------------------------
# Synthetic face frames
# ---------------------------------------------------------------------------
_RENDER_LIMIT_WIDTH = 640  # wider frames are rendered at half size and upscaled (rendering is slow)


@lru_cache(maxsize=1)
def _face_image():
    from microexpr.synth import default_face

    return default_face()


def _face_clip(size: tuple[int, int], n_frames: int, seed: int, face_scale: float = 0.11):
    """Lazily rendered synthetic face clip of ``size`` (width, height), a ClipFrames."""
    from microexpr.synth import ClipSpec, render_clip

    with warnings.catch_warnings():
        # Short clips have no room for some nuisances; that is fine for timing.
        warnings.simplefilter("ignore")
        spec = ClipSpec(fps=FPS, duration=n_frames / FPS, size=size, seed=seed, face_scale=face_scale)
        frames, _ = render_clip(spec, face=_face_image())
    return frames


def _fit_into(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to fit ``width`` x ``height`` keeping its aspect, centred on its edge colour."""
    import cv2

    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    top, left = (height - h) // 2, (width - w) // 2
    return cv2.copyMakeBorder(image, top, height - h - top, left, width - w - left, cv2.BORDER_REPLICATE)


def _grid(n_faces: int) -> tuple[int, int]:
    """(columns, rows) of the smallest near-square grid holding ``n_faces``."""
    rows = int(np.floor(np.sqrt(n_faces)))
    cols = int(np.ceil(n_faces / rows))
    return cols, rows


def _cell_size(size: tuple[int, int], n_faces: int) -> tuple[int, int]:
    cols, rows = _grid(n_faces)
    return size[0] // cols, size[1] // rows


def _render_size(cell: tuple[int, int], limit: int) -> tuple[int, int]:
    """``cell`` halved until its width is at most ``limit``, sides even (H.264)."""
    width, height = cell
    while width > limit:
        width, height = width // 2, height // 2
    return width // 2 * 2, height // 2 * 2


def tile_faces(images: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Compose face frames into one frame, in a near-square grid.

    Parameters
    ----------
    images : sequence of uint8 arrays of shape (h, w, 3)
    size : (int, int)
        Output ``(width, height)``, px.

    Returns
    -------
    frame : uint8 array of shape (height, width, 3)
    """
    width, height = size
    cols, rows = _grid(len(images))
    cell_w, cell_h = width // cols, height // rows
    frame = np.zeros((height, width, 3), np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, cols)
        frame[r * cell_h:(r + 1) * cell_h, c * cell_w:(c + 1) * cell_w] = _fit_into(image, cell_w, cell_h)
    return frame


def synthetic_faces(size: tuple[int, int], n_faces: int, n_frames: int, *, seed: int = 0,
                    face_scale: float = 0.11) -> Iterator[tuple[np.ndarray, float]]:
    """Frames holding ``n_faces`` synthetic faces (one clip per face, seeds ``seed + k``).

    Several faces are rendered at the cell size of a near-square grid;
    cells wider than 640 px are rendered at half size and upscaled
    (rendering is the slow part).

    Parameters
    ----------
    size : (int, int)
        ``(width, height)``, px.
    n_faces, n_frames : int
    seed : int
    face_scale : float
        Inter-ocular distance as a fraction of the cell width
        (:class:`microexpr.synth.ClipSpec`).

    Yields
    ------
    frame : uint8 array of shape (height, width, 3), RGB
    t : float
        Presentation time, s (30 fps).
    """
    render = _render_size(_cell_size(size, n_faces), _RENDER_LIMIT_WIDTH)
    clips = [_face_clip(render, n_frames, seed + k, face_scale) for k in range(n_faces)]
    for i in range(n_frames):
        images = [clip.frame_at(i) for clip in clips]
        yield tile_faces(images, size), i / FPS


# ---------------------------------------------------------------------------
# Streaming latency
# ---------------------------------------------------------------------------
#: Per-frame stages of the latency table, in pipeline order; ``core`` is the
#: compiled core's share of each frame (alignment + flow + regions).
LATENCY_STAGES = ("decode", "landmarks", "alignment", "flow", "regions", "core", "spotting", "total")
_CORE_STAGES = ("alignment", "flow", "regions")


class PerFrameStageTimes:
    """Stage times summed per frame, over faces and calls.

    Takes the place of :class:`microexpr.pipeline.StageTimes` in an
    analyzer (``analyzer.stage_times = PerFrameStageTimes()``): the analyzer
    adds one sample per stage call; this collects them until
    :meth:`end_frame` and then keeps one sample per stage and frame (0 for a
    stage that did not run in that frame). The analyzer's ``spotting`` stage
    already excludes the flow and region statistics it calls.

    Attributes
    ----------
    samples : dict of str to list of float
        Stage -> seconds, one per ended frame.
    """

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self._current: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self._current[stage] = self._current.get(stage, 0.0) + seconds

    def discard_frame(self) -> None:
        """Forget what this frame added (a warm-up frame)."""
        self._current = {}

    def end_frame(self, **extra: float) -> None:
        """Close one frame; ``extra`` adds stages timed outside the analyzer (s)."""
        current = self._current
        current.update(extra)
        current["core"] = sum(current.get(stage, 0.0) for stage in _CORE_STAGES)
        for stage in LATENCY_STAGES:
            self.samples.setdefault(stage, []).append(current.get(stage, 0.0))
        self._current = {}

    def summary(self) -> dict[str, dict[str, float]]:
        """Stage -> ``p50_ms``, ``p95_ms``, ``p99_ms``, ``n``."""
        return {stage: _percentiles(np.asarray(values) * 1000.0)
                for stage, values in self.samples.items() if values}


class _PeakMemory:
    """Peak resident memory of this process over a stretch of work."""

    def __init__(self) -> None:
        self._reset = False
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)
            self._reset = True
        except OSError:
            pass
        self.start_mib = self._status_mib("VmRSS")

    @staticmethod
    def _status_mib(key: str) -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
        except (OSError, ValueError, IndexError):
            pass
        return None

    def peak_mib(self) -> float:
        """Peak since construction where the OS can reset it, else the process's lifetime peak."""
        if self._reset:
            peak = self._status_mib("VmHWM")
            if peak is not None:
                return peak
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024.0


def _percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values_ms, dtype=np.float64)
    return {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
            "p99_ms": float(np.percentile(v, 99)), "n": int(v.size)}


def measure_latency(
    size: tuple[int, int],
    n_faces: int,
    *,
    n_frames: int,
    workdir: str | Path,
    warmup: int = 5,
    model: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Per-stage streaming latency of the whole pipeline on synthetic faces.

    The frames (:func:`synthetic_faces`) are encoded to H.264 (crf 18), then
    decoded with :func:`microexpr.video.open_video` and pushed one by one
    into ``Analyzer(mode="streaming", max_faces=n_faces)``.

    Parameters
    ----------
    size : (int, int)
        Frame ``(width, height)``, px.
    n_faces : int
    n_frames : int
        Frames timed (after ``warmup`` untimed ones).
    workdir : path
        Where the temporary mp4 goes.
    warmup : int
        First frames left out of the statistics (model start, track set-up).
    model : path, optional
        Face landmark model.

    Returns
    -------
    dict
        ``size``, ``faces``, ``frames`` (timed), ``warmup``, ``stages`` (stage -> p50_ms, p95_ms,
        p99_ms, n; per frame, summed over faces), ``fps`` (frames per second
        of decode + analysis), ``faces_tracked`` (mean per frame),
        ``peak_rss_mib`` and ``rss_before_mib``.
    """
    from microexpr.pipeline import Analyzer
    from microexpr.video import VideoWriter, open_video

    width, height = size
    path = Path(workdir) / f"latency_{width}x{height}_{n_faces}faces.mp4"
    total = warmup + n_frames
    with VideoWriter(path, fps=FPS, crf=18, preset="veryfast") as writer:
        for image, t in synthetic_faces(size, n_faces, total):
            writer.write(image, t)

    memory = _PeakMemory()
    stages = PerFrameStageTimes()
    clock = time.perf_counter
    busy = 0.0
    analyzer = Analyzer(mode="streaming", max_faces=n_faces, model=model, time_stages=True)
    with analyzer, open_video(path) as reader:
        analyzer.stage_times = stages
        frames = iter(reader)
        for index in range(total):
            t0 = clock()
            frame = next(frames, None)
            t1 = clock()
            if frame is None:
                break
            analyzer.push(frame.image, frame.t)
            t2 = clock()
            if index < warmup:
                stages.discard_frame()
                continue
            stages.end_frame(decode=t1 - t0, total=t2 - t0)
            busy += t2 - t0
        analyzer.flush()
        rows = analyzer.result().frames
    path.unlink(missing_ok=True)
    timed = len(stages.samples.get("total", []))
    summary = stages.summary()
    return {
        "size": [width, height],
        "faces": n_faces,
        "frames": timed,
        "warmup": warmup,
        "stages": {stage: summary[stage] for stage in LATENCY_STAGES if stage in summary},
        "fps": timed / busy if busy > 0 else None,
        "faces_tracked": sum(row["frame"] >= warmup for row in rows) / timed if timed else None,
        "peak_rss_mib": round(memory.peak_mib(), 1),
        "rss_before_mib": None if memory.start_mib is None else round(memory.start_mib, 1),
    }


#: Offline target: seconds of 30 fps 640 x 480 video analysed per second.
OFFLINE_TARGET_SPEED = 1.5


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_offline(
    *,
    seconds: float,
    workdir: str | Path,
    size: tuple[int, int] = (640, 480),
    model: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Whole-file analysis speed on a synthetic face clip at 30 fps.

    The clip (:func:`synthetic_faces`, one face) is encoded to H.264 (crf
    18). It is analysed twice, in offline mode: by :func:`microexpr.analyze`
    (decode and landmarks on worker threads ahead of flow and spotting) and
    by pushing decoded frames one by one into an :class:`Analyzer` on one
    thread.

    Returns
    -------
    dict
        ``size``, ``fps`` (the clip's), ``video_s``, ``frames`` and, for
        ``"analyze"`` and ``"one_thread"``: ``wall_s``, ``cpu_s``,
        ``frames_per_s``, ``speed`` (video seconds per wall second);
        ``target_speed``.
    """
    from microexpr.pipeline import Analyzer, analyze
    from microexpr.video import VideoWriter, open_video

    width, height = size
    n_frames = max(2, round(seconds * FPS))
    path = Path(workdir) / f"offline_{width}x{height}.mp4"
    with VideoWriter(path, fps=FPS, crf=18, preset="veryfast") as writer:
        for image, t in synthetic_faces(size, 1, n_frames):
            writer.write(image, t)
    video_s = n_frames / FPS

    def timed(run: Callable[[], int]) -> dict[str, Any]:
        wall, cpu = time.perf_counter(), _cpu_seconds()
        frames = run()
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        return {"wall_s": wall, "cpu_s": cpu, "frames": frames,
                "frames_per_s": frames / wall, "speed": video_s / wall}

    def whole_file() -> int:
        return len(analyze(path, model=model).frame_times)

    def one_thread() -> int:
        with Analyzer(mode="offline", model=model) as analyzer, open_video(path) as reader:
            for frame in reader:
                analyzer.push(frame.image, frame.t)
            analyzer.flush()
            return len(analyzer.result().frame_times)

    try:
        rows = {"analyze": timed(whole_file), "one_thread": timed(one_thread)}
    finally:
        path.unlink(missing_ok=True)
    return {"size": [width, height], "fps": FPS, "video_s": video_s, "frames": n_frames,
            **rows, "target_speed": OFFLINE_TARGET_SPEED}


# ---------------------------------------------------------------------------
# Cost growth
# ---------------------------------------------------------------------------
def _frame_totals_ms(cores: Sequence[FrameCore], n_frames: int, *, warmup: int, seed: int) -> np.ndarray:
    """Per-frame sum over ``cores`` of the four stages, ms; shape (n_frames,)."""
    totals = np.zeros(n_frames)
    for i, item in enumerate(moved_frames(warmup + n_frames, seed=seed)):
        spent = sum(int(core.process(item).sum()) for core in cores)
        if i >= warmup:
            totals[i - warmup] = spent / 1e6
    return totals


#: Face size (eye distance over cell width) in the landmarker scaling frames.
LANDMARK_FACE_SCALE = 0.3


def core_cost_vs_faces(faces: Sequence[int], *, n_frames: int, warmup: int = 10,
                       preset: str = "balanced", seed: int = 0) -> list[dict[str, Any]]:
    """Time per frame of the per-face core work (:class:`FrameCore`, 160 px) for N faces.

    Each face has its own core state (flow history, spectra) and does the
    whole per-face work on the frame, one after another on one thread.

    Returns
    -------
    list of dict
        ``faces``, ``p50_ms``, ``p95_ms`` (per frame), ``per_face_ms`` (p50 / N).
    """
    rows = []
    for n in faces:
        cores = [FrameCore(preset=preset) for _ in range(n)]
        totals = _frame_totals_ms(cores, n_frames, warmup=warmup, seed=seed)
        p50 = float(np.median(totals))
        rows.append({"faces": int(n), "p50_ms": p50, "p95_ms": float(np.percentile(totals, 95)),
                     "per_face_ms": p50 / n})
    return rows


def core_cost_vs_crop(sides: Sequence[int], *, n_frames: int, warmup: int = 10,
                      preset: str = "balanced", seed: int = 0) -> list[dict[str, Any]]:
    """Time per frame of one face's core work for each crop side, px.

    Returns
    -------
    list of dict
        ``crop``, ``p50_ms``, ``p95_ms``, ``vs_160`` (p50 over the 160 px
        p50, when 160 is measured).
    """
    rows = []
    for side in sides:
        core = FrameCore(preset=preset, side=int(side))
        totals = _frame_totals_ms([core], n_frames, warmup=warmup, seed=seed)
        rows.append({"crop": int(side), "p50_ms": float(np.median(totals)),
                     "p95_ms": float(np.percentile(totals, 95))})
    reference = next((r["p50_ms"] for r in rows if r["crop"] == CROP_SIDE), None)
    for row in rows:
        row["vs_160"] = row["p50_ms"] / reference if reference else None
    return rows


def landmarker_cost_vs_faces(
    faces: Sequence[int],
    *,
    n_frames: int,
    size: tuple[int, int] = (1280, 720),
    warmup: int = 2,
    model: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Time of the face landmarker with ``max_faces = N`` on frames holding N faces.

    Up to four synthetic face clips (mirrored beyond four, so no two faces
    are alike) are rendered once, at the cell size of the largest N (at
    most 320 px wide), and tiled into ``size`` frames, scaled to each N's
    cells (:func:`tile_faces`). Each face's eyes are 0.3 of the face
    image's width apart: MediaPipe's short-range face detector misses much
    smaller faces once a frame holds several.

    Returns
    -------
    list of dict
        ``faces``, ``p50_ms``, ``p95_ms``, ``found`` (median faces found per frame).
    """
    from microexpr.landmarks import FaceLandmarker

    total = warmup + n_frames
    render = _render_size(_cell_size(size, max(faces)), 320)
    clips = [_face_clip(render, total, seed, LANDMARK_FACE_SCALE) for seed in range(min(max(faces), 4))]
    rows = []
    for n in faces:
        times_ms, found = [], []
        frames = []
        for i in range(total):
            images = [clips[k % len(clips)].frame_at(i) for k in range(n)]
            images = [image if k < len(clips) else np.ascontiguousarray(image[:, ::-1])
                      for k, image in enumerate(images)]
            frames.append(tile_faces(images, size))
        with FaceLandmarker(model=model, max_faces=int(n)) as landmarker:
            for i, frame in enumerate(frames):
                start = time.perf_counter()
                detected = landmarker.detect(frame, i / FPS)
                spent = time.perf_counter() - start
                if i >= warmup:
                    times_ms.append(spent * 1000.0)
                    found.append(len(detected))
        rows.append({"faces": int(n), "p50_ms": float(np.median(times_ms)),
                     "p95_ms": float(np.percentile(times_ms, 95)), "found": float(np.median(found))})
    return rows


# ---------------------------------------------------------------------------
# Accuracy on synthetic clips
# ---------------------------------------------------------------------------
def accuracy_specs(n_clips: int, duration: float, *, seed: int = 500):
    """The accuracy clips: 640 x 480, 30 fps, blinks, head motion, noise; fixed seeds.

    One micro and one macro event per clip (two of each from 12 s; micro
    only under 3 s), and a region-only event every other clip from 8 s.

    Returns
    -------
    list of microexpr.synth.ClipSpec
    """
    from microexpr.synth import ClipSpec

    pairs = 2 if duration >= 12.0 else 1
    n_macro = pairs if duration >= 3.0 else 0
    return [ClipSpec(fps=FPS, duration=duration, size=(640, 480), seed=seed + k, n_micro=pairs,
                     n_macro=n_macro,
                     n_subtle=1 if duration >= 8.0 and k % 2 == 1 else 0, speech=False, illumination=False)
            for k in range(n_clips)]


def measure_accuracy(specs: Sequence, *, workdir: str | Path,
                     model: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """MEGC-rule F1 of microexpr, MDMD and LBP on synthetic clips with known events.

    Each clip is written as H.264 (:func:`microexpr.synth.write_clip`),
    decoded back, and run once through the landmarker into all three
    methods (:func:`microexpr.megc.spot_frames`; the pipeline in offline
    mode, the baselines on crops aligned like the pipeline's).

    Returns
    -------
    dict
        ``clips`` (per clip: seed, seconds, frames, micro and macro truth
        counts), ``scores`` (method -> micro / macro / overall dicts of
        tp, fp, fn, precision, recall, f1), ``table`` (markdown).
    """
    from microexpr.evaluate import evaluate_videos
    from microexpr.megc import METHODS, f1_table, spot_frames
    from microexpr.synth import write_clip
    from microexpr.video import open_video

    pairs: dict[str, list] = {method: [] for method in METHODS}
    clips = []
    for k, spec in enumerate(specs):
        path = Path(workdir) / f"accuracy_{k}_seed{spec.seed}.mp4"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            truth = write_clip(path, spec)
        with open_video(path) as reader:
            predictions = spot_frames(((f.image, f.t) for f in reader), methods=METHODS, model=model)
        truth_doc = truth.to_dict()
        for method in METHODS:
            pairs[method].append((truth_doc, {"events": predictions.events[method],
                                              "frame_times": predictions.frame_times}))
        clips.append({"seed": spec.seed, "seconds": spec.duration, "frames": len(predictions.frame_times),
                      "micro": sum(e.kind == "micro" for e in truth.events),
                      "macro": sum(e.kind == "macro" for e in truth.events)})
        path.unlink(missing_ok=True)
    evaluations = {method: evaluate_videos(pairs[method]) for method in METHODS}
    return {
        "clips": clips,
        "scores": {m: {row: getattr(e, row).to_dict() for row in ("micro", "macro", "overall")}
                   for m, e in evaluations.items()},
        "table": f1_table(evaluations),
    }


# ---------------------------------------------------------------------------
# The whole benchmark
# ---------------------------------------------------------------------------
@dataclass
class BenchSettings:
    """Sizes and counts of one benchmark run (``full`` and ``quick`` presets)."""

    resolutions: list[tuple[int, int]] = field(default_factory=lambda: [(640, 480), (1280, 720)])
    latency_faces: list[int] = field(default_factory=lambda: [1, 4])
    latency_frames: int = 300  # 10 s at 30 fps: p95 over 15 frames, not 3
    offline_seconds: float = 20.0
    flow_sizes: list[int] = field(default_factory=lambda: [128, 192, 256])
    flow_seeds: int = 3
    flow_repeats: int = 40
    scaling_faces: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    landmark_faces: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    crop_sizes: list[int] = field(default_factory=lambda: [96, 128, 160, 192, 256])
    core_frames: int = 120
    landmark_frames: int = 10
    accuracy_clips: int = 3
    accuracy_seconds: float = 8.0

    @classmethod
    def preset(cls, quick: bool) -> "BenchSettings":
        if not quick:
            return cls()
        return cls(resolutions=[(640, 480)], latency_frames=15, offline_seconds=4.0,
                   flow_sizes=[128], flow_seeds=2,
                   flow_repeats=10,
                   landmark_faces=[1, 4],
                   crop_sizes=[96, 160, 256], core_frames=30, landmark_frames=3, accuracy_clips=1,
                   accuracy_seconds=5.0)

    def to_dict(self) -> dict[str, Any]:
        return {k: ([list(v) for v in value] if k == "resolutions" else value)
                for k, value in self.__dict__.items()}


def _run_section(name: str, settings: BenchSettings, workdir: Path, model) -> dict[str, Any] | list:
    import cv2

    if name == "machine":
        return machine_facts()
    if name == "latency":
        return [measure_latency(size, n, n_frames=settings.latency_frames, workdir=workdir, model=model)
                for size in settings.resolutions for n in settings.latency_faces]
    if name == "offline":
        return measure_offline(seconds=settings.offline_seconds, workdir=workdir, model=model)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # the core is single-threaded: compare like with like
    try:
        if name == "flow":
            results = [measure_flow(size, seeds=settings.flow_seeds, repeats=settings.flow_repeats, warmup=3)
                       for size in settings.flow_sizes]
            return {"seeds": settings.flow_seeds, "repeats": settings.flow_repeats,
                    "tables": {str(r.size): flow_rows(r) for r in results}, "checks": flow_checks(results)}
        if name == "scaling":
            out: dict[str, Any] = {
                "core_vs_faces": core_cost_vs_faces(settings.scaling_faces, n_frames=settings.core_frames),
                "core_vs_crop": core_cost_vs_crop(settings.crop_sizes, n_frames=settings.core_frames),
            }
            try:
                out["landmarks_vs_faces"] = landmarker_cost_vs_faces(
                    settings.landmark_faces, n_frames=settings.landmark_frames, model=model)
            except ModelNotFoundError as error:
                out["landmarks_vs_faces"] = {"skipped": str(error)}
            return out
    finally:
        cv2.setNumThreads(threads)
    if name == "accuracy":
        return measure_accuracy(accuracy_specs(settings.accuracy_clips, settings.accuracy_seconds),
                                workdir=workdir, model=model)
    raise ParameterError(f"unknown benchmark section {name!r}; expected one of {SECTIONS}")


def run_benchmark(
    *,
    quick: bool = False,
    settings: BenchSettings | None = None,
    model: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_section: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every section and return the report (the content of ``bench.json``).

    Parameters
    ----------
    quick : bool
        The quick preset (about 20 s instead of about 2 min on 2 cores).
    settings : BenchSettings, optional
        Overrides the preset.
    model : path, optional
        Face landmark model. Without one, the sections that need landmarks
        hold ``{"skipped": reason}`` and the others still run.
    progress : bool
        A tqdm bar over the sections (stderr).
    on_section : callable(name, report), optional
        Called after each section with the report so far.

    Returns
    -------
    dict
        Keys as in the module docstring.
    """
    import microexpr

    settings = settings or BenchSettings.preset(quick)
    started = time.perf_counter()
    report: dict[str, Any] = {"version": microexpr.__version__, "quick": bool(quick),
                              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "settings": settings.to_dict()}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(SECTIONS), unit="section", desc="bench", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="microexpr-bench-") as workdir:
            for name in SECTIONS:
                if bar is not None:
                    bar.set_description(f"bench: {name}")
                try:
                    report[name] = _run_section(name, settings, Path(workdir), model)
                except ModelNotFoundError as error:
                    report[name] = {"skipped": str(error)}
                except MicroexprError as error:
                    # Keep the other sections' results; the report says what failed.
                    report[name] = {"skipped": f"failed: {error}", "error": True}
                if on_section is not None:
                    on_section(name, report)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _section_machine(m: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    if m["simd_cpu"] is None:
        simd_cpu = "unknown"
    else:
        simd_cpu = ", ".join(m["simd_cpu"]) or "none of " + ", ".join(_SIMD_FLAGS)
    return ["## Machine", "", "| | |", "|---|---|",
            f"| CPU | {m['cpu']} ({m['arch']}) |",
            f"| cores | {m['cores']} logical, {m['usable_cores']} usable by this process |",
            f"| SIMD built into the core | {m['simd_built']} |",
            f"| SIMD the CPU offers | {simd_cpu} |",
            f"| memory | {_fmt(m['memory_gib'], 1)} GiB |",
            f"| system | {m['system']} |",
            f"| versions | {versions} |"]


def _section_latency(rows: list[dict[str, Any]]) -> list[str]:
    heads = [f"{r['size'][0]}x{r['size'][1]}, {r['faces']} face{'s' if r['faces'] > 1 else ''}" for r in rows]
    lines = ["## Streaming latency per frame (ms, p50 / p95 / p99)", "",
             f"Synthetic faces, H.264 decode + `Analyzer(mode=\"streaming\")`, {rows[0]['frames']} frames "
             f"per column after {rows[0]['warmup']} untimed; stages summed over faces; spotting excludes "
             "flow and regions.", "",
             "| stage | " + " | ".join(heads) + " |", "|---|" + "---|" * len(rows)]
    for stage in LATENCY_STAGES:
        cells = []
        for r in rows:
            s = r["stages"].get(stage)
            cells.append("-" if s is None else f"{s['p50_ms']:.2f} / {s['p95_ms']:.2f} / {s['p99_ms']:.2f}")
        label = {"total": "**total**", "core": "core (alignment + flow + regions)"}.get(stage, stage)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| frames per second | " + " | ".join(_fmt(r["fps"], 1) for r in rows) + " |")
    lines.append("| faces tracked (mean) | " + " | ".join(_fmt(r["faces_tracked"], 1) for r in rows) + " |")
    lines.append("| peak memory (MiB) | " + " | ".join(
        f"{r['peak_rss_mib']:.0f} (+{r['peak_rss_mib'] - r['rss_before_mib']:.0f})"
        if r["rss_before_mib"] is not None else f"{r['peak_rss_mib']:.0f}" for r in rows) + " |")
    return lines


def _section_flow(flow: dict[str, Any]) -> list[str]:
    lines = ["## Dense flow against OpenCV (one thread)", "",
             f"Median of {flow['repeats']} interleaved calls; EPE on the face, mean over {flow['seeds']} "
             "seeded pairs with known flow (px).", "",
             "| size | method | ms | EPE | t / DIS medium | t / DIS ultrafast | EPE / DIS medium "
             "| EPE / DIS fast |",
             "|---|---|---|---|---|---|---|---|"]
    for size, rows in flow["tables"].items():
        for r in rows:
            lines.append(f"| {size} | {r['method']} | {r['ms']:.3f} | {r['epe']:.3f} "
                         f"| {r['time_vs_dis_medium']:.2f} "
                         f"| {r['time_vs_dis_ultrafast']:.2f} | {r['epe_vs_dis_medium']:.2f} "
                         f"| {r['epe_vs_dis_fast']:.2f} |")
    checks = flow["checks"]
    lines += ["", f"Targets ({sum(c['pass'] for c in checks)} of {len(checks)} pass):", ""]
    lines += [f"- {'PASS' if c['pass'] else 'FAIL'} {c['check']}: {c['measured']:.2f}x "
              f"(limit {c['limit']:.2f}x)"
              for c in checks]
    return lines


def _section_scaling(scaling: dict[str, Any]) -> list[str]:
    lines = ["## Cost growth", "",
             "Per-face core work (align, flow, regions, spectra; 160 px crop, balanced), "
             "one thread, ms per frame:", "", "| faces | p50 | p95 | p50 per face |", "|---|---|---|---|"]
    lines += [f"| {r['faces']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['per_face_ms']:.2f} |"
              for r in scaling["core_vs_faces"]]
    lines += ["", "One face's core work by crop side, ms per frame:", "",
              "| crop (px) | p50 | p95 | p50 / 160 px |", "|---|---|---|---|"]
    lines += [f"| {r['crop']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {_fmt(r['vs_160'])} |"
              for r in scaling["core_vs_crop"]]
    landmarks = scaling["landmarks_vs_faces"]
    lines += ["", "Face landmarker (MediaPipe, VIDEO mode) with max_faces = N on a 1280x720 frame holding N "
              f"synthetic faces (eye distance {LANDMARK_FACE_SCALE:g} of each face image's width), ms:", ""]
    if isinstance(landmarks, dict):
        lines.append(f"skipped: {landmarks['skipped']}")
    else:
        lines += ["| faces | p50 | p95 | faces found |", "|---|---|---|---|"]
        lines += [f"| {r['faces']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['found']:.0f} |"
                  for r in landmarks]
    return lines


def _section_accuracy(accuracy: dict[str, Any]) -> list[str]:
    clips = accuracy["clips"]
    n_micro = sum(c["micro"] for c in clips)
    n_macro = sum(c["macro"] for c in clips)
    seconds = sum(c["seconds"] for c in clips)
    return ["## Accuracy on synthetic clips (MEGC rule)", "",
            f"{len(clips)} clip(s), {seconds:g} s at 30 fps, 640x480, {n_micro} micro + {n_macro} macro "
            "events, with blinks, head motion and sensor noise; seeds "
            f"{', '.join(str(c['seed']) for c in clips)}. IoU >= 0.5, one-to-one matching.", "",
            accuracy["table"]]


def _section_offline(o: dict[str, Any]) -> list[str]:
    target = o["target_speed"]
    lines = ["## Offline analysis speed", "",
             f"A {o['video_s']:.0f} s synthetic face clip, {o['size'][0]}x{o['size'][1]} at {o['fps']:.0f} fps, "
             "H.264, offline mode. Speed: seconds of video per second of wall time "
             f"(target {target:g}x).", "",
             "| run | frames per second | speed | CPU time / wall time | target |",
             "|---|---|---|---|---|"]
    for key, label in (("analyze", "`microexpr.analyze` (decode and landmarks on worker threads)"),
                       ("one_thread", "`Analyzer.push`, frame by frame, one thread")):
        r = o[key]
        verdict = "PASS" if r["speed"] >= target else "FAIL"
        lines.append(f"| {label} | {r['frames_per_s']:.1f} | {r['speed']:.2f}x | "
                     f"{r['cpu_s'] / r['wall_s']:.2f} | {verdict if key == 'analyze' else '-'} |")
    return lines


_SECTION_WRITERS = {"machine": _section_machine, "latency": _section_latency, "offline": _section_offline,
                    "flow": _section_flow,
                    "scaling": _section_scaling, "accuracy": _section_accuracy}


def section_markdown(name: str, report: dict[str, Any]) -> str:
    """Markdown of one section of a report (a skipped section says why)."""
    value = report[name]
    if isinstance(value, dict) and "skipped" in value:
        return f"## {name}\n\nskipped: {value['skipped']}"
    return "\n".join(_SECTION_WRITERS[name](value))


def markdown_report(report: dict[str, Any]) -> str:
    """The whole report as Markdown (what ``bench.md`` holds)."""
    head = [f"# microexpr {report['version']} benchmark{' (quick)' if report['quick'] else ''}", "",
            f"{report['date']}, {report.get('elapsed_s', '-')} s. Timings on a shared machine vary by tens "
            "of percent between runs: compare ratios within one run."]
    parts = ["\n".join(head)] + [section_markdown(name, report) for name in SECTIONS if name in report]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = None
    if not sep or size is None or min(size) < 64 or size[0] % 4 or size[1] % 4:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT with sides >= 64 and multiples of 4, got {text!r}")
    return size


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def _at_least(minimum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
        if not minimum <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected at least {minimum:g} s, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Parser for ``[--quick] [--out DIR]`` (plus hidden options that shrink the run)."""
    parser = argparse.ArgumentParser(
        prog="microexpr bench",
        description="Measure microexpr on this machine with synthetic inputs (nothing to download): "
                    "per-stage latency, offline speed, flow against OpenCV, cost growth with faces "
                    "and crop size, and accuracy beside the MDMD and LBP baselines. Writes bench.json "
                    "and bench.md.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="a short run (about 20 s instead of about 2 min)")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="folder for bench.json and bench.md (default: the current folder)")
    parser.add_argument("--model", type=Path, metavar="PATH",
                        help="MediaPipe face_landmarker.task (default: found automatically)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    hidden = argparse.SUPPRESS
    parser.add_argument("--frames", type=_positive(int), help=hidden)
    parser.add_argument("--sizes", type=_positive(int), nargs="+", help=hidden)
    parser.add_argument("--faces", type=_positive(int), nargs="+", help=hidden)
    parser.add_argument("--resolutions", type=_size, nargs="+", help=hidden)
    parser.add_argument("--clips", type=_positive(int), help=hidden)
    parser.add_argument("--clip-seconds", type=_at_least(1.5), help=hidden)
    parser.add_argument("--repeats", type=_positive(int), help=hidden)
    parser.add_argument("--offline-seconds", type=_at_least(1.0), help=hidden)
    return parser


def _settings_from(args: argparse.Namespace) -> BenchSettings:
    settings = BenchSettings.preset(args.quick)
    if args.frames is not None:
        settings.latency_frames = settings.core_frames = args.frames
        settings.landmark_frames = min(settings.landmark_frames, args.frames)
    if args.sizes is not None:
        settings.flow_sizes = settings.crop_sizes = list(args.sizes)
    if args.faces is not None:
        settings.scaling_faces = settings.landmark_faces = list(args.faces)
        kept = [n for n in settings.latency_faces if n <= max(args.faces)]
        settings.latency_faces = kept or [min(args.faces)]
    if args.resolutions is not None:
        settings.resolutions = list(args.resolutions)
    if args.clips is not None:
        settings.accuracy_clips = args.clips
    if args.clip_seconds is not None:
        settings.accuracy_seconds = args.clip_seconds
    if args.repeats is not None:
        settings.flow_repeats = args.repeats
    if args.offline_seconds is not None:
        settings.offline_seconds = args.offline_seconds
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``microexpr bench``; returns the exit status.

    0: done (sections that need the face model say "skipped" without one);
    1: a section failed (the others are still written) or the output folder
    cannot be written; 2: usage error; 130: interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.sizes is not None and not all(96 <= side <= 256 for side in args.sizes):
        print(f"microexpr bench: error: --sizes must be in [96, 256] px, got {args.sizes}", file=sys.stderr)
        return 2
    out_dir: Path = args.out
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"microexpr bench: error: cannot create {out_dir}: {error}", file=sys.stderr)
        return 1
    settings = _settings_from(args)
    bar_file = sys.stderr

    def show(name: str, report: dict[str, Any]) -> None:
        from tqdm import tqdm

        tqdm.write(section_markdown(name, report) + "\n", file=sys.stdout)
        bar_file.flush()

    print(f"microexpr bench{' --quick' if args.quick else ''}: results go to {out_dir / 'bench.json'} "
          f"and {out_dir / 'bench.md'}\n", flush=True)
    try:
        report = run_benchmark(quick=args.quick, settings=settings, model=args.model, progress=not args.quiet,
                               on_section=show)
    except KeyboardInterrupt:
        print("microexpr bench: interrupted; nothing written", file=sys.stderr)
        return 130
    except MicroexprError as error:
        print(f"microexpr bench: error: {error}", file=sys.stderr)
        return 1
    try:
        text = json.dumps(report, indent=2, allow_nan=False) + "\n"
        (out_dir / "bench.json").write_text(text, encoding="utf-8")
        (out_dir / "bench.md").write_text(markdown_report(report), encoding="utf-8")
    except OSError as error:
        print(f"microexpr bench: error: cannot write the results to {out_dir}: {error}", file=sys.stderr)
        return 1
    print(f"done in {report['elapsed_s']} s; wrote {out_dir / 'bench.json'} and {out_dir / 'bench.md'}")
    failed = [name for name in SECTIONS if isinstance(report.get(name), dict) and report[name].get("error")]
    if failed:
        print(f"microexpr bench: section(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
