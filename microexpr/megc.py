"""``microexpr megc``: spot every video of a MEGC dataset and score it by the MEGC rule.

For each video of CAS(ME)^2, SAMM Long Videos or CAS(ME)^3 (loaded by
:func:`microexpr.datasets.load_dataset`) the frames go once through the face
landmarker, and from there into each requested method:

``microexpr``
    :class:`microexpr.pipeline.Analyzer` in offline mode, fed every frame
    with its presentation time and its landmarks, then flushed.
``mdmd``, ``lbp``
    The MEGC baselines (:func:`microexpr.baselines.mdmd_spot`,
    :func:`microexpr.baselines.lbp_spot`) on grey face crops aligned exactly
    as the pipeline aligns them (:class:`CropAligner`).

Predictions go to ``OUT/<method>/<video>.events.json`` (``video``,
``method``, ``events`` with onset/offset in seconds, ``frame_times``,
``warnings``). A video whose file exists is skipped, so an interrupted run
resumes; a video that fails is reported and the others go on. Finally the
micro / macro / overall scores (:func:`microexpr.evaluate.evaluate_videos`,
IoU >= 0.5, one-to-one matching, counts summed over videos) are printed per
method side by side and written to ``OUT/scores.json``. A video without a
prediction file for a method counts as "nothing spotted" for that method.

Frames without a face: the pipeline is told so (no landmarks) and the
baselines skip them (their windows are in seconds, so the gap is measured
in time, not in frames).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from microexpr.errors import MicroexprError, ModelNotFoundError, ParameterError

__all__ = [
    "METHODS",
    "CropAligner",
    "VideoPredictions",
    "spot_frames",
    "prediction_path",
    "score_predictions",
    "f1_table",
    "MegcRun",
    "run_megc",
    "build_parser",
    "main",
]

#: Spotting methods, in table order.
METHODS = ("microexpr", "mdmd", "lbp")
_BASELINES = ("mdmd", "lbp")
_EVENTS_SUFFIX = ".events.json"
EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _check_methods(methods: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(methods))
    unknown = [m for m in chosen if m not in METHODS]
    if unknown or not chosen:
        raise ParameterError(f"methods must be a non-empty subset of {list(METHODS)}, got {list(methods)!r}")
    return chosen


class CropAligner:
    """Grey face crops aligned the way :class:`microexpr.pipeline.Analyzer` aligns them.

    The first face seen fixes the alignment template
    (:func:`microexpr.regions.alignment_template`); every later face is
    mapped onto it by the similarity (:func:`microexpr.estimate_similarity`)
    of the scheme's alignment points and resampled by
    :func:`microexpr.warp_affine`.

    Parameters
    ----------
    crop_size : int
        Side of the crop, px.
    scheme : str
        Landmark point scheme of the faces passed in.
    """

    def __init__(self, *, crop_size: int = 160, scheme: str = "mediapipe478") -> None:
        from microexpr.landmarks import get_scheme
        from microexpr.regions import CropGeometry

        self.geometry = CropGeometry(size=int(crop_size))
        self.scheme = get_scheme(scheme)
        self._alignment_indices = list(self.scheme.alignment_indices)
        self.template: np.ndarray | None = None

    def crop(self, grey: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Align one face.

        Parameters
        ----------
        grey : uint8 array of shape (H, W)
            The frame.
        points : float array of shape (N, 2)
            The face's landmarks in frame pixels, (x, y).

        Returns
        -------
        crop : uint8 array of shape (crop_size, crop_size)
        """
        from microexpr.core import estimate_similarity, warp_affine
        from microexpr.regions import alignment_template

        points = np.asarray(points, dtype=np.float64)
        if self.template is None:
            self.template = alignment_template(points, self.scheme, self.geometry)
        src = np.ascontiguousarray(points[self._alignment_indices])
        transform = estimate_similarity(src, self.template)
        size = self.geometry.size
        return warp_affine(grey, transform, (size, size))


@dataclass
class VideoPredictions:
    """What each method spotted in one video.

    Attributes
    ----------
    frame_times : list of float
        Presentation time of every frame, seconds.
    events : dict of str to list of dict
        Per method, its events in the prediction format of
        :mod:`microexpr.evaluate` (onset/offset in seconds, ``kind``).
    warnings : dict of str to list of str
        Per method, what went wrong (no face, too short for a window, ...).
    n_frames_with_face : int
    """

    frame_times: list[float] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    n_frames_with_face: int = 0

    def document(self, method: str, video: str) -> dict[str, Any]:
        """The ``<video>.events.json`` document of one method."""
        return {
            "video": video,
            "method": method,
            "events": self.events[method],
            "frame_times": [round(float(t), 6) for t in self.frame_times],
            "warnings": list(self.warnings.get(method, [])),
        }


def spot_frames(
    frames: Iterable[tuple[np.ndarray, float]],
    *,
    methods: Sequence[str] = METHODS,
    crop_size: int | None = None,
    flow_preset: str | None = None,
    model: str | os.PathLike[str] | None = None,
    total: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> VideoPredictions:
    """Run the landmarker once over a video and every requested method on it.

    Parameters
    ----------
    frames : iterable of (uint8 array of shape (H, W, 3), float)
        RGB frames with their presentation times in seconds, increasing.
    methods : sequence of {"microexpr", "mdmd", "lbp"}
    crop_size : int, optional
        Aligned crop side, px, for the pipeline and the baselines; default
        the :class:`~microexpr.pipeline.Analyzer`'s.
    flow_preset : str, optional
        :func:`microexpr.dense_flow` preset of the pipeline and of MDMD;
        default the Analyzer's.
    model : path, optional
        ``face_landmarker.task``; default :func:`microexpr.landmarks.find_face_model`.
    total : int, optional
        Number of frames, for the progress bar.
    progress : bool
        Show a tqdm bar over the frames (on stderr).
    desc : str, optional
        The bar's label.

    Returns
    -------
    VideoPredictions

    Raises
    ------
    ParameterError
        Unknown method or bad frames.
    ModelNotFoundError
        No face landmark model.
    VideoError
        The frame source failed (frames before it are lost for this call).
    """
    import cv2

    from microexpr.baselines import lbp_spot, mdmd_spot
    from microexpr.landmarks import FaceLandmarker
    from microexpr.pipeline import Analyzer

    methods = _check_methods(methods)
    options = {k: v for k, v in (("crop_size", crop_size), ("flow_preset", flow_preset)) if v is not None}
    # Built even for the baselines alone: its geometry and preset are theirs too.
    pipeline = Analyzer(mode="offline", detector=None, record_frames=False, **options)
    analyzer = pipeline if "microexpr" in methods else None
    aligner = None
    if any(m in _BASELINES for m in methods):
        aligner = CropAligner(crop_size=pipeline.geometry.size, scheme=pipeline.scheme)
    landmarker = FaceLandmarker(model=model, max_faces=1)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=desc, leave=False)
    out = VideoPredictions(warnings={m: [] for m in methods})
    crops: list[np.ndarray] = []
    crop_times: list[float] = []
    try:
        for image, t in frames:
            faces = landmarker.detect(image, t)
            out.frame_times.append(float(t))
            out.n_frames_with_face += bool(faces)
            if analyzer is not None:
                analyzer.push(image, t, landmarks=[f.points for f in faces],
                              blendshapes=[f.blendshapes for f in faces])
            if aligner is not None and faces:
                grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
                crops.append(aligner.crop(grey, faces[0].points))
                crop_times.append(float(t))
            if bar is not None:
                bar.update(1)
    finally:
        landmarker.close()
        if bar is not None:
            bar.close()

    if analyzer is not None:
        analyzer.flush()
        result = analyzer.result()
        out.events["microexpr"] = [e.to_dict() for e in result.events]
        out.warnings["microexpr"].extend(result.warnings)
    for method, spot in (("mdmd", mdmd_spot), ("lbp", lbp_spot)):
        if method not in methods:
            continue
        if not crops:
            out.events[method] = []
            out.warnings[method].append("no face was found in any frame")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kwargs = {"flow": pipeline.flow_preset} if method == "mdmd" else {}
            spotted = spot(crops, crop_times, **kwargs)
        out.events[method] = [s.to_dict() for s in spotted]
        out.warnings[method].extend(str(w.message) for w in caught)
        missing = len(out.frame_times) - len(crops)
        if missing:
            out.warnings[method].append(f"no face in {missing} of {len(out.frame_times)} frames (skipped)")
    return out


def prediction_path(out_dir: str | Path, method: str, video: str) -> Path:
    """``out_dir/<method>/<video>.events.json``."""
    return Path(out_dir) / method / f"{video}{_EVENTS_SUFFIX}"


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write through a temporary file, so a crash never leaves a half file that resume would skip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _evaluation_label(video: str) -> str:
    # evaluate keys videos by Path(name).stem: "spNO.1_a" would become "spNO",
    # so the dataset name gets a suffix for the stem to strip.
    return f"{video}.frames"


def score_predictions(
    truths: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    methods: Sequence[str] = METHODS,
):
    """Score the prediction files of each method against the truth documents.

    Parameters
    ----------
    truths : dict of str to dict
        Video name -> truth document (:func:`microexpr.datasets.truth_dict`).
    out_dir : str or Path
        Holds ``<method>/<video>.events.json``.
    methods : sequence of str

    Returns
    -------
    evaluations : dict of str to microexpr.evaluate.Evaluation
    missing : dict of str to list of str
        Per method, the videos without a prediction file (scored as nothing
        spotted).
    """
    from microexpr.evaluate import evaluate_videos, load_json

    evaluations, missing = {}, {}
    for method in _check_methods(methods):
        pairs, absent = [], []
        for name, truth in truths.items():
            path = prediction_path(out_dir, method, name)
            if path.is_file():
                prediction = dict(load_json(path))
            else:
                absent.append(name)
                prediction = {"events": []}
            prediction.pop("video", None)
            pairs.append(({**truth, "video": _evaluation_label(name)}, prediction))
        evaluations[method] = evaluate_videos(pairs)
        missing[method] = absent
    return evaluations, missing


def f1_table(evaluations: Mapping[str, Any]) -> str:
    """Markdown table: micro / macro / overall F1 (TP/FP/FN) with one column per method.

    Parameters
    ----------
    evaluations : dict of str to microexpr.evaluate.Evaluation
        Method name -> its scores, in column order.

    Returns
    -------
    str
    """
    methods = list(evaluations)
    lines = ["| | " + " | ".join(f"{m} F1 (TP/FP/FN)" for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for row in ("micro", "macro", "overall"):
        cells = []
        for method in methods:
            s = getattr(evaluations[method], row)
            cells.append(f"{s.f1:.3f} ({s.tp}/{s.fp}/{s.fn})")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class MegcRun:
    """Outcome of :func:`run_megc`.

    Attributes
    ----------
    dataset : str
    videos : list of str
        Every video of the dataset, sorted.
    spotted, skipped : list of str
        Videos analysed in this run, and videos whose files all existed.
    failures : dict of str to str
        Video -> what went wrong.
    evaluations : dict of str to microexpr.evaluate.Evaluation
    missing : dict of str to list of str
        Per method, videos scored as nothing spotted (no prediction file).
    n_intervals : dict of str to int
        Coded intervals: "micro", "macro".
    """

    dataset: str
    videos: list[str]
    spotted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    evaluations: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    n_intervals: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "videos": self.videos,
            "n_intervals": self.n_intervals,
            "failures": self.failures,
            "missing_predictions": self.missing,
            "scores": {m: e.to_dict() for m, e in self.evaluations.items()},
        }

    def summary(self) -> str:
        """The scores table with a heading that says what was scored."""
        intervals = self.n_intervals
        lines = [
            f"MEGC spotting on {self.dataset}: {len(self.videos)} videos, "
            f"{intervals.get('micro', 0)} micro + {intervals.get('macro', 0)} macro coded intervals "
            "(IoU >= 0.5, one-to-one matching, TP/FP/FN summed over videos)",
            "",
            f1_table(self.evaluations),
        ]
        for method, names in self.missing.items():
            if names:
                lines.append(f"{method}: {len(names)} video(s) without predictions, scored as nothing "
                             f"spotted: {', '.join(names)}")
        return "\n".join(lines)


def run_megc(
    root: str | Path,
    dataset: str,
    *,
    out_dir: str | Path,
    methods: Sequence[str] = METHODS,
    annotations: str | Path | Sequence[str | Path] | None = None,
    model: str | os.PathLike[str] | None = None,
    crop_size: int | None = None,
    flow_preset: str | None = None,
    progress: bool = True,
    stderr: TextIO | None = None,
) -> MegcRun:
    """Spot every video of a dataset with each method, then score them.

    Parameters
    ----------
    root : str or Path
        The dataset's folder as its owners ship it.
    dataset : {"casme2", "samm-lv", "casme3"}
    out_dir : str or Path
        Receives ``<method>/<video>.events.json`` and ``scores.json``.
    methods : sequence of {"microexpr", "mdmd", "lbp"}
    annotations : path or paths, optional
        See :func:`microexpr.datasets.load_dataset`.
    model : path, optional
        Face landmark model.
    crop_size : int, optional
        Aligned crop side, px (default: the pipeline's).
    flow_preset : str, optional
        Optical-flow preset of the pipeline and of MDMD (default: the pipeline's).
    progress : bool
        tqdm bars over videos and frames (stderr).
    stderr : text stream, optional
        Where failures are reported (default ``sys.stderr``).

    Returns
    -------
    MegcRun

    Raises
    ------
    ParameterError
        Unknown dataset or method, or a dataset that cannot be loaded.
    ModelNotFoundError
        No face landmark model (checked before any video is read).
    """
    from microexpr.datasets import load_dataset, truth_dict
    from microexpr.landmarks import find_face_model

    stderr = sys.stderr if stderr is None else stderr
    methods = _check_methods(methods)
    videos = load_dataset(root, dataset, annotations=annotations)
    out_dir = Path(out_dir)
    run = MegcRun(dataset=dataset, videos=[v.name for v in videos])
    run.n_intervals = {kind: sum(i.kind == kind for v in videos for i in v.intervals)
                       for kind in ("micro", "macro")}
    todo = {v.name: [m for m in methods if not prediction_path(out_dir, m, v.name).is_file()] for v in videos}
    if any(todo.values()):
        find_face_model(model)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(videos), unit="video", desc=dataset)
    try:
        for video in videos:
            missing_methods = todo[video.name]
            if not missing_methods:
                run.skipped.append(video.name)
            else:
                try:
                    predictions = spot_frames(video.iter_frames(), methods=missing_methods,
                                              crop_size=crop_size, flow_preset=flow_preset, model=model,
                                              total=video.n_frames, progress=progress, desc=video.name)
                    for method in missing_methods:
                        _write_json(prediction_path(out_dir, method, video.name),
                                    predictions.document(method, video.name))
                except ModelNotFoundError:
                    raise
                except Exception as error:  # one broken video must not stop the others
                    run.failures[video.name] = f"{type(error).__name__}: {error}"
                    message = f"microexpr megc: {video.name} failed, going on with the others: " \
                              f"{run.failures[video.name]}"
                    if bar is not None:
                        bar.write(message, file=stderr)
                    else:
                        print(message, file=stderr)
                else:
                    run.spotted.append(video.name)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    truths = {v.name: truth_dict(v) for v in videos}
    run.evaluations, run.missing = score_predictions(truths, out_dir, methods)
    _write_json(out_dir / "scores.json", run.to_dict())
    return run


def build_parser() -> argparse.ArgumentParser:
    """Parser for ``DATASET_DIR --dataset NAME [--out DIR] [--method M]``."""
    parser = argparse.ArgumentParser(
        prog="microexpr megc",
        description="Spot every video of a MEGC dataset (CAS(ME)^2, SAMM Long Videos, CAS(ME)^3) with "
                    "microexpr and/or the MDMD and LBP baselines, write per-video predictions (resumable) "
                    "and print micro/macro/overall F1 by the MEGC rule per method.",
    )
    parser.add_argument("root", type=Path, metavar="DATASET_DIR", help="the dataset's folder as shipped")
    parser.add_argument("--dataset", required=True, choices=("casme2", "samm-lv", "casme3"),
                        help="which dataset's layout and spreadsheet to read")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder for <method>/<video>.events.json and scores.json "
                             "(default ./megc-<dataset>)")
    parser.add_argument("--method", choices=(*METHODS, "all"), default="all",
                        help="which method(s) to run (default all)")
    parser.add_argument("--annotations", type=Path, nargs="+", metavar="XLSX",
                        help="annotation spreadsheet(s) to use instead of searching DATASET_DIR")
    parser.add_argument("--model", type=Path, metavar="PATH",
                        help="MediaPipe face_landmarker.task (default: found automatically)")
    parser.add_argument("--crop-size", type=int, default=None, metavar="PX",
                        help="aligned face crop side, 96-256 px (default: the pipeline's)")
    parser.add_argument("--preset", choices=("fast", "balanced", "accurate"), default=None,
                        help="optical-flow preset of microexpr and MDMD (default: the pipeline's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``microexpr megc``; returns the exit status.

    0: every video spotted (or already there) and scored; 1: bad input (the
    dataset, the model or the output folder) or a video failed (the others
    are still spotted and scored); 2: usage error; 130: interrupted (the
    videos finished so far are kept).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.crop_size is not None and not 96 <= args.crop_size <= 256:
        print(f"microexpr megc: error: --crop-size must be in [96, 256] px, got {args.crop_size}",
              file=sys.stderr)
        return EXIT_USAGE
    methods = METHODS if args.method == "all" else (args.method,)
    out_dir = args.out if args.out is not None else Path(f"megc-{args.dataset}")
    try:
        run = run_megc(args.root, args.dataset, out_dir=out_dir, methods=methods,
                       annotations=args.annotations, model=args.model, crop_size=args.crop_size,
                       flow_preset=args.preset, progress=not args.quiet)
    except KeyboardInterrupt:
        print("microexpr megc: interrupted; finished videos are kept and a rerun resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (MicroexprError, OSError) as error:
        print(f"microexpr megc: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{len(run.spotted)} video(s) spotted, {len(run.skipped)} already done (skipped), "
          f"{len(run.failures)} failed; predictions in {out_dir}")
    print(run.summary())
    if run.failures:
        print(f"failed: {', '.join(run.failures)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
