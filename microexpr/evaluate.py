"""Score spotted expression intervals against ground truth (the MEGC rule).

Convention implemented here
---------------------------
- An interval is an inclusive frame range ``[onset_frame, offset_frame]``.
  ``IoU = inter / union`` with ``inter = max(0, min(e1, e2) - max(s1, s2) + 1)``
  and ``union = (e1 - s1 + 1) + (e2 - s2 + 1) - inter``. A one-frame interval
  (``start == end``) is valid and has length 1.
- A prediction is a true positive when its IoU with a ground-truth interval
  is >= 0.5. Matching is **one-to-one**: every truth and every prediction is
  matched at most once, greedily, highest IoU first; ties go to the pair with
  the earliest truth onset, then the earliest predicted onset. So one truth
  hit by two predictions gives 1 TP + 1 FP.
- TP, FP and FN are **summed over all videos**, then ``P = TP / (TP + FP)``,
  ``R = TP / (TP + FN)``, ``F1 = 2 P R / (P + R)`` (each 0 when undefined).
- Micro and macro are scored separately: a truth interval by its ``kind``, a
  prediction by its duration in seconds, ``offset - onset <= 0.5 s`` being
  micro. "Overall" matches all truths against all predictions in one pool, so
  a micro-length prediction that matches a macro truth counts for overall
  only.
- Predictions of kind ``"blink"`` are not expression predictions and are left
  out of every score.

Differences from the MEGC2020 baseline's scorer
-----------------------------------------------
The baseline's helper (``MDMD_results/result_helper.py`` in
HeyingGithub/Baseline-project-for-MEGC2020_spotting) counts precision as
"labels found / predictions", which equals the one-to-one count whenever no
two predictions hit one label, and it returns IoU 0 for one-frame intervals.
Neither is replicated here: a second prediction on one label is a false
positive, and one-frame intervals score normally.

Times and frames
----------------
Truth and predictions are stored in seconds. They become frame indices
through the video's ``frame_times`` (real presentation times): each time maps
to the frame whose presentation time is closest (the earlier one on a tie).
Explicit ``onset_frame`` / ``offset_frame`` fields are used when present.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microexpr.errors import ParameterError

__all__ = [
    "IOU_THRESHOLD",
    "MICRO_MAX_DURATION_S",
    "interval_iou",
    "match_intervals",
    "time_to_frame",
    "Scores",
    "VideoEvaluation",
    "Evaluation",
    "evaluate_videos",
    "evaluate_paths",
    "truth_groups",
    "group_table",
    "load_json",
]

#: A prediction matches a truth when their IoU is at least this.
IOU_THRESHOLD = 0.5
#: Longest duration, in seconds, still counted as a micro-expression.
MICRO_MAX_DURATION_S = 0.5
# Durations computed as offset - onset carry float rounding (1.6 - 1.1 =
# 0.5000000000000002); this keeps an intended 0.5 s on the micro side.
_DURATION_TOLERANCE_S = 1e-9

_EXPRESSION_KINDS = ("micro", "macro")
_PREDICTION_KINDS = ("micro", "macro", "blink")


# ---------------------------------------------------------------------------
# Interval arithmetic and matching
# ---------------------------------------------------------------------------
def _intersection_union(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    s1, e1 = a
    s2, e2 = b
    inter = max(0, min(e1, e2) - max(s1, s2) + 1)
    union = (e1 - s1 + 1) + (e2 - s2 + 1) - inter
    return inter, union


def _check_interval(interval: Sequence[int], name: str) -> tuple[int, int]:
    try:
        start, end = interval
    except (TypeError, ValueError):
        raise ParameterError(
            f"{name} must be a pair (onset_frame, offset_frame), got {interval!r}"
        ) from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, end)):
        raise ParameterError(f"{name} must hold integer frame indices, got {interval!r}")
    if end < start:
        raise ParameterError(f"{name} ends before it starts: {interval!r}")
    return int(start), int(end)


def interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Intersection over union of two inclusive frame intervals.

    Parameters
    ----------
    a, b : (int, int)
        ``(onset_frame, offset_frame)``, both ends included, ``offset >= onset``.

    Returns
    -------
    float
        In [0, 1]. ``interval_iou((10, 19), (15, 24)) == 5 / 15``;
        ``interval_iou((7, 7), (7, 7)) == 1.0``.
    """
    inter, union = _intersection_union(_check_interval(a, "a"), _check_interval(b, "b"))
    return inter / union


def match_intervals(
    truth: list[tuple[int, int]],
    pred: list[tuple[int, int]],
) -> list[tuple[int, int]]:
    """Match predictions to truths one-to-one (IoU >= 0.5, greedy).

    Parameters
    ----------
    truth, pred : list of (int, int)
        Inclusive frame intervals.

    Returns
    -------
    list of (truth_idx, pred_idx)
        The matched pairs, in the order they were chosen: highest IoU first,
        ties by earliest truth onset, then earliest predicted onset. Each
        index appears at most once.
    """
    truth = [_check_interval(t, f"truth[{i}]") for i, t in enumerate(truth)]
    pred = [_check_interval(p, f"pred[{j}]") for j, p in enumerate(pred)]
    candidates = []
    for i, t in enumerate(truth):
        for j, p in enumerate(pred):
            inter, union = _intersection_union(t, p)
            # Exact integer test of inter / union >= 0.5.
            if 2 * inter >= union:
                candidates.append((-inter / union, t[0], p[0], i, j))
    candidates.sort()
    used_truth: set[int] = set()
    used_pred: set[int] = set()
    pairs = []
    for _, _, _, i, j in candidates:
        if i not in used_truth and j not in used_pred:
            used_truth.add(i)
            used_pred.add(j)
            pairs.append((i, j))
    return pairs


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclass
class Scores:
    """Detection counts and the rates derived from them.

    Attributes
    ----------
    tp, fp, fn : int
        True positives, false positives, false negatives.
    precision, recall, f1 : float
        ``tp / (tp + fp)``, ``tp / (tp + fn)``, their harmonic mean; 0 when
        the denominator is 0.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> Scores:
        """Build scores from counts."""
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(tp=tp, fp=fp, fn=fn, precision=precision, recall=recall, f1=f1)

    def __add__(self, other: Scores) -> Scores:
        return Scores.from_counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass
class VideoEvaluation:
    """Scores of one video.

    Attributes
    ----------
    video : str
        Video stem.
    micro, macro, overall : Scores
        Counts for this video alone.
    matches : list of (int, int)
        Overall matches as (index into the truth's ``events``, index into the
        prediction's ``events``).
    n_emotion_matched, n_emotion_correct : int
        Matched pairs whose truth has an emotion, and how many of those the
        prediction named correctly.
    n_blinks, n_blinks_as_micro : int
        Truth blinks, and how many of them a micro prediction overlaps with
        IoU >= 0.5.
    """

    video: str
    micro: Scores
    macro: Scores
    overall: Scores
    matches: list[tuple[int, int]] = field(default_factory=list)
    n_emotion_matched: int = 0
    n_emotion_correct: int = 0
    n_blinks: int = 0
    n_blinks_as_micro: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "video": self.video,
            "micro": self.micro.to_dict(),
            "macro": self.macro.to_dict(),
            "overall": self.overall.to_dict(),
            "matches": [list(pair) for pair in self.matches],
            "n_emotion_matched": self.n_emotion_matched,
            "n_emotion_correct": self.n_emotion_correct,
            "n_blinks": self.n_blinks,
            "n_blinks_as_micro": self.n_blinks_as_micro,
        }


@dataclass
class Evaluation:
    """Spotting scores pooled over a set of videos.

    Attributes
    ----------
    micro, macro, overall : Scores
        Counts summed over all videos, then rates.
    emotion_accuracy : float or None
        Over overall matches whose truth names an emotion: fraction where the
        predicted emotion is the same (case-insensitive). None if there are
        no such matches.
    n_emotion_matched : int
        Number of matches that emotion accuracy is computed over.
    blinks_as_micro : float or None
        Fraction of truth blinks that a prediction of kind "micro" overlaps
        with IoU >= 0.5; None if the truth has no blinks.
    per_video : dict of str to VideoEvaluation
        Keyed by video stem.
    """

    micro: Scores
    macro: Scores
    overall: Scores
    emotion_accuracy: float | None
    n_emotion_matched: int
    blinks_as_micro: float | None
    per_video: dict[str, VideoEvaluation]

    @property
    def n_blinks(self) -> int:
        """Truth blinks over all videos."""
        return sum(v.n_blinks for v in self.per_video.values())

    @property
    def n_blinks_as_micro(self) -> int:
        """Truth blinks spotted as micro-expressions, over all videos."""
        return sum(v.n_blinks_as_micro for v in self.per_video.values())

    def subset(self, videos: Iterable[str]) -> Evaluation:
        """The evaluation of these videos alone (their counts pooled again)."""
        wanted = set(videos)
        unknown = sorted(wanted - set(self.per_video))
        if unknown:
            raise ParameterError(f"no such video in this evaluation: {unknown}")
        return _pooled({name: v for name, v in self.per_video.items() if name in wanted})

    def grouped(self, groups: Mapping[str, Sequence[str]]) -> dict[str, Evaluation]:
        """Each group of videos (label -> video stems, as :func:`truth_groups` gives) scored alone."""
        return {label: self.subset(videos) for label, videos in groups.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "micro": self.micro.to_dict(),
            "macro": self.macro.to_dict(),
            "overall": self.overall.to_dict(),
            "emotion_accuracy": self.emotion_accuracy,
            "n_emotion_matched": self.n_emotion_matched,
            "blinks_as_micro": self.blinks_as_micro,
            "n_blinks": self.n_blinks,
            "n_blinks_as_micro": self.n_blinks_as_micro,
            "n_videos": len(self.per_video),
            "per_video": {name: v.to_dict() for name, v in self.per_video.items()},
        }

    def summary(self) -> str:
        """Readable table of the pooled scores."""
        lines = [
            f"Spotting evaluation over {len(self.per_video)} video(s) "
            f"(IoU >= {IOU_THRESHOLD}, one-to-one matching, counts summed over videos)",
            f"{'':8s} {'TP':>6s} {'FP':>6s} {'FN':>6s} {'precision':>10s} {'recall':>8s} {'F1':>7s}",
        ]
        for name in ("micro", "macro", "overall"):
            s: Scores = getattr(self, name)
            lines.append(
                f"{name:8s} {s.tp:6d} {s.fp:6d} {s.fn:6d} "
                f"{s.precision:10.3f} {s.recall:8.3f} {s.f1:7.3f}"
            )
        if self.emotion_accuracy is None:
            lines.append("emotion accuracy: n/a (no matched expression with a labelled emotion)")
        else:
            lines.append(
                f"emotion accuracy: {self.emotion_accuracy:.3f} "
                f"over {self.n_emotion_matched} matched expression(s)"
            )
        if self.blinks_as_micro is None:
            lines.append("blinks spotted as micro: n/a (no blinks in the truth)")
        else:
            lines.append(
                f"blinks spotted as micro: {self.n_blinks_as_micro}/{self.n_blinks} "
                f"({self.blinks_as_micro:.3f})"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Parsing truth and prediction documents
# ---------------------------------------------------------------------------
@dataclass
class _Interval:
    index: int  # position in the document's list
    frames: tuple[int, int]
    duration_s: float | None
    kind: str | None
    emotion: str | None


@dataclass
class _Document:
    source: str
    video: str | None
    frame_times: np.ndarray | None
    n_frames: int | None
    raw: Mapping[str, Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_index(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _document(data: Any, source: str) -> _Document:
    if not isinstance(data, Mapping):
        raise ParameterError(f"{source}: expected a JSON object, got {type(data).__name__}")
    frame_times = None
    if data.get("frame_times") is not None:
        values = data["frame_times"]
        is_list = isinstance(values, Sequence) and not isinstance(values, str)
        if not is_list or not all(map(_is_number, values)):
            raise ParameterError(f"{source}: 'frame_times' must be a list of numbers (seconds)")
        frame_times = np.asarray(values, dtype=np.float64)
        if frame_times.size == 0:
            raise ParameterError(f"{source}: 'frame_times' is empty")
        if not np.all(np.isfinite(frame_times)):
            raise ParameterError(f"{source}: 'frame_times' holds non-finite values")
        if np.any(np.diff(frame_times) <= 0):
            first = int(np.argmax(np.diff(frame_times) <= 0))
            raise ParameterError(
                f"{source}: 'frame_times' must strictly increase; frame {first + 1} "
                f"({frame_times[first + 1]} s) is not after frame {first} ({frame_times[first]} s)"
            )
    n_frames = data.get("n_frames")
    if n_frames is not None and (not _is_index(n_frames) or n_frames < 0):
        raise ParameterError(f"{source}: 'n_frames' must be a non-negative integer, got {n_frames!r}")
    video = data.get("video")
    if video is not None and not isinstance(video, str):
        raise ParameterError(f"{source}: 'video' must be a string, got {video!r}")
    if "events" not in data:
        raise ParameterError(f"{source}: missing the 'events' list")
    return _Document(source, video, frame_times, n_frames, data)


def time_to_frame(t: float, frame_times: Sequence[float] | np.ndarray) -> int:
    """Index of the frame whose presentation time is closest to ``t``.

    Parameters
    ----------
    t : float
        Time in seconds.
    frame_times : sequence of float, shape (N,)
        Presentation time of every frame in seconds, strictly increasing.

    Returns
    -------
    int
        In [0, N - 1]; the earlier frame on an exact tie, the first or last
        frame for times outside the video.
    """
    times = np.asarray(frame_times, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise ParameterError(f"frame_times must be a non-empty 1-D sequence, got shape {times.shape}")
    return _nearest_frame(times, float(t))


def _nearest_frame(frame_times: np.ndarray, t: float) -> int:
    k = int(np.searchsorted(frame_times, t))
    if k == 0:
        return 0
    if k >= len(frame_times):
        return len(frame_times) - 1
    return k - 1 if t - frame_times[k - 1] <= frame_times[k] - t else k


def _parse_intervals(
    items: Any,
    *,
    what: str,
    doc: _Document,
    frame_times: np.ndarray | None,
    allowed_kinds: tuple[str, ...] | None,
) -> list[_Interval]:
    source = doc.source
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ParameterError(f"{source}: '{what}' must be a list, got {type(items).__name__}")
    n_frames = doc.n_frames if doc.n_frames is not None else (
        len(frame_times) if frame_times is not None else None
    )
    intervals = []
    for index, item in enumerate(items):
        where = f"{source}: {what}[{index}]"
        if not isinstance(item, Mapping):
            raise ParameterError(f"{where} must be an object, got {type(item).__name__}")
        has_seconds = "onset" in item or "offset" in item
        if has_seconds:
            for key in ("onset", "offset"):
                value = item.get(key)
                if not _is_number(value) or not math.isfinite(value):
                    raise ParameterError(
                        f"{where}: '{key}' must be a finite number of seconds, got {value!r}"
                    )
            onset_s, offset_s = float(item["onset"]), float(item["offset"])
            if offset_s < onset_s:
                raise ParameterError(f"{where}: offset {offset_s} s is before onset {onset_s} s")
            duration_s: float | None = offset_s - onset_s
        else:
            duration_s = None

        if item.get("onset_frame") is not None or item.get("offset_frame") is not None:
            onset_f, offset_f = item.get("onset_frame"), item.get("offset_frame")
            if not (_is_index(onset_f) and _is_index(offset_f)):
                raise ParameterError(
                    f"{where}: 'onset_frame' and 'offset_frame' must both be integers, "
                    f"got {onset_f!r} and {offset_f!r}"
                )
            onset_f, offset_f = int(onset_f), int(offset_f)
            if onset_f < 0 or offset_f < onset_f:
                raise ParameterError(
                    f"{where}: frame interval [{onset_f}, {offset_f}] must satisfy "
                    "0 <= onset_frame <= offset_frame"
                )
            if n_frames is not None and offset_f >= n_frames:
                raise ParameterError(
                    f"{where}: offset_frame {offset_f} is past the last frame ({n_frames - 1})"
                )
            if duration_s is None and frame_times is not None and offset_f < len(frame_times):
                duration_s = float(frame_times[offset_f] - frame_times[onset_f])
        elif has_seconds:
            if frame_times is None:
                raise ParameterError(
                    f"{where}: times in seconds need 'frame_times' to become frames, "
                    "and neither file provides them (or give onset_frame/offset_frame)"
                )
            onset_f = _nearest_frame(frame_times, onset_s)
            offset_f = _nearest_frame(frame_times, offset_s)
        else:
            raise ParameterError(
                f"{where}: needs 'onset' and 'offset' (seconds) or 'onset_frame' and 'offset_frame'"
            )

        kind = item.get("kind")
        if allowed_kinds is not None and kind is not None and kind not in allowed_kinds:
            raise ParameterError(f"{where}: 'kind' must be one of {list(allowed_kinds)}, got {kind!r}")
        emotion = item.get("emotion")
        if emotion is not None and not isinstance(emotion, str):
            raise ParameterError(f"{where}: 'emotion' must be a string or null, got {emotion!r}")
        intervals.append(_Interval(index, (onset_f, offset_f), duration_s, kind, emotion))
    return intervals


def _is_micro_duration(interval: _Interval, where: str) -> bool:
    if interval.duration_s is None:
        raise ParameterError(
            f"{where}: cannot tell micro from macro: no 'kind', and no times in seconds "
            "(onset/offset or frame_times) to measure the duration"
        )
    return interval.duration_s <= MICRO_MAX_DURATION_S + _DURATION_TOLERANCE_S


def _same_emotion(truth: str, pred: str | None) -> bool:
    return pred is not None and pred.strip().lower() == truth.strip().lower()


def _video_stem(name: str) -> str:
    return Path(name).stem


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------
def _score(truth: list[_Interval], pred: list[_Interval]) -> tuple[Scores, list[tuple[int, int]]]:
    pairs = match_intervals([t.frames for t in truth], [p.frames for p in pred])
    tp = len(pairs)
    return Scores.from_counts(tp, len(pred) - tp, len(truth) - tp), pairs


def _evaluate_one(truth_doc: _Document, pred_doc: _Document, name: str) -> VideoEvaluation:
    truth_times = truth_doc.frame_times
    truth_events = _parse_intervals(
        truth_doc.raw["events"], what="events", doc=truth_doc,
        frame_times=truth_times, allowed_kinds=_EXPRESSION_KINDS,
    )
    blinks = _parse_intervals(
        truth_doc.raw.get("blinks") or [], what="blinks", doc=truth_doc,
        frame_times=truth_times, allowed_kinds=None,
    )
    pred_times = pred_doc.frame_times if pred_doc.frame_times is not None else truth_times
    pred_events = _parse_intervals(
        pred_doc.raw["events"], what="events", doc=pred_doc,
        frame_times=pred_times, allowed_kinds=_PREDICTION_KINDS,
    )

    truth_micro, truth_macro = [], []
    for t in truth_events:
        kind = t.kind
        if kind is None:
            where = f"{truth_doc.source}: events[{t.index}]"
            kind = "micro" if _is_micro_duration(t, where) else "macro"
        (truth_micro if kind == "micro" else truth_macro).append(t)

    expressions = [p for p in pred_events if p.kind != "blink"]
    pred_micro, pred_macro = [], []
    for p in expressions:
        is_micro = _is_micro_duration(p, f"{pred_doc.source}: events[{p.index}]")
        (pred_micro if is_micro else pred_macro).append(p)

    micro, _ = _score(truth_micro, pred_micro)
    macro, _ = _score(truth_macro, pred_macro)
    overall, pairs = _score(truth_events, expressions)

    n_emotion_matched = n_emotion_correct = 0
    matches = []
    for i, j in pairs:
        t, p = truth_events[i], expressions[j]
        matches.append((t.index, p.index))
        if t.emotion:
            n_emotion_matched += 1
            n_emotion_correct += _same_emotion(t.emotion, p.emotion)

    # A prediction without a kind field is labelled by its duration.
    micro_by_duration = {id(p) for p in pred_micro}
    labelled_micro = [
        p.frames for p in expressions
        if p.kind == "micro" or (p.kind is None and id(p) in micro_by_duration)
    ]
    n_blinks_as_micro = sum(
        any(interval_iou(b.frames, frames) >= IOU_THRESHOLD for frames in labelled_micro)
        for b in blinks
    )
    return VideoEvaluation(
        video=name,
        micro=micro,
        macro=macro,
        overall=overall,
        matches=matches,
        n_emotion_matched=n_emotion_matched,
        n_emotion_correct=n_emotion_correct,
        n_blinks=len(blinks),
        n_blinks_as_micro=n_blinks_as_micro,
    )


def _evaluate_documents(pairs: Iterable[tuple[_Document, _Document]]) -> Evaluation:
    per_video: dict[str, VideoEvaluation] = {}
    for position, (truth_doc, pred_doc) in enumerate(pairs):
        name = _video_stem(truth_doc.video) if truth_doc.video else f"video{position}"
        if name in per_video:
            raise ParameterError(f"{truth_doc.source}: video {name!r} appears twice in the truth")
        if pred_doc.video and truth_doc.video and _video_stem(pred_doc.video) != name:
            warnings.warn(
                f"{pred_doc.source} is for video {pred_doc.video!r} but is scored against "
                f"the truth of {truth_doc.video!r}",
                UserWarning,
                stacklevel=3,
            )
        per_video[name] = _evaluate_one(truth_doc, pred_doc, name)

    return _pooled(per_video)


def _pooled(per_video: dict[str, VideoEvaluation]) -> Evaluation:
    """The videos' counts summed, then the rates."""
    zero = Scores.from_counts(0, 0, 0)
    micro = sum((v.micro for v in per_video.values()), zero)
    macro = sum((v.macro for v in per_video.values()), zero)
    overall = sum((v.overall for v in per_video.values()), zero)
    n_emotion_matched = sum(v.n_emotion_matched for v in per_video.values())
    n_emotion_correct = sum(v.n_emotion_correct for v in per_video.values())
    n_blinks = sum(v.n_blinks for v in per_video.values())
    n_blinks_as_micro = sum(v.n_blinks_as_micro for v in per_video.values())
    return Evaluation(
        micro=micro,
        macro=macro,
        overall=overall,
        emotion_accuracy=n_emotion_correct / n_emotion_matched if n_emotion_matched else None,
        n_emotion_matched=n_emotion_matched,
        blinks_as_micro=n_blinks_as_micro / n_blinks if n_blinks else None,
        per_video=per_video,
    )


def evaluate_videos(pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> Evaluation:
    """Score predictions against truth, one (truth, prediction) pair per video.

    Parameters
    ----------
    pairs : iterable of (dict, dict)
        A truth document (as written by ``microexpr.synth``: ``video``,
        ``frame_times``, ``events`` with onset/offset in seconds and
        optionally ``*_frame``, ``kind``, ``emotion``; ``blinks``) and a
        prediction document (as written by ``microexpr analyze``: ``events``
        with onset/offset in seconds, ``kind``, ``emotion``; ``frame_times``
        optional, the truth's are used when absent).

    Returns
    -------
    Evaluation
        Counts summed over the videos; see the module docstring for the rule.

    Raises
    ------
    ParameterError
        A document is malformed (the message names the video and the field).
    """
    documents = []
    for position, (truth, pred) in enumerate(pairs):
        label = truth.get("video") if isinstance(truth, Mapping) else None
        label = label if isinstance(label, str) else f"#{position}"
        documents.append(
            (_document(truth, f"truth for {label}"), _document(pred, f"predictions for {label}"))
        )
    return _evaluate_documents(documents)


# ---------------------------------------------------------------------------
# Files and folders
# ---------------------------------------------------------------------------
def load_json(path: str | Path) -> Any:
    """Read a JSON file, turning every failure into a ParameterError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ParameterError(f"{path}: cannot be read ({error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ParameterError(f"{path}: not valid JSON ({error})") from None


_TRUTH_SUFFIX = ".truth.json"
_EVENTS_SUFFIX = ".events.json"


def _strip_suffix(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) else Path(name).stem


def _truth_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.glob(f"*{_TRUTH_SUFFIX}"))
        if not files:
            raise ParameterError(f"{path}: folder holds no *{_TRUTH_SUFFIX} files")
        return files
    raise ParameterError(f"{path}: truth file or folder not found")


def _prediction_files(path: Path) -> dict[str, Path]:
    """Map video stem to events file: <stem>/events.json or <stem>.events.json."""
    found: dict[str, Path] = {}

    def add(stem: str, file: Path) -> None:
        if stem in found:
            raise ParameterError(
                f"{path}: two prediction files for video {stem!r}: {found[stem]} and {file}"
            )
        found[stem] = file

    for file in sorted(path.glob(f"*{_EVENTS_SUFFIX}")):
        add(_strip_suffix(file.name, _EVENTS_SUFFIX), file)
    for file in sorted(path.glob("*/events.json")):
        add(file.parent.name, file)
    if (path / "events.json").is_file():
        video = load_json(path / "events.json")
        stem = video.get("video") if isinstance(video, Mapping) else None
        add(_video_stem(stem) if isinstance(stem, str) else path.name, path / "events.json")
    if not found:
        raise ParameterError(
            f"{path}: folder holds no predictions (expected <video stem>/events.json "
            f"or <video stem>{_EVENTS_SUFFIX})"
        )
    return found


def _truth_stem(file: Path, doc: _Document) -> str:
    return _video_stem(doc.video) if doc.video else _strip_suffix(file.name, _TRUTH_SUFFIX)


def group_table(parts: Mapping[str, Evaluation]) -> str:
    """One line of pooled scores per group (:meth:`Evaluation.grouped`), F1 with TP/FP/FN in brackets."""
    def cell(s: Scores) -> str:
        return f"{s.f1:.3f} ({s.tp}/{s.fp}/{s.fn})"

    width = max([len(label) for label in parts] + [5])
    lines = [f"{'group':{width}s} {'videos':>6s}  {'micro F1':18s} {'macro F1':18s} {'overall F1':18s} "
             f"{'blinks as micro':>15s} {'emotion':>8s}"]
    for label, part in parts.items():
        blinks = f"{part.n_blinks_as_micro}/{part.n_blinks}"
        emotion = "n/a" if part.emotion_accuracy is None else f"{part.emotion_accuracy:.3f}"
        lines.append(f"{label:{width}s} {len(part.per_video):6d}  {cell(part.micro):18s} {cell(part.macro):18s} "
                     f"{cell(part.overall):18s} {blinks:>15s} {emotion:>8s}")
    return "\n".join(lines)


def _field_value(data: Mapping[str, Any], key: str) -> Any:
    """A truth document's ``key``, or its synthesis spec's (``microexpr.synth`` keeps
    the clip's settings, such as ``crf``, under ``spec``); None when neither has it."""
    if key in data:
        return data[key]
    spec = data.get("spec")
    return spec.get(key) if isinstance(spec, Mapping) else None


def _group_value(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def truth_groups(truth: str | Path, keys: Sequence[str]) -> dict[str, list[str]]:
    """Videos grouped by the values of truth fields, e.g. ``("fps", "crf")``.

    Parameters
    ----------
    truth : str or Path
        A ``*.truth.json`` file, or a folder of them.
    keys : sequence of str
        Fields of each truth document, looked up at its top level and then in
        its ``spec`` (the settings ``microexpr.synth`` rendered it with).

    Returns
    -------
    dict of str to list of str
        Label (``"fps=200 crf=28"``; ``?`` for a missing field) to the video
        stems with those values, in the order of the values (numbers by size).
        :meth:`Evaluation.subset` scores each group.
    """
    if not keys:
        raise ParameterError("name at least one truth field to group videos by")
    rows = []
    for file in _truth_files(Path(truth)):
        doc = _document(load_json(file), str(file))
        values = tuple(_field_value(doc.raw, key) for key in keys)
        rows.append((values, _truth_stem(file, doc)))

    def order(values: tuple[Any, ...]) -> tuple[tuple[int, float, str], ...]:
        return tuple((0, float(v), "") if _is_number(v) else (1, 0.0, _group_value(v)) for v in values)

    for k, key in enumerate(keys):
        if all(values[k] is None for values, _ in rows):
            warnings.warn(f"no truth file has a field {key!r}: every video is grouped under {key}=?",
                          UserWarning, stacklevel=2)
    groups: dict[str, list[str]] = {}
    for values, stem in sorted(rows, key=lambda row: (order(row[0]), row[1])):
        label = " ".join(f"{key}={_group_value(value)}" for key, value in zip(keys, values))
        groups.setdefault(label, []).append(stem)
    return groups


def evaluate_paths(truth: str | Path, pred: str | Path) -> Evaluation:
    """Score prediction files against truth files, matched by video stem.

    Parameters
    ----------
    truth : str or Path
        A ``*.truth.json`` file, or a folder of them.
    pred : str or Path
        An ``events.json`` file, or a folder holding ``<video stem>/events.json``
        or ``<video stem>.events.json`` files.

    Returns
    -------
    Evaluation

    Raises
    ------
    ParameterError
        Missing or malformed files, or no prediction matches any truth.

    Notes
    -----
    A single truth file and a single prediction file are scored against each
    other. With folders, a truth video without predictions is scored as if
    nothing was spotted (all its events are misses) and a warning names it;
    predictions for videos without truth are ignored with a warning.
    """
    truth, pred = Path(truth), Path(pred)
    truth_docs = [(file, _document(load_json(file), str(file))) for file in _truth_files(truth)]
    if not pred.exists():
        raise ParameterError(f"{pred}: prediction file or folder not found")

    if pred.is_file() and len(truth_docs) == 1:
        return _evaluate_documents([(truth_docs[0][1], _document(load_json(pred), str(pred)))])

    if pred.is_file():
        doc = _document(load_json(pred), str(pred))
        if doc.video:
            stem = _video_stem(doc.video)
        elif pred.name == "events.json":
            stem = pred.parent.name
        else:
            stem = _strip_suffix(pred.name, _EVENTS_SUFFIX)
        pred_docs = {stem: doc}
    else:
        pred_docs = {
            stem: _document(load_json(file), str(file)) for stem, file in _prediction_files(pred).items()
        }

    pairs = []
    missing = []
    truth_stems = set()
    for file, doc in truth_docs:
        stem = _truth_stem(file, doc)
        truth_stems.add(stem)
        if stem in pred_docs:
            pairs.append((doc, pred_docs[stem]))
        else:
            missing.append(stem)
            nothing_spotted = {"video": doc.video, "events": []}
            pairs.append((doc, _document(nothing_spotted, f"{pred} (no file for {stem})")))
    unmatched = sorted(set(pred_docs) - truth_stems)
    if len(missing) == len(truth_docs):
        raise ParameterError(
            f"no prediction in {pred} matches a truth video in {truth} "
            f"(truth videos: {sorted(truth_stems)}; predictions: {sorted(pred_docs)})"
        )
    if missing:
        warnings.warn(
            f"no predictions for {len(missing)} truth video(s), scored as nothing spotted: {missing}",
            UserWarning,
            stacklevel=2,
        )
    if unmatched:
        warnings.warn(
            f"predictions for {len(unmatched)} video(s) without truth were ignored: {unmatched}",
            UserWarning,
            stacklevel=2,
        )
    return _evaluate_documents(pairs)
