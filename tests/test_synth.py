"""Tests of the synthetic ground-truth generator (microexpr.synth)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from microexpr.errors import ModelNotFoundError, ParameterError
from microexpr.synth import (
    ANCHOR_NAMES,
    AU_REGIONS,
    EMOTION_AUS,
    TIME_BASE,
    ClipSpec,
    FaceImage,
    Truth,
    default_face,
    face_from_photo,
    render_clip,
    write_benchmark_set,
    write_clip,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
PEXELS_CLIP = SHARED / "data" / "faces" / "pyfeat_WolfgangLanger_Pexels.mp4"
QUIET = dict(blinks=False, head_motion=False, speech=False, noise=False, illumination=False)
SMALL = dict(size=(320, 240), face_scale=0.2)  # inter-ocular distance 64 px


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, 0.5, 3, 15, 3, 5, 1.2, 0)


def _mean_flow(flow: np.ndarray, xy: tuple[float, float], radius: int = 3) -> np.ndarray:
    x, y = int(round(xy[0])), int(round(xy[1]))
    return flow[y - radius:y + radius + 1, x - radius:x + radius + 1].reshape(-1, 2).mean(axis=0)


# ---------------------------------------------------------------------------
# Face source
# ---------------------------------------------------------------------------
def test_default_face_has_every_anchor_inside_the_photo():
    face = default_face()
    assert face.image.shape == (512, 512, 3) and face.image.dtype == np.uint8
    assert set(ANCHOR_NAMES) <= set(face.anchors)
    a = face.anchors
    assert a["eye_outer_left"][0] < a["eye_inner_left"][0] < a["eye_inner_right"][0] < a["eye_outer_right"][0]
    assert a["brow_inner_left"][1] < a["lid_upper_left"][1] < a["lid_lower_left"][1] < a["nose_tip"][1]
    assert a["nose_tip"][1] < a["lip_upper"][1] < a["lip_lower"][1] < a["chin"][1]


def _model_or_skip():
    from microexpr.landmarks import find_face_model

    try:
        return find_face_model()
    except ModelNotFoundError as exc:
        pytest.skip(f"no face model installed: {exc}")


def test_face_from_photo_finds_the_default_faces_anchors_again(tmp_path):
    _model_or_skip()
    default = default_face()
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(default.image, cv2.COLOR_RGB2BGR))
    face = face_from_photo(photo)
    assert face.name.startswith("astronaut.png (sha1 ") and np.array_equal(face.image, default.image)
    # the stored anchors were read off the same mesh points once: PNG is lossless, so within a pixel
    for name in ANCHOR_NAMES:
        assert np.hypot(*np.subtract(face.anchors[name], default.anchors[name])) < 1.0, name
    assert face_from_photo(default.image, name="me").name == "me"


def test_face_from_photo_explains_what_is_wrong(tmp_path):
    _model_or_skip()
    with pytest.raises(ParameterError, match="not found or not an image"):
        face_from_photo(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ParameterError, match="not found or not an image"):
        face_from_photo(tmp_path / "notes.png")
    with pytest.raises(ParameterError, match="RGB uint8"):
        face_from_photo(np.zeros((64, 64), np.uint8))
    with pytest.raises(ParameterError, match="no face found"):
        face_from_photo(np.full((240, 320, 3), 128, np.uint8))


def test_clips_render_from_another_real_face_and_record_it(tmp_path):
    """A frame of the shared Pexels clip (another person than the default face) as the face."""
    _model_or_skip()
    if not PEXELS_CLIP.is_file():
        pytest.skip(f"shared test clips are absent ({PEXELS_CLIP})")
    face = face_from_photo(PEXELS_CLIP, at=9.6, name="pexels woman")  # no hand over the face there
    assert face.image.shape == (360, 640, 3)
    assert face_from_photo(PEXELS_CLIP, at=9.6).name.startswith(f"{PEXELS_CLIP.name} at 9.6")
    with pytest.raises(ParameterError, match="ends before 99"):
        face_from_photo(PEXELS_CLIP, at=99.0)
    a = face.anchors
    assert a["eye_outer_left"][0] < a["eye_inner_left"][0] < a["eye_inner_right"][0] < a["eye_outer_right"][0]
    assert a["nose_tip"][1] < a["lip_upper"][1] < a["lip_lower"][1] < a["chin"][1]
    spec = ClipSpec(fps=25, duration=2.0, n_micro=1, n_macro=0, n_subtle=0, **QUIET, **SMALL)
    frames, truth = render_clip(spec, face=face)
    assert truth.face == "pexels woman" and json.loads(truth.to_json())["face"] == "pexels woman"
    event = truth.events[0]
    apex = int(np.argmin(np.abs(np.asarray(truth.frame_times) - event.apex)))
    before = int(np.argmin(np.abs(np.asarray(truth.frame_times) - (event.onset - 0.1))))
    moved = np.abs(_gray(frames.frame_at(apex)).astype(int) - _gray(frames.frame_at(before)).astype(int))
    assert moved.max() > 10  # the expression is drawn on her face


def test_benchmark_set_records_its_face_and_is_rewritten_for_another(tmp_path):
    kwargs = dict(n_clips=1, duration=3.0, seed=3, fps_cycle=(25,), size=(160, 120))
    (path,) = write_benchmark_set(tmp_path, **kwargs)
    assert Truth.from_json(path.with_name("clip_000_25fps.truth.json")).face == "skimage astronaut"
    assert json.loads((tmp_path / "index.json").read_text())["face"] == "skimage astronaut"
    stamp = path.stat().st_mtime_ns
    default = default_face()
    mirrored = {name.replace("left", "@").replace("right", "left").replace("@", "right"):
                (default.image.shape[1] - 1 - x, y) for name, (x, y) in default.anchors.items()}
    other = FaceImage(np.ascontiguousarray(default.image[:, ::-1]), mirrored, name="mirrored astronaut")
    write_benchmark_set(tmp_path, face=other, **kwargs)
    assert path.stat().st_mtime_ns != stamp
    assert Truth.from_json(path.with_name("clip_000_25fps.truth.json")).face == "mirrored astronaut"


def test_face_image_rejects_bad_input():
    face = default_face()
    with pytest.raises(ParameterError, match="uint8"):
        FaceImage(face.image.astype(np.float32), face.anchors)
    anchors = dict(face.anchors)
    del anchors["chin"]
    with pytest.raises(ParameterError, match="chin"):
        FaceImage(face.image, anchors)
    with pytest.raises(ParameterError, match="inside"):
        FaceImage(face.image, {**face.anchors, "chin": (900.0, 10.0)})
    with pytest.raises(ParameterError, match="name must be a string"):
        FaceImage(face.image, face.anchors, name=3)


def test_a_frame_time_needs_a_video_not_an_array():
    with pytest.raises(ParameterError, match="at picks a frame of a video file"):
        face_from_photo(default_face().image, at=1.0)


def test_unnamed_faces_are_told_apart_by_their_pixels():
    face = default_face()
    unnamed = FaceImage(face.image, face.anchors)
    assert unnamed.name.startswith("unnamed (sha1 ")
    assert FaceImage(face.image.copy(), face.anchors).name == unnamed.name
    darker = FaceImage(face.image // 2, face.anchors)
    assert darker.name != unnamed.name  # a set made from one is not reused for the other


def test_caller_supplied_face_is_used():
    face = default_face()
    flipped = FaceImage(
        np.ascontiguousarray(face.image[:, ::-1]),
        {
            name.replace("left", "@").replace("right", "left").replace("@", "right"): (511 - x, y)
            for name, (x, y) in face.anchors.items()
        },
    )
    frames, _ = render_clip(ClipSpec(duration=1.0, n_micro=0, **QUIET, **SMALL), face=flipped)
    original, _ = render_clip(ClipSpec(duration=1.0, n_micro=0, **QUIET, **SMALL))
    for name in ("eye_outer_left", "mouth_corner_left", "chin"):
        mirrored = name.replace("left", "right")
        assert abs(frames.anchors[mirrored][0] - (319 - original.anchors[name][0])) < 1e-6
        assert abs(frames.anchors[mirrored][1] - original.anchors[name][1]) < 1e-6
    a, b = _gray(frames.frame_at(0)[:, ::-1]).ravel(), _gray(original.frame_at(0)).ravel()
    assert np.corrcoef(a.astype(float), b.astype(float))[0, 1] > 0.97


# ---------------------------------------------------------------------------
# Truth timing
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fps", [25, 30, 60, 200])
@pytest.mark.parametrize("vfr", [False, True])
def test_truth_timing_matches_frame_times(fps, vfr):
    spec = ClipSpec(fps=fps, duration=30.0, seed=fps, vfr=vfr, size=(160, 120), face_scale=0.2)
    frames, truth = render_clip(spec)
    times = np.asarray(truth.frame_times)
    assert truth.n_frames == len(frames) == round(30.0 * fps)
    assert times[0] == 0.0 and np.all(np.diff(times) > 0)
    ticks = times / float(TIME_BASE)
    assert np.allclose(ticks, np.round(ticks), atol=1e-6)
    nominal = np.arange(len(times)) / fps
    if vfr:
        assert np.abs(times - nominal).max() <= 0.3 / fps + 1e-4
        assert np.abs(times - nominal).max() > 0.1 / fps
    else:
        assert np.allclose(times, nominal, atol=1e-9)

    assert len(truth.events) >= 5
    for event in truth.events:
        assert 0 <= event.onset < event.apex < event.offset <= 30.0
        assert event.onset_frame == np.searchsorted(times, event.onset, side="left")
        assert event.offset_frame == np.searchsorted(times, event.offset, side="right") - 1
        assert event.apex == times[event.apex_frame]
        assert event.onset_frame <= event.apex_frame <= event.offset_frame
        rise = (event.apex - event.onset) / (event.offset - event.onset)
        assert 0.3 - 1e-9 <= rise <= 0.5 + 1e-9
        length = event.offset - event.onset
        n_frames = event.offset_frame - event.onset_frame + 1
        if event.kind == "micro":
            assert max(1 / 25, 2 / fps) - 1e-9 <= length <= 0.5
            assert 2 <= n_frames <= 0.5 * fps
        else:
            assert event.kind == "macro" and 0.5 < length <= 4.0
            assert n_frames > 0.5 * fps
    ordered = sorted(truth.events, key=lambda e: e.onset)
    for first, second in zip(ordered, ordered[1:]):
        assert second.onset - first.offset >= 1.0


def test_events_follow_the_emfacs_table_and_subtle_events_stay_in_one_area():
    areas = {"brows": {1, 2, 4}, "eyes": {5, 6, 7}, "mouth": {10, 12, 14, 15, 16, 17, 20, 23, 25, 26}}
    seen_subtle = 0
    for seed in range(4):
        _, truth = render_clip(ClipSpec(duration=30.0, seed=seed, n_subtle=3, size=(160, 120), face_scale=0.2))
        for event in truth.events:
            assert event.regions == sorted({r for au in event.aus for r in AU_REGIONS[au]})
            assert all(0.0 < v <= 1.0 for v in event.aus.values())
            prototypes = [set(p) for p in EMOTION_AUS[event.emotion]]
            if event.subtle:
                seen_subtle += 1
                assert any(set(event.aus) <= area for area in areas.values())
                assert any(set(event.aus) <= p for p in prototypes)
            else:
                assert set(event.aus) in prototypes
            assert (event.side is not None) == (event.emotion == "contempt")
            low_high = (0.8, 3.0) if event.kind == "micro" else (2.0, 6.0)
            scale = 0.2 * 160 / 70
            assert low_high[0] * scale - 1e-9 <= event.amplitude_px <= low_high[1] * scale + 1e-9
    assert seen_subtle == 12


def test_nuisances_do_not_hide_events():
    n_blinks = 0
    for seed in range(5):
        _, truth = render_clip(ClipSpec(duration=30.0, seed=seed, size=(160, 120), face_scale=0.2))
        kinds = {n["type"] for n in truth.nuisances}
        assert kinds == {"head_turn", "speech", "illumination"} and truth.blinks

        def overlaps(a0, a1, event):
            return a0 < event.offset and event.onset < a1

        for event in truth.events:
            if "eyes" in event.regions:
                assert not any(overlaps(b0, b1, event) for b0, b1 in truth.blinks)
            for item in truth.nuisances:
                if item["type"] == "speech" and {"mouth", "chin"} & set(event.regions):
                    assert not overlaps(item["start"], item["end"], event)
                if item["type"] == "head_turn" and event.kind == "micro":
                    assert not overlaps(item["start"], item["end"], event)
        for b0, b1 in truth.blinks:
            assert 0.1 - 1e-9 <= b1 - b0 <= 0.4 + 1e-9
        turns = [n for n in truth.nuisances if n["type"] == "head_turn"]
        assert all(0.2 - 1e-9 <= n["end"] - n["start"] <= 0.8 + 1e-9 for n in turns)
        n_blinks += len(truth.blinks)
    assert 7 <= n_blinks / 2.5 <= 22  # per minute, over 2.5 minutes


@pytest.mark.filterwarnings("ignore:a .* s clip has no room")
def test_same_seed_gives_same_clip_and_other_seed_differs():
    spec = ClipSpec(duration=3.0, seed=7, size=(160, 120), face_scale=0.2)
    frames_a, truth_a = render_clip(spec)
    frames_b, truth_b = render_clip(spec)
    assert truth_a == truth_b
    for index in (0, truth_a.events[0].apex_frame, len(frames_a) - 1):
        assert np.array_equal(frames_a.frame_at(index), frames_b.frame_at(index))
    _, truth_c = render_clip(ClipSpec(duration=3.0, seed=8, size=(160, 120), face_scale=0.2))
    assert truth_c.events != truth_a.events


def test_switching_a_nuisance_off_keeps_the_events():
    _, full = render_clip(ClipSpec(duration=20.0, seed=3, size=(160, 120), face_scale=0.2))
    _, quiet = render_clip(ClipSpec(duration=20.0, seed=3, size=(160, 120), face_scale=0.2, **QUIET))
    assert full.events == quiet.events
    assert quiet.blinks == [] and quiet.nuisances == []


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------
def test_happiness_moves_mouth_corners_up_and_out_and_leaves_forehead_still():
    spec = ClipSpec(duration=4.0, seed=1, n_micro=0, n_macro=1, n_subtle=0, emotions=("happiness",),
                    macro_amplitude_px=(5.0, 5.0), **QUIET, **SMALL)
    frames, truth = render_clip(spec)
    (event,) = truth.events
    assert set(event.aus) == {6, 12}
    flow = _flow(frames.frame_at(0), frames.frame_at(event.apex_frame))
    a = frames.anchors
    left, right = _mean_flow(flow, a["mouth_corner_left"]), _mean_flow(flow, a["mouth_corner_right"])
    assert left[1] < -1.0 and right[1] < -1.0  # up
    assert left[0] < -0.5 and right[0] > 0.5  # outward
    forehead = np.array(a["glabella"]) - (0, 0.6 * frames.iod)
    assert np.linalg.norm(_mean_flow(flow, forehead, radius=6)) < 0.2


@pytest.mark.parametrize("emotion", sorted(EMOTION_AUS))
def test_macro_apex_field_never_folds(emotion):
    spec = ClipSpec(duration=3.0, seed=2, n_micro=0, n_macro=1, n_subtle=0, emotions=(emotion,),
                    macro_amplitude_px=(6.0, 6.0), **QUIET, **SMALL)
    frames, truth = render_clip(spec)
    (event,) = truth.events
    field = frames.displacement_at(event.apex_frame).astype(np.float64)
    d_dy, d_dx = np.gradient(field[..., 0]), np.gradient(field[..., 1])
    det = (1 - d_dy[1]) * (1 - d_dx[0]) - d_dy[0] * d_dx[1]
    assert det.min() > 0.3
    assert frames.displacement_at(0) is None  # before the onset nothing moves


def test_contempt_moves_only_one_mouth_corner():
    spec = ClipSpec(duration=4.0, seed=4, n_micro=0, n_macro=1, n_subtle=0, emotions=("contempt",),
                    macro_amplitude_px=(5.0, 5.0), **QUIET, **SMALL)
    frames, truth = render_clip(spec)
    (event,) = truth.events
    field = frames.displacement_at(event.apex_frame)
    y0, _, x0, _ = frames.face_box
    moved, still = event.side, "right" if event.side == "left" else "left"
    xm, ym = frames.anchors[f"mouth_corner_{moved}"]
    xs, ys = frames.anchors[f"mouth_corner_{still}"]
    assert np.linalg.norm(field[int(ym) - y0, int(xm) - x0]) > 2.0
    assert np.linalg.norm(field[int(ys) - y0, int(xs) - x0]) < 0.1


def test_blink_closes_the_eyes_and_nothing_else():
    spec = ClipSpec(duration=3.0, seed=5, n_micro=0, **{**QUIET, "blinks": True}, **SMALL)
    frames, truth = render_clip(spec)
    assert truth.blinks and truth.events == []
    onset, offset = truth.blinks[0]
    first, last = truth.frame_range(onset, offset)
    neutral = frames.frame_at(0).astype(int)
    a, iod = frames.anchors, frames.iod

    def eye_box(side):
        x = (a[f"eye_outer_{side}"][0] + a[f"eye_inner_{side}"][0]) / 2
        y = (a[f"lid_upper_{side}"][1] + a[f"lid_lower_{side}"][1]) / 2
        return slice(int(y - 0.12 * iod), int(y + 0.12 * iod)), slice(int(x - 0.2 * iod), int(x + 0.2 * iod))

    changes = [np.abs(frames.frame_at(i).astype(int) - neutral).mean() for i in range(first, last + 1)]
    closed = frames.frame_at(first + int(np.argmax(changes)))
    gray_open, gray_closed = _gray(neutral.astype(np.uint8)), _gray(closed)
    for side in ("left", "right"):
        box = eye_box(side)
        dark_open = (gray_open[box] < 80).sum()  # iris and pupil
        dark_closed = (gray_closed[box] < 80).sum()
        assert dark_open > 20 and dark_closed < 0.4 * dark_open
    mx, my = a["lip_lower"]
    mouth = (slice(int(my - 0.3 * iod), int(my + 0.3 * iod)), slice(int(mx - 0.5 * iod), int(mx + 0.5 * iod)))
    assert np.abs(closed[mouth].astype(int) - neutral[mouth]).max() == 0
    after = truth.frame_range(offset + 0.05, offset + 0.05)[0]
    assert np.array_equal(frames.frame_at(after), neutral.astype(np.uint8))


def test_speech_moves_the_mouth_at_its_syllable_rate():
    spec = ClipSpec(duration=6.0, seed=11, n_micro=0, **{**QUIET, "speech": True}, **SMALL)
    frames, truth = render_clip(spec)
    (speech,) = [n for n in truth.nuisances if n["type"] == "speech"]
    assert 3.0 <= speech["rate_hz"] <= 6.0 and 1.0 <= speech["end"] - speech["start"] <= 4.0
    neutral = _gray(frames.frame_at(0)).astype(np.float32)
    a, iod = frames.anchors, frames.iod
    mx, my = a["lip_lower"]
    mouth = (slice(int(my - 0.4 * iod), int(my + 0.5 * iod)), slice(int(mx - 0.5 * iod), int(mx + 0.5 * iod)))
    first, last = speech["start_frame"], speech["end_frame"]
    signal = np.array([np.abs(_gray(frames.frame_at(i))[mouth] - neutral[mouth]).mean()
                       for i in range(first, last + 1)])
    assert signal.max() > 1.0
    times = np.asarray(truth.frame_times[first:last + 1])
    freqs = np.fft.rfftfreq(4096, d=1 / spec.fps)
    power = np.abs(np.fft.rfft((signal - signal.mean()) * np.hanning(len(signal)), n=4096))
    peak = freqs[np.argmax(power * (freqs > 1.0))]
    assert 3.0 <= peak <= 6.0 and abs(peak - speech["rate_hz"]) < 0.6
    assert times[-1] - times[0] > 0.9
    assert first > 0 and np.array_equal(frames.frame_at(first - 1), frames.frame_at(0))  # still before the burst


def test_head_motion_illumination_and_noise_change_whole_frames():
    spec = ClipSpec(duration=3.0, seed=6, n_micro=0, **{**QUIET, "head_motion": True}, **SMALL)
    frames, truth = render_clip(spec)
    (turn,) = [n for n in truth.nuisances if n["type"] == "head_turn"]
    before = frames.frame_at(max(0, turn["start_frame"] - 1))
    middle = frames.frame_at((turn["start_frame"] + turn["end_frame"]) // 2)
    flow = _flow(before, middle)
    face = flow[int(frames.anchors["nose_tip"][1]) - 10:int(frames.anchors["nose_tip"][1]) + 10]
    assert np.linalg.norm(face.reshape(-1, 2).mean(axis=0)) > 1.0

    noisy, _ = render_clip(ClipSpec(duration=1.0, seed=6, n_micro=0, **{**QUIET, "noise": True}, **SMALL))
    clean, _ = render_clip(ClipSpec(duration=1.0, seed=6, n_micro=0, **QUIET, **SMALL))
    residual = noisy.frame_at(3).astype(float) - clean.frame_at(3)
    assert 0.8 < residual.std() < 3.5 and abs(residual.mean()) < 0.3
    assert not np.array_equal(noisy.frame_at(3), noisy.frame_at(4))

    lit, lit_truth = render_clip(ClipSpec(duration=4.0, seed=6, n_micro=0, **{**QUIET, "illumination": True}, **SMALL))
    (change,) = [n for n in lit_truth.nuisances if n["type"] == "illumination"]
    start, end = lit.frame_at(change["start_frame"]), lit.frame_at(change["end_frame"])
    assert abs(start.astype(float).mean() - end.astype(float).mean()) > 1.0


def test_blurred_background_keeps_the_background_still_while_the_head_moves():
    spec = ClipSpec(duration=3.0, seed=6, n_micro=0, background="blurred", **{**QUIET, "head_motion": True}, **SMALL)
    frames, truth = render_clip(spec)
    (turn,) = [n for n in truth.nuisances if n["type"] == "head_turn"]
    a = frames.frame_at(max(0, turn["start_frame"] - 1)).astype(int)
    b = frames.frame_at((turn["start_frame"] + turn["end_frame"]) // 2).astype(int)
    corner = (slice(0, 20), slice(0, 20))
    assert np.abs(a[corner] - b[corner]).max() <= 1
    assert np.abs(a - b).max() > 20


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:a .* s clip has no room")
@pytest.mark.parametrize(("fps", "vfr"), [(30, False), (60, True)])
def test_write_clip_decodes_with_truth_timestamps(tmp_path, fps, vfr):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    truth = write_clip(path, ClipSpec(fps=fps, duration=2.0, seed=1, vfr=vfr, size=(160, 120), face_scale=0.2))
    assert truth.video == "clip.mp4"
    with av.open(str(path)) as container:
        decoded = [(frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]
    assert len(decoded) == truth.n_frames
    assert np.abs(np.array([t for t, _ in decoded]) - np.array(truth.frame_times)).max() < 1e-3
    assert decoded[0][1].shape == (120, 160, 3)

    truth_path = tmp_path / "clip.truth.json"
    assert Truth.from_json(truth_path) == truth
    assert Truth.from_json(truth.to_json()) == truth
    data = json.loads(truth_path.read_text())
    assert {"video", "fps", "n_frames", "frame_times", "events", "blinks", "nuisances"} <= set(data)
    assert data["n_frames"] == len(data["frame_times"])
    for item in data["events"]:
        assert {"onset", "apex", "offset", "onset_frame", "apex_frame", "offset_frame", "kind", "subtle",
                "regions", "aus", "emotion"} <= set(item)
        assert all(key.isdigit() for key in item["aus"])
    for item in data["blinks"]:
        assert set(item) == {"onset", "offset", "onset_frame", "offset_frame"}


def test_write_clip_rejects_other_containers(tmp_path):
    with pytest.raises(ParameterError, match=".mp4"):
        write_clip(tmp_path / "clip.avi", ClipSpec(duration=1.0))


def test_benchmark_set_has_every_nuisance_and_resumes(tmp_path):
    paths = write_benchmark_set(tmp_path, n_clips=2, duration=4.0, seed=3, fps_cycle=(25, 60), size=(160, 120))
    assert [p.name for p in paths] == ["clip_000_25fps.mp4", "clip_001_60fps.mp4"]
    index = json.loads((tmp_path / "index.json").read_text())
    assert [entry["video"] for entry in index["clips"]] == [p.name for p in paths]
    for entry in index["clips"]:
        truth = Truth.from_json(tmp_path / entry["truth"])
        assert truth.fps == entry["fps"] and truth.events
        assert {n["type"] for n in truth.nuisances} == {"head_turn", "speech", "illumination"}
        assert truth.blinks
    stamps = [p.stat().st_mtime_ns for p in paths]
    write_benchmark_set(tmp_path, n_clips=2, duration=4.0, seed=3, fps_cycle=(25, 60), size=(160, 120))
    assert [p.stat().st_mtime_ns for p in paths] == stamps


def test_benchmark_set_pairs_every_frame_rate_with_every_compression_level():
    from microexpr.synth import _BENCHMARK_CRFS, _benchmark_clip_spec

    fps_cycle = (25, 30, 60, 200)
    specs = [_benchmark_clip_spec(i, fps_cycle=fps_cycle, duration=30.0, seed=0, size=(640, 480))
             for i in range(16)]
    pairs = {(spec.fps, spec.crf) for spec in specs}
    assert pairs == {(float(f), c) for f in fps_cycle for c in _BENCHMARK_CRFS}
    assert {spec.vfr for spec in specs if spec.fps == 200.0} == {True, False}


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(size=(641, 480)), "even"),
        (dict(fps=0), "fps"),
        (dict(duration=-1.0), "duration"),
        (dict(crf=60), "crf"),
        (dict(n_micro=-1), "n_micro"),
        (dict(emotions=("joy",)), "emotions"),
        (dict(background="green"), "background"),
        (dict(face_scale=0.9), "face_scale"),
        (dict(micro_amplitude_px=(3.0, 1.0)), "micro_amplitude_px"),
        (dict(preset="turbo"), "preset"),
    ],
)
def test_clip_spec_rejects_bad_values(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        ClipSpec(**kwargs)


def test_too_many_events_for_the_clip_is_a_clear_error():
    with pytest.raises(ParameterError, match="cannot hold"):
        render_clip(ClipSpec(duration=3.0, n_micro=2, n_macro=2, size=(160, 120), face_scale=0.2))


def test_render_clip_checks_argument_types():
    with pytest.raises(ParameterError, match="ClipSpec"):
        render_clip({"fps": 30})
    with pytest.raises(ParameterError, match="FaceImage"):
        render_clip(ClipSpec(duration=1.0), face=np.zeros((10, 10, 3), np.uint8))
    frames, _ = render_clip(ClipSpec(duration=1.0, n_micro=0, size=(160, 120), face_scale=0.2, **QUIET))
    with pytest.raises(IndexError):
        frames.frame_at(len(frames))


def test_short_clip_without_room_for_speech_warns_and_still_renders():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, truth = render_clip(ClipSpec(duration=1.6, n_micro=1, size=(160, 120), face_scale=0.2, seed=2))
    assert len(truth.events) == 1
    if not any(n["type"] == "speech" for n in truth.nuisances):
        assert any("no room for a speech" in str(w.message) for w in caught)
