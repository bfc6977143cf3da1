"""Reports: summary table, timeline PNG, overlay drawing, annotated video, the output folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from microexpr.errors import ParameterError
from microexpr.events import Event, Result
from microexpr.report import (
    FACE_BOX_COLUMNS,
    KIND_COLOURS,
    OUTPUT_FILES,
    active_events,
    draw_overlay,
    event_line,
    plot_timeline,
    printable,
    summary_table,
    write_annotated_video,
    write_reports,
)
from microexpr.video import VideoWriter, open_video

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Irregular frame gaps (variable frame rate), seconds.
TIMES = [0.0, 0.04, 0.07, 0.15, 0.2, 0.26, 0.3, 0.41, 0.45, 0.5, 0.58, 0.62, 0.7, 0.8, 0.83, 0.9]


def make_result(*, video: str | None = "clip.mp4", tracks=(0, 1), face_boxes: bool = False) -> Result:
    events = [
        Event(onset=0.15, apex=0.2, offset=0.3, kind="micro", regions=["mouth", "cheeks"],
              aus={12: 0.8, 6: 0.4, 25: 0.1, 1: 0.05}, emotion="happiness", confidence=0.9,
              track_id=tracks[0], detected_at=0.45),
        Event(onset=0.41, apex=0.5, offset=0.7, kind="macro", regions=["brows"], aus={1: 0.7, 2: 0.6},
              emotion=None, confidence=0.5, track_id=tracks[-1]),
        Event(onset=0.8, apex=0.83, offset=0.9, kind="blink", regions=["eyes"], subtle=True,
              confidence=1.0, track_id=tracks[0]),
    ]
    frames = []
    for index, t in enumerate(TIMES):
        for track in tracks:
            row = {"t": t, "frame": index, "track": track, "state": 0.0,
                   "activity": float(1.5 * np.exp(-((t - 0.2) / 0.1) ** 2))}
            if face_boxes:
                row.update(dict(zip(FACE_BOX_COLUMNS, (40.0 + 60 * track, 30.0, 90.0 + 60 * track, 100.0))))
            frames.append(row)
    result = Result(frames=frames, video=video, frame_times=list(TIMES))
    result.extend(events)
    return result


def smooth_frames(height: int = 120, width: int = 160) -> list[np.ndarray]:
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], axis=-1)
    return [((base + 7 * k) % 256).astype(np.uint8) for k in range(len(TIMES))]


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "vfr.mp4"
    with VideoWriter(path, fps=20, preset="ultrafast", crf=0) as writer:
        for image, t in zip(smooth_frames(), TIMES):
            writer.write(image, t)
    return path


def colour_pixels(image: np.ndarray, colour, tol: int = 30) -> int:
    return int(np.count_nonzero(np.all(np.abs(image.astype(int) - np.asarray(colour)) <= tol, axis=-1)))


# --- text ------------------------------------------------------------------------
def test_summary_table_has_one_row_per_event_with_times_and_top_aus():
    result = make_result()
    text = summary_table(result)
    lines = text.splitlines()
    assert len(lines) == 2 + len(result.events) + 1
    micro = next(line for line in lines if " micro " in line)
    assert "0.150" in micro and "0.200" in micro and "0.300" in micro
    assert " 150 " in micro  # duration in ms
    assert "AU12 0.80 AU6 0.40 AU25 0.10" in micro and "AU1 " not in micro  # top three, strongest first
    assert "happiness" in micro and "mouth,cheeks" in micro
    assert lines[-1] == "3 events: 1 micro, 1 macro, 1 blink"


def test_summary_table_of_nothing_says_so():
    assert summary_table(Result()) == "no events found"


def test_event_line_shows_the_reporting_delay():
    micro = make_result().events[0]
    line = event_line(micro)
    assert "track 0" in line and "micro" in line and "happiness" in line and "mouth,cheeks" in line
    assert "delay  0.15 s" in line
    assert "delay" not in event_line(make_result().events[1])


def test_printable_escapes_terminal_control_characters():
    text = printable("clip\x1b[31mred\x07\n.mp4")
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text
    assert text.startswith("clip") and text.endswith(".mp4")
    assert printable("visage été.mp4") == "visage été.mp4"


# --- timeline --------------------------------------------------------------------
def test_timeline_is_a_png_with_one_panel_per_track(tmp_path):
    import matplotlib.image

    one = plot_timeline(make_result(tracks=(0,)), tmp_path / "one.png")
    two = plot_timeline(make_result(tracks=(0, 1)), tmp_path / "two.png")
    assert one.read_bytes()[:8] == PNG_SIGNATURE
    h1, w1 = matplotlib.image.imread(one).shape[:2]
    h2, w2 = matplotlib.image.imread(two).shape[:2]
    assert w1 == w2 and h2 > h1
    # The event spans are drawn in the kinds' colours.
    image = (matplotlib.image.imread(one)[..., :3] * 255).astype(np.uint8)
    micro_tint = (0.3 * np.asarray(KIND_COLOURS["micro"]) + 0.7 * 255).astype(int)
    assert colour_pixels(image, micro_tint, tol=12) > 100


def test_timeline_draws_known_events_as_a_bottom_band(tmp_path):
    import matplotlib.image

    truth = [Event(onset=0.2, apex=0.4, offset=0.6, kind="macro", emotion="surprise")]
    plain = plot_timeline(Result(frames=make_result(tracks=(0,)).frames, frame_times=TIMES), tmp_path / "a.png")
    banded = plot_timeline(Result(frames=make_result(tracks=(0,)).frames, frame_times=TIMES), tmp_path / "b.png",
                           truth=truth)
    macro = KIND_COLOURS["macro"]
    a = (matplotlib.image.imread(plain)[..., :3] * 255).astype(np.uint8)
    b = (matplotlib.image.imread(banded)[..., :3] * 255).astype(np.uint8)
    assert colour_pixels(a, macro, tol=30) + 2000 < colour_pixels(b, macro, tol=30)


def test_timeline_draws_file_names_as_plain_text(tmp_path):
    # Read as mathtext, "$\frac{$" is a parse error when the figure is drawn.
    result = make_result(video="/recordings/interview_$\\frac{$_<b>x</b>.mp4")
    path = plot_timeline(result, tmp_path / "timeline.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_timeline_of_an_empty_result(tmp_path):
    path = plot_timeline(Result(video=None), tmp_path / "empty.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_timeline_without_activity_column_still_shows_events(tmp_path):
    result = make_result()
    for row in result.frames:
        del row["activity"]
    assert plot_timeline(result, tmp_path / "t.png").read_bytes()[:8] == PNG_SIGNATURE


# --- overlay ---------------------------------------------------------------------
def test_active_events_include_onset_and_offset_frames():
    events = make_result().events
    assert [e.kind for e in active_events(events, 0.15)] == ["micro"]
    assert [e.kind for e in active_events(events, 0.3)] == ["micro"]
    assert active_events(events, 0.35) == []
    assert [e.kind for e in active_events(events, 0.9)] == ["blink"]


def test_draw_overlay_labels_events_in_their_colour_on_a_copy():
    image = np.full((240, 320, 3), 200, np.uint8)
    events = make_result().events[:2]
    out = draw_overlay(image, 0.2, events)
    assert np.all(image == 200)  # the input is untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    top = out[:60]
    assert colour_pixels(top, KIND_COLOURS["micro"], tol=5) > 200
    assert colour_pixels(top, KIND_COLOURS["macro"], tol=5) > 200
    # Timestamp bottom left: white text on black.
    stamp = out[-30:, :120]
    assert colour_pixels(stamp, (0, 0, 0), tol=5) > 300
    assert colour_pixels(stamp, (255, 255, 255), tol=60) > 30


def test_draw_overlay_boxes_the_face_of_the_event_track():
    image = np.full((240, 320, 3), 200, np.uint8)
    micro, macro, _ = make_result().events
    out = draw_overlay(image, 0.2, [micro, macro], face_boxes={0: (100, 80, 220, 200), 5: (0, 0, 10, 10)})
    assert colour_pixels(out[100:190, 218:223], KIND_COLOURS["micro"], tol=5) > 100  # box edge
    assert colour_pixels(out[55:80, 100:200], KIND_COLOURS["micro"], tol=5) > 200  # label above the box
    # Track 1 has no box: its label is listed top left, track 0's is not.
    assert colour_pixels(out[:30, :100], KIND_COLOURS["macro"], tol=5) > 200
    assert colour_pixels(out[:30, :100], KIND_COLOURS["micro"], tol=5) == 0
    plain = draw_overlay(image, 0.2, [micro])
    assert colour_pixels(plain[100:190, 218:223], KIND_COLOURS["micro"], tol=5) == 0


def test_draw_overlay_puts_labels_inside_a_box_at_the_top_edge():
    image = np.full((240, 320, 3), 200, np.uint8)
    micro = make_result().events[0]
    out = draw_overlay(image, 0.2, [micro], face_boxes={0: (100, 0, 220, 200)})
    assert colour_pixels(out[4:20, 110:200], KIND_COLOURS["micro"], tol=5) > 200


def test_draw_overlay_rejects_non_rgb_uint8():
    with pytest.raises(ParameterError, match=r"uint8 RGB array of shape \(H, W, 3\), got float32"):
        draw_overlay(np.zeros((10, 10, 3), np.float32), 0.0, [])


def test_annotated_video_keeps_every_frame_and_its_time(tmp_path, vfr_video):
    result = make_result()
    out = tmp_path / "annotated.mp4"
    assert write_annotated_video(vfr_video, result, out) == len(TIMES)
    with open_video(out) as reader:
        frames = list(reader)
    assert len(frames) == len(TIMES)
    np.testing.assert_allclose([f.t for f in frames], TIMES, atol=1e-4)
    originals = smooth_frames()
    for frame, original in zip(frames, originals):
        kinds = {e.kind for e in active_events(result.events, frame.t)}
        label_area = frame.image[4:20, 4:60]
        for kind, colour in KIND_COLOURS.items():
            labelled = colour_pixels(label_area, colour, tol=25) > 0.3 * label_area[..., 0].size
            assert labelled == (kind in kinds), (frame.t, kind, kinds)
        assert np.abs(frame.image[40:80, 100:150].astype(int) - original[40:80, 100:150]).mean() < 8


# --- the whole folder -----------------------------------------------------------
def test_write_reports_writes_the_tables_and_the_plot(tmp_path, vfr_video):
    result = make_result()
    files = write_reports(result, tmp_path / "out", video=vfr_video)
    assert files.errors == []
    assert set(files.written) == set(OUTPUT_FILES)
    data = json.loads(files.written["json"].read_text())
    assert data == json.loads(result.to_json())
    assert len(pd.read_csv(files.written["csv"])) == 3
    frames = pd.read_parquet(files.written["frames"])
    assert {"t", "frame", "track", "activity"} <= set(frames.columns) and len(frames) == 2 * len(TIMES)


def test_write_reports_without_video_skips_the_annotation(tmp_path):
    files = write_reports(make_result(), tmp_path, video=None)
    assert set(files.written) == set(OUTPUT_FILES) - {"video"}
    files = write_reports(make_result(), tmp_path / "b", video="clip.mp4", annotate=False)
    assert "video" not in files.written and not (tmp_path / "b" / "annotated.mp4").exists()


def test_write_reports_of_an_empty_result_keeps_the_frame_columns(tmp_path):
    files = write_reports(Result(warnings=["no face was found in any frame"]), tmp_path)
    assert files.errors == []
    frames = pd.read_parquet(files.written["frames"])
    assert list(frames.columns) == ["t", "frame", "track"] and len(frames) == 0
    assert json.loads(files.written["json"].read_text())["warnings"] == ["no face was found in any frame"]


def test_a_failing_output_does_not_stop_the_others(tmp_path):
    files = write_reports(make_result(), tmp_path, video=tmp_path / "gone.mp4")
    assert set(files.written) == set(OUTPUT_FILES) - {"video"}
    assert len(files.errors) == 1 and "annotated.mp4 not written" in files.errors[0]
    assert "gone.mp4" in files.errors[0]


def test_unwritable_folder_is_an_error_not_an_exception(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    files = write_reports(make_result(), blocker / "out")
    assert files.written == {} and "cannot create output folder" in files.errors[0]
