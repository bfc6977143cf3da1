"""The MEGC spotting evaluation rule, checked against hand-computed cases."""

from __future__ import annotations

import json

import pytest

from microexpr.cli_evaluate import main as evaluate_main
from microexpr.errors import ParameterError
from microexpr.evaluate import (
    Evaluation,
    Scores,
    evaluate_paths,
    evaluate_videos,
    interval_iou,
    match_intervals,
    time_to_frame,
    truth_groups,
)

FPS = 10.0
GRID = [k / FPS for k in range(100)]  # frame k is shown at k / 10 s


def truth_doc(events, *, blinks=(), frame_times=GRID, video="clip.mp4"):
    return {
        "video": video,
        "fps": FPS,
        "n_frames": len(frame_times),
        "frame_times": list(frame_times),
        "events": list(events),
        "blinks": list(blinks),
        "nuisances": [],
    }


def truth_event(onset_frame, offset_frame, kind, emotion=None, frame_times=GRID):
    return {
        "onset": frame_times[onset_frame],
        "apex": frame_times[(onset_frame + offset_frame) // 2],
        "offset": frame_times[offset_frame],
        "onset_frame": onset_frame,
        "apex_frame": (onset_frame + offset_frame) // 2,
        "offset_frame": offset_frame,
        "kind": kind,
        "subtle": False,
        "regions": ["mouth"],
        "aus": {"12": 0.8},
        "emotion": emotion,
    }


def blink(onset_frame, offset_frame):
    return {
        "onset": GRID[onset_frame],
        "offset": GRID[offset_frame],
        "onset_frame": onset_frame,
        "offset_frame": offset_frame,
    }


def pred_event(onset, offset, kind=None, emotion=None):
    if kind is None:
        kind = "micro" if offset - onset <= 0.5 else "macro"
    return {
        "onset": onset,
        "apex": (onset + offset) / 2,
        "offset": offset,
        "duration": offset - onset,
        "kind": kind,
        "subtle": False,
        "regions": ["mouth"],
        "aus": {},
        "emotion": emotion,
        "confidence": 0.9,
        "track_id": 0,
    }


def pred_doc(events, *, video="clip.mp4", frame_times=None):
    doc = {"video": video, "events": list(events)}
    if frame_times is not None:
        doc["frame_times"] = list(frame_times)
    return doc


def counts(scores: Scores) -> tuple[int, int, int]:
    return scores.tp, scores.fp, scores.fn


# --- IoU and matching ------------------------------------------------------------
def test_iou_counts_both_ends_of_each_interval():
    assert interval_iou((10, 19), (15, 24)) == pytest.approx(5 / 15)
    assert interval_iou((0, 9), (9, 18)) == pytest.approx(1 / 19)
    assert interval_iou((0, 9), (10, 19)) == 0.0
    assert interval_iou((3, 8), (3, 8)) == 1.0


def test_one_frame_intervals_are_valid():
    assert interval_iou((7, 7), (7, 7)) == 1.0
    assert interval_iou((7, 7), (7, 8)) == 0.5
    assert interval_iou((7, 7), (8, 8)) == 0.0
    assert match_intervals([(7, 7)], [(7, 7)]) == [(0, 0)]
    assert match_intervals([(7, 7)], [(7, 8)]) == [(0, 0)]


def test_iou_of_exactly_half_is_a_match():
    assert interval_iou((0, 9), (0, 4)) == 0.5
    assert match_intervals([(0, 9)], [(0, 4)]) == [(0, 0)]
    assert match_intervals([(0, 9)], [(0, 3)]) == []  # IoU 0.4


def test_matching_is_one_to_one_and_prefers_the_higher_iou():
    # Both predictions reach the truth; only the better one (IoU 1) matches.
    assert match_intervals([(10, 13)], [(11, 13), (10, 13)]) == [(0, 1)]
    # Highest IoU first, even when that leaves another pair unmatched.
    assert match_intervals([(0, 9), (5, 14)], [(5, 14)]) == [(1, 0)]


def test_iou_ties_go_to_the_earliest_onset():
    # The prediction covers both truths with IoU exactly 0.5 each.
    assert match_intervals([(10, 19), (0, 9)], [(0, 19)]) == [(1, 0)]


def test_malformed_intervals_are_rejected():
    with pytest.raises(ParameterError, match="ends before it starts"):
        interval_iou((5, 3), (1, 2))
    with pytest.raises(ParameterError, match="integer"):
        match_intervals([(0.5, 3)], [(1, 2)])


def test_scores_are_zero_when_undefined():
    assert Scores.from_counts(0, 0, 0) == Scores(0, 0, 0, 0.0, 0.0, 0.0)
    assert Scores.from_counts(0, 3, 0).f1 == 0.0


# --- scoring ----------------------------------------------------------------------
def test_one_truth_hit_by_two_predictions_is_one_tp_and_one_fp():
    truth = truth_doc([truth_event(10, 13, "micro")])
    pred = pred_doc([pred_event(1.0, 1.3), pred_event(1.1, 1.3)])
    result = evaluate_videos([(truth, pred)])
    assert counts(result.micro) == (1, 1, 0)
    assert counts(result.overall) == (1, 1, 0)
    assert result.overall.precision == 0.5
    assert result.overall.recall == 1.0
    assert result.overall.f1 == pytest.approx(2 / 3)
    assert result.per_video["clip"].matches == [(0, 0)]


def test_counts_are_pooled_over_videos_not_averaged():
    perfect = (
        truth_doc([truth_event(0, 9, "macro")], video="a.mp4"),
        pred_doc([pred_event(0.0, 0.9)], video="a.mp4"),
    )
    missed = (
        truth_doc([truth_event(s, s + 9, "macro") for s in (0, 20, 40)], video="b.mp4"),
        pred_doc([], video="b.mp4"),
    )
    result = evaluate_videos([perfect, missed])
    assert result.per_video["a"].overall.f1 == 1.0
    assert result.per_video["b"].overall.f1 == 0.0
    # Pooled: TP 1, FP 0, FN 3 -> P 1, R 0.25, F1 0.4 (the mean of the per-video F1s is 0.5).
    assert counts(result.overall) == (1, 0, 3)
    assert result.overall.f1 == pytest.approx(0.4)
    assert counts(result.macro) == (1, 0, 3)
    assert counts(result.micro) == (0, 0, 0)


def test_predictions_split_into_micro_and_macro_at_exactly_half_a_second():
    truth = truth_doc([truth_event(17, 22, "micro"), truth_event(40, 50, "macro")])
    assert 2.2 - 1.7 > 0.5  # float rounding: the split must still call it 0.5 s
    pred = pred_doc(
        [
            pred_event(1.7, 2.2, kind="macro"),  # 0.5 s: micro by duration, whatever its label
            pred_event(4.0, 5.0),  # 1 s: macro
            pred_event(7.0, 7.51),  # 0.51 s: macro, matches nothing
        ]
    )
    result = evaluate_videos([(truth, pred)])
    assert counts(result.micro) == (1, 0, 0)
    assert counts(result.macro) == (1, 1, 0)
    assert counts(result.overall) == (2, 1, 0)


def test_micro_prediction_on_a_macro_truth_counts_for_overall_only():
    truth = truth_doc([truth_event(0, 9, "macro")])
    pred = pred_doc([pred_event(0.0, 0.5)])  # frames [0, 5], IoU 6/10
    result = evaluate_videos([(truth, pred)])
    assert counts(result.micro) == (0, 1, 0)
    assert counts(result.macro) == (0, 0, 1)
    assert counts(result.overall) == (1, 0, 0)


def test_emotion_accuracy_over_matched_pairs_with_a_labelled_emotion():
    truth = truth_doc(
        [
            truth_event(0, 3, "micro", "happiness"),
            truth_event(10, 13, "micro", "surprise"),
            truth_event(20, 23, "micro", "disgust"),
            truth_event(30, 33, "micro", None),  # no label: not counted
            truth_event(40, 43, "micro", "fear"),  # missed: not counted
        ]
    )
    pred = pred_doc(
        [
            pred_event(0.0, 0.3, emotion="Happiness"),
            pred_event(1.0, 1.3, emotion="fear"),
            pred_event(2.0, 2.3, emotion=None),
            pred_event(3.0, 3.3, emotion="anger"),
            pred_event(6.0, 6.3, emotion="fear"),  # false positive: not counted
        ]
    )
    result = evaluate_videos([(truth, pred)])
    assert result.n_emotion_matched == 3
    assert result.emotion_accuracy == pytest.approx(1 / 3)


def test_emotion_accuracy_is_none_without_labelled_matches():
    result = evaluate_videos([(truth_doc([truth_event(0, 3, "micro")]), pred_doc([]))])
    assert result.emotion_accuracy is None
    assert result.n_emotion_matched == 0


def test_blinks_are_not_expressions_but_blinks_taken_for_micro_are_counted():
    truth = truth_doc(
        [truth_event(50, 53, "micro")],
        blinks=[blink(10, 12), blink(20, 22), blink(30, 32)],
    )
    pred = pred_doc(
        [
            pred_event(1.0, 1.2, kind="micro"),  # a blink spotted as a micro-expression
            pred_event(2.0, 2.2, kind="blink"),  # a blink recognised as a blink
            pred_event(5.0, 5.3, kind="micro"),  # the real micro-expression
        ]
    )
    result = evaluate_videos([(truth, pred)])
    assert result.blinks_as_micro == pytest.approx(1 / 3)
    assert (result.n_blinks_as_micro, result.n_blinks) == (1, 3)
    # The blink-kind prediction is no expression: not a false positive.
    assert counts(result.overall) == (1, 1, 0)
    assert counts(result.micro) == (1, 1, 0)


def test_blinks_as_micro_is_none_without_truth_blinks():
    result = evaluate_videos([(truth_doc([]), pred_doc([pred_event(1.0, 1.2)]))])
    assert result.blinks_as_micro is None


# --- seconds to frames -----------------------------------------------------------------
IRREGULAR = [0.0, 0.05, 0.07, 0.2, 0.21, 0.5, 0.52, 0.9, 1.3, 1.31]


def test_time_to_frame_picks_the_closest_presentation_time():
    assert time_to_frame(0.065, IRREGULAR) == 2
    assert time_to_frame(0.45, IRREGULAR) == 5
    assert time_to_frame(0.3, IRREGULAR) == 4
    assert time_to_frame(-1.0, IRREGULAR) == 0
    assert time_to_frame(9.0, IRREGULAR) == 9
    assert time_to_frame(0.75, [0.0, 0.25, 0.5, 1.0]) == 2  # exact tie: earlier frame


def test_seconds_become_frames_through_irregular_frame_times():
    truth = truth_doc(
        [{"onset_frame": 2, "offset_frame": 5, "kind": "micro"}],
        frame_times=IRREGULAR,
    )
    # 0.065 s -> frame 2 and 0.45 s -> frame 5; index = t * fps would give [1, 4] or [1, 5].
    pred = pred_doc([pred_event(0.065, 0.45)])
    result = evaluate_videos([(truth, pred)])
    assert counts(result.micro) == (1, 0, 0)
    assert result.per_video["clip"].matches == [(0, 0)]


def test_prediction_frame_times_take_precedence_over_the_truths():
    truth = truth_doc([truth_event(2, 3, "micro", frame_times=list(range(10)))], frame_times=range(10))
    pred = pred_doc([pred_event(0.2, 0.3)], frame_times=[k / 10 for k in range(10)])
    assert counts(evaluate_videos([(truth, pred)]).micro) == (1, 0, 0)
    # Through the truth's frame times the same seconds land on frame 0.
    del pred["frame_times"]
    assert counts(evaluate_videos([(truth, pred)]).micro) == (0, 1, 1)


def test_truth_frame_fields_are_preferred_over_its_seconds():
    event = truth_event(20, 25, "micro")
    event["onset"], event["offset"] = 0.0, 0.5
    result = evaluate_videos([(truth_doc([event]), pred_doc([pred_event(2.0, 2.5)]))])
    assert counts(result.micro) == (1, 0, 0)


# --- malformed input -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("truth", "pred", "message"),
    [
        ([], pred_doc([]), "expected a JSON object"),
        ({"video": "clip.mp4"}, pred_doc([]), "missing the 'events' list"),
        (truth_doc([{"onset": 1.0, "kind": "micro"}]), pred_doc([]), "'offset'"),
        (truth_doc([{"onset": 1.0, "offset": 0.5, "kind": "micro"}]), pred_doc([]), "before onset"),
        (truth_doc([truth_event(1, 2, "sneeze")]), pred_doc([]), "'kind' must be one of"),
        (truth_doc([]), pred_doc([{"onset": "1", "offset": 2, "kind": "micro"}]), "finite number"),
        (truth_doc([], frame_times=[0.0, 0.2, 0.1]), pred_doc([]), "strictly increase"),
        (
            {"video": "clip.mp4", "events": [{"onset": 0.1, "offset": 0.2, "kind": "micro"}]},
            pred_doc([]),
            "frame_times",
        ),
        (
            truth_doc([{"onset_frame": 5, "offset_frame": 500, "kind": "micro"}]),
            pred_doc([]),
            "past the last frame",
        ),
        (truth_doc([]), pred_doc([pred_event(1.0, 1.2, kind="grin")]), "'kind' must be one of"),
        (truth_doc([]), {"video": "clip.mp4", "events": {"onset": 1}}, "must be a list"),
    ],
)
def test_malformed_documents_name_what_is_wrong(truth, pred, message):
    with pytest.raises(ParameterError, match=message):
        evaluate_videos([(truth, pred)])


# --- files and folders --------------------------------------------------------------------
def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_single_truth_file_and_prediction_file(tmp_path):
    truth = write_json(tmp_path / "clip.truth.json", truth_doc([truth_event(10, 13, "micro")]))
    pred = write_json(tmp_path / "out" / "events.json", pred_doc([pred_event(1.0, 1.3)]))
    result = evaluate_paths(truth, pred)
    assert isinstance(result, Evaluation)
    assert counts(result.micro) == (1, 0, 0)


def test_folders_are_matched_by_video_stem(tmp_path):
    for stem in ("a", "b", "c"):
        write_json(
            tmp_path / "truth" / f"{stem}.truth.json",
            truth_doc([truth_event(10, 13, "micro")], video=f"{stem}.mp4"),
        )
    write_json(tmp_path / "pred" / "a" / "events.json", pred_doc([pred_event(1.0, 1.3)], video="a.mp4"))
    write_json(tmp_path / "pred" / "b.events.json", pred_doc([pred_event(5.0, 5.3)], video="b.mp4"))
    write_json(tmp_path / "pred" / "zzz.events.json", pred_doc([], video="zzz.mp4"))
    with pytest.warns(UserWarning) as record:
        result = evaluate_paths(tmp_path / "truth", tmp_path / "pred")
    messages = " ".join(str(w.message) for w in record)
    assert "['c']" in messages  # truth without predictions: scored as nothing spotted
    assert "['zzz']" in messages  # predictions without truth: ignored
    assert sorted(result.per_video) == ["a", "b", "c"]
    assert counts(result.micro) == (1, 1, 2)


def test_files_that_are_not_valid_json_name_their_path(tmp_path):
    truth = write_json(tmp_path / "clip.truth.json", truth_doc([]))
    broken = tmp_path / "events.json"
    broken.write_text("{not json")
    with pytest.raises(ParameterError, match="events.json: not valid JSON"):
        evaluate_paths(truth, broken)
    with pytest.raises(ParameterError, match="not found"):
        evaluate_paths(tmp_path / "missing.truth.json", broken)
    with pytest.raises(ParameterError, match="no prediction"):
        other = write_json(tmp_path / "other" / "x.events.json", pred_doc([], video="x.mp4"))
        evaluate_paths(truth, other.parent)


def test_summary_and_dict(tmp_path):
    truth = truth_doc([truth_event(10, 13, "micro", "happiness")], blinks=[blink(30, 32)])
    result = evaluate_videos([(truth, pred_doc([pred_event(1.0, 1.3, emotion="happiness")]))])
    text = result.summary()
    for word in ("micro", "macro", "overall", "precision", "recall", "F1", "emotion accuracy", "blinks"):
        assert word in text
    data = json.loads(json.dumps(result.to_dict()))
    assert data["micro"]["tp"] == 1 and data["overall"]["f1"] == 1.0
    assert data["emotion_accuracy"] == 1.0 and data["blinks_as_micro"] == 0.0
    assert data["per_video"]["clip"]["matches"] == [[0, 0]]


def test_command_line_prints_the_table_and_writes_json(tmp_path, capsys):
    truth = write_json(tmp_path / "clip.truth.json", truth_doc([truth_event(10, 13, "micro")]))
    pred = write_json(tmp_path / "clip.events.json", pred_doc([pred_event(1.0, 1.3)]))
    out = tmp_path / "scores.json"
    assert evaluate_main([str(truth), str(pred), "--json", str(out)]) == 0
    assert "overall" in capsys.readouterr().out
    assert json.loads(out.read_text())["micro"]["f1"] == 1.0

    pred.write_text("[]")
    assert evaluate_main([str(truth), str(pred)]) == 1
    assert "expected a JSON object" in capsys.readouterr().err


# --- groups of videos -------------------------------------------------------------------
def write_graded_set(tmp_path):
    """Four videos at two frame rates and two compression levels; only the crf 28 ones are missed."""
    for stem, fps, crf in (("a", 25.0, 20), ("b", 200.0, 20), ("c", 25.0, 28), ("d", 200.0, 28)):
        doc = truth_doc([truth_event(10, 13, "micro")], video=f"{stem}.mp4")
        doc["fps"] = fps  # the top level wins over the spec's
        doc["spec"] = {"fps": 1.0, "crf": crf}
        write_json(tmp_path / "truth" / f"{stem}.truth.json", doc)
        hit = [pred_event(1.0, 1.3)] if crf == 20 else [pred_event(5.0, 5.3)]
        write_json(tmp_path / "pred" / f"{stem}.events.json", pred_doc(hit, video=f"{stem}.mp4"))
    return tmp_path / "truth", tmp_path / "pred"


def test_videos_are_grouped_by_truth_fields_in_the_order_of_their_values(tmp_path):
    truth, _ = write_graded_set(tmp_path)
    groups = truth_groups(truth, ["fps", "crf"])
    assert groups == {"fps=25 crf=20": ["a"], "fps=25 crf=28": ["c"],
                      "fps=200 crf=20": ["b"], "fps=200 crf=28": ["d"]}
    assert truth_groups(truth, ["crf"]) == {"crf=20": ["a", "b"], "crf=28": ["c", "d"]}
    with pytest.warns(UserWarning, match="no truth file has a field 'lens'"):
        assert truth_groups(truth, ["lens"]) == {"lens=?": ["a", "b", "c", "d"]}
    with pytest.raises(ParameterError, match="at least one"):
        truth_groups(truth, [])


def test_a_subset_pools_only_its_videos(tmp_path):
    truth, pred = write_graded_set(tmp_path)
    result = evaluate_paths(truth, pred)
    assert counts(result.micro) == (2, 2, 2)
    clean = result.subset(["a", "b"])
    assert counts(clean.micro) == (2, 0, 0) and sorted(clean.per_video) == ["a", "b"]
    assert counts(result.subset(["c", "d"]).micro) == (0, 2, 2)
    with pytest.raises(ParameterError, match="zzz"):
        result.subset(["a", "zzz"])


def test_command_line_scores_each_group(tmp_path, capsys):
    truth, pred = write_graded_set(tmp_path)
    out = tmp_path / "scores.json"
    assert evaluate_main([str(truth), str(pred), "--by", "crf", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "by crf:" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("crf=")}
    assert "1.000 (2/0/0)" in rows["crf=20"] and "0.000 (0/2/2)" in rows["crf=28"]
    data = json.loads(out.read_text())
    assert data["micro"]["tp"] == 2
    assert data["groups"]["crf=28"]["videos"] == ["c", "d"]
    assert data["groups"]["crf=20"]["micro"]["f1"] == 1.0
    assert evaluate_main([str(truth), str(pred), "--by", ","]) == 1
    assert "at least one" in capsys.readouterr().err
