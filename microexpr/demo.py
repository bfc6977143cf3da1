"""``microexpr demo``: the whole job on a clip whose answers are known.

A synthetic clip is rendered from the astronaut photo that scikit-image
ships (micro and macro expressions, blinks, speech, head motion; fixed
seed), analysed exactly like ``microexpr analyze`` does, and the events are
scored against the clip's ground truth with the MEGC rule. Nothing is
downloaded; only the face landmark model must be installed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import TextIO

from microexpr.errors import MicroexprError, ModelNotFoundError, ParameterError
from microexpr.events import Event
from microexpr.synth import ClipSpec, Truth

__all__ = ["DEMO_CLIP", "demo_spec", "run_demo", "truth_events"]

#: File name of the synthetic clip inside the demo folder.
DEMO_CLIP = "demo.mp4"


def demo_spec(*, duration: float = 12.0, fps: float = 30.0) -> ClipSpec:
    """The demo clip: two micro, two macro and one region-only event.

    Parameters
    ----------
    duration : float
        Seconds. Clips under 10 s hold one micro and one macro event, and
        the region-only event needs 8 s.
    fps : float
        Frames per second.

    Returns
    -------
    ClipSpec
        640 x 480, seed 2024, with blinks, speech, head motion and sensor
        noise; no lighting changes.
    """
    pairs = 2 if duration >= 10.0 else 1
    return ClipSpec(fps=fps, duration=duration, size=(640, 480), seed=2024, n_micro=pairs, n_macro=pairs,
                    n_subtle=1 if duration >= 8.0 else 0, blinks=True, speech=True, head_motion=True,
                    noise=True, illumination=False)


def truth_events(truth: Truth) -> list[Event]:
    """A synthetic clip's expressions and blinks as :class:`Event` s (for plots).

    Parameters
    ----------
    truth : Truth

    Returns
    -------
    list of Event
        Sorted by onset; blinks have kind ``"blink"``.
    """
    events = [Event(onset=e.onset, apex=e.apex, offset=e.offset, kind=e.kind, subtle=e.subtle,
                    regions=list(e.regions), aus=dict(e.aus), emotion=e.emotion) for e in truth.events]
    events += [Event(onset=onset, apex=(onset + offset) / 2, offset=offset, kind="blink", regions=["eyes"], subtle=True)
               for onset, offset in truth.blinks]
    return sorted(events, key=lambda e: e.onset)


def _truth_table(truth: Truth) -> str:
    lines = [f"{'kind':<5} {'onset_s':>8} {'offset_s':>8} {'dur_ms':>7} {'emotion':<10} regions"]
    for event in truth.events:
        lines.append(f"{event.kind:<5} {event.onset:>8.3f} {event.offset:>8.3f} "
                     f"{1000 * (event.offset - event.onset):>7.0f} {event.emotion:<10} "
                     f"{','.join(event.regions)}{' (subtle)' if event.subtle else ''}")
    for onset, offset in truth.blinks:
        lines.append(f"{'blink':<5} {onset:>8.3f} {offset:>8.3f} {1000 * (offset - onset):>7.0f}")
    return "\n".join(lines)


def run_demo(
    out_dir: str | Path = "microexpr-demo",
    *,
    duration: float = 12.0,
    fps: float = 30.0,
    annotate: bool = True,
    progress: bool = True,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Render, analyse and score the demo clip.

    Parameters
    ----------
    out_dir : str or Path
        Receives ``demo.mp4``, ``demo.truth.json``, the reports of
        ``microexpr analyze`` and ``evaluation.json``.
    duration, fps : float
        Clip length (s) and frame rate.
    annotate : bool
        Write ``annotated.mp4``.
    progress : bool
        tqdm bars on stderr.
    stdout, stderr : text streams, optional

    Returns
    -------
    int
        Exit status: 0 done, 1 no face model / scikit-image / unwritable
        folder, 2 a duration or rate the clip cannot have, else what the
        analysis returned.
    """
    from microexpr.cli import run_analyze
    from microexpr.evaluate import evaluate_paths
    from microexpr.landmarks import find_face_model
    from microexpr.report import printable
    from microexpr.synth import write_clip

    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    out_dir = Path(out_dir)
    try:
        find_face_model()
    except ModelNotFoundError as error:
        print(f"microexpr demo: {error}", file=stderr)
        return 1
    if importlib.util.find_spec("skimage") is None:
        print("microexpr demo: the demo face comes from scikit-image: pip install scikit-image", file=stderr)
        return 1
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"microexpr demo: cannot create {printable(out_dir)}: {error}", file=stderr)
        return 1

    video = out_dir / DEMO_CLIP
    print(f"rendering a {duration:g} s {fps:g} fps synthetic clip to {printable(video)} ...",
          file=stdout, flush=True)
    try:
        truth = write_clip(video, demo_spec(duration=duration, fps=fps))
    except ParameterError as error:
        print(f"microexpr demo: {error}", file=stderr)
        return 2
    except (MicroexprError, OSError) as error:
        print(f"microexpr demo: {error}", file=stderr)
        return 1
    truth_path = video.with_name(video.stem + ".truth.json")
    print("planted in the clip:", file=stdout)
    print(_truth_table(truth), file=stdout)
    print(file=stdout, flush=True)

    status = run_analyze(video, out_dir, mode="offline", annotate=annotate, progress=progress,
                         stdout=stdout, stderr=stderr, truth=truth_events(truth))
    events_path = out_dir / "events.json"
    if not events_path.is_file():
        return status or 1
    try:
        evaluation = evaluate_paths(truth_path, events_path)
    except MicroexprError as error:
        print(f"microexpr demo: scoring failed: {error}", file=stderr)
        return 1
    print(file=stdout)
    print(evaluation.summary(), file=stdout)
    try:
        (out_dir / "evaluation.json").write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n",
                                                 encoding="utf-8")
    except OSError as error:
        print(f"microexpr demo: evaluation.json not written: {error}", file=stderr)
        status = status or 1
    print(f"scores in {printable(out_dir / 'evaluation.json')}; open {printable(out_dir / 'timeline.png')}"
          + (f" and {printable(out_dir / 'annotated.mp4')}" if annotate else ""), file=stdout)
    return status
