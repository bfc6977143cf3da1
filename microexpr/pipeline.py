"""Frames in, events out: landmarks, alignment, flow, regions, spotting.

:class:`Analyzer` is the streaming engine (``push`` a frame with its
presentation time, get the events whose offset that frame confirmed);
:func:`analyze` runs it over a video file. Both use the same engine; the
offline mode only waits longer before closing an event.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import scipy.sparse

from .core import dense_flow, estimate_similarity, warp_affine
from .errors import LandmarkError, ParameterError, VideoError
from .events import Event, Result
from .landmarks import FaceLandmarks, eye_aperture, get_scheme
from .regions import (
    REGION_NAMES,
    CropGeometry,
    alignment_template,
    region_labels,
    rigid_mask,
)
from .spotter import FrameRecord, SpotterConfig, TrackSpotter
from .tracking import FaceTracker

__all__ = ["Analyzer", "analyze", "StageTimes", "SPOTTING_FLOW"]

# The spotter reads region means, which average away per-pixel noise: a few
# plain sweeps (no half-resolution correction) and a little more smoothing
# than the balanced preset's per-pixel tuning spot better on the synthetic dev
# clips, at a fraction of its cost.
SPOTTING_FLOW: dict[str, Any] = {"sweeps": 6, "smoothness": 0.015, "correction_sweeps": 0}
# Single flow parameters a caller may override: dense_flow's own keywords.
_FLOW_OPTION_NAMES = {name for name, param in inspect.signature(dense_flow).parameters.items()
                      if param.kind is param.KEYWORD_ONLY} - {"preset", "highpass", "out"}


@dataclass
class StageTimes:
    """Wall time per stage of the last frames (seconds), for latency reports."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.samples.setdefault(stage, []).append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, values in self.samples.items():
            v = np.asarray(values) * 1000.0
            out[stage] = {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
                          "p99_ms": float(np.percentile(v, 99)), "n": int(v.size)}
        return out


class _Track:
    """Per-face state: alignment template, spotter, flow buffers."""

    def __init__(self, track_id: int, face: FaceLandmarks, analyzer: "Analyzer") -> None:
        self.id = track_id
        self.scheme = get_scheme(face.scheme)
        self.geometry = analyzer.geometry
        self.template = alignment_template(face.points, self.scheme, self.geometry)
        self.align_idx = list(self.scheme.alignment_indices)
        # Head rotation shows in the rigid points' shape; eye corners move in
        # blinks, so they are left out of that test.
        corners = {i for pair in self.scheme.eye_corners.values() for i in pair}
        self.rigid_idx = [i for i in self.scheme.rigid if i not in corners]
        self.inner_lip_idx = list(self.scheme.regions["inner_lip"])
        self.analyzer = analyzer
        size = analyzer.geometry.size
        self.flow = np.empty((size, size, 2), np.float32)
        self._pair_flows: list[np.ndarray] = []  # one output per flow run together
        # The back-fill's output: a track has one batch in flight at a time.
        self._background_flow = np.empty_like(self.flow)
        # With one flow thread the spotter computes back-fills when it asks for them.
        later = self._region_vectors_later if analyzer.flow_threads >= 2 else None
        self.spotter = TrackSpotter(track_id, self.geometry.iod_px, self._region_vectors,
                                    analyzer.config, region_vectors_many=self._region_vectors_many,
                                    region_vectors_later=later)
        self.last_seen = -math.inf
        self.labels: np.ndarray | None = None
        self.kernel_seconds = 0.0  # flow + region statistics, for stage timing
        self._mouth_prev: tuple[float, np.ndarray, tuple[int, int, int, int]] | None = None
        # The last open-eyed frame's alignment and rigid points (frame coordinates).
        self._open_pose: tuple[np.ndarray, np.ndarray] | None = None

    def _layout(self, points: np.ndarray) -> None:
        """Region labels and the linear maps from flow to region motion, from one aligned frame.

        Crops are aligned, so one layout per track serves every frame pair.
        """
        size = self.geometry.size
        n_regions = len(REGION_NAMES)
        self.labels = region_labels(points, self.scheme, self.geometry)
        flat = self.labels.ravel()
        labelled = np.flatnonzero(flat >= 0)
        counts = np.bincount(flat[labelled], minlength=n_regions).astype(np.float64)
        rows = [flat[labelled]]
        cols = [labelled]
        weights = [1.0 / counts[flat[labelled]]]
        ys, xs = np.nonzero(rigid_mask(points, self.scheme, self.geometry))
        rigid_xy = np.stack([xs, ys], axis=1).astype(np.float64)
        rigid_centre = rigid_xy.mean(axis=0) if len(rigid_xy) else np.zeros(2)
        p = rigid_xy - rigid_centre
        norm = float((p ** 2).sum())
        # The similarity motion fitted to the rigid pixels' flow (closed-form
        # least squares) is linear in that flow too: the mean gives the
        # translation, the sums of p * flow give scale and rotation.
        self.fits_rigid = len(p) >= 20 and norm > 0
        if self.fits_rigid:
            rigid = ys * size + xs
            for k, w in enumerate((np.full(len(p), 1.0 / len(p)), p[:, 0] / norm, p[:, 1] / norm)):
                rows.append(np.full(len(p), n_regions + k))
                cols.append(rigid)
                weights.append(w)
        # Region means and rigid sums in one sparse product with the flow.
        self.projection = scipy.sparse.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_regions + 3, size * size))
        centroids = np.zeros((n_regions, 2))
        gy, gx = np.mgrid[0:size, 0:size]
        for r in range(n_regions):
            inside = self.labels == r
            if inside.any():
                centroids[r] = gx[inside].mean(), gy[inside].mean()
        self.centroids = centroids - rigid_centre

    def _region_vectors(self, ref: FrameRecord, cur: FrameRecord) -> np.ndarray:
        """Mean displacement of each region from ``ref`` to ``cur``, head motion removed.

        Landmark jitter leaves a small shift, rotation and scale between
        aligned crops; the similarity motion fitted (closed form) to the
        rigid pixels' flow is subtracted from each region's mean, which is
        exact because the mean is linear in the flow.
        """
        t0 = time.perf_counter()
        self._flow(ref, cur, self.flow)
        t1 = time.perf_counter()
        means = self._region_means(self.flow)
        self._timed(t0, t1, time.perf_counter())
        return means

    def _region_vectors_many(self, pairs: Sequence[tuple[FrameRecord, FrameRecord]]) -> list[np.ndarray]:
        """:meth:`_region_vectors` of several pairs, their flows on the analyzer's threads."""
        pool = self.analyzer._flow_pool()
        if pool is None or len(pairs) < 2:
            return [self._region_vectors(ref, cur) for ref, cur in pairs]
        t0 = time.perf_counter()
        while len(self._pair_flows) < len(pairs):
            self._pair_flows.append(np.empty_like(self.flow))
        flows = list(pool.map(lambda pair, out: self._flow(*pair, out), pairs, self._pair_flows))
        t1 = time.perf_counter()
        means = [self._region_means(flow) for flow in flows]
        self._timed(t0, t1, time.perf_counter())
        return means

    def _region_vectors_later(self, pairs: Sequence[tuple[FrameRecord, FrameRecord]]
                              ) -> Callable[[], list[np.ndarray]]:
        """:meth:`_region_vectors` of ``pairs`` on a background thread while the
        frame pipeline goes on (landmarks of the next frame); the returned
        callable waits for them, and that wait is booked as flow time."""
        def run() -> list[np.ndarray]:
            # Not self.flow: the frame's own flows use it meanwhile.
            return [self._region_means(self._flow(ref, cur, self._background_flow)) for ref, cur in pairs]

        future = self.analyzer._background_pool().submit(run)

        def collect() -> list[np.ndarray]:
            start = time.perf_counter()
            vectors = future.result()
            end = time.perf_counter()
            self._timed(start, end, end)
            return vectors

        return collect

    def _flow(self, ref: FrameRecord, cur: FrameRecord, out: np.ndarray | None = None) -> np.ndarray:
        return dense_flow(ref.crop, cur.crop, preset=self.analyzer.flow_preset,
                          highpass=self.analyzer.flow_highpass, out=out, **self.analyzer.flow_options)

    def _region_means(self, flow: np.ndarray) -> np.ndarray:
        sums = self.projection @ flow.reshape(-1, 2)
        means = sums[:len(REGION_NAMES)]  # an empty region's row is empty: 0
        if self.fits_rigid:
            (tx, ty), (px_fx, px_fy), (py_fx, py_fy) = sums[len(REGION_NAMES):]
            a = px_fx + py_fy
            b = px_fy - py_fx
            c = self.centroids
            means = means - np.stack([a * c[:, 0] - b * c[:, 1] + tx,
                                      b * c[:, 0] + a * c[:, 1] + ty], axis=1)
        return means

    def _timed(self, start: float, flow_done: float, end: float) -> None:
        """Book wall time as the flow and regions stages."""
        self.kernel_seconds += end - start
        if self.analyzer.stage_times is not None:
            self.analyzer.stage_times.add("flow", flow_done - start)
            self.analyzer.stage_times.add("regions", end - flow_done)

    def mouth_opening_velocity(self, crop: np.ndarray, points: np.ndarray, t: float) -> float | None:
        """Opening speed of the mouth (IOD/s) from a small flow around it.

        Frames are compared ~1/30 s apart whatever the frame rate (at 200 fps
        consecutive frames barely differ); ``None`` between samples.
        """
        if self._mouth_prev is not None and t - self._mouth_prev[0] < 0.028:
            return None
        g = self.scheme.regions
        upper = points[list(g["upper_lip"])]
        lower = points[list(g["lower_lip"]) + list(g["chin"])]
        box = np.concatenate([upper, lower])
        iod = self.geometry.iod_px
        size = self.geometry.size
        x0 = int(max(0, box[:, 0].min() - 0.1 * iod))
        x1 = int(min(size, box[:, 0].max() + 0.1 * iod))
        y0 = int(max(0, box[:, 1].min() - 0.1 * iod))
        y1 = int(min(size, box[:, 1].max() + 0.05 * iod))
        previous, self._mouth_prev = self._mouth_prev, (t, crop, (x0, y0, x1, y1))
        if previous is None or x1 - x0 < 16 or y1 - y0 < 16:
            return None
        t_prev, crop_prev, _ = previous
        a = np.ascontiguousarray(crop_prev[y0:y1, x0:x1])
        b = np.ascontiguousarray(crop[y0:y1, x0:x1])
        start = time.perf_counter()
        # Both directions: forward flow alone reads lips closing slower than
        # they open (synthetic speech on a pressed-lip face: +0.09 / -0.03
        # IOD/s, p90 / p10), too slow for a swing; the mean reads both alike.
        forward = dense_flow(a, b, preset="fast")
        backward = dense_flow(b, a, preset="fast")
        seconds = time.perf_counter() - start
        self.kernel_seconds += seconds
        if self.analyzer.stage_times is not None:
            self.analyzer.stage_times.add("flow", seconds)
        split = int(round(upper[:, 1].max() - y0))
        split = min(max(split, 2), forward.shape[0] - 2)
        opening = 0.5 * float(forward[split:, :, 1].mean() - forward[:split, :, 1].mean()
                              - backward[split:, :, 1].mean() + backward[:split, :, 1].mean())
        return opening / iod / (t - t_prev)

    def align(self, grey: np.ndarray, face: FaceLandmarks, *,
              eyes_closing: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The canonical crop, the landmarks in it and the frame -> crop similarity.

        In a blink the lids drag the eye-corner landmarks along, which would
        jolt the whole crop (most at the chin, far from the eyes): the crop
        then follows the head by the rigid points without the eye corners,
        from the last open-eyed frame.
        """
        rigid = np.ascontiguousarray(face.points[self.rigid_idx], dtype=np.float64)
        if eyes_closing and self._open_pose is not None:
            open_M, open_rigid = self._open_pose
            now_to_open = estimate_similarity(rigid, open_rigid)
            M = np.hstack([open_M[:, :2] @ now_to_open[:, :2],
                           (open_M[:, :2] @ now_to_open[:, 2] + open_M[:, 2])[:, None]])
        else:
            src = np.ascontiguousarray(face.points[self.align_idx], dtype=np.float64)
            M = estimate_similarity(src, self.template)
            self._open_pose = (M, rigid)
        size = self.geometry.size
        crop = warp_affine(grey, M, (size, size))
        points = face.points.astype(np.float64) @ M[:, :2].T + M[:, 2]
        if self.labels is None:
            self._layout(points)
        return crop, points, M


class Analyzer:
    """Streaming micro-expression spotter.

    Parameters
    ----------
    mode : {"streaming", "offline"}
        Offline waits longer before confirming an offset (fewer split events).
    max_faces : int
        Faces tracked per frame.
    model : path, optional
        MediaPipe ``face_landmarker.task`` (see :func:`microexpr.landmarks.find_face_model`).
    detector : {"mediapipe", None}
        ``None`` when every ``push`` passes its own landmarks.
    scheme : str
        Point scheme of caller-supplied landmarks ("mediapipe478" or "ibug68").
    crop_size : int
        Side of the aligned face crop, px (96-256). 160 spots as well as 192
        on the synthetic sets (overall F1 within 0.01) at 0.7x the flow's cost.
    flow_preset : str
        :func:`microexpr.dense_flow` preset.
    flow_options : mapping, optional
        Overrides of single flow parameters (``sweeps``, ``smoothness``, ...).
        Default :data:`SPOTTING_FLOW` with the balanced preset, none with the
        others (they run as named).
    flow_highpass : int, optional
        Local-mean radius removed before flow (default crop_size // 20).
    record_frames : bool
        Keep the per-frame signal table (``result().frames``).
    flow_threads : int
        Threads for the flows one frame needs at once (a parked expression
        beside the active one; most frames need one); 1 runs them in turn.
        Two 192 px flows on two idle cores take about 0.6x the time of one
        after the other. With 2 or more, the back-fill when an expression
        starts also runs on a thread of its own, beside the next frames.
    **options
        :class:`~microexpr.spotter.SpotterConfig` fields (seconds, IOD units).
    """

    def __init__(
        self,
        *,
        mode: str = "streaming",
        max_faces: int = 1,
        model: str | Path | None = None,
        detector: str | None = "mediapipe",
        scheme: str = "mediapipe478",
        crop_size: int = 160,
        flow_preset: str = "balanced",
        flow_options: Mapping[str, Any] | None = None,
        flow_highpass: int | None = None,
        record_frames: bool = True,
        time_stages: bool = False,
        flow_threads: int = 2,
        **options: Any,
    ) -> None:
        if not 96 <= int(crop_size) <= 256:
            raise ParameterError(f"crop_size must be in [96, 256], got {crop_size!r}")
        if detector not in ("mediapipe", None):
            raise ParameterError(f"detector must be 'mediapipe' or None, got {detector!r}")
        try:
            self.config = SpotterConfig.for_mode(mode, **options)
        except TypeError as error:
            raise ParameterError(f"unknown option: {error}") from None
        except ValueError as error:
            raise ParameterError(str(error)) from None
        self.mode = mode
        self.geometry = CropGeometry(size=int(crop_size))
        self.flow_preset = flow_preset
        if flow_options is None:
            flow_options = SPOTTING_FLOW if flow_preset == "balanced" else {}
        self.flow_options = dict(flow_options)
        unknown = set(self.flow_options) - _FLOW_OPTION_NAMES
        if unknown:
            raise ParameterError(f"unknown flow option(s) {sorted(unknown)}: expected some of "
                                 f"{sorted(_FLOW_OPTION_NAMES)}")
        # Lighting gradients change between frames: remove local means over
        # about a twentieth of the crop before flow.
        self.flow_highpass = max(2, int(crop_size) // 20) if flow_highpass is None else int(flow_highpass)
        self.scheme = get_scheme(scheme).name
        self.record_frames = record_frames
        if isinstance(flow_threads, bool) or not isinstance(flow_threads, int) or flow_threads < 1:
            raise ParameterError(f"flow_threads must be a positive integer, got {flow_threads!r}")
        self.flow_threads = flow_threads
        self._flow_executor: ThreadPoolExecutor | None = None
        self._background_executor: ThreadPoolExecutor | None = None
        self.stage_times = StageTimes() if time_stages else None
        self._landmarker = None
        if detector == "mediapipe":
            from .landmarks import FaceLandmarker

            self._landmarker = FaceLandmarker(model=model, max_faces=max_faces)
        self._tracker = FaceTracker()
        self._tracks: dict[int, _Track] = {}
        self._events: list[Event] = []
        self._frames: list[dict[str, Any]] = []
        self._frame_times: list[float] = []
        self._warnings: list[str] = []
        self._index = 0
        self._last_t = -math.inf
        self._frames_without_face = 0

    # ------------------------------------------------------------------ API
    def push(
        self,
        frame: np.ndarray,
        t: float,
        *,
        landmarks: Sequence[np.ndarray] | None = None,
        blendshapes: Sequence[dict[str, float] | None] | None = None,
    ) -> list[Event]:
        """Analyse one frame.

        Parameters
        ----------
        frame : uint8 array (H, W, 3) RGB or (H, W) grey
        t : float
            Presentation time, seconds; must increase.
        landmarks : list of (N, 2) arrays, optional
            The faces' landmarks in this frame (pixel x, y) in the analyzer's
            ``scheme``; skips the detector.
        blendshapes : list of dicts, optional
            Blendshape scores per face, with ``landmarks``.

        Returns
        -------
        events : list of Event
            Events whose offset this frame confirmed (blinks included).
        """
        grey, t = self._admit(frame, t)
        t0 = time.perf_counter()
        faces = self._faces(frame, t, landmarks, blendshapes)
        t1 = time.perf_counter()
        if self.stage_times is not None and landmarks is None:
            self.stage_times.add("landmarks", t1 - t0)
        return self._push_faces(grey, t, faces)

    def _admit(self, frame: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        """The frame's grey image and its time, checked (push's first step)."""
        grey = self._grey(frame)
        t = float(t)
        if not math.isfinite(t):
            raise ParameterError(f"t must be a finite time in seconds, got {t!r}")
        if t <= self._last_t:
            raise ParameterError(f"timestamps must increase: got {t} s after {self._last_t} s")
        return grey, t

    def _push_faces(self, grey: np.ndarray, t: float, faces: list[FaceLandmarks]) -> list[Event]:
        """The rest of :meth:`push`, once the frame's faces are known."""
        self._last_t = t
        index = self._index
        self._index += 1
        self._frame_times.append(t)
        if not faces:
            self._frames_without_face += 1
        events: list[Event] = []
        for track_id, face in self._tracker.update(faces, t):
            track = self._tracks.get(track_id)
            if track is None:
                track = self._tracks[track_id] = _Track(track_id, face, self)
            track.last_seen = t
            events.extend(self._push_track(track, grey, face, t, index))
        events.extend(self._expire_tracks(t))
        events.sort(key=lambda e: (e.onset, e.track_id))
        self._events.extend(events)
        return events

    def flush(self) -> list[Event]:
        """End of stream: close every pending event and return them."""
        events: list[Event] = []
        for track in self._tracks.values():
            events.extend(track.spotter.flush())
        events.sort(key=lambda e: (e.onset, e.track_id))
        self._events.extend(events)
        return events

    def result(self, video: str | None = None) -> Result:
        """Everything found so far."""
        warnings_ = list(self._warnings)
        if self._index and self._frames_without_face == self._index:
            warnings_.append("no face was found in any frame")
        elif self._frames_without_face:
            warnings_.append(f"no face in {self._frames_without_face} of {self._index} frames")
        result = Result(frames=list(self._frames), video=video, warnings=warnings_,
                        frame_times=list(self._frame_times))
        result.extend(self._events)
        return result

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None
        if self._flow_executor is not None:
            self._flow_executor.shutdown(wait=True)
            self._flow_executor = None
        if self._background_executor is not None:
            self._background_executor.shutdown(wait=True)
            self._background_executor = None

    def _background_pool(self) -> ThreadPoolExecutor:
        """One thread for flows that may finish during the next frame (a back-fill; only
        with ``flow_threads`` >= 2, else every flow runs in turn on the caller's thread)."""
        if self._background_executor is None:
            self._background_executor = ThreadPoolExecutor(1, thread_name_prefix="microexpr-backfill")
        return self._background_executor

    def _flow_pool(self) -> ThreadPoolExecutor | None:
        """Threads for a frame's flows (the kernel releases the GIL); None with one."""
        if self.flow_threads < 2:
            return None
        if self._flow_executor is None:
            self._flow_executor = ThreadPoolExecutor(self.flow_threads, thread_name_prefix="microexpr-flow")
        return self._flow_executor

    def __enter__(self) -> "Analyzer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals
    @staticmethod
    def _grey(frame: np.ndarray) -> np.ndarray:
        import cv2

        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            got = f"{frame.dtype} array" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ParameterError(f"frame: expected uint8 array of shape (H, W, 3) RGB or (H, W), got {got}")
        if frame.ndim == 2:
            return np.ascontiguousarray(frame)
        if frame.ndim == 3 and frame.shape[2] == 3:
            return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        raise ParameterError(f"frame: expected shape (H, W, 3) RGB or (H, W), got {frame.shape}")

    def _faces(self, frame, t, landmarks, blendshapes) -> list[FaceLandmarks]:
        if landmarks is not None:
            faces = []
            for i, points in enumerate(landmarks):
                shapes = blendshapes[i] if blendshapes is not None and i < len(blendshapes) else None
                try:
                    faces.append(FaceLandmarks(np.asarray(points, dtype=np.float32), scheme=self.scheme,
                                               blendshapes=shapes))
                except LandmarkError as error:
                    message = f"t={t:.3f}s: face {i} skipped: {error}"
                    warnings.warn(message, stacklevel=3)
                    self._warnings.append(message)
            return faces
        if self._landmarker is None:
            raise ParameterError("this Analyzer has no detector (detector=None): pass landmarks=")
        image = frame if frame.ndim == 3 else np.repeat(frame[:, :, None], 3, axis=2)
        return self._landmarker.detect(np.ascontiguousarray(image), t)

    def _push_track(self, track: _Track, grey: np.ndarray, face: FaceLandmarks, t: float,
                    index: int) -> list[Event]:
        aperture = float(np.mean(eye_aperture(face.points, track.scheme)))
        eyes_closing = track.spotter.blinks.partly_closed(aperture)
        t0 = time.perf_counter()
        crop, points, to_crop = track.align(grey, face, eyes_closing=eyes_closing)
        t1 = time.perf_counter()
        kernel_before = track.kernel_seconds
        if self.stage_times is not None:
            self.stage_times.add("alignment", t1 - t0)
        iod = track.geometry.iod_px
        lip = points[track.inner_lip_idx]
        lip_gap = float(lip[:, 1].max() - lip[:, 1].min()) / iod
        opening = track.mouth_opening_velocity(crop, points, t)
        record = FrameRecord(t=t, index=index, crop=crop, points=points,
                             blendshapes=face.blendshapes, to_crop=to_crop)
        events = track.spotter.push(record, aperture=aperture, lip_gap=lip_gap,
                                    opening_velocity=opening,
                                    rigid_shape=points[track.rigid_idx])
        if self.stage_times is not None:
            # Flow and region statistics run inside the spotter and are
            # timed as their own stages: spotting is the rest.
            nested = track.kernel_seconds - kernel_before
            self.stage_times.add("spotting", time.perf_counter() - t1 - nested)
        if self.record_frames:
            x0, y0, x1, y1 = face.bbox
            row = {"t": t, "frame": index, "track": track.id, "face_left": x0, "face_top": y0,
                   "face_right": x1, "face_bottom": y1, "eye_aperture": aperture,
                   "lip_gap": lip_gap, "mouth_opening_velocity": opening}
            row.update(track.spotter.last_signals)
            self._frames.append(row)
        return events

    def _expire_tracks(self, t: float) -> list[Event]:
        events: list[Event] = []
        for track_id in list(self._tracks):
            track = self._tracks[track_id]
            if t - track.last_seen > self._tracker.max_lost:
                events.extend(track.spotter.flush())
                del self._tracks[track_id]
        return events


class _Ahead:
    """Runs an iterator on a worker thread, a few items ahead of the caller.

    Decoding, MediaPipe and the core release the GIL, so :func:`analyze`
    decodes on one such thread, finds landmarks on another and runs flow and
    spotting on the caller's: the stages overlap on the available cores.
    Iterating yields the items in order; the worker's exceptions are raised
    here, in the caller's thread. :meth:`close` stops and joins the worker.
    """

    _END = object()

    def __init__(self, items: Any, *, depth: int = 4, name: str = "microexpr-ahead") -> None:
        import queue
        import threading

        self._queue: Any = queue.Queue(maxsize=depth)
        self._full = queue.Full
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(items,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except self._full:
                continue
        return False

    def _work(self, items: Any) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the caller's thread
            self._put(error)
        finally:
            self._put(self._END)

    def __iter__(self) -> Any:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def analyze(
    path: str | Path,
    *,
    progress: bool | Callable[[int, int | None], None] = False,
    mode: str = "offline",
    **options: Any,
) -> Result:
    """Spot expressions in a video file.

    Decoding and face landmarks run on two worker threads a few frames ahead
    of flow and spotting, so the stages share the cores; the result is
    exactly that of pushing the frames one by one into an :class:`Analyzer`.

    Parameters
    ----------
    path : video file (anything PyAV/FFmpeg decodes)
    progress : bool or callable(frames_done, frames_total_or_None)
        ``True`` shows a tqdm bar.
    mode : {"offline", "streaming"}
    **options
        :class:`Analyzer` options.

    Returns
    -------
    Result
        Events (sorted by onset) and the per-frame table. A file that breaks
        off part-way, or an interrupt (Ctrl-C), keeps what was found, with a
        warning in ``Result.warnings``.
    """
    from .video import VideoTruncatedWarning, open_video

    reader = open_video(path)
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        from tqdm import tqdm

        name = Path(path).name
        bar = tqdm(total=reader.n_frames, unit="frame",
                   desc=name if name.isprintable() else repr(name)[1:-1])
    analyzer = Analyzer(mode=mode, **options)
    extra_warnings: list[str] = []
    ahead: list[_Ahead] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VideoTruncatedWarning)
            try:
                if analyzer._landmarker is None:
                    analysed = ((frame, None) for frame in reader)
                else:
                    landmarker = analyzer._landmarker
                    decoded = _Ahead(reader, name="microexpr-decode")
                    ahead = [decoded]
                    detected = _Ahead(((frame, landmarker.detect(frame.image, frame.t))
                                       for frame in decoded), name="microexpr-landmarks")
                    ahead.insert(0, detected)
                    analysed = iter(detected)
                for done, (frame, faces) in enumerate(analysed, start=1):
                    if faces is None:
                        analyzer.push(frame.image, frame.t)
                    else:
                        grey, t = analyzer._admit(frame.image, frame.t)
                        analyzer._push_faces(grey, t, faces)
                    if bar is not None:
                        bar.update(1)
                    if callback is not None:
                        callback(done, reader.n_frames)
            except VideoError as error:
                extra_warnings.append(f"decoding stopped: {error}")
            except KeyboardInterrupt:
                # Interrupted by the user: keep what was found so far.
                extra_warnings.append("interrupted: the result covers the frames analysed so far")
            finally:
                for worker in ahead:  # the consumer of each stage first
                    worker.close()
            for w in caught:
                if issubclass(w.category, VideoTruncatedWarning):
                    extra_warnings.append(str(w.message))
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        analyzer.flush()
    finally:
        if bar is not None:
            bar.close()
        reader.close()
        analyzer.close()
    result = analyzer.result(video=str(path))
    result.warnings.extend(extra_warnings)
    return result
