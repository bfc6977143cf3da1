"""The spotting pipeline end to end on synthetic clips with known events."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from microexpr import Analyzer, Event, ParameterError, Result, analyze
from microexpr.pipeline import SPOTTING_FLOW
from microexpr.evaluate import evaluate_videos
from microexpr.synth import ClipSpec, render_clip, write_clip


def _quiet(**kw) -> ClipSpec:
    base = dict(blinks=False, head_motion=False, speech=False, illumination=False,
                n_micro=0, n_macro=0, n_subtle=0, size=(480, 360), crf=18)
    base.update(kw)
    return ClipSpec(**base)


@pytest.fixture(scope="module")
def happiness_clip(tmp_path_factory):
    """A 6 s clip with one large happiness macro-expression, nothing else."""
    path = tmp_path_factory.mktemp("pipe") / "happy.mp4"
    truth = write_clip(path, _quiet(fps=30, duration=6.0, seed=3, n_macro=1,
                                    emotions=("happiness",), macro_amplitude_px=(5.0, 6.0)))
    return path, truth


@pytest.fixture(scope="module")
def happiness_result(happiness_clip):
    path, _ = happiness_clip
    return analyze(path)


def test_macro_expression_is_found_with_its_emotion(happiness_clip, happiness_result):
    path, truth = happiness_clip
    expressions = [e for e in happiness_result.events if e.kind != "blink"]
    assert expressions, "the planted macro-expression was not spotted"
    scores = evaluate_videos([(truth.to_dict(), happiness_result.to_dict())])
    assert scores.macro.tp == 1
    best = max(expressions, key=lambda e: e.peak)
    assert best.kind == "macro"
    assert best.emotion == "happiness"
    assert {"mouth", "cheeks"} & set(best.regions)
    assert best.aus.get(12, 0.0) > 0.3


def test_event_times_are_presentation_times(happiness_result):
    times = set(np.round(happiness_result.frame_times, 9))
    for e in happiness_result.events:
        assert e.onset <= e.apex <= e.offset
        assert math.isclose(e.duration, e.offset - e.onset)
        for t in (e.onset, e.apex, e.offset):
            assert round(t, 9) in times


def test_result_converts_to_every_format(happiness_result, tmp_path):
    frame = happiness_result.to_frame()
    assert {"t", "frame", "track", "activity"} <= set(frame.columns)
    assert frame["t"].is_monotonic_increasing
    happiness_result.to_json(tmp_path / "events.json")
    data = json.loads((tmp_path / "events.json").read_text())
    assert len(data["events"]) == len(happiness_result.events)
    back = Result.from_json(tmp_path / "events.json")
    assert [e.kind for e in back.events] == [e.kind for e in happiness_result.events]
    happiness_result.to_csv(tmp_path / "events.csv")
    happiness_result.to_parquet(tmp_path / "frames.parquet")
    assert (tmp_path / "events.csv").read_text().startswith("onset")
    assert (tmp_path / "frames.parquet").stat().st_size > 0


def test_still_face_gives_no_expression():
    frames, _ = render_clip(_quiet(fps=25, duration=5.0, seed=11))
    with Analyzer() as analyzer:
        for image, t in frames:
            analyzer.push(image, t)
        analyzer.flush()
        result = analyzer.result()
    assert [e for e in result.events if e.kind != "blink"] == []


def test_blinks_are_blinks_not_micro_expressions():
    frames, truth = render_clip(_quiet(fps=30, duration=8.0, seed=5, blinks=True))
    assert truth.blinks, "the generator planted no blink"
    with Analyzer() as analyzer:
        for image, t in frames:
            analyzer.push(image, t)
        analyzer.flush()
        result = analyzer.result()
    blinks = [e for e in result.events if e.kind == "blink"]
    assert len(blinks) >= len(truth.blinks) - 1
    assert not [e for e in result.events if e.kind == "micro"]


def test_streaming_reports_each_event_after_its_offset(happiness_clip):
    path, _ = happiness_clip
    from microexpr.video import open_video

    reported: list[tuple[float, Event]] = []
    with Analyzer(mode="streaming") as analyzer:
        for frame in open_video(path):
            for event in analyzer.push(frame.image, frame.t):
                reported.append((frame.t, event))
        tail = analyzer.flush()
    assert reported or tail
    for t, event in reported:
        assert event.detected_at == t
        assert event.offset <= t


def test_analyze_finding_landmarks_ahead_equals_frame_by_frame_push(happiness_clip, happiness_result):
    # analyze() decodes and runs the landmarker on worker threads; the result must be
    # exactly what pushing the frames one by one gives.
    path, _ = happiness_clip
    from microexpr.video import open_video

    with Analyzer(mode="offline") as analyzer:
        for frame in open_video(path):
            analyzer.push(frame.image, frame.t)
        analyzer.flush()
        expected = analyzer.result(video=str(path))
    assert happiness_result.frame_times == expected.frame_times
    assert [e.to_dict() for e in happiness_result.events] == [e.to_dict() for e in expected.events]
    assert happiness_result.to_frame().equals(expected.to_frame())


def test_flows_on_two_threads_give_what_one_thread_gives(happiness_clip, happiness_result):
    # During an expression a frame's flows (against the anchor and a recent
    # frame) run in parallel, and a back-fill runs on a thread of its own
    # beside the next frames: same numbers, same events, same detection times.
    path, _ = happiness_clip
    with Analyzer(mode="offline", flow_threads=1) as analyzer:
        from microexpr.video import open_video

        for frame in open_video(path):
            analyzer.push(frame.image, frame.t)
        analyzer.flush()
        serial = analyzer.result(video=str(path))
    assert [e.to_dict() for e in serial.events] == [e.to_dict() for e in happiness_result.events]
    assert serial.to_frame().equals(happiness_result.to_frame())


class _Frame:
    def __init__(self, t: float) -> None:
        self.image = np.zeros((4, 4, 3), np.uint8)
        self.t = t


class _CountingLandmarker:
    def __init__(self, fail_at: int | None = None) -> None:
        self.calls = 0
        self.fail_at = fail_at

    def detect(self, image, t):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError(f"detector broke at t={t}")
        return [f"faces at {t}"]


def _detect_ahead(frames, landmarker, **kw):
    """The two worker stages analyze() runs: frames, then their faces."""
    from microexpr.pipeline import _Ahead

    decoded = _Ahead(frames, **kw)
    detected = _Ahead(((f, landmarker.detect(f.image, f.t)) for f in decoded), **kw)
    return detected, decoded


def test_detect_ahead_yields_in_order_and_raises_worker_errors_in_the_caller():
    ahead, decoded = _detect_ahead((_Frame(i / 30) for i in range(20)), _CountingLandmarker())
    try:
        assert [faces for _, faces in ahead] == [[f"faces at {i / 30}"] for i in range(20)]
    finally:
        ahead.close()
        decoded.close()
    ahead, decoded = _detect_ahead((_Frame(i / 30) for i in range(20)), _CountingLandmarker(fail_at=5))
    seen = []
    with pytest.raises(RuntimeError, match="detector broke"):
        for frame, _ in ahead:
            seen.append(frame.t)
    ahead.close()
    decoded.close()
    assert len(seen) == 4


def test_detect_ahead_stops_when_the_caller_stops_reading():
    landmarker = _CountingLandmarker()
    ahead, decoded = _detect_ahead((_Frame(i / 30) for i in range(10_000)), landmarker, depth=2)
    next(iter(ahead))
    # Both workers wait on full queues: closing consumer then producer must return.
    ahead.close()
    decoded.close()
    assert not ahead._thread.is_alive() and not decoded._thread.is_alive()
    assert landmarker.calls < 10


def test_caller_landmarks_replace_the_detector(happiness_clip):
    """detector=None runs without MediaPipe on landmarks the caller gives."""
    from microexpr.landmarks import FaceLandmarker
    from microexpr.video import open_video

    path, _ = happiness_clip
    with FaceLandmarker() as landmarker, Analyzer(detector=None) as analyzer:
        for frame in open_video(path):
            faces = landmarker.detect(frame.image, frame.t)
            analyzer.push(frame.image, frame.t, landmarks=[f.points for f in faces],
                          blendshapes=[f.blendshapes for f in faces])
        analyzer.flush()
        result = analyzer.result()
    assert any(e.kind == "macro" for e in result.events)


def test_bad_frames_raise_and_keep_the_state(happiness_clip):
    frames, _ = render_clip(_quiet(fps=25, duration=1.0, seed=2))
    with Analyzer() as analyzer:
        image, t0 = next(iter(frames))
        analyzer.push(image, t0)
        with pytest.raises(ParameterError, match="uint8"):
            analyzer.push(image.astype(np.float32), t0 + 0.04)
        with pytest.raises(ParameterError, match="shape"):
            analyzer.push(np.zeros((10, 10, 4), np.uint8), t0 + 0.04)
        with pytest.raises(ParameterError, match="increase"):
            analyzer.push(image, t0)
        analyzer.push(image, t0 + 0.04)  # still usable
        assert len(analyzer.result().frame_times) == 2


def test_nan_landmarks_warn_and_are_skipped():
    image = np.zeros((120, 160, 3), np.uint8)
    points = np.full((478, 2), np.nan, np.float32)
    with Analyzer(detector=None) as analyzer:
        with pytest.warns(UserWarning, match="skipped"):
            analyzer.push(image, 0.0, landmarks=[points])
        result = analyzer.result()
    assert any("skipped" in w for w in result.warnings)


def test_no_face_and_tiny_frames_warn_without_crashing():
    with Analyzer() as analyzer, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer.push(np.zeros((1, 1, 3), np.uint8), 0.0)
        analyzer.push(np.zeros((240, 320, 3), np.uint8), 0.04)
        analyzer.flush()
        result = analyzer.result()
    assert result.events == []
    assert any("no face" in w for w in result.warnings)


def test_truncated_file_keeps_what_was_found(happiness_clip, tmp_path):
    path, _ = happiness_clip
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    try:
        result = analyze(cut)
    except Exception as error:  # a moov-at-end file cut short cannot be opened at all
        from microexpr.errors import VideoError

        assert isinstance(error, VideoError)
        return
    assert result.frame_times
    assert result.warnings


def test_unknown_option_is_a_parameter_error():
    with pytest.raises(ParameterError):
        Analyzer(detector=None, no_such_option=1)
    with pytest.raises(ParameterError):
        Analyzer(detector=None, mode="sometimes")
    with pytest.raises(ParameterError):
        Analyzer(detector=None, crop_size=32)
    with pytest.raises(ParameterError, match="flow_threads"):
        Analyzer(detector=None, flow_threads=0)
    with pytest.raises(ParameterError, match="sweepz"):
        Analyzer(detector=None, flow_options={"sweepz": 3})


def test_spotting_flow_tunes_only_the_default_preset():
    assert Analyzer(detector=None).flow_options == SPOTTING_FLOW
    # A preset asked for by name runs as that preset.
    assert Analyzer(detector=None, flow_preset="accurate").flow_options == {}
    assert Analyzer(detector=None, flow_preset="fast", flow_options={"sweeps": 2}).flow_options == {"sweeps": 2}


def test_spotting_stage_time_leaves_out_flow_and_regions(monkeypatch):
    """Regression: the spotting stage counted the flow it calls, so stages double-counted."""
    import time as time_module

    import microexpr.pipeline as pipeline

    real_flow = pipeline.dense_flow

    def slow_flow(*args, **kwargs):
        time_module.sleep(0.02)
        return real_flow(*args, **kwargs)

    monkeypatch.setattr(pipeline, "dense_flow", slow_flow)
    frames, _ = render_clip(_quiet(fps=25, duration=1.6, seed=4))
    with Analyzer(time_stages=True) as analyzer:
        for image, t in frames:
            analyzer.push(image, t)
        summary = analyzer.stage_times.summary()
    assert summary["flow"]["p50_ms"] >= 20.0
    assert summary["spotting"]["p50_ms"] < 10.0


def test_crop_follows_the_head_not_the_eye_corners_during_a_blink():
    """Lids drag the eye-corner landmarks in a blink: the crop must not jolt with them."""
    from microexpr.landmarks import FaceLandmarker, get_scheme

    frames, _ = render_clip(_quiet(fps=25, duration=0.2, seed=4))
    image, _ = next(iter(frames))
    with FaceLandmarker() as landmarker:
        (face,) = landmarker.detect(image, 0.0)
    scheme = get_scheme(face.scheme)
    open_points = face.points.astype(np.float32)
    blinking = open_points.copy()
    for side in ("left", "right"):
        for upper, lower in scheme.eyelid_pairs[side]:
            blinking[upper] = 0.8 * open_points[lower] + 0.2 * open_points[upper]  # lids nearly shut
        for corner in scheme.eye_corners[side]:
            blinking[corner] += (0.0, 2.0)  # the corners pulled down with them

    def poses(closed_points):
        with Analyzer(detector=None) as analyzer:
            for i in range(12):
                analyzer.push(image, i / 25, landmarks=[open_points if i < 10 else closed_points])
            (track,) = analyzer._tracks.values()
            buffer = track.spotter._buffer
            return buffer[9].to_crop, buffer[-1].to_crop

    open_pose, closed_pose = poses(blinking)
    np.testing.assert_allclose(closed_pose, open_pose, atol=1e-6)
    # The same corner shift with open eyes moves the crop: eye corners do align it.
    shifted = open_points.copy()
    for side in ("left", "right"):
        for corner in scheme.eye_corners[side]:
            shifted[corner] += (0.0, 2.0)
    open_pose, moved_pose = poses(shifted)
    assert np.abs(moved_pose - open_pose).max() > 0.3


def test_mouth_opening_velocity_reads_opening_and_closing_alike(tmp_path):
    # Synthetic speech opens and closes the mouth on a raised cosine, so its
    # fastest opening and closing are equally fast. Forward flow alone read
    # the closing 0.64x the opening here (0.14 / -0.09 IOD/s), and a pressed-lip
    # face's closings fell under the speech detector's swing level.
    path = tmp_path / "speech.mp4"
    truth = write_clip(path, _quiet(fps=30, duration=8.0, seed=5, speech=True)).to_dict()
    (start, end), = [(n["start"], n["end"]) for n in truth["nuisances"] if n["type"] == "speech"]
    result = analyze(path)
    speed = np.array([f["mouth_opening_velocity"] for f in result.frames
                      if start <= f["t"] <= end and f["mouth_opening_velocity"] is not None])
    opening, closing = np.percentile(speed, 90), -np.percentile(speed, 10)
    assert opening > 0.05 and closing > 0.05, (opening, closing)
    assert 0.8 < closing / opening < 1.25, (opening, closing)
