"""Time the whole per-face, per-frame core work, single-threaded.

One frame of a face tracker's life, as the streaming pipeline runs it:

1. ``align``: :func:`microexpr.estimate_similarity` from 5 landmark pairs,
   then :func:`microexpr.warp_affine` of the 640 x 480 grey frame to a
   160 px canonical face crop;
2. ``flow``: :func:`microexpr.dense_flow` between this crop and the crop of
   about 0.13 s earlier (preset ``balanced``, and in a second configuration
   ``fast``), written into a reused buffer;
3. ``regions``: :func:`microexpr.region_stats` over 12 face regions with the
   nose bridge as the head-motion reference;
4. ``spectra``: one :meth:`microexpr.Spectra.push` of 40 landmark
   displacement channels.

The frame is a real face (scikit-image's astronaut photo, resized into a
640 x 480 frame) that moves a little every frame (rotation, shift, scale,
landmark jitter, sensor noise) so no two frames are alike. Rendering the
frames is not timed. Run::

    python bench/core_frame.py [--frames 500] [--json OUT]

and read per-stage and total median / p95 in ms, the target check (total
median <= 1.5 ms with the balanced preset) and the share of the total that
fixed per-call costs (Python wrappers and bindings) can account for.
The frames, the per-face work (``FrameCore``) and the input builders
(``face_frame``, ``face_regions``, ...) live in :mod:`microexpr.benchmark`,
whose ``microexpr bench`` uses them too; they are re-exported here for
``bench/test_bench_core.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone

import cv2
import numpy as np

import microexpr
from microexpr.benchmark import (
    CROP_SIDE,
    FPS,
    FRAME_SIZE,
    N_SPECTRA_CHANNELS,
    REFERENCE_LAG,
    SPECTRA_BANDS,
    SPECTRA_WINDOW,
    TARGET_TOTAL_MS,
    FrameCore,
    MovedFrame,
    canonical_points,
    face_frame,
    face_points,
    face_regions,
    head_motion,
    landmark_points,
    moved_frames,
    per_call_floor_ms,
)
from microexpr.benchmark import BOX_REGION_NAMES as REGION_NAMES
from microexpr.benchmark import NOSE_BOX as NOSE_REGION
from microexpr.benchmark import summarise_stages as summarise
from microexpr.benchmark import time_core_presets

# Re-exported: bench/test_bench_core.py builds its inputs from these.
__all__ = [
    "CROP_SIDE", "FPS", "FRAME_SIZE", "N_SPECTRA_CHANNELS", "NOSE_REGION", "REFERENCE_LAG", "REGION_NAMES",
    "SPECTRA_BANDS", "SPECTRA_WINDOW", "TARGET_TOTAL_MS", "FrameCore", "MovedFrame", "canonical_points",
    "face_frame", "face_points", "face_regions", "head_motion", "landmark_points", "main", "moved_frames",
    "per_call_floor_ms", "run", "summarise",
]


def run(n_frames: int, *, warmup: int, seed: int) -> dict:
    """Process ``warmup + n_frames`` frames with both presets, interleaved.

    Returns
    -------
    dict
        ``{"balanced": stage_ms, "fast": stage_ms}`` where ``stage_ms`` is a
        float64 array of shape (n_frames, 4), ms per stage and frame.
    """
    return time_core_presets(n_frames, warmup=warmup, seed=seed, presets=("balanced", "fast"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=500, help="timed frames (default 500)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed first frames (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 0:
        parser.error(f"--frames must be >= 1 and --warmup >= 0, got {args.frames} and {args.warmup}")

    cv2.setNumThreads(1)
    print(f"microexpr {microexpr.__version__} (simd: {microexpr.core._core.simd}), "
          f"OpenCV {cv2.__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}")
    print(f"{args.frames} frames of {FRAME_SIZE[0]}x{FRAME_SIZE[1]} -> {CROP_SIDE} px crop, "
          f"{len(REGION_NAMES)} regions, {N_SPECTRA_CHANNELS} spectra channels, one thread; "
          f"flow reference {REFERENCE_LAG:.2f} s back")
    timings = run(args.frames, warmup=args.warmup, seed=args.seed)
    summaries = {name: summarise(stage_ms) for name, stage_ms in timings.items()}

    names = list(summaries["balanced"])
    print()
    print(f"{'stage':<10}" + "".join(f"{p + ' median':>17}{p + ' p95':>14}" for p in summaries))
    for stage in names:
        row = f"{stage:<10}"
        for summary in summaries.values():
            row += f"{summary[stage]['median']:>14.3f} ms{summary[stage]['p95']:>11.3f} ms"
        print(row)

    floors = per_call_floor_ms()
    floor_total = sum(floors.values())
    print()
    print("fixed per-call cost (each stage's calls on the smallest valid input; an upper bound "
          "on Python + binding overhead):")
    print("  " + ", ".join(f"{stage} {ms * 1000:.1f} us" for stage, ms in floors.items())
          + f"; sum {floor_total * 1000:.1f} us")
    for preset, summary in summaries.items():
        share = floor_total / summary["total"]["median"]
        print(f"  = {100 * share:.1f} % of the {preset} total median")

    measured = summaries["balanced"]["total"]["median"]
    verdict = "PASS" if measured <= TARGET_TOTAL_MS else "FAIL"
    print()
    print(f"target: per-frame core total median <= {TARGET_TOTAL_MS} ms (balanced): "
          f"{verdict} (measured {measured:.3f} ms, {measured / TARGET_TOTAL_MS:.2f}x the budget)")
    fast_total = summaries["fast"]["total"]["median"]
    print(f"        with the fast preset: {fast_total:.3f} ms "
          f"({'within' if fast_total <= TARGET_TOTAL_MS else 'over'} the budget)")

    if args.json:
        report = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "microexpr": microexpr.__version__,
            "opencv": cv2.__version__,
            "machine": platform.platform(),
            "frames": args.frames,
            "warmup": args.warmup,
            "seed": args.seed,
            "crop_side": CROP_SIDE,
            "summary_ms": summaries,
            "per_call_floor_ms": floors,
            "target_total_ms": TARGET_TOTAL_MS,
            "target_pass": measured <= TARGET_TOTAL_MS,
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
