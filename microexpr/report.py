"""Reports of an analysis: tables, a timeline plot and an annotated video.

:func:`write_reports` writes everything ``microexpr analyze`` produces into
one folder:

============== =====================================================
events.json    :meth:`Result.to_json` (``video``, ``events``, ``frame_times``, ``warnings``)
events.csv     :meth:`Result.to_csv`, one row per event
frames.parquet the per-frame table (``t``, ``frame``, ``track``, signals)
timeline.png   :func:`plot_timeline`
annotated.mp4  :func:`write_annotated_video` (optional)
============== =====================================================

Nothing here sends anything anywhere. Strings that come from a recording
(its file name) are never interpreted as markup: matplotlib titles are drawn
with math parsing off and terminal text is stripped of control characters.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from microexpr.errors import MicroexprError, ParameterError
from microexpr.events import EVENT_KINDS, Event, Result

__all__ = [
    "FACE_BOX_COLUMNS",
    "KIND_COLOURS",
    "OUTPUT_FILES",
    "ReportFiles",
    "active_events",
    "draw_overlay",
    "event_line",
    "plot_timeline",
    "printable",
    "summary_table",
    "write_annotated_video",
    "write_reports",
]

#: File name of each output of :func:`write_reports`.
OUTPUT_FILES = {
    "json": "events.json",
    "csv": "events.csv",
    "frames": "frames.parquet",
    "timeline": "timeline.png",
    "video": "annotated.mp4",
}

#: RGB colour of each event kind, 0-255 (the same in the plot and the video).
KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "micro": (214, 39, 40),
    "macro": (31, 119, 180),
    "blink": (127, 127, 127),
}
_OTHER_COLOUR = (148, 103, 189)

#: Per-frame table columns holding a face's box in input-frame pixels; the
#: annotated video draws it when all four are present.
FACE_BOX_COLUMNS = ("face_left", "face_top", "face_right", "face_bottom")

# Times in the result are frame times, rounded to microseconds in JSON.
_TIME_TOLERANCE = 1e-6


def printable(text: object) -> str:
    """``text`` with control characters written as escapes (safe for a terminal)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _colour(kind: str) -> tuple[int, int, int]:
    return KIND_COLOURS.get(kind, _OTHER_COLOUR)


def _top_aus(event: Event, count: int = 3) -> str:
    ranked = sorted(event.aus.items(), key=lambda item: (-item[1], item[0]))[:count]
    return " ".join(f"AU{au} {value:.2f}" for au, value in ranked) or "-"


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------
def summary_table(result: Result) -> str:
    """One line per event: track, kind, times, duration, regions, AUs, emotion.

    Parameters
    ----------
    result : Result

    Returns
    -------
    str
        A fixed-width table (times in seconds, duration in milliseconds), or
        ``"no events found"``.
    """
    if not result.events:
        return "no events found"
    header = (f"{'track':>5} {'kind':<5} {'onset_s':>8} {'apex_s':>8} {'offset_s':>8} {'dur_ms':>7} "
              f"{'regions':<22} {'top AUs':<29} {'emotion':<10} {'conf':>5}")
    lines = [header, "-" * len(header)]
    for event in result.events:
        regions = ",".join(event.regions) or "-"
        lines.append(
            f"{event.track_id:>5d} {event.kind:<5} {event.onset:>8.3f} {event.apex:>8.3f} "
            f"{event.offset:>8.3f} {event.duration_ms:>7.0f} {printable(regions):<22} "
            f"{_top_aus(event):<29} {printable(event.emotion or '-'):<10} {event.confidence:>5.2f}"
        )
    counts = {kind: sum(e.kind == kind for e in result.events) for kind in EVENT_KINDS}
    lines.append(f"{len(result.events)} events: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return "\n".join(lines)


def event_line(event: Event) -> str:
    """One line for a newly confirmed event (live mode).

    Shows onset-offset (s), track, kind, emotion, regions and the reporting
    delay ``detected_at - offset`` in seconds when known.
    """
    delay = "" if event.detected_at is None else f"  delay {event.detected_at - event.offset:5.2f} s"
    regions = ",".join(event.regions) or "-"
    return (f"{event.onset:8.3f}-{event.offset:8.3f} s  track {event.track_id}  {event.kind:<5}  "
            f"{printable(event.emotion or '-'):<10} {printable(regions)}{delay}")


# ---------------------------------------------------------------------------
# Timeline plot
# ---------------------------------------------------------------------------
def plot_timeline(
    result: Result,
    path: str | Path,
    *,
    title: str | None = None,
    truth: Sequence[Event] | None = None,
    dpi: int = 110,
) -> Path:
    """Plot each face's activity over time with its events as coloured spans.

    One panel per track: the ``activity`` column of the per-frame table
    (the strongest region's displacement over its threshold; 1 is where an
    event can start) against presentation time in seconds, and a span from
    onset to offset for every event of that track, coloured by kind and
    labelled with its emotion (or its kind when no emotion matched).

    Parameters
    ----------
    result : Result
    path : str or Path
        PNG file to write.
    title : str, optional
        Figure title; defaults to the video's file name. Drawn as plain text
        (no mathtext), whatever characters it holds.
    truth : sequence of Event, optional
        Known events (a synthetic clip's ground truth), drawn in every panel
        as a band along the bottom in their kinds' colours.
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    Path
        ``path``.
    """
    # The Agg canvas directly: no pyplot, so no GUI backend and no global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    path = Path(path)
    frames = result.to_frame()
    tracks: list[int] = sorted(
        {int(e.track_id) for e in result.events}
        | (set(int(v) for v in frames["track"].unique()) if "track" in frames else set())
    )
    times = np.asarray(result.frame_times, dtype=float)
    if times.size:
        t_start, t_end = float(times.min()), float(times.max())
    elif result.events:
        t_start, t_end = min(e.onset for e in result.events), max(e.offset for e in result.events)
    else:
        t_start, t_end = 0.0, 1.0
    if t_end <= t_start:
        t_end = t_start + 1.0
    # Room for the label of an event at the very end.
    margin = 0.01 * (t_end - t_start)

    n_panels = max(1, len(tracks))
    figure = Figure(figsize=(12, 1.2 + 2.2 * n_panels), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
    name = title if title is not None else (Path(result.video).name if result.video else "")
    figure.suptitle(f"microexpr timeline  {name}".rstrip(), parse_math=False)
    if not tracks:
        axes[0].text(0.5, 0.5, "no face was found", transform=axes[0].transAxes,
                     ha="center", va="center", parse_math=False)
        axes[0].set_yticks([])
    for ax, track in zip(axes, tracks):
        peak = 1.5
        if "track" in frames and "activity" in frames:
            rows = frames[frames["track"] == track].sort_values("t")
            activity = rows["activity"].to_numpy(dtype=float)
            ax.plot(rows["t"].to_numpy(dtype=float), activity, color="black", linewidth=0.9)
            if np.isfinite(activity).any():
                peak = max(peak, float(np.nanmax(activity)) * 1.1)
        ax.axhline(1.0, color="0.4", linestyle=":", linewidth=0.8)
        for event in result.events:
            if event.track_id != track:
                continue
            colour = np.asarray(_colour(event.kind)) / 255.0
            ax.axvspan(event.onset, max(event.offset, event.onset + 1e-3), color=colour, alpha=0.3, linewidth=0)
            ax.axvline(event.apex, color=colour, linewidth=0.8, linestyle="--")
            label = event.emotion or event.kind
            ax.text(event.apex, 0.97, label, transform=ax.get_xaxis_transform(), rotation=90,
                    ha="center", va="top", fontsize=8, color=colour * 0.7, parse_math=False,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.0})
        for known in truth or ():
            ax.axvspan(known.onset, max(known.offset, known.onset + 1e-3), ymin=0.0, ymax=0.05,
                       color=np.asarray(_colour(known.kind)) / 255.0, alpha=0.9, linewidth=0)
        ax.set_ylim(0.0, peak)
        ax.set_ylabel(f"track {track}\nactivity")
        ax.set_xlim(t_start - margin, t_end + margin)
        ax.grid(True, axis="x", color="0.9")
    axes[-1].set_xlabel("time (s)")
    handles = [Patch(color=np.asarray(_colour(kind)) / 255.0, alpha=0.5, label=kind) for kind in EVENT_KINDS]
    handles += [Line2D([], [], color="black", linewidth=0.9, label="activity"),
                Line2D([], [], color="0.4", linestyle=":", linewidth=0.8, label="start level")]
    if truth:
        handles.append(Patch(color="0.3", label="truth (bottom band)"))
    axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


# ---------------------------------------------------------------------------
# Video overlay
# ---------------------------------------------------------------------------
def active_events(events: Sequence[Event], t: float) -> list[Event]:
    """Events with ``onset <= t <= offset`` (seconds)."""
    return [e for e in events if e.onset - _TIME_TOLERANCE <= t <= e.offset + _TIME_TOLERANCE]


def _event_label(event: Event) -> str:
    regions = ",".join(event.regions) or "-"
    emotion = f" {event.emotion}" if event.emotion else ""
    return f"{event.kind}{emotion} [{regions}]"


def _label(image: np.ndarray, text: str, left: int, top: int, *, scale: float, thickness: int,
           background: tuple[int, int, int]) -> int:
    """White text on a filled box whose top-left corner is (left, top); returns the box height."""
    import cv2

    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    box_h = text_h + baseline + 6
    cv2.rectangle(image, (left, top), (left + text_w + 8, top + box_h), background, cv2.FILLED)
    cv2.putText(image, text, (left + 4, top + box_h - baseline - 3), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thickness, cv2.LINE_AA)
    return box_h


def draw_overlay(
    image: np.ndarray,
    t: float,
    events: Iterable[Event],
    *,
    face_boxes: Mapping[int, Sequence[float]] | None = None,
) -> np.ndarray:
    """Draw event labels, face boxes and the timestamp onto a copy of a frame.

    Parameters
    ----------
    image : uint8 array (H, W, 3)
        RGB frame.
    t : float
        Its presentation time, seconds (printed bottom left).
    events : iterable of Event
        The events to show (for a recorded video: those active at ``t``).
    face_boxes : dict of track id to (left, top, right, bottom), optional
        Face boxes in pixels. An event whose track has a box gets a
        rectangle in its kind's colour around the face with its label
        above it; the other events are listed top left.

    Returns
    -------
    uint8 array (H, W, 3)
        The annotated copy.
    """
    import cv2

    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ParameterError(f"image: expected uint8 RGB array of shape (H, W, 3), got {got}")
    out = np.ascontiguousarray(image.copy())
    height = out.shape[0]
    scale = max(0.4, min(1.2, height / 720.0))
    thickness = max(1, int(round(scale * 1.6)))
    (_, text_h), baseline = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    line_h = text_h + baseline + 6
    pad = 4
    boxes = face_boxes or {}

    style = {"scale": scale, "thickness": thickness}
    stack_y = pad
    on_face: dict[int, list[Event]] = {}
    for event in events:
        box = boxes.get(event.track_id)
        if box is not None and all(math.isfinite(float(v)) for v in box):
            on_face.setdefault(event.track_id, []).append(event)
            continue
        stack_y += _label(out, f"track {event.track_id}: {_event_label(event)}", pad, stack_y,
                          background=_colour(event.kind), **style) + 2
    for track_id, face_events in on_face.items():
        left, top, right, bottom = (int(round(float(v))) for v in boxes[track_id])
        for event in face_events:
            cv2.rectangle(out, (left, top), (right, bottom), _colour(event.kind), thickness + 1)
        # The face's labels sit above its box, or inside its top when the frame has no room above.
        needed = len(face_events) * (line_h + 1)
        label_y = top - needed if top - needed >= 0 else top + thickness + 2
        for event in face_events:
            label_y += _label(out, f"track {track_id}: {_event_label(event)}", max(0, left), label_y,
                              background=_colour(event.kind), **style) + 1
    _label(out, f"t = {t:.3f} s", pad, height - pad - line_h, background=(0, 0, 0), **style)
    return out


def _face_boxes_by_frame(result: Result) -> dict[int, dict[int, tuple[float, float, float, float]]]:
    boxes: dict[int, dict[int, tuple[float, float, float, float]]] = {}
    for row in result.frames:
        if all(name in row for name in FACE_BOX_COLUMNS) and "frame" in row and "track" in row:
            box = tuple(float(row[name]) for name in FACE_BOX_COLUMNS)
            boxes.setdefault(int(row["frame"]), {})[int(row["track"])] = box
    return boxes


def write_annotated_video(
    video: str | Path,
    result: Result,
    path: str | Path,
    *,
    progress: bool | Callable[[int, int | None], None] = False,
    preset: str = "veryfast",
    crf: int = 20,
) -> int:
    """Re-decode ``video`` and write it with :func:`draw_overlay` on every frame.

    Each output frame keeps its input frame's presentation time, so the
    annotated file lines up with the original (variable frame rate too).

    Parameters
    ----------
    video : str or Path
        The analysed video.
    result : Result
        Its analysis (events; face boxes from the per-frame table when the
        table has :data:`FACE_BOX_COLUMNS`).
    path : str or Path
        Output ``.mp4``.
    progress : bool or callable(frames_done, frames_total_or_None)
        ``True`` shows a tqdm bar.
    preset, crf : x264 speed preset and quality (see :class:`~microexpr.video.VideoWriter`).

    Returns
    -------
    int
        Frames written.

    Raises
    ------
    VideoError
        The video cannot be opened or the output cannot be written. A file
        that breaks off part-way is annotated up to where it decodes.
    """
    from microexpr.video import VideoTruncatedWarning, VideoWriter, open_video

    events = sorted(result.events, key=lambda e: (e.onset, e.track_id))
    boxes = _face_boxes_by_frame(result)
    reader = open_video(video)
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=reader.n_frames, unit="frame", desc="annotating")
    written = 0
    try:
        with VideoWriter(path, fps=reader.fps or 30.0, preset=preset, crf=crf) as writer, \
                warnings.catch_warnings():
            # The analysis already reported a damaged file.
            warnings.simplefilter("ignore", VideoTruncatedWarning)
            for frame in reader:
                shown = active_events(events, frame.t)
                writer.write(draw_overlay(frame.image, frame.t, shown, face_boxes=boxes.get(frame.index)), frame.t)
                written += 1
                if bar is not None:
                    bar.update(1)
                if callback is not None:
                    callback(written, reader.n_frames)
    finally:
        if bar is not None:
            bar.close()
        reader.close()
    return written


# ---------------------------------------------------------------------------
# Everything at once
# ---------------------------------------------------------------------------
@dataclass
class ReportFiles:
    """What :func:`write_reports` wrote.

    Attributes
    ----------
    written : dict of str to Path
        Output key (see :data:`OUTPUT_FILES`) to the file written.
    errors : list of str
        One message per output that could not be written.
    """

    written: dict[str, Path] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _frames_table(result: Result):
    import pandas as pd

    table = result.to_frame()
    if table.empty:
        table = pd.DataFrame({"t": pd.Series(dtype=float), "frame": pd.Series(dtype="int64"),
                              "track": pd.Series(dtype="int64")})
    return table


def write_reports(
    result: Result,
    out_dir: str | Path,
    *,
    video: str | Path | None = None,
    annotate: bool = True,
    progress: bool = False,
    truth: Sequence[Event] | None = None,
) -> ReportFiles:
    """Write every report of ``result`` into ``out_dir`` (created if needed).

    Parameters
    ----------
    result : Result
    out_dir : str or Path
    video : str or Path, optional
        The analysed file, re-decoded for ``annotated.mp4``.
    annotate : bool
        Write ``annotated.mp4`` (needs ``video``).
    progress : bool
        tqdm bar while annotating.
    truth : sequence of Event, optional
        Known events to show on the timeline (see :func:`plot_timeline`).

    Returns
    -------
    ReportFiles
        Each output is written independently: one that fails is reported in
        ``errors`` and the others are still written.
    """
    out_dir = Path(out_dir)
    files = ReportFiles()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        files.errors.append(f"cannot create output folder {out_dir}: {error}")
        return files

    writers: list[tuple[str, Callable[[Path], Any]]] = [
        ("json", result.to_json),
        ("csv", result.to_csv),
        ("frames", lambda p: _frames_table(result).to_parquet(p, index=False)),
        ("timeline", lambda p: plot_timeline(result, p, truth=truth)),
    ]
    if annotate and video is not None:
        writers.append(("video", lambda p: write_annotated_video(video, result, p, progress=progress)))
    for key, write in writers:
        target = out_dir / OUTPUT_FILES[key]
        try:
            write(target)
        except (OSError, MicroexprError, ValueError) as error:
            files.errors.append(f"{target.name} not written: {error}")
            continue
        if target.exists():
            files.written[key] = target
        else:
            files.errors.append(f"{target.name} not written (nothing to write)")
    return files
