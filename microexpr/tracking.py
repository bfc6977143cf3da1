"""Stable ids for the faces of a video.

:class:`FaceTracker` links each frame's :class:`~microexpr.landmarks.FaceLandmarks`
to the faces of earlier frames. A detection is matched to a track by a
Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on a cost that
adds two gated terms:

position
    distance from the track's constant-velocity prediction, in face sizes,
    divided by the distance the face could plausibly have moved since it was
    last seen;
identity geometry
    the Procrustes distance between the detection's rigid landmarks (eye
    corners, nose, face sides; see ``PointScheme.rigid``) and the track's
    recent shape. It ignores position, scale and in-plane rotation, so it
    separates two faces that meet in the image while the position term cannot.

A face that is not seen keeps its id for ``max_lost`` seconds and gets it back
when it reappears at a plausible place with a similar geometry; later faces
get new ids, and ids are never reused. All times are seconds, so any frame
rate, and variable ones, behave the same.

Landmark geometry is a weak identity cue (it varies with head pose and is
similar for similar faces): it keeps ids from swapping when faces cross and
vetoes re-identifying a clearly different face, but it is no face recogniser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from microexpr.errors import LandmarkError, ParameterError
from microexpr.landmarks import FaceLandmarks, get_scheme, validate_landmarks

__all__ = ["Track", "FaceTracker", "shape_signature", "signature_distance"]

# A face may land this far (in face sizes) from its prediction even from one
# frame to the next: detector jitter plus a sudden start or stop.
_POSITION_SLACK = 0.5
# Face size may change by this factor between close frames (detector jitter,
# fast approach), plus _SCALE_RATE per second of gap.
_SCALE_SLACK = math.log(1.5)
_SCALE_RATE = 1.0
# Constant-velocity extrapolation beyond this gap (s) is more guess than prediction.
_MAX_PREDICTION_S = 0.5
_INFEASIBLE = 1e9


def shape_signature(points: np.ndarray, rigid: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """Identity geometry of one face: its rigid points, centred and scaled.

    Parameters
    ----------
    points : numpy.ndarray, shape (N, 2)
        Landmarks in pixels.
    rigid : sequence of int, length K
        Indices of the points that move little with expressions.

    Returns
    -------
    numpy.ndarray, shape (K,), complex128
        Points as x + iy, centred on their mean and scaled to unit RMS radius.

    Raises
    ------
    LandmarkError
        All rigid points coincide.
    """
    selected = np.asarray(points, dtype=np.float64)[np.asarray(rigid)]
    as_complex = selected[:, 0] + 1j * selected[:, 1]
    centred = as_complex - as_complex.mean()
    radius = math.sqrt(float(np.mean(np.abs(centred) ** 2)))
    if not radius > 0:
        raise LandmarkError("landmarks are degenerate: all rigid points coincide")
    return centred / radius


def signature_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Procrustes distance between two :func:`shape_signature` results.

    The residual RMS (in units of the face's RMS radius) after the best
    similarity transform (translation, scale, rotation; no reflection) maps
    one onto the other: 0 for the same shape, about 0.005-0.03 for one face
    from frame to frame, more for different faces and strong head turns.

    Parameters
    ----------
    first, second : numpy.ndarray, shape (K,), complex
        Unit-RMS, centred signatures of the same scheme.

    Returns
    -------
    float
        Distance in [0, 1].
    """
    # The best rotation-and-scale is one complex factor (least squares).
    factor = np.vdot(first, second) / np.vdot(first, first)
    residual = second - factor * first
    return math.sqrt(float(np.mean(np.abs(residual) ** 2)))


@dataclass
class Track:
    """One face followed over time.

    Attributes
    ----------
    track_id : int
        Stable id, unique within a :class:`FaceTracker` (never reused).
    landmarks : FaceLandmarks
        The face's latest landmarks.
    first_seen, last_seen : float
        Times (s) of the first and the latest matched detection.
    velocity : numpy.ndarray, shape (2,)
        Smoothed motion of the face centre, pixels per second.
    n_updates : int
        Number of frames the face was matched in.
    lost : bool
        True when the latest :meth:`FaceTracker.update` did not see the face.
    """

    track_id: int
    landmarks: FaceLandmarks
    first_seen: float
    last_seen: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    n_updates: int = 1
    lost: bool = False
    signature: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def center(self) -> np.ndarray:
        """Centre of the latest landmarks' bbox, shape (2,), pixels."""
        return self.landmarks.center

    @property
    def size(self) -> float:
        """Face size of the latest landmarks (geometric mean of bbox sides), pixels."""
        return self.landmarks.size

    def predicted_center(self, t: float) -> np.ndarray:
        """Where the face centre should be at time ``t`` (s), pixels, shape (2,)."""
        gap = min(max(t - self.last_seen, 0.0), _MAX_PREDICTION_S)
        return self.center + self.velocity * gap


class FaceTracker:
    """Assign stable ids to the faces of successive frames.

    Parameters
    ----------
    max_lost : float
        Seconds a face that is no longer seen keeps its id for
        re-identification.
    max_speed : float
        How fast (face sizes per second) a face may move beyond its
        constant-velocity prediction; sets how far from its last position a
        lost face may reappear.
    max_signature_distance : float
        Largest :func:`signature_distance` between a detection and a track
        that may still be the same face.
    velocity_time_constant : float
        Time constant (s) of the velocity smoothing.
    signature_time_constant : float
        Time constant (s) over which a track's identity geometry is averaged.

    Raises
    ------
    ParameterError
        A non-positive or non-finite option.
    """

    def __init__(
        self,
        *,
        max_lost: float = 2.0,
        max_speed: float = 3.0,
        max_signature_distance: float = 0.15,
        velocity_time_constant: float = 0.1,
        signature_time_constant: float = 0.5,
    ) -> None:
        options = {
            "max_lost": max_lost,
            "max_speed": max_speed,
            "max_signature_distance": max_signature_distance,
            "velocity_time_constant": velocity_time_constant,
            "signature_time_constant": signature_time_constant,
        }
        for name, value in options.items():
            if not isinstance(value, (int, float, np.integer, np.floating)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ParameterError(f"{name} must be a positive finite number, got {value!r}")
        if max_signature_distance > 1:
            raise ParameterError(
                f"max_signature_distance must be in (0, 1], got {max_signature_distance!r}"
            )
        self.max_lost = float(max_lost)
        self.max_speed = float(max_speed)
        self.max_signature_distance = float(max_signature_distance)
        self.velocity_time_constant = float(velocity_time_constant)
        self.signature_time_constant = float(signature_time_constant)
        self._next_id = 0
        self.reset()

    def reset(self) -> None:
        """Forget every track (ids still continue from where they were)."""
        self._tracks: list[Track] = []
        self._t_last: float | None = None

    @property
    def tracks(self) -> list[Track]:
        """Tracks that are seen or lost for at most ``max_lost`` seconds."""
        return list(self._tracks)

    def update(self, faces: list[FaceLandmarks], t: float) -> list[tuple[int, FaceLandmarks]]:
        """Match one frame's faces to the tracks.

        Parameters
        ----------
        faces : list of FaceLandmarks
            The faces of the frame at time ``t`` (any order, any scheme).
        t : float
            The frame's presentation time, seconds; must not decrease.

        Returns
        -------
        list of (int, FaceLandmarks)
            ``(track_id, face)`` for each input face, in the input order.

        Raises
        ------
        ParameterError
            ``faces`` is not a list of FaceLandmarks, or ``t`` is not finite or
            goes back in time.
        LandmarkError
            A face's landmarks are malformed (NaN, inf, wrong shape); the
            tracker is left unchanged.
        """
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise ParameterError(f"t must be a time in seconds, got {t!r}") from None
        if not math.isfinite(t):
            raise ParameterError(f"t must be a finite time in seconds, got {t!r}")
        if self._t_last is not None and t < self._t_last:
            raise ParameterError(
                f"frame times must not decrease: got t={t!r} s after t={self._t_last!r} s"
            )
        try:
            faces = list(faces)
        except TypeError:
            raise ParameterError(
                f"faces must be a list of FaceLandmarks, got {type(faces).__name__}"
            ) from None
        signatures = []
        for index, face in enumerate(faces):
            if not isinstance(face, FaceLandmarks):
                raise ParameterError(
                    f"faces[{index}] must be a FaceLandmarks, got {type(face).__name__}"
                )
            try:
                points = validate_landmarks(face.points, face.scheme)
            except LandmarkError as exc:
                raise LandmarkError(f"faces[{index}]: {exc}") from None
            if not face.size > 0:
                raise LandmarkError(f"faces[{index}]: landmarks are degenerate (zero-size box)")
            signatures.append(shape_signature(points, get_scheme(face.scheme).rigid))

        self._t_last = t
        self._tracks = [track for track in self._tracks if t - track.last_seen <= self.max_lost]
        assignment = self._assign(faces, signatures, t)

        ids: list[int] = []
        matched_tracks = set()
        for index, face in enumerate(faces):
            track_index = assignment.get(index)
            if track_index is None:
                track = Track(
                    track_id=self._next_id,
                    landmarks=face,
                    first_seen=t,
                    last_seen=t,
                    signature=signatures[index],
                )
                self._next_id += 1
                self._tracks.append(track)
                matched_tracks.add(id(track))
            else:
                track = self._tracks[track_index]
                self._advance(track, face, signatures[index], t)
                matched_tracks.add(id(track))
            ids.append(track.track_id)
        for track in self._tracks:
            track.lost = id(track) not in matched_tracks
        return list(zip(ids, faces))

    def _assign(
        self, faces: list[FaceLandmarks], signatures: list[np.ndarray], t: float
    ) -> dict[int, int]:
        """Map face index -> track index for the feasible minimum-cost matching."""
        if not faces or not self._tracks:
            return {}
        cost = np.full((len(self._tracks), len(faces)), _INFEASIBLE)
        for row, track in enumerate(self._tracks):
            gap = t - track.last_seen
            predicted = track.predicted_center(t)
            position_gate = _POSITION_SLACK + self.max_speed * gap
            scale_gate = _SCALE_SLACK + _SCALE_RATE * gap
            for column, face in enumerate(faces):
                if face.scheme != track.landmarks.scheme:
                    continue
                offset = float(np.linalg.norm(face.center - predicted)) / track.size
                scale_change = abs(math.log(face.size / track.size))
                shape = signature_distance(signatures[column], track.signature)
                if (
                    offset > position_gate
                    or scale_change > scale_gate
                    or shape > self.max_signature_distance
                ):
                    continue
                cost[row, column] = offset / position_gate + shape / self.max_signature_distance
        rows, columns = linear_sum_assignment(cost)
        return {
            int(column): int(row)
            for row, column in zip(rows, columns)
            if cost[row, column] < _INFEASIBLE
        }

    def _advance(self, track: Track, face: FaceLandmarks, signature: np.ndarray, t: float) -> None:
        gap = t - track.last_seen
        if gap > 0:
            instantaneous = (face.center - track.center) / gap
            weight = 1.0 - math.exp(-gap / self.velocity_time_constant)
            track.velocity = track.velocity + weight * (instantaneous - track.velocity)
        # A running mean over the first frames, then an exponential one.
        weight = max(
            1.0 / (track.n_updates + 1),
            1.0 - math.exp(-max(gap, 0.0) / self.signature_time_constant),
        )
        rotation_and_scale = np.vdot(signature, track.signature) / np.vdot(signature, signature)
        blended = (1.0 - weight) * track.signature + weight * rotation_and_scale * signature
        blended -= blended.mean()
        track.signature = blended / math.sqrt(float(np.mean(np.abs(blended) ** 2)))
        track.landmarks = face
        track.last_seen = t
        track.n_updates += 1
