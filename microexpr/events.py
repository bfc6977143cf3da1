"""What the spotter reports: events and the per-frame signal table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["EVENT_KINDS", "EMOTIONS", "Event", "Result"]

EVENT_KINDS = ("micro", "macro", "blink")
EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")


@dataclass
class Event:
    """One spotted facial movement.

    Attributes
    ----------
    onset, apex, offset : float
        Presentation times in seconds of the first moving frame, the peak and
        the frame where the face is back to neutral.
    duration : float
        ``offset - onset``, seconds.
    kind : {"micro", "macro", "blink"}
        ``micro`` lasts at most 0.5 s, ``macro`` longer; ``blink`` is an
        eyelid closure and never an expression.
    subtle : bool
        The movement stayed within one face region group.
    regions : list of str
        Face regions that moved (see :data:`microexpr.regions.REGION_NAMES`).
    aus : dict of int to float
        Action-unit intensity estimates in [0, 1].
    emotion : str or None
        EMFACS prototype that matches the AUs, ``None`` when none does.
    confidence : float
        Spotting confidence in [0, 1] (peak signal over threshold, squashed).
    track_id : int
        Stable id of the face the event belongs to.
    emotion_confidence : float
        How well the AUs match the chosen prototype, in [0, 1].
    peak : float
        Peak displacement at the apex, pixels of the aligned face crop.
    detected_at : float or None
        Presentation time of the frame whose arrival confirmed the event
        (streaming); ``detected_at - offset`` is the reporting delay.
    """

    onset: float
    apex: float
    offset: float
    kind: str
    subtle: bool = False
    regions: list[str] = field(default_factory=list)
    aus: dict[int, float] = field(default_factory=dict)
    emotion: str | None = None
    confidence: float = 0.0
    track_id: int = 0
    emotion_confidence: float = 0.0
    peak: float = 0.0
    detected_at: float | None = None

    @property
    def duration(self) -> float:
        return self.offset - self.onset

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.duration

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (AU keys as strings, floats rounded to microseconds)."""
        d = asdict(self)
        d["duration"] = self.duration
        d["aus"] = {str(k): round(float(v), 4) for k, v in sorted(self.aus.items())}
        for key in ("onset", "apex", "offset", "duration", "detected_at"):
            if d[key] is not None:
                d[key] = round(float(d[key]), 6)
        for key in ("confidence", "emotion_confidence", "peak"):
            d[key] = round(float(d[key]), 4)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Event":
        names = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["aus"] = {int(k): float(v) for k, v in d.get("aus", {}).items()}
        return cls(**kwargs)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


@dataclass
class Result:
    """Everything one analysis produced.

    Attributes
    ----------
    events : list of Event
        Sorted by onset.
    frames : list of dict
        One row per analysed face per frame: ``t`` (presentation time, s),
        ``frame`` (decode index), ``track``, then the per-region signals.
    video : str or None
        The analysed file, when there was one.
    warnings : list of str
        What went wrong along the way (no face, truncated file, ...).
    """

    events: list[Event] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    video: str | None = None
    warnings: list[str] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)

    def events_frame(self):
        """Events as a pandas DataFrame (one row per event)."""
        import pandas as pd

        rows = [e.to_dict() for e in self.events]
        columns = list(Event.__dataclass_fields__) + ["duration"]
        return pd.DataFrame(rows, columns=columns)

    def to_frame(self):
        """The per-frame table as a pandas DataFrame keyed by real timestamps."""
        import pandas as pd

        return pd.DataFrame(self.frames)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "events": [e.to_dict() for e in self.events],
            "frame_times": [round(float(t), 6) for t in self.frame_times],
            "warnings": list(self.warnings),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """``{"video", "events": [...], "frame_times", "warnings"}``; written when ``path`` is given."""
        text = json.dumps(self.to_dict(), indent=2, default=_json_default, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_csv(self, path: str | Path) -> None:
        """Events as CSV (AUs as ``12:0.80;6:0.40``, regions ``;``-joined)."""
        frame = self.events_frame()
        if len(frame):
            frame["aus"] = [";".join(f"{k}:{v}" for k, v in e["aus"].items()) for e in
                            (ev.to_dict() for ev in self.events)]
            frame["regions"] = [";".join(e.regions) for e in self.events]
        frame.to_csv(path, index=False)

    def to_parquet(self, path: str | Path) -> None:
        """The per-frame table as Parquet."""
        self.to_frame().to_parquet(path, index=False)

    @classmethod
    def from_json(cls, path: str | Path) -> "Result":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            events=[Event.from_dict(e) for e in data.get("events", [])],
            video=data.get("video"),
            warnings=list(data.get("warnings", [])),
            frame_times=list(data.get("frame_times", [])),
        )

    def extend(self, events: Iterable[Event]) -> None:
        self.events.extend(events)
        self.events.sort(key=lambda e: (e.onset, e.track_id))

