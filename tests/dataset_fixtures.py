"""Small copies of the three MEGC dataset layouts, for the loader and ``megc`` tests.

They follow the real layouts and spreadsheet formats (sheet names, header
rows, column names and frame numbering; see microexpr/datasets.py for where
each was read). The frame images come from a writer passed in: the default
writes tiny uniform frames whose grey level gives their order; the ``megc``
tests pass one that writes real synthetic faces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

FrameWriter = Callable[[Path, list[str]], None]


def write_frames(folder: Path, names: list[str]) -> None:
    """One small JPEG per name; frame j is uniformly 4 * j + 10 grey, so the
    order can be read back from the pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    for j, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((16, 16, 3), 4 * j + 10, np.uint8))


def write_sheets(
    path: Path, sheets: dict[str, list[list]], header: dict[str, list] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = header or {}
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, rows in sheets.items():
            columns = header.get(name)
            frame = pd.DataFrame(rows, columns=columns)
            frame.to_excel(writer, sheet_name=name, index=False, header=columns is not None)


def build_casme2(root: Path, frames: FrameWriter = write_frames) -> Path:
    """CAS(ME)^2: 3 videos of 60, 40 and 20 frames, 2 micro + 2 macro intervals."""
    rawpic = root / "rawpic"
    frames(rawpic / "s15" / "15_0401girlcrashing", [f"img{n}.jpg" for n in range(1, 61)])
    frames(rawpic / "s16" / "16_0101disgustingteeth", [f"img{n}.jpg" for n in range(1, 41)])
    frames(rawpic / "s16" / "16_0102eatingworms", [f"img{n}.jpg" for n in range(1, 21)])
    coding = [  # participant, clip, onset, apex, offset, AUs, emotion, type, self-report
        [1, "anger1_1", 3, 12, 30, "4+7", "negative", "macro-expression", "anger"],
        [1, "anger1_2", 40, 44, 0, "L12", "positive", "micro-expression", "happy"],
        [2, "disgust1_1", 2, 5, 10, "9", "negative", "micro-expression", "disgust"],
        [2, "disgust1_2", 15, 0, 38, "10+17", "negative", "macro-expression", "disgust"],
    ]
    write_sheets(
        root / "CAS(ME)^2code_final.xlsx",
        {
            "CASFEcode_final": coding,
            "naming rule1": [[15, "s15", 1], [16, "s16", 2]],
            "naming rule2": [["0401", "anger1"], ["0101", "disgust1"], ["0102", "disgust2"]],
        },
    )
    return root


SAMM_HEADER = [
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset",
    "Apex",
    "Offset",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
]


def samm_sheet(rows: list[list], header: list[str] = SAMM_HEADER) -> list[list]:
    """Nine lines of notes, then the header on the tenth line, then rows."""
    notes = [["SAMM Long Videos"] + [None] * 9] + [[f"note {i}"] + [None] * 9 for i in range(8)]
    return notes + [header] + rows


def build_samm(root: Path, frames: FrameWriter = write_frames) -> Path:
    """SAMM Long Videos: 2 videos of 60 and 50 frames, 2 micro + 2 macro intervals."""
    frame_root = root / "SAMM_longvideos"
    frames(frame_root / "006_1", [f"006_1_{n:04d}.jpg" for n in range(1, 61)])
    frames(frame_root / "007_3", [f"007_3_{n:04d}.jpg" for n in range(1, 51)])
    rows = [
        [6, "006_1_1", 1, 5, 20, 45, 41, "Macro", "R12", None],
        [6, "006_1_2", 1, 50.0, 53.0, 57.0, 8, "Micro - 1/2", "4", None],
        [7, "007_3_1", 2, 3, -1, 20, 18, "Micro - 1/2", "1+2", None],
        [7, "007_3_2", 2, 30, 35, 0, 0, "Macro", "12", "offset not coded"],
    ]
    write_sheets(root / "SAMM_LongVideos_V3_Release.xlsx", {"FACS_Movement_Only": samm_sheet(rows)})
    return root


def build_casme3(root: Path, frames: FrameWriter = write_frames) -> Path:
    """CAS(ME)^3 Part A: 2 videos of 40 and 30 frames, 2 micro + 1 macro intervals."""
    data = root / "part_A" / "data" / "part_A"
    # The labels say spNO, this copy's folder says spNo.
    frames(data / "spNo.1" / "a" / "color", [f"{n}.jpg" for n in range(0, 40)])
    frames(data / "spNO.2" / "b" / "color", [f"{n}.jpg" for n in range(0, 30)])
    annotation = root / "part_A" / "annotation"
    write_sheets(
        annotation / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
        {
            "label": [
                ["spNO.1", "a", 0, 3, 6, "happy", "12"],
                ["spNO.2", "b", 10, 12, 15, "surprise", "1+2"],
            ]
        },
        header={"label": ["Subject", "Filename", "Onset", "Apex", "Offset", "emotion", "AU"]},
    )
    write_sheets(
        annotation / "cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx",
        {"Sheet1": [["spNO.1", "a", 15, 25, 35, "disgust"]]},
        header={"Sheet1": ["sub", "seq", "onset", "apex", "offset", "emotion"]},
    )
    return root
