"""The ``microexpr`` command: one entry point, a subcommand per job.

Exit status: 0 done, 1 bad input (missing or unreadable video, no camera,
no face model, an output that could not be written), 2 usage error,
130 interrupted (what was analysed before Ctrl-C is still written).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from microexpr.errors import MicroexprError, ModelNotFoundError, ParameterError, VideoError

if TYPE_CHECKING:
    from microexpr.events import Event

__all__ = ["build_parser", "display_available", "main", "run_analyze"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# ---------------------------------------------------------------------------
# Option types
# ---------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _frame_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = None
    if not sep or size is None:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return size


def _err(stream: TextIO, message: str) -> None:
    from microexpr.report import printable

    print(f"microexpr: error: {printable(message)}", file=stream)


# ---------------------------------------------------------------------------
# analyze
# ---------------------------------------------------------------------------
def run_analyze(
    video: str | Path,
    out_dir: str | Path,
    *,
    mode: str = "offline",
    annotate: bool = True,
    progress: bool = True,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    truth: Sequence[Event] | None = None,
    **options: Any,
) -> int:
    """Analyse one video and write every report into ``out_dir``.

    Parameters
    ----------
    video : str or Path
    out_dir : str or Path
        Receives ``events.json``, ``events.csv``, ``frames.parquet``,
        ``timeline.png`` and (``annotate``) ``annotated.mp4``.
    mode : {"offline", "streaming"}
    annotate : bool
        Write the annotated video.
    progress : bool
        tqdm bars on stderr.
    stdout, stderr : text streams, optional
        Where the summary and the messages go (default: the process's).
    truth : sequence of Event, optional
        Known events to draw on the timeline.
    **options
        :class:`microexpr.pipeline.Analyzer` options.

    Returns
    -------
    int
        Exit status: 0 done (warnings included), 1 bad input or an output
        not written, 2 invalid option, 130 interrupted.
    """
    from microexpr.pipeline import analyze
    from microexpr.report import printable, summary_table, write_reports

    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    video, out_dir = Path(video), Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _err(stderr, f"cannot create output folder {out_dir}: {error}")
        return EXIT_BAD_INPUT
    try:
        result = analyze(video, progress=progress, mode=mode, **options)
    except ParameterError as error:
        _err(stderr, f"invalid option: {error}")
        return EXIT_USAGE
    except (VideoError, ModelNotFoundError, MicroexprError) as error:
        _err(stderr, str(error))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err(stderr, "interrupted; nothing was written")
        return EXIT_INTERRUPTED

    files = write_reports(result, out_dir, video=video, annotate=annotate, progress=progress, truth=truth)
    print(f"{printable(video.name)}: {len(result.frame_times)} frames analysed", file=stdout)
    print(summary_table(result), file=stdout)
    for message in result.warnings:
        print(f"warning: {printable(message)}", file=stderr)
    for message in files.errors:
        _err(stderr, message)
    if files.written:
        names = ", ".join(path.name for path in files.written.values())
        print(f"wrote {names} to {printable(out_dir)}", file=stdout)
    if any(message.startswith("interrupted") for message in result.warnings):
        return EXIT_INTERRUPTED  # the partial result above was still written
    return EXIT_BAD_INPUT if files.errors else EXIT_OK


def _analyzer_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"max_faces": args.max_faces}
    if getattr(args, "preset", None) is not None:
        options["flow_preset"] = args.preset
    if args.model is not None:
        options["model"] = args.model
    return options


def _cmd_analyze(args: argparse.Namespace) -> int:
    return run_analyze(args.video, args.out, mode=args.mode, annotate=not args.no_video,
                       progress=not args.quiet, **_analyzer_options(args))


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from microexpr.demo import run_demo

    return run_demo(args.out, duration=args.duration, fps=args.fps, annotate=not args.no_video,
                    progress=not args.quiet)


# ---------------------------------------------------------------------------
# live
# ---------------------------------------------------------------------------
_GUI_PROBE = "import cv2; cv2.namedWindow('probe'); cv2.waitKey(1); cv2.destroyAllWindows()"


def display_available() -> bool:
    """True when an OpenCV window can be opened here.

    On Linux a ``DISPLAY`` or ``WAYLAND_DISPLAY`` must be set; the window is
    then tried in a child process, because OpenCV's Qt backend aborts the
    whole process when it cannot reach the display.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        probe = subprocess.run([sys.executable, "-c", _GUI_PROBE], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class _LiveWindow:
    """The overlay window of ``microexpr live``; confirmed events stay up for 2 s."""

    TITLE = "microexpr live (q quits)"
    SHOW_FOR_S = 2.0

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self._recent: list[Event] = []
        cv2.namedWindow(self.TITLE, cv2.WINDOW_NORMAL)

    def show(self, image, t: float, new_events: Sequence[Event]) -> bool:
        """Draw one frame; False once the user pressed q / Esc or closed the window."""
        from microexpr.report import draw_overlay

        cv2 = self._cv2
        self._recent = [e for e in [*self._recent, *new_events]
                        if e.detected_at is None or t - e.detected_at < self.SHOW_FOR_S]
        overlay = draw_overlay(image, t, self._recent)
        cv2.imshow(self.TITLE, cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(self.TITLE, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        self._cv2.destroyWindow(self.TITLE)


def _cmd_live(args: argparse.Namespace) -> int:
    from microexpr.pipeline import Analyzer
    from microexpr.report import event_line, printable, summary_table, write_reports
    from microexpr.video import CameraSource, VideoTruncatedWarning

    source: int | str = str(args.source) if args.source is not None else args.camera
    try:
        camera = CameraSource(source)
    except VideoError as error:
        _err(sys.stderr, str(error))
        return EXIT_BAD_INPUT
    try:
        analyzer = Analyzer(mode="streaming", **_analyzer_options(args))
    except ParameterError as error:
        camera.close()
        _err(sys.stderr, f"invalid option: {error}")
        return EXIT_USAGE
    except MicroexprError as error:
        camera.close()
        _err(sys.stderr, str(error))
        return EXIT_BAD_INPUT

    window = _LiveWindow() if not args.no_window and display_available() else None
    where = f"file {printable(source)}" if args.source is not None else f"camera {source}"
    print(f"live: {where}; events are printed as they are confirmed"
          + ("" if window else " (no display: terminal only)") + "; Ctrl-C stops", flush=True)

    status = EXIT_OK
    extra_warnings: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VideoTruncatedWarning)
            try:
                for frame in camera:
                    if args.seconds is not None and frame.t > args.seconds:
                        break
                    events = analyzer.push(frame.image, frame.t)
                    for event in events:
                        print(event_line(event), flush=True)
                    if window is not None and not window.show(frame.image, frame.t, events):
                        break
            except KeyboardInterrupt:
                print("stopped", flush=True)
            except MicroexprError as error:
                _err(sys.stderr, str(error))
                status = EXIT_BAD_INPUT
        for caught_warning in caught:
            if not issubclass(caught_warning.category, VideoTruncatedWarning):
                warnings.warn_explicit(caught_warning.message, caught_warning.category,
                                       caught_warning.filename, caught_warning.lineno)
            elif args.source is None:
                # A file source just ends; a camera that stops is worth a warning.
                extra_warnings.append(str(caught_warning.message))
    finally:
        camera.close()
        if window is not None:
            window.close()
    for event in analyzer.flush():
        print(event_line(event), flush=True)
    result = analyzer.result(video=None if args.source is None else str(args.source))
    analyzer.close()
    result.warnings.extend(extra_warnings)
    print(summary_table(result))
    for message in result.warnings:
        print(f"warning: {printable(message)}", file=sys.stderr)
    if args.out is not None:
        files = write_reports(result, args.out, annotate=False)
        for message in files.errors:
            _err(sys.stderr, message)
        if files.errors:
            status = EXIT_BAD_INPUT
        if files.written:
            print(f"wrote {', '.join(p.name for p in files.written.values())} to {printable(args.out)}")
    return status


# ---------------------------------------------------------------------------
# synth, synth-set
# ---------------------------------------------------------------------------
_FACE_HELP = ("render from the largest face in this photo (PNG, JPEG...; frontal, eyes open, mouth "
              "closed), or in a video's frame at S seconds (VIDEO@S), its points found by the face "
              "model; default: scikit-image's astronaut")


def _face_from(photo: Path | None):
    """The FaceImage to render from: ``photo``'s face (``VIDEO@SECONDS``: that frame's), or
    None for the default face."""
    from microexpr.synth import face_from_photo

    if photo is None:
        return None
    path, at = photo, None
    head, sep, tail = str(photo).rpartition("@")
    if sep and head:
        try:
            path, at = Path(head), float(tail)
        except ValueError:
            pass  # an "@" that is part of the file's name
    return face_from_photo(path, at=at)


def _no_face(photo: Path, error: MicroexprError) -> int:
    """Say why ``--face`` gave no face (unreadable photo or video, no face in it, no face model)."""
    _err(sys.stderr, f"--face {photo}: {error}")
    return EXIT_BAD_INPUT


def _cmd_synth(args: argparse.Namespace) -> int:
    from microexpr.report import printable
    from microexpr.synth import ClipSpec, write_clip

    try:
        face = _face_from(args.face)
    except MicroexprError as error:
        return _no_face(args.face, error)
    try:
        spec = ClipSpec(fps=args.fps, duration=args.duration, size=args.size, seed=args.seed)
        truth = write_clip(args.out, spec, face=face)
    except ParameterError as error:
        _err(sys.stderr, str(error))
        return EXIT_USAGE
    except (VideoError, OSError) as error:
        _err(sys.stderr, str(error))
        return EXIT_BAD_INPUT
    truth_path = args.out.with_name(args.out.stem + ".truth.json")
    kinds = [e.kind for e in truth.events]
    print(f"wrote {printable(args.out)} ({truth.n_frames} frames, {spec.fps:g} fps, "
          f"{spec.size[0]}x{spec.size[1]}) and {printable(truth_path.name)}: "
          f"{kinds.count('micro')} micro, {kinds.count('macro')} macro, {len(truth.blinks)} blinks")
    for event in truth.events:
        print(f"  {event.onset:7.3f}-{event.offset:7.3f} s  {event.kind:<5} {event.emotion:<10} "
              f"{','.join(event.regions)}{'  (subtle)' if event.subtle else ''}")
    return EXIT_OK


def _cmd_synth_set(args: argparse.Namespace) -> int:
    from microexpr.report import printable
    from microexpr.synth import write_benchmark_set

    try:
        face = _face_from(args.face)
    except MicroexprError as error:
        return _no_face(args.face, error)
    try:
        paths = write_benchmark_set(args.out, n_clips=args.clips, duration=args.duration, seed=args.seed,
                                    face=face)
    except ParameterError as error:
        _err(sys.stderr, str(error))
        return EXIT_USAGE
    except (VideoError, OSError) as error:
        _err(sys.stderr, str(error))
        return EXIT_BAD_INPUT
    print(f"{len(paths)} clips with truth in {printable(args.out)} (list: index.json)")
    return EXIT_OK


# ---------------------------------------------------------------------------
# evaluate, info
# ---------------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> int:
    import microexpr
    from microexpr import _core
    from microexpr.landmarks import find_face_model

    include_dir, lib_dir = microexpr.c_abi_paths()
    print(f"microexpr {microexpr.__version__} (core {_core.__version__}, SIMD {_core.simd})")
    print(f"C ABI header:  {include_dir / 'microexpr.h'}")
    print(f"C ABI library: {lib_dir}")
    try:
        print(f"face model:    {find_face_model()}")
    except ModelNotFoundError as error:
        print(f"face model:    not found\n{error}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------
def _add_analyzer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-faces", type=_positive_int, default=1, metavar="N",
                        help="faces tracked per frame (default 1)")
    parser.add_argument("--model", type=Path, metavar="PATH",
                        help="MediaPipe face_landmarker.task (default: found automatically)")


def build_parser() -> argparse.ArgumentParser:
    """The ``microexpr`` parser with one subparser per command."""
    from microexpr.cli_evaluate import build_parser as build_evaluate_parser

    parser = argparse.ArgumentParser(
        prog="microexpr",
        description="Spot micro- and macro-expressions in videos and live cameras.",
        epilog="Run `microexpr COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    analyze = commands.add_parser(
        "analyze", help="spot expressions in a video file and write reports",
        description="Spot expressions in a video and write events.json, events.csv, frames.parquet, "
                    "timeline.png and annotated.mp4 into DIR.")
    analyze.add_argument("video", type=Path, metavar="VIDEO", help="video file (anything FFmpeg decodes)")
    analyze.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created)")
    analyze.add_argument("--mode", choices=("offline", "streaming"), default="offline",
                         help="offline waits longer before closing an event (default offline)")
    _add_analyzer_options(analyze)
    analyze.add_argument("--preset", choices=("fast", "balanced", "accurate"), default="balanced",
                         help="optical-flow speed/accuracy trade-off (default balanced)")
    analyze.add_argument("--no-video", action="store_true", help="skip annotated.mp4")
    analyze.add_argument("--quiet", action="store_true", help="no progress bars")
    analyze.set_defaults(handler=_cmd_analyze)

    demo = commands.add_parser(
        "demo", help="score the spotter on a synthetic clip with known answers",
        description="Render a synthetic clip from the face photo scikit-image ships (micro and macro "
                    "expressions, blinks, speech, head motion; fixed seed), analyse it like `analyze` "
                    "and score the result against the clip's ground truth.")
    demo.add_argument("--out", type=Path, default=Path("microexpr-demo"), metavar="DIR",
                      help="output folder (default ./microexpr-demo)")
    demo.add_argument("--duration", type=_positive_float, default=12.0, metavar="S",
                      help="clip length in seconds (default 12)")
    demo.add_argument("--fps", type=_positive_float, default=30.0, metavar="F",
                      help="clip frame rate (default 30)")
    demo.add_argument("--no-video", action="store_true", help="skip annotated.mp4")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_cmd_demo)

    live = commands.add_parser(
        "live", help="spot expressions from a camera as they happen",
        description="Read a camera, print each event when it is confirmed, and show an overlay "
                    "window when a display is available (q quits). Ctrl-C stops and prints a summary.")
    live.add_argument("--camera", type=int, default=0, metavar="N", help="camera index (default 0)")
    live.add_argument("--source", type=Path, default=None, help=argparse.SUPPRESS)
    live.add_argument("--seconds", type=_positive_float, default=None, metavar="S",
                      help="stop after S seconds (default: run until stopped)")
    _add_analyzer_options(live)
    live.add_argument("--no-window", action="store_true", help="terminal only, even with a display")
    live.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="also write events.json, events.csv, frames.parquet and timeline.png here")
    live.set_defaults(handler=_cmd_live, preset=None)

    synth = commands.add_parser(
        "synth", help="write a synthetic face clip with ground truth",
        description="Render a synthetic clip (H.264 .mp4) and its ground truth (<stem>.truth.json).")
    synth.add_argument("out", type=Path, metavar="OUT.mp4")
    synth.add_argument("--fps", type=_positive_float, default=30.0, metavar="F", help="frame rate (default 30)")
    synth.add_argument("--duration", type=_positive_float, default=30.0, metavar="S",
                       help="length in seconds (default 30)")
    synth.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    synth.add_argument("--size", type=_frame_size, default=(640, 480), metavar="WxH",
                       help="frame size, even numbers (default 640x480)")
    synth.add_argument("--face", type=Path, default=None, metavar="PHOTO", help=_FACE_HELP)
    synth.set_defaults(handler=_cmd_synth)

    synth_set = commands.add_parser(
        "synth-set", help="write a benchmark set of synthetic clips",
        description="Write N clips cycling 25/30/60/200 fps, with every nuisance on, plus index.json. "
                    "Clips already there with the same settings are kept.")
    synth_set.add_argument("out", type=Path, metavar="DIR")
    synth_set.add_argument("--clips", type=_positive_int, default=20, metavar="N", help="number of clips (default 20)")
    synth_set.add_argument("--duration", type=_positive_float, default=30.0, metavar="S",
                           help="length of each clip in seconds (default 30)")
    synth_set.add_argument("--seed", type=int, default=0, metavar="N", help="set seed (default 0)")
    synth_set.add_argument("--face", type=Path, default=None, metavar="PHOTO", help=_FACE_HELP)
    synth_set.set_defaults(handler=_cmd_synth_set)

    evaluate_parser = build_evaluate_parser()
    commands.add_parser("evaluate", parents=[evaluate_parser], add_help=False,
                        help="score spotted events against ground truth (MEGC rule)",
                        description=evaluate_parser.description)

    from microexpr.benchmark import build_parser as build_bench_parser
    from microexpr.megc import build_parser as build_megc_parser

    bench_parser, megc_parser = build_bench_parser(), build_megc_parser()
    commands.add_parser("bench", parents=[bench_parser], add_help=False,
                        help="speed and accuracy on this machine (synthetic inputs)",
                        description=bench_parser.description)
    commands.add_parser("megc", parents=[megc_parser], add_help=False,
                        help="spot and score a MEGC dataset with microexpr, MDMD and LBP",
                        description=megc_parser.description)

    info = commands.add_parser("info", help="core version, SIMD, C ABI location, face model")
    info.set_defaults(handler=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``microexpr``; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int) or exit_.code is None else EXIT_USAGE
    if args.version:
        import microexpr

        print(f"microexpr {microexpr.__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "evaluate":
        from microexpr.cli_evaluate import main as evaluate_main

        return evaluate_main(args_list[args_list.index("evaluate") + 1:])
    if args.command in ("bench", "megc"):
        from microexpr.benchmark import main as bench_main
        from microexpr.megc import main as megc_main

        command_main = bench_main if args.command == "bench" else megc_main
        return command_main(args_list[args_list.index(args.command) + 1:])
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        _err(sys.stderr, "interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
