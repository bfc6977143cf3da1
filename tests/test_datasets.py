"""Dataset loaders on small fixture copies of the three MEGC folder layouts.

The fixtures follow the real layouts and spreadsheet formats (sheet names,
header rows, column names and frame numbering; see microexpr/datasets.py for
where each was read) with a few dozen tiny frames per video.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from microexpr.datasets import DatasetWarning, load_dataset, truth_dict
from microexpr.errors import ParameterError, VideoError
from microexpr.evaluate import evaluate_videos

pytest.importorskip("openpyxl", reason="writing the fixture spreadsheets needs openpyxl")

from dataset_fixtures import build_casme2, build_casme3, build_samm, samm_sheet, write_sheets  # noqa: E402


# ---------------------------------------------------------------------------
# Fixtures in each dataset's layout
# ---------------------------------------------------------------------------
@pytest.fixture
def casme2_root(tmp_path) -> Path:
    return build_casme2(tmp_path / "CAS(ME)^2")


@pytest.fixture
def samm_root(tmp_path) -> Path:
    return build_samm(tmp_path / "SAMM")


@pytest.fixture
def casme3_root(tmp_path) -> Path:
    return build_casme3(tmp_path / "CASME3")


def by_name(videos):
    return {v.name: v for v in videos}


def spans(video):
    return [(i.onset_frame, i.apex_frame, i.offset_frame, i.kind) for i in video.intervals]


# ---------------------------------------------------------------------------
# What each loader reads
# ---------------------------------------------------------------------------
def test_casme2_intervals_are_0_based_positions_of_img_numbers(casme2_root):
    videos = by_name(load_dataset(casme2_root, "casme2"))
    assert sorted(videos) == ["s15_0401", "s16_0101", "s16_0102"]
    anger = videos["s15_0401"]
    assert anger.subject == "s15" and anger.fps == 30.0 and anger.n_frames == 60
    # Spreadsheet 3 is img3.jpg, the third image: position 2. Offset 0 -> apex.
    assert spans(anger) == [(2, 11, 29, "macro"), (39, 43, 43, "micro")]
    assert anger.intervals[0].emotion == "negative" and anger.intervals[0].aus == "4+7"
    # Apex 0 is "not coded".
    assert spans(videos["s16_0101"]) == [(1, 4, 9, "micro"), (14, None, 37, "macro")]
    assert videos["s16_0102"].intervals == []


def test_frames_are_in_numeric_order_and_read_as_rgb(casme2_root):
    video = by_name(load_dataset(casme2_root, "casme2"))["s16_0102"]
    assert [p.name for p in video.frames[:3]] == ["img1.jpg", "img2.jpg", "img3.jpg"]
    assert video.frames[9].name == "img10.jpg"  # img2 < img10, not as text
    greys = [image[0, 0, 0] for image, _ in video.iter_frames()]
    assert np.all(np.abs(np.array(greys, float) - (4 * np.arange(20) + 10)) <= 2)
    np.testing.assert_allclose(video.frame_times(), np.arange(20) / 30.0)

    cv2.imwrite(
        str(video.frames[0]),
        np.dstack([np.full((8, 8), 255, np.uint8), *[np.zeros((8, 8), np.uint8)] * 2]),
    )
    image, t = next(video.iter_frames())
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8 and t == 0.0
    assert image[0, 0, 2] > 200 and image[0, 0, 0] < 50  # BGR blue on disk -> RGB blue


def test_missing_image_raises_after_the_frames_before_it(casme2_root):
    video = by_name(load_dataset(casme2_root, "casme2"))["s16_0102"]
    video.frames[5].unlink()
    read = []
    with pytest.raises(VideoError, match="img6.jpg"):
        for image, t in video.iter_frames():
            read.append(t)
    assert len(read) == 5


def test_samm_header_below_notes_and_file_numbered_frames(samm_root, caplog):
    with caplog.at_level("INFO", logger="microexpr.datasets"):
        videos = by_name(load_dataset(samm_root, "samm-lv"))
    assert "header on row 10" in caplog.text and "'onset': 'Onset'" in caplog.text
    assert sorted(videos) == ["006_1", "007_3"]
    first = videos["006_1"]
    assert first.subject == "006" and first.fps == 200.0
    assert first.frames[0].name == "006_1_0001.jpg"
    assert spans(first) == [(4, 19, 44, "macro"), (49, 52, 56, "micro")]
    assert first.intervals[0].aus == "R12" and first.intervals[0].emotion is None
    # Apex -1: not coded. Offset 0: the apex ends it.
    assert spans(videos["007_3"]) == [(2, None, 19, "micro"), (29, 34, 34, "macro")]


def test_casme3_jpg_index_is_the_file_number_and_subject_case_is_ignored(casme3_root):
    videos = by_name(load_dataset(casme3_root, "casme3"))
    assert sorted(videos) == ["spNO.2_b", "spNo.1_a"]
    a = videos["spNo.1_a"]
    assert a.frames[0].name == "0.jpg" and a.fps == 30.0
    assert spans(a) == [(0, 3, 6, "micro"), (15, 25, 35, "macro")]
    assert a.intervals[0].emotion == "happy" and a.intervals[0].aus == "12"
    assert spans(videos["spNO.2_b"]) == [(10, 12, 15, "micro")]


@pytest.mark.parametrize("dataset", ["casme2", "samm-lv", "casme3"])
def test_truth_round_trips_through_the_evaluator(dataset, casme2_root, samm_root, casme3_root):
    root = {"casme2": casme2_root, "samm-lv": samm_root, "casme3": casme3_root}[dataset]
    videos = load_dataset(root, dataset)
    pairs = []
    for video in videos:
        truth = truth_dict(video)
        assert truth["n_frames"] == video.n_frames and len(truth["frame_times"]) == video.n_frames
        assert truth["blinks"] == [] and truth["nuisances"] == []
        perfect = {
            "events": [{"onset": e["onset"], "offset": e["offset"]} for e in truth["events"]]
        }
        pairs.append((truth, perfect))
    result = evaluate_videos(pairs)
    n_events = sum(len(v.intervals) for v in videos)
    assert result.overall.tp == n_events and result.overall.fp == 0 and result.overall.f1 == 1.0
    if dataset == "casme2":  # its macro intervals last longer than 0.5 s
        assert result.micro.f1 == 1.0 and result.macro.f1 == 1.0


def test_truth_dict_times_follow_the_frames(casme2_root):
    video = by_name(load_dataset(casme2_root, "casme2"))["s15_0401"]
    event = truth_dict(video)["events"][0]
    assert event["onset_frame"] == 2 and event["onset"] == pytest.approx(2 / 30)
    assert event["offset"] == pytest.approx(29 / 30) and event["kind"] == "macro"


# ---------------------------------------------------------------------------
# Damaged or missing input
# ---------------------------------------------------------------------------
def test_unknown_dataset_and_missing_folder(tmp_path):
    with pytest.raises(ParameterError, match="dataset must be one of"):
        load_dataset(tmp_path, "casme4")
    with pytest.raises(ParameterError, match="not found"):
        load_dataset(tmp_path / "nowhere", "casme2")


def test_missing_frames_folder_or_spreadsheet_is_named(casme2_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ParameterError, match="rawpic"):
        load_dataset(empty, "casme2")
    (casme2_root / "CAS(ME)^2code_final.xlsx").unlink()
    with pytest.raises(ParameterError, match="code_final"):
        load_dataset(casme2_root, "casme2")


def test_garbled_spreadsheet_is_named(casme2_root):
    sheet = casme2_root / "CAS(ME)^2code_final.xlsx"
    sheet.write_bytes(b"this is not a spreadsheet")
    with pytest.raises(ParameterError, match="cannot be read as a spreadsheet"):
        load_dataset(casme2_root, "casme2")


def test_casme2_without_naming_sheets(casme2_root):
    write_sheets(
        casme2_root / "CAS(ME)^2code_final.xlsx", {"CASFEcode_final": [[1, "anger1_1", 3, 12, 30]]}
    )
    with pytest.raises(ParameterError, match="naming rule1"):
        load_dataset(casme2_root, "casme2")


def test_samm_without_onset_column_names_what_it_found(samm_root):
    header = [
        "Subject",
        "Filename",
        "Start",
        "Apex",
        "Offset",
        "Duration",
        "Type",
        "Action Units",
        "Notes",
        "x",
    ]
    path = samm_root / "SAMM_LongVideos_V3_Release.xlsx"
    write_sheets(
        path,
        {
            "FACS_Movement_Only": samm_sheet(
                [[6, "006_1_1", 5, 20, 45, 41, "Macro", "", "", ""]], header
            )
        },
    )
    with pytest.raises(ParameterError, match=r"onset.*Start") as error:
        load_dataset(samm_root, "samm-lv")
    assert "SAMM_LongVideos_V3_Release.xlsx" in str(error.value)


def test_rows_without_frames_warn_and_the_rest_load(samm_root):
    path = samm_root / "SAMM_LongVideos_V3_Release.xlsx"
    rows = [
        [6, "006_1_1", 1, 5, 20, 45, 41, "Macro", "R12", None],
        [9, "009_2_1", 1, 5, 20, 45, 41, "Macro", "R12", None],  # no such folder
        [6, "006_1_2", 1, 50, 53, 75, 8, "Micro - 1/2", "4", None],  # past the last image
        [6, "006_1_3", 1, 30, 31, 33, 8, "Other", "4", None],  # unknown type
    ]
    write_sheets(path, {"FACS_Movement_Only": samm_sheet(rows)})
    with pytest.warns(DatasetWarning) as caught:
        videos = by_name(load_dataset(samm_root, "samm-lv"))
    messages = " | ".join(str(w.message) for w in caught)
    assert (
        "009_2" in messages
        and "frame 75 has no image" in messages
        and "neither micro nor macro" in messages
    )
    assert spans(videos["006_1"]) == [(4, 19, 44, "macro"), (49, 52, 59, "micro")]


def test_explicit_annotation_paths(casme3_root, tmp_path):
    elsewhere = tmp_path / "labels"
    elsewhere.mkdir()
    source = casme3_root / "part_A" / "annotation" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    target = elsewhere / "me.xlsx"
    target.write_bytes(source.read_bytes())
    for path in (casme3_root / "part_A" / "annotation").iterdir():
        path.unlink()
    with pytest.raises(ParameterError, match="no CAS\\(ME\\)\\^3 label spreadsheet"):
        load_dataset(casme3_root, "casme3")
    videos = by_name(load_dataset(casme3_root, "casme3", annotations=[target]))
    assert spans(videos["spNo.1_a"]) == [(0, 3, 6, "micro")]
