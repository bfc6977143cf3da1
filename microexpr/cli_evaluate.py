"""Command line: score spotted events against ground truth (``microexpr evaluate``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from microexpr.errors import MicroexprError
from microexpr.evaluate import evaluate_paths, group_table, truth_groups

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for ``TRUTH PRED [--json OUT]``."""
    parser = argparse.ArgumentParser(
        prog="microexpr evaluate",
        description=(
            "Score spotted expressions against ground truth with the MEGC rule "
            "(inclusive frame intervals, IoU >= 0.5, one-to-one matching, "
            "TP/FP/FN summed over videos; predictions <= 0.5 s count as micro)."
        ),
    )
    parser.add_argument("truth", type=Path, help="a *.truth.json file, or a folder of them")
    parser.add_argument(
        "pred",
        type=Path,
        help="an events.json file, or a folder of <video stem>/events.json or <video stem>.events.json",
    )
    parser.add_argument(
        "--by",
        metavar="FIELD[,FIELD...]",
        help=(
            "also score groups of videos sharing the values of these truth fields, looked up "
            "in each truth file and then in its synthesis spec (e.g. --by fps,crf)"
        ),
    )
    parser.add_argument(
        "--json", dest="json_out", type=Path, metavar="OUT", help="also write the full results as JSON"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns the process exit status (0 ok, 1 bad input)."""
    args = build_parser().parse_args(argv)
    keys = [key.strip() for key in args.by.split(",") if key.strip()] if args.by is not None else []
    try:
        evaluation = evaluate_paths(args.truth, args.pred)
        groups = truth_groups(args.truth, keys) if args.by is not None else {}
    except MicroexprError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(evaluation.summary())
    result = evaluation.to_dict()
    if groups:
        parts = evaluation.grouped(groups)
        print(f"\nby {', '.join(keys)}:")
        print(group_table(parts))
        result["groups"] = {}
        for label, part in parts.items():
            scores = part.to_dict()
            del scores["per_video"]  # already in the whole evaluation's
            result["groups"][label] = {"videos": groups[label], **scores}
    if args.json_out is not None:
        try:
            args.json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            print(f"error: cannot write {args.json_out}: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
