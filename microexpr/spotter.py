"""The spotting engine: one face track's frames in, expression events out.

Per frame the engine measures how far each face region moved relative to a
reference crop (dense flow, nose-bridge motion subtracted):

* **idle**: the reference is the frame ``detect_lag`` seconds back (never
  before the last event's offset, so an event does not echo). A region whose
  displacement exceeds its threshold (a multiple of its own running noise
  level, with an absolute floor) starts a candidate event. A second check,
  ten times a second over about ``macro_lag``, catches macro-expressions
  that rise too slowly for ``detect_lag``; it adds up consecutive idle
  comparisons instead of running a flow of its own.
* **active**: the reference is frozen at that pre-onset frame (the anchor),
  so each frame's displacement is the expression's own profile: it rises
  from zero at the onset, peaks at the apex and returns at the offset. The
  motion over the last ``detect_lag`` (is the face still moving?) is the
  difference of two points of that profile, so a frame costs one flow. Frames
  between the anchor and the trigger are back-filled so the onset is found.
  The event ends when the displacement stays below a fraction of its peak for
  ``hold`` seconds; it is then classified and emitted (streaming delay =
  offset confirmation). An event whose own regions (those of its apex
  frame) were back below half within ``micro_max`` of its onset ends there,
  whatever the other regions still do. A macro-length event's onset and
  offset are first followed out along its motion projected on the apex
  direction, which reaches a small fraction of the apex nearer the true
  start and end.
  Movements that never settle within ``max_duration`` (pose changes, drift)
  are dropped, and so are interrupted candidates whose own regions never
  came back halfway (a shift that stays, such as the rest of a large
  expression's fall, seems to fade only because thresholds grow with the
  time since the anchor), and events whose peak against their anchor stays
  under ``min_peak`` (``macro_min_peak`` for macro-length ones) times the
  threshold. A new movement after a still spell
  starts a new candidate; the old one, if held at a clear apex, is parked
  and still ends on its own, its apex and regions taken from before it was
  parked (a blink or a micro-expression during a held macro-expression must
  not erase it).

Nuisances: blinks are found from the eyelid aperture and reported as
``blink`` events; eye-only movements during a blink are not expressions.
Speech is found from the mouth opening swinging at syllable rate and the
lip-aperture spectrum (3-6 Hz energy): mouth and chin are ignored while
it lasts. Fast head rotation, seen as a change of the rigid landmarks'
shape after alignment, suspends spotting; any head motion between two
compared frames raises their thresholds (alignment error grows with it).
All windows are in seconds; any frame rate works.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np

from .aus import classify_emotion, estimate_aus
from .events import Event
from .regions import GROUP_NAMES, REFERENCE_REGION, REGION_GROUPS, REGION_NAMES

log = logging.getLogger(__name__)

__all__ = ["SpotterConfig", "FrameRecord", "TrackSpotter", "BlinkDetector", "SpeechDetector"]

N_REGIONS = len(REGION_NAMES)
_GROUP_OF = np.array([GROUP_NAMES.index(REGION_GROUPS[n]) if REGION_GROUPS[n] in GROUP_NAMES else -1
                      for n in REGION_NAMES])
_EYES = GROUP_NAMES.index("eyes")
_BROWS = GROUP_NAMES.index("brows")
_MOUTH = np.isin(_GROUP_OF, [GROUP_NAMES.index("mouth"), GROUP_NAMES.index("chin")])  # the regions speech moves
_EYES_AND_BROWS = np.isin(_GROUP_OF, [_EYES, _BROWS])
_NOT_REFERENCE = np.arange(N_REGIONS) != REFERENCE_REGION
_LOWER_FACE = np.isin(_GROUP_OF, [GROUP_NAMES.index(g) for g in ("nose", "mouth", "chin")])
# Speech's first syllable or two move the mouth before their swings are fast
# enough to count: the spell reaches back this far for the mouth regions.
SPEECH_LEAD = 0.3
_JOLT_GROUPS = {"chin", "nose"}
# Mirrored left/right regions: most expressions move both sides alike.
_PAIRED = [name[: -len("_right")] for name in REGION_NAMES if name.endswith("_right")]
_RIGHT = np.array([REGION_NAMES.index(f"{name}_right") for name in _PAIRED])
_LEFT = np.array([REGION_NAMES.index(f"{name}_left") for name in _PAIRED])


def _magnitudes(vectors: np.ndarray) -> np.ndarray:
    """Each region's displacement magnitude, shape ``vectors.shape[:-1]``.

    A region of a left/right pair takes the pair's mirrored mean instead
    where that is larger, times sqrt(2) so that independent noise keeps the
    single region's scale: a symmetric movement then reads sqrt(2) times
    its size, a one-sided one as before. Thresholds come from these
    magnitudes too (the maximum raises a paired region's noise level).
    """
    mag = np.hypot(vectors[..., 0], vectors[..., 1])
    mirrored = np.hypot(vectors[..., _RIGHT, 0] - vectors[..., _LEFT, 0],
                        vectors[..., _RIGHT, 1] + vectors[..., _LEFT, 1]) * (0.5 * math.sqrt(2.0))
    mag[..., _RIGHT] = np.maximum(mag[..., _RIGHT], mirrored)
    mag[..., _LEFT] = np.maximum(mag[..., _LEFT], mirrored)
    return mag


@dataclass(frozen=True)
class SpotterConfig:
    """Parameters of the spotting engine (times in seconds, lengths in IOD units).

    ``iod`` is the inter-ocular distance of the aligned crop; displacement
    thresholds scale with it so any crop size works.
    """

    detect_lag: float = 0.3
    anchor_lag: float = 0.6
    drift_exponent: float = 0.25
    # Thresholds are noise_factor times the noise_percentile of each region's
    # idle displacement, at least floor IOD: 2.12 x the 75th percentile is
    # 3 x the median for Gaussian noise, and more where compression noise
    # has heavier tails (measured: better F1 on both synthetic sets).
    noise_factor: float = 2.12
    noise_percentile: float = 75.0
    floor: float = 0.006
    end_fraction: float = 0.15
    # A macro-length event's onset and offset are then moved out to where its
    # motion, projected on the apex direction of its regions, falls to
    # edge_fraction of the apex or to edge_sigmas times its noise, by at most
    # edge_reach of its rise or fall: the activity (largest region over its
    # threshold) crosses end_fraction well inside a smooth rise and fall.
    edge_fraction: float = 0.05
    edge_sigmas: float = 3.0
    edge_reach: float = 0.5
    # A micro-length event's onset and offset are moved in to where that
    # projection is above micro_edge_fraction of its apex (see _tighten_to_profile).
    micro_edge_fraction: float = 0.2
    # Compression keeps part of a brief deformation for a while (blocks
    # left uncoded): a fall that stops under micro_tail_level of the apex
    # (the next micro_tail_span s drop less than micro_tail_drop of it)
    # ends there.
    micro_tail_level: float = 0.6
    micro_tail_span: float = 0.04
    micro_tail_drop: float = 0.05
    # The first frame over micro_edge_fraction comes about this long after a
    # brief rise began (its foot is under the noise): the onset is the last
    # frame at least this far before it (one frame at 25-30 fps).
    micro_onset_lead: float = 0.03
    hold: float = 0.1
    # An event whose apex regions fell back below this fraction of their apex
    # within micro_max of its onset, for good, ends there: activity left in
    # other regions (drift, a nod) is not part of it.
    release_fraction: float = 0.5
    # An event's peak activity against its anchor must reach min_peak (the
    # trigger's own comparison may have been noise that the anchor does not
    # repeat), a macro-length one's macro_min_peak: over a longer window
    # drift and lighting have more time to cross a threshold. Under 1 because
    # the anchor lies further back than the trigger's reference, so its
    # thresholds have grown for drift that a brief flash does not have.
    min_peak: float = 0.8
    macro_min_peak: float = 1.35
    max_duration: float = 4.5
    stale_time: float = 2.0
    split_still: float = 0.2
    # A new movement splits a candidate once it lasted this long without a
    # blink: the lids' first frames move before the landmarks show a blink.
    split_confirm: float = 0.05
    common_percentile: float = 25.0
    min_duration: float = 0.03
    micro_max: float = 0.5
    noise_window: float = 8.0
    warmup: float = 1.0
    backfill_rate: float = 60.0
    # Back-fill flows asked per frame, computed beside the next frame's work
    # (the candidate's frames are replayed once all are in): a trigger's
    # 20-60 flows in one frame would stall a live stream.
    backfill_per_frame: int = 4
    # Idle frames are checked at most this often (Hz): the chance that noise
    # crosses a threshold grows with the number of checks, so a 200 fps clip
    # would otherwise see eight times the false starts of a 25 fps one.
    check_rate: float = 60.0
    # A macro-expression rising over 1-2 s moves too little within
    # detect_lag: idle frames are also compared with the frame this far
    # back, at this rate (Hz).
    macro_lag: float = 1.0
    macro_check_rate: float = 10.0
    au_scale: float = 0.03
    region_fraction: float = 0.35
    head_turn: float = 0.03
    head_window: float = 0.15
    speech_power: float = 2.0e-5
    # A movement of the mouth and chin alone that begins within this long
    # after a speech spell (its hangover past) is the mouth settling.
    speech_settle: float = 0.1
    blink_ratio: float = 0.72
    blink_margin: float = 1.5
    clear_peak: float = 2.0  # activity a movement must reach for a blink to close its event
    min_au: float = 0.1
    # Landmarks fit a moved head less well (and lag a moving one): the
    # aligned crops of two frames differ by about this fraction of how far
    # the head moved between them, so thresholds grow by it.
    head_motion_gain: float = 0.1
    # A micro-length event while the head moved more than head_still (IOD)
    # within head_still_window s is the alignment catching up with the head:
    # a flash that brief cannot be told from the landmarks' lag.
    head_still: float = 0.025
    head_still_window: float = 0.1
    # A candidate that ends without an event is searched for a flash held
    # against frames this far (s) either side (TrackSpotter._flash_within);
    # one over flash_peak thresholds is judged as a candidate of its own. The
    # search leaves out the eyes and brows within flash_blink_margin s of a
    # blink and the mouth within flash_speech_margin s of a speech spell.
    flash_halves: tuple[float, ...] = (0.06, 0.12, 0.2, 0.3)
    flash_peak: float = 1.0
    flash_blink_margin: float = 0.15
    flash_speech_margin: float = 1.0
    # A blink bends the landmark mesh and so the alignment, for a while after
    # the lids are up: the chin and nose, farthest from the eyes' alignment
    # points, jolt most. A brief movement of only those that begins within
    # blink_jolt s of a blink cannot be told from that jolt.
    blink_jolt: float = 0.3

    @classmethod
    def for_mode(cls, mode: str, **overrides) -> "SpotterConfig":
        """Streaming defaults, or offline ones that wait longer before closing an event."""
        if mode not in ("streaming", "offline"):
            raise ValueError(f"mode must be 'streaming' or 'offline', got {mode!r}")
        base = cls() if mode == "streaming" else cls(hold=0.2)
        return replace(base, **overrides)


@dataclass
class FrameRecord:
    """What the engine keeps of one frame."""

    t: float
    index: int
    crop: np.ndarray
    points: np.ndarray  # landmarks in crop coordinates
    blendshapes: dict[str, float] | None = None
    eyes_closing: bool = False  # eyelids lower than usual (a blink under way)
    to_crop: np.ndarray | None = None  # 2x3 similarity, frame -> crop (the head's pose)


class BlinkDetector:
    """Eyelid closures from the eye aspect ratio against its running median."""

    def __init__(self, ratio: float, window: float = 3.0) -> None:
        self.ratio = ratio
        self.window = window
        self._history: deque[tuple[float, float]] = deque()
        self._closing_since: float | None = None
        self._min_ratio = 1.0
        self._min_t = 0.0
        self.blinks: list[tuple[float, float, float]] = []  # onset, apex, offset
        self._baseline: float | None = None  # median of _history, None when stale

    def baseline(self) -> float | None:
        if len(self._history) < 5:
            return None
        # Asked several times a frame (alignment, spotter, push): one median per change.
        if self._baseline is None:
            self._baseline = float(np.median([a for _, a in self._history]))
        return self._baseline

    def partly_closed(self, aperture: float, ratio: float = 0.88) -> bool:
        """Eyelids noticeably lower than their running median."""
        base = self.baseline()
        return base is not None and math.isfinite(aperture) and aperture < ratio * base

    def push(self, t: float, aperture: float) -> tuple[float, float, float] | None:
        """Add one aperture sample; returns (onset, apex, offset) when a blink ends."""
        finished = None
        base = self.baseline()
        if base is not None and base > 1e-6 and math.isfinite(aperture):
            r = aperture / base
            if r < self.ratio:
                if self._closing_since is None:
                    self._closing_since = self._last_open_t if hasattr(self, "_last_open_t") else t
                    self._min_ratio, self._min_t = r, t
                elif r < self._min_ratio:
                    self._min_ratio, self._min_t = r, t
            elif self._closing_since is not None and r > 0.9 * 1.0:
                finished = (self._closing_since, self._min_t, t)
                self.blinks.append(finished)
                self._closing_since = None
        if math.isfinite(aperture):
            if self._closing_since is None:
                self._last_open_t = t
                self._history.append((t, aperture))
                self._baseline = None
            while self._history and self._history[0][0] < t - self.window:
                self._history.popleft()
                self._baseline = None
        return finished

    @property
    def closing(self) -> bool:
        return self._closing_since is not None

    def closing_at(self, t: float) -> bool:
        """Whether a blink was under way at ``t`` (:attr:`closing` for the latest sample;
        frames replayed after a back-fill are earlier)."""
        if self._closing_since is not None and t >= self._closing_since:
            return True
        return any(on <= t < off for on, _, off in self.blinks[-20:])

    def overlaps(self, start: float, end: float, margin: float = 0.05) -> bool:
        if self._closing_since is not None and end >= self._closing_since - margin:
            return True
        return any(on - margin <= end and start <= off + margin for on, _, off in self.blinks[-20:])


class SpeechDetector:
    """Speech: the mouth opening and closing again and again at 3-6.5 Hz.

    Two signals. The opening velocity of the mouth (vertical flow of the
    lower lip and chin minus the upper lip between frames ~1/30 s apart, in
    IOD/s): speech makes it swing from opening to closing several times a
    second, each swing a syllable's half-cycle after the last, an expression
    once. A swing must beat both the velocity's own noise (from its lower
    quartile outside speech spells) and ``min_speed``: compression noise
    and the jolt a blink gives the alignment are heavy-tailed, so a
    multiple of a typical level alone is crossed by chance.
    And the lip aperture from landmarks, whose 3-6.5 Hz energy must stay
    above its slow-band energy (real faces, where landmarks follow the
    lips). Speech spells are kept as intervals, widened
    backwards by ``lookback`` because a spell is recognised only after a
    couple of syllables.
    """

    def __init__(self, power: float, *, window: float = 1.0, min_swings: int = 5,
                 lookback: float = 0.6, hangover: float = 0.15, min_speed: float = 0.04,
                 half_cycle: tuple[float, float] = (0.06, 0.25), noise_window: float = 20.0) -> None:
        from .core import Spectra

        self.power = power
        self.window = window
        self.min_swings = min_swings
        self.lookback = lookback
        self.hangover = hangover
        self.min_speed = min_speed
        self.half_cycle = half_cycle
        self._spectra = Spectra(1, rate=30.0, window=window, bands=[(0.3, 2.0), (3.0, 6.5)])
        self._lip = np.zeros(1)
        self._last_lip_t = -math.inf
        self._velocity: deque[tuple[float, float]] = deque()
        # |opening velocity| over the last noise_window seconds, sampled at most
        # 30 times a second: the same history (and median cost) at any frame rate.
        self.noise_window = noise_window
        self._speed_noise: deque[float] = deque()
        self._speed_times: deque[float] = deque()
        self._swing_times: list[float] = []
        self.spells: list[list[float]] = []
        self.energy = 0.0
        self.swings = 0

    def push(self, t: float, lip_gap: float, opening_velocity: float | None) -> bool:
        speaking = False
        if math.isfinite(lip_gap) and t > self._last_lip_t:
            self._lip[0] = lip_gap
            e = self._spectra.push(t, self._lip)
            self._last_lip_t = t
            self.energy = float(e[0, 1])
            speaking |= bool(e[0, 1] > self.power and e[0, 1] > 1.5 * e[0, 0])
        if opening_velocity is not None and math.isfinite(opening_velocity):
            self._velocity.append((t, opening_velocity))
            while self._velocity and self._velocity[0][0] < t - self.window:
                self._velocity.popleft()
            if not self._speed_times or t - self._speed_times[-1] >= 0.9 / 30.0:
                self._speed_noise.append(abs(opening_velocity))
                self._speed_times.append(t)
            while self._speed_times and self._speed_times[0] < t - self.noise_window:
                self._speed_times.popleft()
                self._speed_noise.popleft()
            if self._swinging():
                self._mark(self._swing_times[0], self._swing_times[-1])
        if speaking:
            self._mark(t - self.lookback, t)
        return self.active_at(t)

    def _mark(self, start: float, end: float) -> None:
        if self.spells and start <= self.spells[-1][1] + self.hangover:
            self.spells[-1][1] = max(self.spells[-1][1], end)
        else:
            self.spells.append([start, end])
        # Syllables are not noise: left in, a long spell would raise the level
        # its own swings are measured against.
        while self._speed_times and self._speed_times[-1] >= start:
            self._speed_times.pop()
            self._speed_noise.pop()

    def _swinging(self) -> bool:
        """Several alternating strong swings of the opening velocity, a syllable's
        half-cycle apart (3-6.5 Hz speech: 0.08-0.17 s), within the window."""
        if len(self._speed_noise) < 10:
            return False
        # 6.3 x the lower quartile is 3 x the median for Gaussian noise; speech
        # filling the history (a clip that opens talking) barely moves it.
        level = max(6.3 * float(np.percentile(self._speed_noise, 25)), self.min_speed)
        shortest, longest = self.half_cycle
        sign = 0
        swing_times: list[float] = []
        for tv, v in self._velocity:
            if abs(v) < level:
                continue
            s = 1 if v > 0 else -1
            if s == sign:
                continue
            sign = s
            if swing_times and tv - swing_times[-1] > longest:
                swing_times = []  # a pause: the rhythm starts again
            if swing_times and tv - swing_times[-1] < shortest:
                continue  # too quick for a syllable: noise
            swing_times.append(tv)
        self._swing_times = swing_times
        self.swings = len(swing_times)
        # The spell spans the swings themselves, not the detection delay.
        return self.swings >= self.min_swings

    def active_at(self, t: float, lead: float = 0.0, trail: float = 0.0) -> bool:
        """Whether ``t`` is in a spell (or up to ``lead`` s before one: the mouth
        moves before the first swing is fast enough to count; or ``trail`` s
        after its hangover)."""
        return self.spell_end(t, lead, trail) is not None

    def overlaps(self, start: float, end: float) -> bool:
        return any(s <= end and start <= e + self.hangover for s, e in self.spells[-8:])

    def spell_end(self, t: float, lead: float = 0.0, trail: float = 0.0) -> float | None:
        """When the spell that :meth:`active_at` finds at ``t`` ends, its hangover
        included (None when none does)."""
        ends = [end + self.hangover for start, end in self.spells[-8:]
                if start - lead <= t <= end + self.hangover + trail]
        return max(ends) if ends else None

    def spoke_until(self) -> float:
        """When the latest spell ends, its hangover included (-inf before any)."""
        return self.spells[-1][1] + self.hangover if self.spells else -math.inf


FlowFn = Callable[[FrameRecord, FrameRecord], np.ndarray]
ManyFlowFn = Callable[[Sequence[tuple[FrameRecord, FrameRecord]]], list[np.ndarray]]
LaterFlowFn = Callable[[Sequence[tuple[FrameRecord, FrameRecord]]], Callable[[], list[np.ndarray]]]


def _shape_change(before: np.ndarray, after: np.ndarray) -> float:
    """RMS residual (px) of ``after`` against ``before`` moved by the best similarity.

    Head rotation out of the image plane changes the rigid points' layout;
    in-plane motion and alignment jitter do not.
    """
    from .core import estimate_similarity

    src = np.ascontiguousarray(before, dtype=np.float64)
    dst = np.ascontiguousarray(after, dtype=np.float64)
    M = estimate_similarity(src, dst)
    moved = src @ M[:, :2].T + M[:, 2]
    return float(np.sqrt(np.mean(np.sum((moved - dst) ** 2, axis=1))))


def _oscillates(signals: np.ndarray, times: Sequence[float], *, min_cycles: int = 3,
                period: tuple[float, float] = (0.14, 0.36), reach: float = 0.4) -> bool:
    """Whether the strongest of ``signals`` (T, K) swings up and down like speech.

    An expression rises and falls once; speech opens and closes the mouth at
    3-6.5 Hz. Counts prominent peaks of the most varying column and checks
    their spacing. A peak's prominence is taken against the valleys within
    ``reach`` seconds on either side, so the test reads alike at any frame rate.
    """
    if signals.ndim != 2 or signals.shape[0] < 6 or signals.shape[1] == 0:
        return False
    column = signals[:, int(np.argmax(np.ptp(signals, axis=0)))]
    span = float(np.ptp(column))
    if span <= 0:
        return False
    t = np.asarray(times, dtype=np.float64)
    first = np.searchsorted(t, t - reach, side="left")
    last = np.searchsorted(t, t + reach, side="right")
    # A peak is the highest point within half the shortest period: at a high
    # frame rate noise puts several local maxima on one swing.
    near_first = np.searchsorted(t, t - 0.5 * period[0], side="left")
    near_last = np.searchsorted(t, t + 0.5 * period[0], side="right")
    peaks = []
    for sign in (1.0, -1.0):
        x = sign * column
        for i in range(1, len(x) - 1):
            if x[i] >= x[i - 1] and x[i] > x[i + 1] and x[i] >= x[near_first[i]: near_last[i]].max():
                # Prominence against the lower of the nearby valleys.
                lo = max(x[first[i]: i + 1].min(), x[i: last[i]].min())
                if x[i] - lo > 0.3 * span:
                    peaks.append(t[i])
        if len(peaks) >= min_cycles:
            gaps = np.diff(sorted(peaks))
            if np.median(gaps) >= period[0] and np.median(gaps) <= period[1]:
                return True
        peaks = []
    return False


def _opposes(movement: np.ndarray, displacement: np.ndarray) -> bool:
    """Whether a recent ``movement`` (R, 2) undoes ``displacement`` (R, 2) from the anchor.

    Compares region by region, weighted by how far each region moved; the
    head-motion reference region has zero vectors and does not count.
    """
    return float(np.nansum(movement * displacement)) < 0.0


def _project(vectors: Sequence[np.ndarray], apex_vectors: np.ndarray) -> np.ndarray | None:
    """Each frame's region vectors projected on ``apex_vectors`` (R, 2): 1 where
    they equal it, 0 at the anchor. ``None`` when ``apex_vectors`` is all zero."""
    norm = float(np.sum(apex_vectors ** 2))
    if norm <= 0.0:
        return None
    return np.einsum("nrc,rc->n", np.nan_to_num(np.stack(vectors)), apex_vectors) / norm


def _windowed_median(values: np.ndarray, times: np.ndarray, before: float, after: float = 0.0) -> np.ndarray:
    """Median of each value with those up to ``before`` seconds earlier and
    ``after`` seconds later (any frame rate)."""
    first = np.searchsorted(times, times - before, side="left")
    stop = np.searchsorted(times, times + after, side="right")
    taken = first[:, None] + np.arange(int(np.max(stop - first, initial=1)))
    window = np.where(taken < stop[:, None], values[np.minimum(taken, len(values) - 1)], np.nan)
    return np.nanmedian(window, axis=1)


def _fell_halfway(acts: Sequence[float]) -> bool:
    """Whether the activity, after its peak, fell below half of it."""
    acts = np.asarray(acts)
    apex_i = int(np.argmax(acts))
    return bool(np.any(acts[apex_i:] < 0.5 * acts[apex_i]))


@dataclass
class _Candidate:
    anchor: FrameRecord
    trigger_t: float
    times: list[float] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    records: list[FrameRecord] = field(default_factory=list)
    acts: list[float] = field(default_factory=list)
    still_since: float | None = None
    stale_from: float | None = None  # the still spell counts towards going stale since
    split_from: float | None = None  # a new movement after a still spell, since (not yet a split)
    motion_checked_at: float = -math.inf  # last frame whose short-lag motion was judged
    below_since: float | None = None  # activity back under the end level since
    blinked: bool = False  # a blink has begun since the anchor
    parked_at: float | None = None  # a newer movement took over after this (see TrackSpotter._park)
    # Frames that arrived while the back-fill was still running (vectors
    # against the anchor, None until computed), replayed once it is in.
    queued: list[tuple[FrameRecord, bool, np.ndarray | None]] = field(default_factory=list)
    # Back-fill under way: its frames, and what waits for their vectors.
    in_flight: tuple[list[FrameRecord], Callable[[], list[np.ndarray]]] | None = None

    @property
    def filling(self) -> bool:
        """Whether some frame's anchored vectors are still to be computed."""
        return self.in_flight is not None or any(v is None for v in self.vectors) or \
            any(v is None for _, _, v in self.queued)

    def missing(self) -> list[FrameRecord]:
        """Frames still without anchored vectors, in time order."""
        return [r for r, v in zip(self.records, self.vectors) if v is None] + \
            [r for r, _, v in self.queued if v is None]

    def take(self, records: Sequence[FrameRecord], vectors: Sequence[np.ndarray]) -> None:
        """Put computed anchored vectors in place (back-filled or queued frames)."""
        computed = {rec.index: vec for rec, vec in zip(records, vectors)}
        self.vectors = [computed.get(r.index) if v is None else v for r, v in zip(self.records, self.vectors)]
        self.queued = [(r, s, computed.get(r.index) if v is None else v) for r, s, v in self.queued]


def _onset_time(cand: _Candidate, onset_i: int, lead: float = 0.0) -> float:
    """The onset of a movement whose first frame is ``onset_i``: the last still frame
    before it, at least ``lead`` s before it."""
    if onset_i <= 0:
        return cand.anchor.t
    before = bisect.bisect_right(cand.times, cand.times[onset_i] - lead + 1e-9, 0, onset_i)
    return cand.times[before - 1] if before else cand.anchor.t


class TrackSpotter:
    """Streaming spotter for one face track.

    Parameters
    ----------
    track_id : int
    iod : float
        Inter-ocular distance of the aligned crop, px.
    region_vectors : callable(ref, cur) -> (R, 2) array
        Mean displacement of each region of :data:`REGION_NAMES` from ``ref``
        to ``cur`` (reference region subtracted); the pipeline computes it
        with dense flow and region statistics.
    config : SpotterConfig
    region_vectors_many : callable(pairs) -> list of (R, 2) arrays, optional
        The same for several (ref, cur) pairs at once (the pipeline runs
        their flows in parallel). A frame's comparisons are requested
        together through it.
    region_vectors_later : callable(pairs) -> callable() -> list of (R, 2) arrays, optional
        The same, started now and collected a frame later (the pipeline runs
        them on a background thread beside the next frame). Back-fills go
        through it; without it they are computed when asked.
    """

    def __init__(self, track_id: int, iod: float, region_vectors: FlowFn,
                 config: SpotterConfig | None = None,
                 region_vectors_many: ManyFlowFn | None = None,
                 region_vectors_later: LaterFlowFn | None = None) -> None:
        self.track_id = track_id
        self.iod = iod
        self.config = config or SpotterConfig()
        self._one_pair = region_vectors
        self._many_pairs = region_vectors_many
        self._later_pairs = region_vectors_later
        self._ready: dict[tuple[int, int], np.ndarray] = {}  # this frame's vectors, computed together
        self._buffer: deque[FrameRecord] = deque()
        self._noise: deque[tuple[float, np.ndarray]] = deque()
        self._noise_level = np.full(N_REGIONS, np.nan)
        self._idle_acts: deque[tuple[float, float]] = deque()
        self._idle_level = 0.5
        self._noise_updated = -math.inf
        self._last_offset = -math.inf
        self._candidate: _Candidate | None = None
        # Candidates interrupted while held at their apex: they keep their
        # anchor and end on their own (a blink or a micro-expression during
        # a held macro-expression must not erase it).
        self._parked: list[_Candidate] = []
        self._suspended_until = -math.inf
        self._start_t: float | None = None
        self._warm = False  # the last idle check was past ``warmup`` (the first that is looks back)
        self._last_check = -math.inf
        self._last_macro_check = -math.inf
        # Each idle check's comparison, by frame index: (reference, vectors).
        # Chained, they give the motion over longer lags without more flow.
        self._links: dict[int, tuple[FrameRecord, np.ndarray]] = {}
        self._rigid_history: deque[tuple[float, np.ndarray]] = deque()
        self.blinks = BlinkDetector(self.config.blink_ratio)
        self.speech = SpeechDetector(self.config.speech_power)
        self.last_signals: dict[str, float] = {}

    # ------------------------------------------------------------ comparisons
    def _vectors(self, ref: FrameRecord, cur: FrameRecord) -> np.ndarray:
        ready = self._ready.pop((ref.index, cur.index), None)
        return ready if ready is not None else self._one_pair(ref, cur)

    def _compute_together(self, pairs: Sequence[tuple[FrameRecord, FrameRecord]]) -> None:
        """Compute several comparisons at once; :meth:`_vectors` then returns them."""
        pairs = [pair for pair in pairs if (pair[0].index, pair[1].index) not in self._ready]
        if self._many_pairs is None or len(pairs) < 2:
            return
        for (ref, cur), vec in zip(pairs, self._many_pairs(pairs)):
            self._ready[(ref.index, cur.index)] = vec

    def _plan_comparisons(self, record: FrameRecord) -> list[tuple[FrameRecord, FrameRecord]]:
        """The comparisons this frame will most likely need (the rules below decide)."""
        cfg = self.config
        t = record.t
        pairs = [(c.anchor, record) for c in self._parked if t - c.times[-1] >= 0.9 / cfg.check_rate]
        cand = self._candidate
        if cand is not None:
            pairs.append((cand.anchor, record))
        elif t - self._last_check >= 0.9 / cfg.check_rate:
            ref = self._idle_reference(t)
            if ref is not None and ref is not record:
                pairs.append((ref, record))
        return pairs

    # ------------------------------------------------------------ thresholds
    def _thresholds(self, age: float | None = None, head: float = 0.0) -> np.ndarray:
        """Per-region displacement thresholds for frames ``age`` seconds apart
        between which the head moved ``head`` crop px (:meth:`_head_motion`).

        Noise is measured at ``detect_lag``; slow drift makes it grow with
        the time between the compared frames (as a power ``drift_exponent``),
        alignment error with the head's motion.
        """
        floor = self.config.floor * self.iod
        level = np.where(np.isfinite(self._noise_level), self._noise_level, 0.0)
        thr = np.maximum(floor, self.config.noise_factor * level)
        lag = self.config.detect_lag
        if age is not None and age > lag:
            thr = thr * (age / lag) ** self.config.drift_exponent
        return thr + self.config.head_motion_gain * head

    @staticmethod
    def _head_motion(ref: FrameRecord, cur: FrameRecord) -> float:
        """How far the head moved in the image between two frames, in crop px.

        ``ref.to_crop`` composed with the inverse of ``cur.to_crop`` maps the
        current crop onto the reference crop: the identity for a still head.
        Its displacement at the crop centre plus its rotation and scale change
        over the crop's half-width.
        """
        if ref.to_crop is None or cur.to_crop is None:
            return 0.0
        linear = cur.to_crop[:, :2]
        inverse = np.linalg.inv(linear)
        relative = ref.to_crop[:, :2] @ inverse
        half = 0.5 * cur.crop.shape[1]
        centre = np.array([half, 0.5 * cur.crop.shape[0]])
        moved = relative @ (centre - cur.to_crop[:, 2]) + ref.to_crop[:, 2]
        turn = float(np.linalg.norm(relative - np.eye(2))) / math.sqrt(2.0)
        return float(np.hypot(*(moved - centre))) + half * turn

    def _head_moved(self, start: float, end: float) -> float:
        """The most the head moved (IOD) within ``head_still_window`` s, between ``start`` and ``end``."""
        window = self.config.head_still_window
        frames = [rec for rec in self._buffer if start - window <= rec.t <= end]
        times = np.array([rec.t for rec in frames])
        most = 0.0
        for rec in frames:
            if rec.t < start:
                continue
            before = frames[int(np.searchsorted(times, rec.t - window - 1e-9))]
            most = max(most, self._head_motion(before, rec))
        return most / self.iod

    def _update_noise(self, t: float, magnitudes: np.ndarray, activity: float) -> None:
        self._noise.append((t, magnitudes))
        self._idle_acts.append((t, activity))
        while self._noise and self._noise[0][0] < t - self.config.noise_window:
            self._noise.popleft()
        while self._idle_acts and self._idle_acts[0][0] < t - self.config.noise_window:
            self._idle_acts.popleft()
        if t - self._noise_updated > 0.25 and len(self._noise) >= 5:
            self._noise_level = np.percentile(np.stack([m for _, m in self._noise]), self.config.noise_percentile, axis=0)
            # Activity that still counts as "back to neutral" when ending an event.
            self._idle_level = float(np.percentile([a for _, a in self._idle_acts], 80))
            self._noise_updated = t

    # ------------------------------------------------------------ per frame
    def push(self, record: FrameRecord, *, aperture: float, lip_gap: float,
             opening_velocity: float | None, rigid_shape: np.ndarray | None) -> list[Event]:
        """Process one frame; returns events whose offset this frame confirmed."""
        cfg = self.config
        t = record.t
        if self._start_t is None:
            self._start_t = t
        events: list[Event] = []
        record.eyes_closing = self.blinks.partly_closed(aperture)
        if record.eyes_closing:
            # Landmarks react late to lids starting to fall: flag the frames
            # just before too, so none of them becomes a reference.
            for rec in reversed(self._buffer):
                if rec.t < t - 0.12:
                    break
                rec.eyes_closing = True
        blink = self.blinks.push(t, aperture)
        if blink is not None:
            events.append(Event(onset=blink[0], apex=blink[1], offset=blink[2], kind="blink",
                                regions=["eyes"], subtle=True, track_id=self.track_id,
                                confidence=1.0, detected_at=t))
        speaking = self.speech.push(t, lip_gap, opening_velocity)
        if rigid_shape is not None:
            # Out-of-plane head rotation: the rigid points' layout changed
            # noticeably within the last ~0.15 s.
            self._rigid_history.append((t, rigid_shape))
            while len(self._rigid_history) > 2 and self._rigid_history[1][0] <= t - cfg.head_window:
                self._rigid_history.popleft()
            then = self._rigid_history[0]
            if then[0] < t and _shape_change(then[1], rigid_shape) / self.iod > cfg.head_turn:
                self._suspended_until = t + 0.2

        self._buffer.append(record)
        horizon = t - max(cfg.max_duration, cfg.detect_lag) - 1.0
        anchors = [c.anchor for c in (self._candidate, *self._parked) if c is not None]
        while len(self._buffer) > 2 and self._buffer[0].t < horizon and \
                not any(self._buffer[0] is a for a in anchors):
            self._buffer.popleft()

        if t < self._suspended_until:
            # Frames of a head turn do not compare with the others: skip them
            # (an active candidate resumes afterwards, or runs out of time).
            self.last_signals = {"state": 2.0}
            return events
        self._ready.clear()
        self._compute_together(self._plan_comparisons(record))
        events.extend(self._step(record, speaking))
        # Parked candidates after the active one, so that one ends first
        # when both settle on the same frame.
        events.extend(self._follow_parked(record, speaking))
        return events

    def _step(self, record: FrameRecord, speaking: bool) -> list[Event]:
        """The active candidate's frame, or the idle check for a new one."""
        cfg = self.config
        t = record.t
        if self._candidate is None:
            ref = self._idle_reference(t)
            if ref is None or ref is record or t - self._last_check < 0.9 / cfg.check_rate:
                self.last_signals = {"state": 0.0}
                return []
            self._last_check = t
            vec = self._vectors(ref, record)
            self._link(record, ref, vec)
            mag = _magnitudes(vec)
            thr = self._thresholds(head=self._head_motion(ref, record))
            ratio = self._ratios(mag, thr)
            ratio[REFERENCE_REGION] = 0.0
            self._mask_nuisances(ratio, t, speaking, ref.eyes_closing or record.eyes_closing)
            self._record_signals(vec, ratio, 0.0)
            warm = t - self._start_t >= cfg.warmup
            if warm and np.nanmax(ratio) > 1.0 and self._releases_parked(vec):
                pass  # a parked expression returning to neutral: its own offset, not a new start
            elif warm and np.nanmax(ratio) > 1.0:
                # Not in a speech spell that is over: the mouth's posture
                # mid-syllable would stay in every later comparison.
                not_before = self._last_offset
                if self.speech.spoke_until() <= ref.t:
                    not_before = max(not_before, self.speech.spoke_until())
                anchor = self._lag_reference(t, not_before=not_before, lag=cfg.anchor_lag)
                if anchor is not None and anchor.t < ref.t:
                    vec = self._vectors(anchor, record)
                    ref = anchor
                self._start(ref, record, vec, t)
            else:
                self._update_noise(t, mag, float(np.nanmax(ratio)))
                if warm and not self._warm:
                    self._check_warmup(record, t)
                elif warm and t - self._last_macro_check >= 0.9 / cfg.macro_check_rate:
                    self._last_macro_check = t
                    self._check_slow_rise(record, t, speaking)
            self._warm = warm
            return []
        cand = self._candidate
        if cand.filling:
            vec = self._vectors(cand.anchor, record)
            cand.queued.append((record, speaking, vec))
            self._fill(cand, self.config.backfill_per_frame)
            if cand.filling:
                ratio, _ = self._activity(vec, t, speaking, record.eyes_closing or cand.anchor.eyes_closing,
                                          age=t - cand.anchor.t)
                self._record_signals(vec, ratio, 1.0)
                return []
            return self._replay(t)
        return self._continue(record, speaking)

    def flush(self) -> list[Event]:
        """Close the pending events at the end of the stream."""
        events = self._catch_up()
        for cand in self._parked:
            # Still held at the end: an expression only if it came back down.
            events += self._salvage(cand, cand.times[-1])
        pending = [self._candidate] if self._candidate is not None and self._candidate.times else []
        self._candidate = None
        self._parked = []
        for cand in pending:
            # The stream may stop long after the movement settled: end where
            # the activity fell back, not at the last frame; one that never
            # came back is a shift (or the rest of an expression's fall).
            event = None if self._came_back(cand, np.asarray(cand.acts)) is None else \
                self._finish(cand, self._settled_index(cand.acts), cand.times[-1])
            events += [event] if event is not None else self._flash_within(cand, cand.times[-1])
        return events

    # ------------------------------------------------------------ internals
    def _check_slow_rise(self, record: FrameRecord, t: float, speaking: bool) -> None:
        """Start a candidate on movement over ``macro_lag`` that ``detect_lag`` is too short to see."""
        chain = self._chain(record, self.config.macro_lag)
        if len(chain) < 2:
            return  # no longer than the idle check itself
        ref = chain[-1][0]
        vec = sum(v for _, v in chain)
        # The frames along the chain, measured from its far end, for the back-fill.
        known = {}
        partial = vec
        for link_ref, v in chain[:-1]:
            partial = partial - v
            known[link_ref.index] = partial
        _, act = self._activity(vec, t, speaking, ref.eyes_closing or record.eyes_closing,
                                age=t - ref.t, head=self._head_motion(ref, record))
        if act > 1.0 and not self._releases_parked(vec):
            log.debug("slow rise over %.2f s", t - ref.t)
            self._start(ref, record, vec, t, backfill_rate=2.0 * self.config.macro_check_rate, known=known)

    def _check_warmup(self, record: FrameRecord, t: float) -> None:
        """Judge the warm-up's idle checks now that the noise level is known.

        Until ``warmup`` has passed no check may start a candidate (the noise
        level is not known yet); a movement in those first frames would be
        over by then. The first check that counts looks back at them and
        starts a candidate, anchored before the earliest one that moved.
        """
        for index in sorted(self._links):
            ref, vec = self._links[index]
            then = next((rec for rec in self._buffer if rec.index == index), None)
            if then is None or then is record:
                continue
            speaking = self.speech.active_at(then.t, lead=SPEECH_LEAD)
            _, act = self._activity(vec, then.t, speaking, ref.eyes_closing or then.eyes_closing,
                                    head=self._head_motion(ref, then))
            if act > 1.0:
                log.debug("warm-up movement at %.2f", then.t)
                self._start(ref, record, self._vectors(ref, record), t)
                return

    def _link(self, record: FrameRecord, ref: FrameRecord, vec: np.ndarray) -> None:
        """Keep an idle comparison for :meth:`_chain`; drop those too old to be chained."""
        self._links[record.index] = (ref, vec)
        horizon = record.t - self.config.macro_lag - 2.0 * self.config.detect_lag
        for index in [i for i, (r, _) in self._links.items() if r.t < horizon]:
            del self._links[index]

    def _chain(self, record: FrameRecord, lag: float) -> list[tuple[FrameRecord, np.ndarray]]:
        """Idle comparisons linking ``record`` back about ``lag`` seconds, newest first.

        The vectors of consecutive comparisons add up (their shared frame
        cancels), so their sum is the motion from the last reference to
        ``record``. Stops at the last event's offset, at a frame never checked,
        and at the end of a speech spell that is over: the mouth's posture
        mid-syllable would stay in the sum (as the idle check's anchor avoids).
        """
        not_before = self._last_offset
        if self.speech.spoke_until() < record.t:
            not_before = max(not_before, self.speech.spoke_until())
        chain = []
        cur = record
        while record.t - cur.t < lag - 0.5 * self.config.detect_lag:
            link = self._links.get(cur.index)
            if link is None or link[0].t < not_before:
                break
            chain.append(link)
            cur = link[0]
        return chain

    @staticmethod
    def _releasing(cand: _Candidate) -> bool:
        """Whether the anchored activity fell by a quarter during the still spell: a
        release too slow for ``detect_lag`` to see, where a settled pose stays put."""
        spell = [a for a, tt in zip(cand.acts, cand.times) if tt >= cand.stale_from]
        return bool(spell) and spell[-1] < 0.75 * max(spell)

    def _idle_reference(self, t: float) -> FrameRecord | None:
        """The latest frame at least ``detect_lag`` back, after the last event,
        with open eyes (falls back to the oldest usable frame). One that was
        itself checked is preferred, so that checks chain (:meth:`_chain`)."""
        target = t - self.config.detect_lag
        ref = checked = None
        for rec in self._buffer:
            if rec.t < self._last_offset:
                continue
            if rec.t > target and ref is not None:
                break
            if not rec.eyes_closing or ref is None:
                ref = rec
                if not rec.eyes_closing and rec.index in self._links:
                    checked = rec
        if checked is not None and ref.t - checked.t <= 2.0 / self.config.check_rate:
            return checked
        return ref

    def _ratios(self, mag: np.ndarray, thr: np.ndarray) -> np.ndarray:
        """Region displacement over threshold, less what all regions share.

        Lighting changes and alignment error move the whole face a little;
        an expression moves some regions. The lower quartile over regions
        (the last axis; earlier axes are frames) estimates the shared part.
        """
        ratio = mag / thr
        others = ratio[..., _NOT_REFERENCE]
        # np.nanpercentile goes row by row; only a broken flow brings a NaN.
        quartile = np.nanpercentile if np.isnan(others).any() else np.percentile
        common = quartile(others, self.config.common_percentile, axis=-1, keepdims=True)
        ratio = np.maximum(ratio - common, 0.0)
        ratio[..., REFERENCE_REGION] = 0.0
        return ratio

    def _lag_reference(self, t: float, not_before: float, lag: float | None = None) -> FrameRecord | None:
        """Frame about ``lag`` (default ``detect_lag``) back with open eyes, not before ``not_before``."""
        target = t - (self.config.detect_lag if lag is None else lag)
        ref = None
        for rec in self._buffer:
            if rec.t < not_before:
                continue
            if rec.t > target and ref is not None:
                break
            if not rec.eyes_closing or ref is None:
                ref = rec
        return ref

    def _recent_index(self, cand: _Candidate, t: float) -> int:
        """Index in ``cand`` of the open-eyed frame about ``detect_lag`` before ``t``
        (-1: the anchor), chosen as :meth:`_lag_reference` chooses in the buffer."""
        target = t - self.config.detect_lag
        found = -1
        for i, (tt, rec) in enumerate(zip(cand.times[:-1], cand.records[:-1])):
            if tt > target:
                break
            if not rec.eyes_closing:
                found = i
        return found

    def _mask_nuisances(self, ratio: np.ndarray, t: float, speaking: bool,
                        eyes_closing: bool = False) -> None:
        if eyes_closing or self.blinks.overlaps(t - 0.05, t):
            ratio[_GROUP_OF == _EYES] = 0.0
        if speaking:
            ratio[_MOUTH] = 0.0

    def _record_signals(self, vec: np.ndarray, ratio: np.ndarray, state: float) -> None:
        """The per-frame table's row: each region's own displacement (not its pair's)."""
        mag = np.hypot(vec[:, 0], vec[:, 1])
        signals = {"state": state, "activity": float(np.nanmax(ratio)) if ratio.size else 0.0,
                   "speech_energy": self.speech.energy, "speech_swings": float(self.speech.swings)}
        for name, m in zip(REGION_NAMES, mag):
            signals[f"disp_{name}"] = float(m)
        self.last_signals = signals

    def _start(self, anchor: FrameRecord, record: FrameRecord, vec: np.ndarray, t: float,
               backfill_rate: float | None = None, known: dict[int, np.ndarray] | None = None) -> None:
        cand = _Candidate(anchor=anchor, trigger_t=t)
        # Back-fill the frames between the anchor and the trigger.
        between = [r for r in self._buffer if anchor.t < r.t < record.t]
        step = 1.0 / (backfill_rate or self.config.backfill_rate)
        last = -math.inf
        for rec in between:
            near_trigger = record.t - rec.t < 0.15
            if near_trigger or rec.t - last >= step:
                cand.times.append(rec.t)
                cand.records.append(rec)
                last = rec.t
        known = known or {}
        cand.vectors = [known.get(rec.index) for rec in cand.records]
        cand.times.append(t)
        cand.vectors.append(vec)
        cand.records.append(record)
        if log.isEnabledFor(logging.DEBUG):
            ratio = _magnitudes(vec) / self._thresholds()
            top = np.argsort(ratio)[::-1][:3]
            log.debug("start at %.2f (anchor %.2f): %s", t, anchor.t,
                      ", ".join(f"{REGION_NAMES[i]}={ratio[i]:.2f}" for i in top))
        self._candidate = cand
        self._fill(cand, self.config.backfill_per_frame)

    def _fill(self, cand: _Candidate, budget: float) -> None:
        """Take in the back-fill asked a frame ago and ask the next ``budget`` missing
        vectors (all, at once, for an infinite budget); once none is missing, the
        candidate's activity profile. Vectors arrive a frame after they are asked
        whether or not they ran beside it, so events do not depend on timing."""
        if cand.in_flight is not None:
            records, collect = cand.in_flight
            cand.in_flight = None
            cand.take(records, collect())
        missing = cand.missing()
        if missing and math.isinf(budget):
            self._compute_together([(cand.anchor, rec) for rec in missing])
            cand.take(missing, [self._vectors(cand.anchor, rec) for rec in missing])
        elif missing:
            batch = missing[: int(budget)]
            pairs = [(cand.anchor, rec) for rec in batch]
            if self._later_pairs is not None:
                cand.in_flight = (batch, self._later_pairs(pairs))
            else:
                vectors = [self._one_pair(*pair) for pair in pairs]
                cand.in_flight = (batch, lambda: vectors)
        if cand.filling or cand.acts:
            return
        anchor = cand.anchor
        cand.acts = [self._activity(v, r.t, False, r.eyes_closing or anchor.eyes_closing,
                                    age=r.t - anchor.t)[1]
                     for v, r in zip(cand.vectors, cand.records)]
        end = self._settled_index(cand.acts)
        if max(cand.acts[end:]) < self._end_level(max(cand.acts)):
            cand.below_since = cand.times[end]  # over before it was seen (the warm-up's look-back)

    def _replay(self, now: float) -> list[Event]:
        """Run the frames queued during a back-fill through :meth:`_continue`, in order.

        A candidate that splits on one of them hands the rest to the new one
        (their vectors computed afresh against its anchor); one that ends
        leaves them to the idle checks, as if they came now. Events carry
        ``now`` as the time they were detected.
        """
        events: list[Event] = []
        signals = self.last_signals
        now_done = False
        while (cand := self._candidate) is not None and not cand.filling and cand.queued:
            record, speaking, vec = cand.queued.pop(0)
            events += self._continue(record, speaking, vec)
            now_done = record.t == now
            successor = self._candidate
            if successor is cand or not cand.queued:
                continue
            leftover, cand.queued = cand.queued, []
            if successor is not None:
                same = successor.anchor is cand.anchor
                successor.queued = [(r, s, v if same else None) for r, s, v in leftover] + successor.queued
                continue
            for record, speaking, _ in leftover:
                events += self._step(record, speaking)
            now_done = True
        if not now_done:
            self.last_signals = signals
        return [e if e.detected_at is None or e.detected_at >= now else replace(e, detected_at=now)
                for e in events]

    def _catch_up(self) -> list[Event]:
        """Finish the active candidate's back-fill now and replay its queued frames."""
        cand = self._candidate
        if cand is None or not (cand.filling or cand.queued):
            return []
        now = cand.queued[-1][0].t if cand.queued else cand.times[-1]
        self._fill(cand, math.inf)
        events = self._replay(now)
        return events + self._catch_up()

    def _activity(self, vec: np.ndarray, t: float, speaking: bool, eyes_closing: bool = False,
                  age: float | None = None, head: float = 0.0) -> tuple[np.ndarray, float]:
        mag = _magnitudes(vec)
        ratio = self._ratios(mag, self._thresholds(age, head))
        ratio[REFERENCE_REGION] = 0.0
        self._mask_nuisances(ratio, t, speaking, eyes_closing)
        return ratio, float(np.nanmax(ratio))

    def _continue(self, record: FrameRecord, speaking: bool, vec: np.ndarray | None = None) -> list[Event]:
        cfg = self.config
        cand = self._candidate
        assert cand is not None
        t = record.t
        if vec is None:
            vec = self._vectors(cand.anchor, record)
        cand.times.append(t)
        cand.vectors.append(vec)
        cand.records.append(record)
        ratio, act = self._activity(vec, t, speaking, record.eyes_closing or cand.anchor.eyes_closing,
                                    age=t - cand.anchor.t)
        self._record_signals(vec, ratio, 1.0)
        cand.acts.append(act)
        acts = cand.acts
        if record.eyes_closing and not cand.blinked:
            cand.blinked = True
            # A blink begins after a clear movement fell back: close the event
            # at the blink's first frame, before the lids' motion runs into it.
            first = next(i for i, rec in enumerate(cand.records) if rec.eyes_closing)
            before = acts[:first]
            if before and not speaking and max(before) >= cfg.clear_peak and _fell_halfway(before):
                self._candidate = None
                self._last_offset = cand.times[first]
                log.debug("candidate from %.2f closed by a blink at %.2f", cand.anchor.t, t)
                for kept in (cand.times, cand.vectors, cand.records, cand.acts):
                    del kept[first:]
                event = self._finish(cand, self._settled_index(cand.acts), t)
                return [event] if event is not None else []
        end_index = self._settled(cand, t)
        if end_index is not None:
            event = self._finish(cand, end_index, t, acts=acts)
            log.debug("end at %.2f -> %s", cand.times[end_index], event and (event.kind, round(event.onset, 2)))
            self._candidate = None
            # Not the widened offset: measured, references after it lost
            # more events than the tail they kept out.
            self._last_offset = cand.times[end_index]
            return [event] if event is not None else self._flash_within(cand, t)
        # The short-lag activity tells whether the face is moving now. After
        # a still spell, a new movement starts a new candidate (anchored just
        # before it) so one long candidate cannot swallow later events; a
        # long still spell away from the anchor is a pose, lighting or drift
        # shift. Either way keep a rise-and-fall that happened before.
        # A blink shakes the regions around the eyes: it says nothing about
        # whether the expression moves.
        blinking_now = record.eyes_closing or self.blinks.closing_at(t)
        if blinking_now:
            cand.split_from = None
        # Judged at most check_rate times a second, as idle frames are: a
        # still spell must survive every check, and at 200 fps noise would
        # cross the threshold somewhere in forty frames.
        if not blinking_now and t - cand.motion_checked_at >= 0.9 / cfg.check_rate:
            cand.motion_checked_at = t
            lag_i = self._recent_index(cand, t)
            lag_ref = cand.records[lag_i] if lag_i >= 0 else cand.anchor
            # Both profiles share the anchor: their difference is the motion
            # since lag_ref, without a flow of its own.
            lag_vec = vec - cand.vectors[lag_i] if lag_i >= 0 else vec
            lag_act = self._activity(lag_vec, t, speaking, record.eyes_closing or lag_ref.eyes_closing,
                                     head=self._head_motion(lag_ref, record))[1]
            moving = lag_act >= 1.0
            still_long_enough = cand.still_since is not None and \
                t - cand.still_since >= cfg.split_still - 1e-6  # 12 frames at 60 fps sum to 0.1999...
            # Motion back towards the anchor is this expression's release
            # (a macro-expression slows to a stop at its apex), not a new one.
            returning = _opposes(lag_vec, vec)
            new_movement = moving and not returning and still_long_enough
            if not new_movement:
                cand.split_from = None
            elif cand.split_from is None:
                cand.split_from = t
            if new_movement and t - cand.split_from >= cfg.split_confirm:
                self._candidate = None
                self._last_offset = cand.still_since
                log.debug("candidate from %.2f split at %.2f (new movement)", cand.anchor.t, t)
                if _fell_halfway(cand.acts) or max(cand.acts) < cfg.clear_peak:
                    events = self._salvage(cand, t, until=lag_ref.t)
                else:  # held at a clear apex: it may still end as an expression
                    events = self._park(cand, t, overtaken_at=lag_ref.t)
                known = {rec.index: v - cand.vectors[lag_i] for rec, v in
                         zip(cand.records[lag_i + 1:-1], cand.vectors[lag_i + 1:-1])} if lag_i >= 0 else \
                    {rec.index: v for rec, v in zip(cand.records[:-1], cand.vectors[:-1])}
                self._start(lag_ref, record, lag_vec, t, known=known)
                return events
            if new_movement:
                pass  # not yet confirmed: the still spell stands until it is
            elif moving:
                cand.still_since = None
            elif cand.still_since is None:
                cand.still_since = t
            cand.stale_from = None if cand.still_since is None else \
                max(cand.still_since, cand.stale_from or cand.still_since)
            if cand.stale_from is not None and t - cand.stale_from >= cfg.stale_time and \
                    self._releasing(cand):
                # A slow macro-expression easing off, not a settled pose. The
                # still spell stands: a movement after it is still a new one.
                cand.stale_from = t
            if cand.stale_from is not None and t - cand.stale_from >= cfg.stale_time:
                self._candidate = None
                self._last_offset = t
                log.debug("candidate from %.2f went stale at %.2f", cand.anchor.t, t)
                return self._salvage(cand, t)
        if t - cand.anchor.t > cfg.max_duration:
            # Never settled: a pose change or drift, unless it peaked and fell.
            self._candidate = None
            self._last_offset = t
            log.debug("candidate from %.2f exceeded max_duration", cand.anchor.t)
            return self._salvage(cand, t)
        return []

    def _settled(self, cand: _Candidate, t: float) -> int | None:
        """Index of the offset once the activity stayed under the end level for ``hold``."""
        level = self._end_level(max(cand.acts))
        # Smooth over ~0.07 s so one noisy frame neither ends nor prolongs an event.
        recent = [a for a, tt in zip(cand.acts, cand.times) if tt >= t - 0.07]
        if float(np.median(recent)) >= level:
            cand.below_since = None
            return None
        if cand.below_since is None:
            cand.below_since = t
        if t - cand.below_since < self.config.hold:
            return None
        return next(i for i, tt in enumerate(cand.times) if tt >= cand.below_since)

    def _park(self, cand: _Candidate, now: float, overtaken_at: float) -> list[Event]:
        """Keep a candidate held at its apex alive beside the new one (at most one parked);
        the new one's anchor is at ``overtaken_at``: its movement starts after that."""
        log.debug("park candidate from %.2f at %.2f: peak %.2f now %.2f", cand.anchor.t, now,
                  max(cand.acts), cand.acts[-1])
        events = []
        for old in self._parked:
            events += self._salvage(old, now)
        cand.below_since = None
        cand.parked_at = overtaken_at
        self._parked = [cand]
        return events

    def _follow_parked(self, record: FrameRecord, speaking: bool) -> list[Event]:
        """Extend each parked candidate's anchored profile; emit those that settled."""
        cfg = self.config
        events: list[Event] = []
        t = record.t
        for cand in list(self._parked):
            if t - cand.times[-1] < 0.9 / cfg.check_rate:
                continue
            vec = self._vectors(cand.anchor, record)
            cand.times.append(t)
            cand.vectors.append(vec)
            cand.records.append(record)
            cand.acts.append(self._activity(vec, t, speaking, record.eyes_closing or cand.anchor.eyes_closing,
                                            age=t - cand.anchor.t)[1])
            end_index = self._settled(cand, t)
            if end_index is not None:
                self._parked.remove(cand)
                event = self._finish(cand, end_index, t)
                log.debug("parked candidate from %.2f ended at %.2f -> %s", cand.anchor.t,
                          cand.times[end_index], event and event.kind)
                self._last_offset = max(self._last_offset, cand.times[end_index])
                events += [event] if event is not None else []
                events += self._catch_up()
                primary = self._candidate
                if primary is not None and primary.anchor.t < cand.times[end_index]:
                    # It started during the parked hold, so its anchored
                    # profile holds this release too: keep only a clean
                    # rise-and-fall of its own and look afresh.
                    self._candidate = None
                    events += self._salvage(primary, t)
            elif t - cand.anchor.t > cfg.max_duration:
                self._parked.remove(cand)
                events += self._salvage(cand, t)
        return events

    def _releases_parked(self, movement: np.ndarray) -> bool:
        """Whether ``movement`` is a parked candidate returning to neutral (against its apex)."""
        return any(_opposes(movement, cand.vectors[int(np.argmax(cand.acts))]) for cand in self._parked)

    def _salvage(self, cand: _Candidate, now: float, until: float = math.inf) -> list[Event]:
        """An interrupted candidate: keep it if it clearly peaked and fell back halfway,
        else look in it for a flash (:meth:`_flash_within`) before ``until``.

        Halfway in its own regions' motion (:meth:`_own_profile`), not in the
        activity: thresholds grow with the time since the anchor, so a shift
        that stays (a pose, the rest of an expression's fall) would seem to fade.
        """
        acts = self._across_blinks(cand, np.asarray(cand.acts))
        halfway = self._came_back(cand, acts) if acts.size >= 2 and _fell_halfway(acts) else None
        event = self._finish(cand, halfway, now) if halfway is not None else None
        return [event] if event is not None else self._flash_within(cand, now, until)

    def _flash_within(self, cand: _Candidate, now: float, until: float = math.inf) -> list[Event]:
        """Micro-expressions inside a candidate that ended without an event.

        A drift or a slow shift that starts a candidate hides a brief flash
        in another region: the activity is the largest region's, and the
        candidate is then dropped whole. Here each frame is held against two
        frames ``flash_halves`` s either side (before ``until``): a flash
        moved away from both, which barely differ; a drift or a step moved
        from one to the other. The strongest such frame over the thresholds
        is judged as its own candidate, anchored before it.
        """
        cfg = self.config
        if cand.parked_at is not None:
            until = min(until, cand.parked_at)  # later motion is the newer candidate's
        count = len(cand.times)
        if count < 3 or any(v is None for v in cand.vectors[:count]):
            return []
        times = np.array([cand.anchor.t] + cand.times[:count])
        vectors = np.stack([np.zeros_like(cand.vectors[0])] + cand.vectors[:count])
        records = [cand.anchor] + cand.records[:count]
        thr = self._thresholds()
        # Syllables swing before and after the spell that counted them.
        speaking = np.array([self.speech.active_at(tt, lead=cfg.flash_speech_margin, trail=cfg.flash_speech_margin)
                             for tt in times])
        # The aperture shows a blink later and shorter than the lids and brows move.
        in_blink = np.array([rec.eyes_closing or self.blinks.overlaps(tt, tt, margin=cfg.flash_blink_margin)
                             for tt, rec in zip(times, records)])
        blinks_so_far = np.concatenate([[0], np.cumsum(in_blink)])
        index = np.arange(len(times))
        warm = (self._start_t or 0.0) + cfg.warmup
        best, best_at = cfg.flash_peak, None
        for half in cfg.flash_halves:
            before = np.searchsorted(times, times - half, side="right") - 1
            after = np.searchsorted(times, times + half, side="left")
            # Not before the noise level was known (the warm-up).
            # A flash before ``until``; the frame after it may lie past that.
            at = index[(before >= 0) & (after < len(times)) & (times[np.maximum(before, 0)] >= warm)
                       & (times <= until)]
            if at.size == 0:
                continue
            a, b = before[at], after[at]
            here = vectors[at]
            # Moved from both frames, less half of what stayed moved between
            # them: a flash keeps its height, a drift or a step nets zero.
            moved = np.minimum(_magnitudes(here - vectors[a]), _magnitudes(here - vectors[b]))
            moved = moved - 0.5 * _magnitudes(vectors[b] - vectors[a])
            ratio = np.nan_to_num(self._ratios(moved, thr))
            # A blink moves the brows too: a second look leaves it all out.
            ratio[np.ix_((blinks_so_far[b + 1] - blinks_so_far[a]) > 0, _EYES_AND_BROWS)] = 0.0
            ratio[np.ix_(speaking[at], _MOUTH)] = 0.0
            top = ratio.max(axis=1)
            k = int(np.argmax(top))
            if top[k] > best:
                best, best_at = float(top[k]), (int(a[k]), int(b[k]))
        if best_at is None:
            return []
        a, b = best_at
        log.debug("flash within %.2f-%.2f: %.2f at %.2f-%.2f", cand.anchor.t, times[-1], best, times[a], times[b])
        flash = self._reanchored(records[a], vectors[a], float(times[b]), None,
                                 zip(times[a + 1: b + 1].tolist(), records[a + 1: b + 1], vectors[a + 1: b + 1]))
        event = self._finish_reanchored(flash, now)
        return [event] if event is not None and event.kind == "micro" else []

    def _after_speech(self, cand: _Candidate, onset_t: float, now: float) -> Event | None:
        """What moved after the speech spell that ``onset_t`` fell in, against the
        first open-eyed frame once the mouth had settled (or None).

        The anchor of a candidate that began in a spell holds the mouth
        mid-syllable: that posture outlasts the spell in every comparison and
        hides an expression right after it.
        """
        settled = self.speech.spell_end(onset_t, lead=SPEECH_LEAD, trail=self.config.speech_settle)
        if settled is None:
            return None
        count = len(cand.times)
        first = bisect.bisect_left(cand.times, settled + self.config.speech_settle)
        while first < count and cand.records[first].eyes_closing:
            first += 1
        if count - first < 4 or any(v is None for v in cand.vectors[first:]):
            return None
        log.debug("after speech %.2f: re-anchored at %.2f", onset_t, cand.times[first])
        rebased = self._reanchored(cand.records[first], cand.vectors[first], cand.trigger_t, cand.parked_at,
                                   zip(cand.times[first + 1:], cand.records[first + 1:], cand.vectors[first + 1:]))
        return self._finish_reanchored(rebased, now)

    def _reanchored(self, anchor: FrameRecord, anchor_vec: np.ndarray, trigger_t: float, parked_at: float | None,
                    frames: Iterable[tuple[float, FrameRecord, np.ndarray]]) -> _Candidate:
        """A candidate of ``frames`` (time, record, vector against an earlier anchor)
        against ``anchor``, whose own vector against that anchor is ``anchor_vec``:
        vectors are linear in the anchor, so this is a subtraction, without new flows."""
        cand = _Candidate(anchor=anchor, trigger_t=trigger_t, parked_at=parked_at)
        for tt, rec, v in frames:
            vec = v - anchor_vec
            cand.times.append(tt)
            cand.records.append(rec)
            cand.vectors.append(vec)
            cand.acts.append(self._activity(vec, tt, self.speech.active_at(tt, lead=SPEECH_LEAD),
                                            rec.eyes_closing or anchor.eyes_closing, age=tt - anchor.t)[1])
        return cand

    def _finish_reanchored(self, cand: _Candidate, now: float) -> Event | None:
        """:meth:`_finish` a re-anchored candidate where it settled, if it came back
        against its new anchor (else another region still moves away from it)."""
        end = self._settled_index(cand.acts)
        if cand.acts[end] >= self._end_level(max(cand.acts)):
            log.debug("%.2f-%.2f does not come back against its anchor", cand.anchor.t, cand.times[-1])
            return None
        return self._finish(cand, end, now)

    def _came_back(self, cand: _Candidate, acts: np.ndarray) -> int | None:
        """Index where the candidate's own motion fell back below half its apex, or None."""
        apex_i = int(np.argmax(acts))
        profile = self._own_profile(cand, apex_i, len(acts) - 1)
        if profile is None or not np.any(profile < 0.5):
            log.debug("candidate from %.2f did not come back: a shift, not an expression", cand.anchor.t)
            return None
        return apex_i + int(np.argmax(profile < 0.5))

    def _blink_frames(self, cand: _Candidate, n: int) -> np.ndarray:
        """Which of the candidate's first ``n`` frames fall in a blink (lids moving)."""
        return np.array([rec.eyes_closing or self.blinks.overlaps(tt, tt)
                         for tt, rec in zip(cand.times[:n], cand.records[:n])], dtype=bool)

    def _across_blinks(self, cand: _Candidate, acts: np.ndarray) -> np.ndarray:
        """``acts`` with the eyes and brows bridged over the frames of a blink.

        A blink shakes the regions around the eyes for a few frames: its
        peak must not become the apex, onset or offset of an expression it
        happens inside. On those frames the activity is that of the other
        regions, or the line between the frames either side if higher (the
        anchor, zero, on the left of the first). Returns ``acts`` itself
        when nothing changed.
        """
        in_blink = self._blink_frames(cand, len(acts))
        if not in_blink.any() or in_blink.all():
            return acts
        index = np.arange(len(acts))
        # The anchor (index -1) is the profile's zero: a blink at the start
        # bridges up from it, not at the level of the first clear frame.
        clear = np.concatenate([[-1], index[~in_blink]])
        bridged = np.interp(index, clear, np.concatenate([[0.0], acts[~in_blink]]))
        for i in np.flatnonzero(in_blink):
            tt = cand.times[i]
            ratio, _ = self._activity(cand.vectors[i], tt, False, True, age=tt - cand.anchor.t)
            ratio[_GROUP_OF == _BROWS] = 0.0
            bridged[i] = min(acts[i], max(bridged[i], float(np.nanmax(ratio))))
        return acts if np.array_equal(bridged, acts) else bridged

    def _without_late_speech(self, cand: _Candidate, acts: np.ndarray) -> np.ndarray:
        """``acts`` with the mouth masked on frames now known to be speech.

        Speech is recognised a few syllables after it starts, so the first
        syllables may have counted as movement; the event's apex, onset and
        offset are then taken from this profile. Returns ``acts`` itself
        when nothing changed.
        """
        if not self.speech.overlaps(cand.times[0], cand.times[len(acts) - 1] + SPEECH_LEAD):
            return acts
        masked = acts.copy()
        for i, (vec, tt, rec) in enumerate(zip(cand.vectors[: len(acts)], cand.times, cand.records)):
            if self.speech.active_at(tt, lead=SPEECH_LEAD):
                eyes_closing = rec.eyes_closing or cand.anchor.eyes_closing
                quiet = self._activity(vec, tt, True, eyes_closing, age=tt - cand.anchor.t)[1]
                masked[i] = min(masked[i], quiet)
        return acts if np.array_equal(masked, acts) else masked

    def _widen_to_edges(self, cand: _Candidate, n_seen: int, onset_i: int, offset_i: int,
                        apex_vectors: np.ndarray) -> tuple[int, int]:
        """Onset and offset indices moved out to where the movement starts and ends.

        The candidate's motion is projected on ``apex_vectors`` (the active
        regions' apex displacements, zero elsewhere): a signed profile, 1 at
        the apex, whose noise averages down over the regions (a magnitude's
        never goes below its noise floor). The onset moves back and the
        offset on (over frames seen during the hold) while that profile stays
        above ``edge_fraction`` and ``edge_sigmas`` times its noise, each by
        at most ``edge_reach`` of its rise or fall; blink frames stop them.
        Micro-length events keep their indices: a brief rise crosses the end
        level within a frame of its start.
        """
        cfg = self.config
        onset_t = _onset_time(cand, onset_i)
        if cand.times[offset_i] - onset_t <= cfg.micro_max:
            return onset_i, offset_i
        profile = _project(cand.vectors[:n_seen], apex_vectors)
        if profile is None:
            return onset_i, offset_i
        # Frame-to-frame noise from the second differences (a smooth rise and
        # fall has little curvature): sqrt(6) sigma, and a MAD of 0.674 sigma.
        curvature = np.abs(np.diff(profile, 2))
        noise = float(np.median(curvature)) / (0.674 * math.sqrt(6.0)) if curvature.size else 0.0
        edge = max(cfg.edge_fraction, cfg.edge_sigmas * noise)
        in_blink = self._blink_frames(cand, n_seen)
        times = cand.times
        apex_i = int(np.argmax(profile[: offset_i + 1]))
        earliest = onset_t - cfg.edge_reach * (times[apex_i] - onset_t)
        latest = times[offset_i] + cfg.edge_reach * (times[offset_i] - times[apex_i])
        while onset_i > 1 and profile[onset_i - 1] > edge and not in_blink[onset_i - 1] and \
                times[onset_i - 2] >= earliest:
            onset_i -= 1
        while offset_i + 1 < n_seen and profile[offset_i] > edge and not in_blink[offset_i + 1] and \
                times[offset_i + 1] <= latest:
            offset_i += 1
        return onset_i, offset_i

    def _tighten_to_profile(self, cand: _Candidate, onset_i: int, apex_i: int, offset_i: int,
                            apex_vectors: np.ndarray) -> tuple[int, int]:
        """A micro-length event's onset and offset moved in to where its motion,
        projected on ``apex_vectors``, is above ``micro_edge_fraction`` of its apex
        (the offset sooner where the fall stops, :meth:`_tail_from`).

        The activity is the largest of many regions' noisy ratios, so it
        stays over the end level for a frame or two beyond a brief movement
        on either side; the projection averages that noise down over the
        event's own regions. Kept as they are when the projection does not
        peak near the activity's apex (its regions' peaks are elsewhere).
        """
        profile = _project(cand.vectors[: offset_i + 1], apex_vectors)
        if profile is None or not onset_i <= apex_i <= offset_i:
            return onset_i, offset_i
        # A median over ~0.03 s (one frame below 35 fps): single noisy
        # frames of fast video neither cut nor stretch the event.
        times = np.asarray(cand.times[: offset_i + 1])
        profile = _windowed_median(profile, times, 0.015, 0.015)
        top = float(np.max(profile[onset_i: offset_i + 1]))
        if top <= 0.0 or profile[apex_i] < 0.5 * top:
            return onset_i, offset_i
        edge = self.config.micro_edge_fraction * top
        first = apex_i
        while first > onset_i and profile[first - 1] >= edge:
            first -= 1
        end = apex_i
        while end < offset_i and profile[end] >= edge and not self._tail_from(profile, times, end, top):
            end += 1
        return first, end

    def _tail_from(self, profile: np.ndarray, times: np.ndarray, i: int, top: float) -> bool:
        """Whether the fall has stopped at frame ``i``, under ``micro_tail_level`` of
        the apex: the next ``micro_tail_span`` s drop less than ``micro_tail_drop`` of it."""
        cfg = self.config
        if profile[i] >= cfg.micro_tail_level * top:
            return False
        stop = int(np.searchsorted(times, times[i] + cfg.micro_tail_span + 1e-9, side="right"))
        ahead = profile[i + 1: stop]
        if ahead.size == 0 or times[-1] < times[i] + cfg.micro_tail_span - 1e-9:
            return False  # no frame within the span, or not seen that far yet
        return bool(profile[i] - np.min(ahead) < cfg.micro_tail_drop * top)

    def _own_profile(self, cand: _Candidate, apex_i: int, stop: int) -> np.ndarray | None:
        """The anchored motion of frames ``apex_i..stop`` projected on the apex frame's own
        regions (those within half of its strongest): 1 at the apex, 0 back at the anchor.

        Other regions drifting, and the thresholds growing with the time since
        the anchor, do not move it. ``None`` when the apex frame has no motion.
        """
        tt = cand.times[apex_i]
        ratio, peak = self._activity(cand.vectors[apex_i], tt, self.speech.active_at(tt, lead=SPEECH_LEAD),
                                     cand.records[apex_i].eyes_closing or cand.anchor.eyes_closing,
                                     age=tt - cand.anchor.t)
        if peak <= 0.0:
            return None
        own = np.nan_to_num(ratio) >= 0.5 * peak
        profile = _project(cand.vectors[apex_i: stop + 1],
                           np.where(own[:, None], np.nan_to_num(cand.vectors[apex_i]), 0.0))
        # Median over ~0.07 s, as the end test smooths the activity.
        return None if profile is None else \
            _windowed_median(profile, np.asarray(cand.times[apex_i: stop + 1]), 0.07)

    def _brief_release(self, cand: _Candidate, onset_t: float, apex_i: int, end_index: int) -> int:
        """End index of a brief movement that something else kept open.

        When the apex frame's own motion (:meth:`_own_profile`) falls below
        ``release_fraction`` within ``micro_max`` of the onset and never
        comes back above it, the expression was over there: the activity
        left (other regions drifting, a nod, or a codec still holding part
        of the displacement, which stretched micro-expressions' offsets) is
        not part of it. A fall that stalls on the way (:meth:`_tail_from`)
        ended at the stall: the codec's residue fades later, and slowly.
        """
        cfg = self.config
        profile = self._own_profile(cand, apex_i, end_index)
        if profile is None:
            return end_index
        times = np.asarray(cand.times[apex_i: end_index + 1])
        below = np.flatnonzero(profile < cfg.release_fraction)
        if below.size == 0 or times[below[0]] - onset_t > cfg.micro_max or \
                np.any(profile[below[0]:] >= cfg.release_fraction):
            return end_index
        half = int(below[0])
        # It ends where its own motion is about gone, or (drift or a codec
        # holding it up) a fall as long again as the one to half, whichever
        # comes first: a smooth fall is half done at half its height.
        gone = np.flatnonzero(profile[half:] < 0.5 * cfg.release_fraction)
        end = int(np.searchsorted(times, 2.0 * times[half] - times[0]))
        if gone.size:
            end = min(end, half + int(gone[0]))
        # A fall that stalled (compression holding part of it) ended at the stall.
        stall = next((i for i in range(min(end, len(times) - 1) + 1)
                      if self._tail_from(profile, times, i, 1.0)), None)
        if stall is not None:
            end = min(end, stall)
        end = min(end, len(times) - 1)
        log.debug("brief release at %.2f (held open to %.2f)", times[end], cand.times[end_index])
        return apex_i + end

    def _settled_index(self, acts: Sequence[float]) -> int:
        """First frame after the apex whose activity is back below the end level (else the last)."""
        acts = np.asarray(acts)
        apex_i = int(np.argmax(acts))
        below = np.flatnonzero(acts[apex_i:] < self._end_level(float(acts[apex_i])))
        return apex_i + int(below[0]) if below.size else len(acts) - 1

    def _end_level(self, peak: float) -> float:
        return max(self.config.end_fraction * peak, 1.1 * self._idle_level, 0.5)

    def _finish(self, cand: _Candidate, end_index: int, now: float,
                acts: Sequence[float] | None = None) -> Event | None:
        cfg = self.config
        seen = np.asarray(cand.acts if acts is None else acts)
        acts = seen[: end_index + 1]
        if acts.size == 0:
            return None
        hindsight = self._across_blinks(cand, self._without_late_speech(cand, acts))
        if hindsight is not acts:
            end_index = self._settled_index(hindsight)
            acts = hindsight[: end_index + 1]
        # A parked candidate's expression is the one before a newer movement
        # took over: its profile also holds that movement, often larger.
        own_frames = len(acts) if cand.parked_at is None else \
            max(1, int(np.searchsorted(cand.times[: len(acts)], cand.parked_at, side="right")))
        apex_i = int(np.argmax(acts[:own_frames]))
        peak = float(acts[apex_i])
        level = self._end_level(peak)
        onset_i = apex_i
        while onset_i > 0 and acts[onset_i - 1] >= level:
            onset_i -= 1
        onset_t = _onset_time(cand, onset_i)
        released = self._brief_release(cand, onset_t, apex_i, end_index)
        brief = released != end_index
        end_index = released
        acts = acts[: end_index + 1]
        offset_t = cand.times[end_index]
        apex_t = cand.times[apex_i]
        if offset_t - onset_t < cfg.min_duration:
            log.debug("drop %.2f-%.2f: shorter than min_duration", onset_t, offset_t)
            return None

        vectors = np.stack(cand.vectors[: end_index + 1])
        mags = _magnitudes(vectors)
        thr = self._thresholds(age=apex_t - cand.anchor.t)
        # The regions that moved in the event, not before it: a blink bridged
        # over before the onset (_across_blinks) would otherwise name the eyes.
        own = slice(onset_i, own_frames)
        region_peak = np.nanmax(mags[own], axis=0) / thr
        region_peak[REFERENCE_REGION] = 0.0
        # Displacements are against the anchor: one just after a blink holds
        # the lids' last motion.
        blinking = self.blinks.overlaps(cand.anchor.t, offset_t)
        if blinking:
            # The lids' own motion is the blink's, and it bleeds into the brow
            # regions above: brows must stand out against it, the regions
            # below only against each other.
            eye_peak = float(np.nanmax(region_peak[_GROUP_OF == _EYES]))
            brows = _GROUP_OF == _BROWS
            # Brows that move on frames without the blink move on their own.
            clear = ~self._blink_frames(cand, min(own_frames, end_index + 1))[own]
            unblinked = np.nanmax(mags[own][clear], axis=0) / thr if clear.any() else np.zeros(N_REGIONS)
            bleed = brows & (region_peak < cfg.region_fraction * eye_peak)
            region_peak[bleed] = unblinked[bleed]
            region_peak[_GROUP_OF == _EYES] = 0.0
            # Moving eye landmarks jolt the alignment: ask the rest for a
            # margin, except the lower face on the frames clear of the blink
            # (the brows and cheeks move as the lids begin to).
            region_peak /= cfg.blink_margin
            region_peak[_LOWER_FACE] = np.maximum(region_peak[_LOWER_FACE], unblinked[_LOWER_FACE])
        talking = self.speech.active_at(apex_t, lead=SPEECH_LEAD)
        if talking or _oscillates(vectors[:, _MOUTH, 1], cand.times[: end_index + 1]):
            region_peak[_MOUTH] = 0.0  # before the fraction: speech must not outshine the rest
        active = (region_peak >= 1.0) & (region_peak >= cfg.region_fraction * np.nanmax(region_peak))
        groups = sorted({GROUP_NAMES[g] for g in _GROUP_OF[active] if g >= 0})
        if active.any() and not (active & ~_MOUTH).any() and \
                self.speech.active_at(onset_t, lead=SPEECH_LEAD, trail=cfg.speech_settle):
            # The mouth closes and eases back after the last syllable that counted.
            log.debug("drop %.2f-%.2f: the mouth settling after speech", onset_t, offset_t)
            return self._after_speech(cand, onset_t, now)
        if not groups:
            log.debug("drop %.2f-%.2f: %s", onset_t, offset_t,
                      "the blink itself" if blinking else "no region left (speech masked)")
            return None

        # Each region at its own peak: the regions of one expression do not
        # all peak on the same frame, and a nuisance may set the global apex.
        peak_frame = onset_i + np.argmax(np.nan_to_num(mags[own], nan=-1.0), axis=0)
        apex_vec = vectors[peak_frame, np.arange(N_REGIONS)]
        apex_vectors = np.where(active[:, None], apex_vec, 0.0)
        lead = 0.0
        if cand.times[end_index] - onset_t <= cfg.micro_max + 1e-9:
            onset_i, offset_i = self._tighten_to_profile(cand, onset_i, apex_i, end_index, apex_vectors)
            lead = cfg.micro_onset_lead
        elif brief:
            offset_i = end_index
        else:
            onset_i, offset_i = self._widen_to_edges(cand, len(seen), onset_i, end_index, apex_vectors)
        onset_t = _onset_time(cand, onset_i, lead)
        offset_t = cand.times[offset_i]
        blend_delta = None
        onset_rec = cand.records[max(onset_i - 1, 0)]
        apex_rec = cand.records[apex_i]
        base_blend = cand.anchor.blendshapes or onset_rec.blendshapes
        if base_blend and apex_rec.blendshapes:
            blend_delta = {k: apex_rec.blendshapes[k] - base_blend.get(k, 0.0)
                           for k in apex_rec.blendshapes}
        aus, asymmetry = estimate_aus(apex_vec, scale=cfg.au_scale * self.iod, active=active,
                                      blendshape_delta=blend_delta)
        if max(aus.values(), default=0.0) < cfg.min_au:
            log.debug("drop %.2f-%.2f: no AU explains the motion %s", onset_t, offset_t, groups)
            return None  # gaze shift or noise
        emotion, emotion_conf = classify_emotion(aus, asymmetry, groups=groups)
        duration = offset_t - onset_t
        kind = "micro" if duration <= cfg.micro_max + 1e-9 else "macro"
        if peak < (cfg.macro_min_peak if kind == "macro" else cfg.min_peak):
            log.debug("drop %s %.2f-%.2f: peak %.2f against the anchor", kind, onset_t, offset_t, peak)
            return None
        if kind == "micro" and self._head_moved(onset_t - cfg.head_still_window,
                                                offset_t + cfg.head_still_window) > cfg.head_still:
            log.debug("drop micro %.2f-%.2f: the head moved", onset_t, offset_t)
            return None
        if kind == "micro" and set(groups) <= _JOLT_GROUPS and \
                self.blinks.overlaps(onset_t, onset_t, margin=cfg.blink_jolt):
            log.debug("drop micro %.2f-%.2f: the chin's jolt after a blink", onset_t, offset_t)
            return None
        confidence = max(0.0, float(1.0 - math.exp(-(peak - cfg.min_peak) / 2.0)))
        return Event(onset=onset_t, apex=apex_t, offset=offset_t, kind=kind,
                     subtle=len(groups) == 1, regions=groups, aus=aus, emotion=emotion,
                     confidence=confidence, track_id=self.track_id,
                     emotion_confidence=float(emotion_conf),
                     peak=float(np.nanmax(np.hypot(*vectors[apex_i, _NOT_REFERENCE].T))),
                     detected_at=now)
