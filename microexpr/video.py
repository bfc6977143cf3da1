"""Video input and output with real presentation timestamps.

Every frame carries the time at which it is shown, in seconds, read from the
stream's own timestamps (``pts * time_base``, relative to the stream start).
Nothing here computes a time as ``index / fps``, so variable-frame-rate files
(phone recordings, screen captures, dropped frames) keep their true timing.

- :class:`VideoReader` / :func:`open_video` decode a file with PyAV, honour the
  rotation stored in the container and yield upright RGB :class:`Frame` s.
- :class:`CameraSource` reads a live camera through OpenCV and stamps each
  frame with a monotonic clock.
- :class:`VideoWriter` encodes RGB frames to H.264 MP4 with exact per-frame
  timestamps.

Damaged input never loses the frames that did decode: a truncated file yields
what it holds and then warns with :class:`VideoTruncatedWarning`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from microexpr.errors import ParameterError, VideoError

__all__ = [
    "Frame",
    "VideoReader",
    "VideoTruncatedWarning",
    "open_video",
    "CameraSource",
    "VideoWriter",
]

#: Time base the writer stamps frames with: fine enough for 200 fps and for
#: exact 1000/1001 NTSC rates.
WRITER_TIME_BASE = Fraction(1, 90000)


class VideoTruncatedWarning(UserWarning):
    """A video ended early: decoding stopped on damaged or missing data."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    Attributes
    ----------
    image : np.ndarray
        Shape (H, W, 3), uint8, RGB, C-contiguous; upright when the reader
        honours rotation.
    t : float
        Presentation time in seconds, relative to the start of the stream
        (files) or to the start of capture (cameras).
    index : int
        0-based position of the frame among the frames yielded, in decode
        (= presentation) order.
    """

    image: np.ndarray
    t: float
    index: int


def _av_error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _normalised_rotation(degrees: float) -> int:
    """Round a counter-clockwise angle to a multiple of 90 in [0, 360)."""
    return int(round(degrees / 90.0)) % 4 * 90


def _fill_missing_times(
    items: Iterable[tuple[object, float | None]],
    *,
    fallback_interval: float,
) -> Iterator[tuple[object, float, bool]]:
    """Give every item a time, interpolating where the time is missing.

    Parameters
    ----------
    items : iterable of (item, time or None)
        Times in seconds, in presentation order.
    fallback_interval : float
        Seconds between frames used where there is no neighbour on one side
        to interpolate from (leading or trailing gaps, or no time at all).

    Yields
    ------
    (item, time, was_missing)
        ``was_missing`` is True where the time was interpolated.
    """
    pending: list[object] = []
    previous_time: float | None = None
    for item, t in items:
        if t is None:
            pending.append(item)
            continue
        if pending:
            if previous_time is None:
                # No earlier timestamp: step back from this one.
                for k, waiting in enumerate(pending):
                    yield waiting, t - (len(pending) - k) * fallback_interval, True
            else:
                step = (t - previous_time) / (len(pending) + 1)
                for k, waiting in enumerate(pending, start=1):
                    yield waiting, previous_time + k * step, True
            pending.clear()
        previous_time = t
        yield item, t, False
    if pending:
        start = previous_time if previous_time is not None else -fallback_interval
        for k, waiting in enumerate(pending, start=1):
            yield waiting, start + k * fallback_interval, True


def _open_input_container(path: Path):
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as error:
        raise VideoError(
            f"{path}: not a readable video (corrupt or unsupported header: "
            f"{_av_error_text(error)})"
        ) from error
    except OSError as error:
        raise VideoError(f"{path}: could not be opened ({error})") from error


class VideoReader:
    """Decode a video file into upright RGB frames with real timestamps.

    Parameters
    ----------
    path : str or os.PathLike
        Video file (any container/codec FFmpeg reads: mp4, mov, mkv, avi, ...).
    rotate : bool, optional
        Turn frames upright according to the container's display rotation
        (phone videos). Default True.

    Raises
    ------
    VideoError
        The file is missing, empty, not a video, holds no video stream, or no
        frame of it can be decoded.

    Notes
    -----
    Iterating the reader yields :class:`Frame` s; each ``for`` loop is a
    fresh pass from the start. Timestamps come from each frame's pts, never
    from ``index / fps``. A frame without a pts gets a time interpolated from
    its neighbours (one warning per pass); a frame whose time is not after
    the previous one is dropped with a warning. If decoding stops early on
    damaged data, the frames decoded so far are yielded and a
    :class:`VideoTruncatedWarning` is issued. Display matrices with mirroring
    are applied as their rotation only.

    Examples
    --------
    >>> with VideoReader("clip.mp4") as reader:            # doctest: +SKIP
    ...     for frame in reader:
    ...         print(frame.index, frame.t, frame.image.shape)
    """

    def __init__(self, path: str | os.PathLike, *, rotate: bool = True) -> None:
        self._path = Path(path)
        self._rotate = bool(rotate)
        self._closed = False
        if not self._path.exists():
            raise VideoError(f"video file not found: {self._path}")
        if not self._path.is_file():
            raise VideoError(f"{self._path}: expected a video file, got a directory or special file")
        if self._path.stat().st_size == 0:
            raise VideoError(f"{self._path}: file is empty (0 bytes), expected a video")

        self._container = _open_input_container(self._path)
        try:
            self._read_stream_info()
            self._first_outcome: dict = {}
            self._first_pass = self._raw_frames(self._container, self._first_outcome)
            first = next(self._first_pass, None)
        except BaseException:
            self._container.close()
            raise
        if first is None:
            self._container.close()
            if self._first_outcome["problem"] is not None:
                raise VideoError(
                    f"{self._path}: no video frames could be decoded "
                    f"({self._first_outcome['problem']})"
                )
            raise VideoError(f"{self._path}: no video frames")
        self._first_frame = first
        self._first_pass_used = False

        coded_rotation = _normalised_rotation(first.rotation)
        if coded_rotation == 0:
            # Older muxers store the clockwise "rotate" tag instead of a matrix.
            tag = self._stream.metadata.get("rotate")
            try:
                coded_rotation = _normalised_rotation(-float(tag)) if tag is not None else 0
            except ValueError:
                coded_rotation = 0
        self._rotation = coded_rotation
        quarter_turns = self._rotation // 90 if self._rotate else 0
        if quarter_turns % 2:
            self._width, self._height = first.height, first.width
        else:
            self._width, self._height = first.width, first.height

    # -- stream information -------------------------------------------------
    def _read_stream_info(self) -> None:
        container = self._container
        if not container.streams.video:
            found = ", ".join(
                f"{len(group)} {kind}"
                for kind, group in (
                    ("audio", container.streams.audio),
                    ("subtitle", container.streams.subtitles),
                    ("data", container.streams.data),
                )
                if len(group)
            )
            raise VideoError(
                f"{self._path}: no video stream (found {found or 'no streams'})"
            )
        stream = container.streams.video[0]
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self._fps = float(rate) if rate else None
        if stream.duration is not None and stream.time_base is not None:
            self._duration: float | None = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            self._duration = container.duration / av.time_base
        else:
            self._duration = None
        self._n_frames = int(stream.frames) or None

    # -- raw decoding -------------------------------------------------------
    @staticmethod
    def _raw_frames(container, outcome: dict) -> Iterator[av.VideoFrame]:
        """Decode the first video stream; stop quietly on damage.

        If decoding stopped early, ``outcome["problem"]`` says why.
        """
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        outcome["problem"] = None
        indexed_packets = len(stream.index_entries)
        demuxed_packets = 0
        corrupt_packet_seen = False
        try:
            for packet in container.demux(stream):
                if packet.size:
                    demuxed_packets += 1
                    corrupt_packet_seen |= bool(packet.is_corrupt)
                yield from packet.decode()
        except av.FFmpegError as error:
            outcome["problem"] = f"decoding failed: {_av_error_text(error)}"
            try:
                # Frames already inside the decoder are still good.
                yield from stream.codec_context.decode(None)
            except av.FFmpegError:
                pass
            return
        if corrupt_packet_seen:
            outcome["problem"] = "the file ends inside a damaged or cut-off packet"
        elif demuxed_packets < indexed_packets:
            # Frame-threaded decoding can swallow the error of a cut-off file.
            outcome["problem"] = (
                f"the file ends after {demuxed_packets} of the {indexed_packets} "
                "packets its index lists"
            )

    # -- properties ---------------------------------------------------------
    @property
    def path(self) -> Path:
        """Path of the video file."""
        return self._path

    @property
    def width(self) -> int:
        """Frame width in pixels, after rotation."""
        return self._width

    @property
    def height(self) -> int:
        """Frame height in pixels, after rotation."""
        return self._height

    @property
    def fps(self) -> float | None:
        """Average frame rate stated by the container (informative only)."""
        return self._fps

    @property
    def duration(self) -> float | None:
        """Duration of the video stream in seconds, or None if unknown."""
        return self._duration

    @property
    def n_frames(self) -> int | None:
        """Number of frames the container declares, or None if unknown."""
        return self._n_frames

    @property
    def rotation(self) -> int:
        """Display rotation stored in the file, counter-clockwise degrees.

        One of 0, 90, 180, 270. Frames are turned by this much when the
        reader was opened with ``rotate=True``.
        """
        return self._rotation

    # -- iteration ----------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise VideoError(f"{self._path}: reader is closed")
        if not self._first_pass_used:
            self._first_pass_used = True
            first = self._first_frame
            del self._first_frame
            yield from self._frames(
                self._with_first(first, self._first_pass), self._stream, self._first_outcome
            )
            return
        container = _open_input_container(self._path)
        try:
            outcome: dict = {}
            yield from self._frames(
                self._raw_frames(container, outcome), container.streams.video[0], outcome
            )
        finally:
            container.close()

    @staticmethod
    def _with_first(first, rest: Iterator) -> Iterator:
        yield first
        yield from rest

    def _frames(self, raw: Iterator[av.VideoFrame], stream, outcome: dict) -> Iterator[Frame]:
        stream_time_base = stream.time_base
        start_seconds = (
            stream.start_time * stream_time_base if stream.start_time is not None else None
        )

        def timed() -> Iterator[tuple[av.VideoFrame, float | None]]:
            nonlocal start_seconds
            for frame in raw:
                if frame.pts is None:
                    yield frame, None
                    continue
                seconds = frame.pts * (frame.time_base or stream_time_base)
                if start_seconds is None:
                    start_seconds = seconds
                yield frame, float(seconds - start_seconds)

        fallback_interval = 1.0 / self._fps if self._fps else 1.0 / 30.0
        quarter_turns = self._rotation // 90 if self._rotate else 0
        warned_missing = False
        warned_order = False
        previous_t = -math.inf
        index = 0
        for frame, t, was_missing in _fill_missing_times(
            timed(), fallback_interval=fallback_interval
        ):
            if was_missing and not warned_missing:
                warned_missing = True
                warnings.warn(
                    f"{self._path}: some frames have no presentation timestamp; "
                    "their times are interpolated from neighbouring frames "
                    f"(or spaced {fallback_interval:.4f} s apart where none exist)",
                    UserWarning,
                    stacklevel=3,
                )
            if t <= previous_t:
                if not warned_order:
                    warned_order = True
                    warnings.warn(
                        f"{self._path}: frame with time {t:.6f} s is not after the "
                        f"previous frame ({previous_t:.6f} s); dropped (further "
                        "out-of-order frames are dropped without a warning)",
                        UserWarning,
                        stacklevel=3,
                    )
                continue
            previous_t = t
            image = frame.to_ndarray(format="rgb24")
            if quarter_turns:
                image = np.rot90(image, quarter_turns)
            yield Frame(image=np.ascontiguousarray(image), t=t, index=index)
            index += 1
        if outcome["problem"] is not None:
            warnings.warn(
                f"{self._path}: video is truncated or damaged ({outcome['problem']}); "
                f"stopped after {index} frames",
                VideoTruncatedWarning,
                stacklevel=3,
            )

    # -- lifetime -----------------------------------------------------------
    def close(self) -> None:
        """Release the file. Safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VideoReader({str(self._path)!r}, {self._width}x{self._height}, "
            f"fps={self._fps}, n_frames={self._n_frames}, rotation={self._rotation})"
        )


def open_video(path: str | os.PathLike, **kw) -> VideoReader:
    """Open a video file for reading; see :class:`VideoReader` for options."""
    return VideoReader(path, **kw)


class CameraSource:
    """Frames from a live camera, stamped with a monotonic clock.

    Parameters
    ----------
    source : int or str, optional
        Camera index for ``cv2.VideoCapture`` (0 = default camera), or a
        device path / stream URL that OpenCV accepts. Default 0.
    width, height : int, optional
        Requested capture size in pixels; the camera may choose another.
    fps : float, optional
        Requested capture rate; the camera may choose another.
    max_frames : int, optional
        Stop after this many frames (default: run until the camera stops or
        the loop breaks).

    Raises
    ------
    VideoError
        The camera cannot be opened, or it opens but delivers no frame.

    Notes
    -----
    ``Frame.t`` is ``time.monotonic() - start`` measured right after the
    frame is grabbed, where ``start`` is taken when iteration begins. If the
    camera stops delivering frames midway, iteration ends with a
    :class:`VideoTruncatedWarning`.
    """

    def __init__(
        self,
        source: int | str = 0,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        import cv2

        if max_frames is not None and max_frames < 1:
            raise ParameterError(f"max_frames must be >= 1 or None, got {max_frames}")
        self._cv2 = cv2
        self._source = source
        self._max_frames = max_frames
        self._capture = cv2.VideoCapture(source)
        if not self._capture.isOpened():
            self._capture.release()
            raise VideoError(
                f"camera {source!r} could not be opened (is it connected, allowed "
                "and not in use by another program?)"
            )
        if width is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, float(width))
        if height is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, float(height))
        if fps is not None:
            self._capture.set(cv2.CAP_PROP_FPS, float(fps))
        self._closed = False

    @property
    def width(self) -> int:
        """Capture width in pixels as reported by the camera."""
        return int(self._capture.get(self._cv2.CAP_PROP_FRAME_WIDTH))

    @property
    def height(self) -> int:
        """Capture height in pixels as reported by the camera."""
        return int(self._capture.get(self._cv2.CAP_PROP_FRAME_HEIGHT))

    @property
    def fps(self) -> float | None:
        """Nominal capture rate reported by the camera (informative only)."""
        rate = float(self._capture.get(self._cv2.CAP_PROP_FPS))
        return rate if rate > 0 else None

    def _to_rgb(self, image: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        if image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        if image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise VideoError(f"camera {self._source!r} is closed")
        start = time.monotonic()
        index = 0
        while self._max_frames is None or index < self._max_frames:
            grabbed = self._capture.grab()
            t = time.monotonic() - start
            ok, image = self._capture.retrieve() if grabbed else (False, None)
            if not ok or image is None:
                if index == 0:
                    raise VideoError(f"camera {self._source!r} opened but delivered no frame")
                warnings.warn(
                    f"camera {self._source!r} stopped delivering frames after {index} frames",
                    VideoTruncatedWarning,
                    stacklevel=2,
                )
                return
            if image.dtype == np.uint16:
                image = (image >> 8).astype(np.uint8)
            yield Frame(image=np.ascontiguousarray(self._to_rgb(image)), t=t, index=index)
            index += 1

    def close(self) -> None:
        """Release the camera. Safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._capture.release()

    def __enter__(self) -> CameraSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class VideoWriter:
    """Encode RGB frames to an H.264 MP4 with exact per-frame timestamps.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (``.mp4``). Its folder must exist.
    fps : float, optional
        Nominal frame rate, used only by the encoder's rate control and as the
        file's stated rate; the frames keep the exact times given to
        :meth:`write`. Default 30.
    crf : int, optional
        x264 constant rate factor, 0 (lossless) to 51; default 18 (visually
        lossless).
    preset : str, optional
        x264 speed preset; default "medium".
    odd_size : {"pad", "crop", "error"}, optional
        yuv420p needs even width and height. "pad" repeats the last row or
        column, "crop" drops it, "error" raises :class:`ParameterError`.
        Default "pad".
    rotation : int, optional
        Display rotation to store in the file, counter-clockwise degrees (0,
        90, 180, 270), as :attr:`VideoReader.rotation` reads it back.
    faststart : bool, optional
        Put the index at the front of the file (plays while downloading and
        lets a cut-off copy still yield its first part). Default True.

    Notes
    -----
    Timestamps are stored with a 1/90000 s time base, so a written time is
    read back within 6 microseconds.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float = 30.0,
        crf: int = 18,
        preset: str = "medium",
        odd_size: str = "pad",
        rotation: int = 0,
        faststart: bool = True,
    ) -> None:
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ParameterError(f"fps must be a positive number, got {fps!r}")
        if not (isinstance(crf, int) and 0 <= crf <= 51):
            raise ParameterError(f"crf must be an integer in [0, 51], got {crf!r}")
        if odd_size not in ("pad", "crop", "error"):
            raise ParameterError(f"odd_size must be 'pad', 'crop' or 'error', got {odd_size!r}")
        if rotation % 90 != 0:
            raise ParameterError(f"rotation must be a multiple of 90 degrees, got {rotation!r}")
        self._path = Path(path)
        if not self._path.parent.is_dir():
            raise VideoError(f"{self._path}: output folder {self._path.parent} does not exist")
        self._fps = float(fps)
        self._crf = crf
        self._preset = preset
        self._odd_size = odd_size
        self._rotation = _normalised_rotation(rotation)
        options = {"movflags": "faststart"} if faststart else {}
        try:
            self._container = av.open(str(self._path), mode="w", format="mp4", options=options)
        except (av.FFmpegError, OSError) as error:
            raise VideoError(f"{self._path}: cannot create video file ({error})") from error
        self._stream = None
        self._input_shape: tuple[int, int] | None = None
        self._last_pts: int | None = None
        self._n_written = 0
        self._closed = False

    @property
    def path(self) -> Path:
        """Path of the output file."""
        return self._path

    @property
    def n_frames(self) -> int:
        """Number of frames written so far."""
        return self._n_written

    def _open_stream(self, height: int, width: int) -> None:
        out_height, out_width = height, width
        if height % 2 or width % 2:
            if self._odd_size == "error":
                raise ParameterError(
                    f"H.264 yuv420p needs even width and height, got {width}x{height} "
                    "(use odd_size='pad' or 'crop')"
                )
            if self._odd_size == "pad":
                out_height, out_width = height + height % 2, width + width % 2
            else:
                out_height, out_width = height - height % 2, width - width % 2
            if out_height == 0 or out_width == 0:
                raise ParameterError(f"frame {width}x{height} is too small to crop to even size")
        stream = self._container.add_stream(
            "libx264", rate=Fraction(self._fps).limit_denominator(1_001_000)
        )
        stream.width, stream.height = out_width, out_height
        stream.pix_fmt = "yuv420p"
        stream.time_base = WRITER_TIME_BASE
        stream.codec_context.time_base = WRITER_TIME_BASE
        stream.options = {"crf": str(self._crf), "preset": self._preset}
        if self._rotation:
            stream.set_display_rotation(self._rotation)
        self._stream = stream
        self._input_shape = (height, width)

    def _even(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if height % 2 == 0 and width % 2 == 0:
            return image
        if self._odd_size == "pad":
            return np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        return image[: height - height % 2, : width - width % 2]

    def write(self, image: np.ndarray, t: float) -> None:
        """Append one frame.

        Parameters
        ----------
        image : np.ndarray
            Shape (H, W, 3), uint8, RGB. Every frame must have the size of the
            first.
        t : float
            Presentation time in seconds, >= 0, later than the previous frame
            by at least 1/90000 s.

        Raises
        ------
        ParameterError
            Wrong dtype/shape, or a time that is not finite, negative, or not
            after the previous frame.
        VideoError
            The encoder or the file failed.
        """
        if self._closed:
            raise VideoError(f"{self._path}: writer is closed")
        if not (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[2] == 3
        ):
            got = (
                f"{image.dtype} array of shape {image.shape}"
                if isinstance(image, np.ndarray)
                else type(image).__name__
            )
            raise ParameterError(f"expected uint8 RGB array of shape (H, W, 3), got {got}")
        if self._input_shape is not None and image.shape[:2] != self._input_shape:
            height, width = self._input_shape
            raise ParameterError(
                f"every frame must have the first frame's size (H, W, 3) = "
                f"({height}, {width}, 3), got {image.shape}"
            )
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise ParameterError(f"t must be a number of seconds, got {t!r}") from None
        if not math.isfinite(t) or t < 0:
            raise ParameterError(f"t must be a finite time >= 0 s, got {t}")
        pts = round(t * WRITER_TIME_BASE.denominator)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ParameterError(
                f"frame times must increase: t={t} s is not after the previous frame "
                f"({self._last_pts / WRITER_TIME_BASE.denominator} s)"
            )
        if self._stream is None:
            self._open_stream(*image.shape[:2])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(self._even(image)), format="rgb24")
        frame.pts = pts
        frame.time_base = WRITER_TIME_BASE
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.FFmpegError as error:
            raise VideoError(f"{self._path}: encoding failed ({_av_error_text(error)})") from error
        self._last_pts = pts
        self._n_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file. Safe to call more than once.

        A writer that received no frame removes its empty file and warns.
        """
        if self._closed:
            return
        self._closed = True
        if self._stream is None:
            self._container.close()
            self._path.unlink(missing_ok=True)
            warnings.warn(
                f"{self._path}: no frames were written; the empty file was removed",
                UserWarning,
                stacklevel=2,
            )
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        except av.FFmpegError as error:
            raise VideoError(f"{self._path}: flushing the encoder failed ({error})") from error
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
