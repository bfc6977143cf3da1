"""``microexpr megc`` on small copies of the dataset layouts holding real (synthetic) faces.

The fixture layouts are those of tests/test_datasets.py (tests/dataset_fixtures.py);
here every frame image is a synthetic face rendered by microexpr.synth, so
the landmarker, the pipeline and the baselines all have something to work on.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("openpyxl", reason="writing the fixture spreadsheets needs openpyxl")

from dataset_fixtures import build_casme2, build_casme3, build_samm  # noqa: E402

from microexpr.errors import ModelNotFoundError  # noqa: E402
from microexpr.evaluate import Evaluation, Scores  # noqa: E402
from microexpr.megc import (  # noqa: E402
    METHODS,
    CropAligner,
    f1_table,
    main,
    prediction_path,
    score_predictions,
    spot_frames,
)


def _face_model_or_skip() -> None:
    from microexpr.landmarks import find_face_model

    try:
        find_face_model()
    except ModelNotFoundError as error:
        pytest.skip(f"no face landmark model installed: {error}")


def face_frames(folder: Path, names: list[str]) -> None:
    """A synthetic face clip (seed = frame count), one JPEG per name."""
    from microexpr.synth import ClipSpec, render_clip

    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a clip this short has no room for some nuisances
        frames, _ = render_clip(ClipSpec(fps=30.0, duration=len(names) / 30.0, size=(320, 240),
                                         seed=len(names), face_scale=0.2))
    for j, name in enumerate(names):
        cv2.imwrite(str(folder / name), cv2.cvtColor(frames.frame_at(j), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def face_datasets(tmp_path_factory) -> dict[str, Path]:
    _face_model_or_skip()
    base = tmp_path_factory.mktemp("megc_faces")
    return {
        "casme2": build_casme2(base / "CAS(ME)^2", face_frames),
        "samm-lv": build_samm(base / "SAMM", face_frames),
        "casme3": build_casme3(base / "CASME3", face_frames),
    }


VIDEOS = {"casme2": ["s15_0401", "s16_0101", "s16_0102"], "samm-lv": ["006_1", "007_3"]}


def table_rows(text: str) -> dict[str, list[str]]:
    """``| row | cell | cell |`` lines of the F1 table, by row name."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ("micro", "macro", "overall"):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("dataset", ["casme2", "samm-lv"])
def test_megc_spots_every_video_with_all_methods_and_resumes(dataset, face_datasets, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(face_datasets[dataset]), "--dataset", dataset, "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"{len(VIDEOS[dataset])} video(s) spotted, 0 already done" in printed
    header = next(line for line in printed.splitlines() if "F1 (TP/FP/FN)" in line)
    assert [m in header for m in METHODS] == [True, True, True]
    rows = table_rows(printed)
    assert sorted(rows) == ["macro", "micro", "overall"] and all(len(cells) == 3 for cells in rows.values())
    # Every coded interval is a TP or an FN: overall TP + FN is the number coded (4 in each fixture).
    for cell in rows["overall"]:
        tp, fp, fn = (int(v) for v in cell.split("(")[1].rstrip(")").split("/"))
        assert tp + fn == 4 and fp >= 0

    files = {m: {name: prediction_path(out, m, name) for name in VIDEOS[dataset]} for m in METHODS}
    for method, by_video in files.items():
        for name, path in by_video.items():
            document = json.loads(path.read_text())
            assert document["video"] == name and document["method"] == method
            assert isinstance(document["events"], list)
            assert len(document["frame_times"]) > 0 and np.all(np.diff(document["frame_times"]) > 0)
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["scores"]) == set(METHODS) and scores["failures"] == {}

    stamps = {path: path.stat().st_mtime_ns for by_video in files.values() for path in by_video.values()}
    assert main([str(face_datasets[dataset]), "--dataset", dataset, "--out", str(out), "--quiet"]) == 0
    again = capsys.readouterr().out
    assert f"0 video(s) spotted, {len(VIDEOS[dataset])} already done (skipped)" in again
    assert table_rows(again) == rows
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps


def test_only_the_missing_methods_run_on_resume(face_datasets, tmp_path, capsys):
    root, out = face_datasets["casme3"], tmp_path / "out"
    names = ["spNO.2_b", "spNo.1_a"]
    assert main([str(root), "--dataset", "casme3", "--out", str(out), "--method", "lbp", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 videos, 2 micro + 1 macro" in printed and "lbp F1" in printed and "mdmd F1" not in printed
    lbp_stamps = {name: prediction_path(out, "lbp", name).stat().st_mtime_ns for name in names}
    assert not (out / "microexpr").exists()

    assert main([str(root), "--dataset", "casme3", "--out", str(out), "--quiet"]) == 0
    assert "2 video(s) spotted" in capsys.readouterr().out
    assert {name: prediction_path(out, "lbp", name).stat().st_mtime_ns for name in names} == lbp_stamps
    for method in ("microexpr", "mdmd"):
        assert all(prediction_path(out, method, name).is_file() for name in names)


def test_a_broken_video_is_reported_and_the_others_are_still_spotted(face_datasets, tmp_path, capsys):
    root = shutil.copytree(face_datasets["casme3"], tmp_path / "casme3")
    (root / "part_A" / "data" / "part_A" / "spNO.2" / "b" / "color" / "20.jpg").write_bytes(b"not a JPEG")
    out = tmp_path / "out"
    status = main([str(root), "--dataset", "casme3", "--out", str(out), "--quiet", "--method", "microexpr"])
    captured = capsys.readouterr()
    assert status == 1
    assert "spNO.2_b failed" in captured.err and "20.jpg" in captured.err
    assert not prediction_path(out, "microexpr", "spNO.2_b").exists()
    assert not list((out / "microexpr").glob("*.partial"))
    assert prediction_path(out, "microexpr", "spNo.1_a").is_file()
    assert "1 video(s) without predictions, scored as nothing spotted: spNO.2_b" in captured.out
    assert "overall" in table_rows(captured.out)


def test_spot_frames_gives_what_analyze_gives(tmp_path):
    _face_model_or_skip()
    from microexpr.pipeline import analyze
    from microexpr.synth import ClipSpec, write_clip
    from microexpr.video import open_video

    path = tmp_path / "clip.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_clip(path, ClipSpec(fps=30.0, duration=2.0, size=(320, 240), seed=11, n_micro=1, n_macro=0,
                                  speech=False, illumination=False, face_scale=0.2))
    expected = analyze(path)
    assert {e.kind for e in expected.events} >= {"micro"}  # something to compare
    with open_video(path) as reader:
        predictions = spot_frames(((f.image, f.t) for f in reader), methods=["microexpr"])
    assert list(predictions.events) == ["microexpr"]
    assert predictions.events["microexpr"] == [e.to_dict() for e in expected.events]
    assert predictions.frame_times == pytest.approx(expected.frame_times)
    assert predictions.n_frames_with_face == len(expected.frame_times)


def test_crop_aligner_puts_the_eyes_where_the_pipeline_does():
    from microexpr.landmarks import get_scheme
    from microexpr.regions import CropGeometry

    scheme = get_scheme("mediapipe478")
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 300, (scheme.n_points, 2))
    aligner = CropAligner(crop_size=128)
    grey = rng.integers(0, 255, (480, 640), dtype=np.uint8)
    assert aligner.crop(grey, base).shape == (128, 128)
    # The same face turned by 10 degrees and shifted lands in the same place.
    angle = np.deg2rad(10.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (base - 200) @ rotation.T + 200 + (15.0, -7.0)
    crop = aligner.crop(grey, moved)
    assert crop.dtype == np.uint8 and crop.shape == (128, 128)
    from microexpr.core import estimate_similarity

    align = list(scheme.alignment_indices)
    M = estimate_similarity(np.ascontiguousarray(moved[align]), aligner.template)
    mapped = moved @ M[:, :2].T + M[:, 2]
    eyes = np.stack([mapped[list(scheme.eye_corners[side])].mean(axis=0) for side in ("right", "left")])
    np.testing.assert_allclose(eyes, CropGeometry(size=128).eye_centres, atol=1e-6)


def test_dotted_video_names_are_scored_apart(tmp_path):
    """CAS(ME)^3 names hold dots ("spNO.1_a"); a suffix-stripping stem would merge them."""
    truths = {}
    for name in ("spNO.1_a", "spNO.1_b"):
        times = (np.arange(60) / 30.0).tolist()
        truths[name] = {"video": name, "frame_times": times, "n_frames": 60, "blinks": [],
                        "events": [{"onset": 0.5, "offset": 0.8, "onset_frame": 15, "offset_frame": 24,
                                    "kind": "micro"}]}
    spotted = prediction_path(tmp_path, "mdmd", "spNO.1_a")
    spotted.parent.mkdir(parents=True)
    found = {"onset": 0.5, "offset": 0.8, "kind": "micro"}
    spotted.write_text(json.dumps({"video": "spNO.1_a", "events": [found]}))
    evaluations, missing = score_predictions(truths, tmp_path, ["mdmd"])
    assert missing == {"mdmd": ["spNO.1_b"]}
    assert sorted(evaluations["mdmd"].per_video) == ["spNO.1_a", "spNO.1_b"]
    overall = evaluations["mdmd"].overall
    assert (overall.tp, overall.fp, overall.fn) == (1, 0, 1)


def test_f1_table_lists_methods_side_by_side():
    def evaluation(tp, fp, fn):
        s = Scores.from_counts(tp, fp, fn)
        return Evaluation(micro=s, macro=Scores.from_counts(0, 0, 0), overall=s, emotion_accuracy=None,
                          n_emotion_matched=0, blinks_as_micro=None, per_video={})

    text = f1_table({"microexpr": evaluation(1, 1, 0), "lbp": evaluation(0, 2, 1)})
    lines = text.splitlines()
    assert lines[0] == "| | microexpr F1 (TP/FP/FN) | lbp F1 (TP/FP/FN) |"
    assert table_rows(text)["micro"] == ["0.667 (1/1/0)", "0.000 (0/2/1)"]


def test_usage_and_input_errors(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2  # --dataset is required
    assert main([str(tmp_path / "nowhere"), "--dataset", "casme2", "--out", str(tmp_path / "o")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err
    assert main([str(tmp_path), "--dataset", "casme2", "--method", "tvl1"]) == 2
    assert main([str(tmp_path), "--dataset", "casme2", "--crop-size", "64"]) == 2
