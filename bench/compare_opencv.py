"""microexpr dense flow against OpenCV's DIS and Farneback: time and accuracy.

On face crops with exactly known displacement fields
(:func:`microexpr.flowtruth.make_flow_pair`, one pair per seed), one thread,
for each crop size: the median time of many interleaved repeats after a
warm-up, and the end-point error on the face (mean over seeds) of

- microexpr ``dense_flow`` presets fast / balanced / accurate,
- OpenCV ``DISOpticalFlow`` ULTRAFAST / FAST / MEDIUM (no initial flow),
- OpenCV Farneback (0.5, 3, 15, 3, 5, 1.2, 0).

Prints a table per size with time and EPE ratios against DIS, then the
targets with PASS/FAIL and the measured ratios:

(a) at 128 and 192 px, ``balanced`` EPE <= DIS-medium EPE and ``balanced``
    time <= 0.5 x DIS-medium time;
(b) ``fast`` time <= DIS-ultrafast time and ``fast`` EPE <= DIS-fast EPE.

It is a report: the exit status is 0 whatever the verdicts. The methods,
the measurement and the targets live in :mod:`microexpr.benchmark` (whose
``microexpr bench`` runs a shorter version of the same); this script prints
them at length. Run::

    python bench/compare_opencv.py [--sizes 128 192 256] [--seeds 6]
                                   [--repeats 100] [--json OUT]
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
    TARGET_SIZES,
    FlowSizeResult,
    flow_checks,
    flow_rows,
    measure_flow,
)


def print_table(result: FlowSizeResult) -> list[dict]:
    """Print one size's table; return its rows for the JSON report."""
    print(f"\n{result.size} px  (median of {len(next(iter(result.times_ms.values())))} "
          f"interleaved calls; EPE mean over {len(next(iter(result.epe.values())))} seeds, px)")
    header = (f"{'method':<20}{'ms':>9}{'EPE':>8}{'t/DISmed':>10}{'t/DISuf':>9}"
              f"{'EPE/DISmed':>12}{'EPE/DISfast':>13}")
    print(header)
    print("-" * len(header))
    rows = flow_rows(result)
    for row in rows:
        print(f"{row['method']:<20}{row['ms']:>9.3f}{row['epe']:>8.3f}{row['time_vs_dis_medium']:>10.2f}"
              f"{row['time_vs_dis_ultrafast']:>9.2f}{row['epe_vs_dis_medium']:>12.2f}"
              f"{row['epe_vs_dis_fast']:>13.2f}")
    return rows


def print_targets(results: list[FlowSizeResult]) -> list[dict]:
    """Print targets (a) and (b) for the measured sizes; return them for JSON."""
    print("\ntargets (ratios of medians / mean EPEs measured above)")
    if not any(r.size in TARGET_SIZES for r in results):
        print(f"  (a) not checked: it applies at {TARGET_SIZES} px, none measured")
    checks = flow_checks(results)
    for c in checks:
        verdict = "PASS" if c["pass"] else "FAIL"
        print(f"  {verdict}  {c['check']}: {c['measured']:.2f}x (limit {c['limit']:.2f}x)")
    passed = sum(c["pass"] for c in checks)
    print(f"  {passed} of {len(checks)} checks pass")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 192, 256],
                        help="crop sides, px (default 128 192 256)")
    parser.add_argument("--seeds", type=int, default=6,
                        help="flow pairs per size, seeds 0..N-1 (default 6)")
    parser.add_argument("--repeats", type=int, default=100,
                        help="timed calls per method and size (default 100)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed rounds over all methods first (default 10)")
    parser.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    bad = [s for s in args.sizes if s < microexpr.core._core.MIN_FLOW_SIDE]
    if bad:
        parser.error(f"--sizes must be >= {microexpr.core._core.MIN_FLOW_SIDE} px, got {bad}")
    if args.seeds < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error(f"--seeds and --repeats must be >= 1 and --warmup >= 0, "
                     f"got {args.seeds}, {args.repeats}, {args.warmup}")

    cv2.setNumThreads(1)
    print(f"microexpr {microexpr.__version__} (simd: {microexpr.core._core.simd}) vs OpenCV "
          f"{cv2.__version__}, one thread, numpy {np.__version__}, {platform.machine()}")
    print(f"face crops with known flow: seeds 0..{args.seeds - 1}, sensor noise 1.5; "
          f"{args.warmup} warm-up rounds, {args.repeats} timed rounds")
    results, tables = [], {}
    for size in args.sizes:
        result = measure_flow(size, seeds=args.seeds, repeats=args.repeats, warmup=args.warmup)
        results.append(result)
        tables[str(size)] = print_table(result)
    checks = print_targets(results)

    if args.json:
        report = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "microexpr": microexpr.__version__,
            "opencv": cv2.__version__,
            "machine": platform.platform(),
            "seeds": args.seeds,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "tables": tables,
            "checks": checks,
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
