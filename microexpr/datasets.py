"""Load the licensed MEGC spotting datasets from the folders their owners ship.

Supported: CAS(ME)^2 long videos (``"casme2"``, 30 fps), SAMM Long Videos
(``"samm-lv"``, 200 fps) and CAS(ME)^3 Part A (``"casme3"``, 30 fps). Each
video becomes a :class:`DatasetVideo`: its frame images sorted by the number
in their names (``img2`` before ``img10``) and its annotated intervals as
0-based inclusive positions in that list. :func:`truth_dict` turns one into
the truth document :mod:`microexpr.evaluate` scores against.

The datasets are image sequences without timestamps: frame i is taken to be
shown at ``i / fps`` (the nominal rate), the only timing they carry.

Format conventions, and where each was read
-------------------------------------------
CAS(ME)^2 (``CAS(ME)^2code_final.xlsx`` or ``...(Updated).xlsx``; frames
``rawpic/s15/15_0401girlcrashing/img1.jpg``)
    - The coding sheet (first sheet, ``CASFEcode_final``) has no header row;
      columns by position: participant, clip ("anger1_1"), onset, apex,
      offset, AUs, estimated emotion, expression type ("micro-expression" /
      "macro-expression"), self-reported emotion. Sheet ``naming rule1``
      maps the participant (column 2) to the folder number (column 0, "15")
      and label (column 1); ``naming rule2`` maps the code ("0401", column 0)
      to the clip name ("anger1", column 1). Read in
      HeyingGithub/Baseline-project-for-MEGC2020_spotting
      ``MDMD_results/dataset_new/CASME_2.py`` and TJUMMG/DMA-ME-Spotting
      ``LBP_feature_based/test/CAS(ME)^2/single_scale_symmetric_window.py``.
    - Frame numbers are the N of ``imgN.jpg`` (1-based: ``img1.jpg`` is the
      first frame); CASME_2.py reads ``img{onset}.jpg``, and the SOFTNet-style
      ``load_excel`` readers use ``onset - 1`` as a 0-based index.
    - An offset of 0 means "not coded": the apex is used (CASME_2.py and the
      SOFTNet-style readers). An apex of 0 becomes None.
SAMM Long Videos (``SAMM_LongVideos_V*_Release.xlsx``; frames
``SAMM_longvideos/006_1/006_1_0001.jpg``)
    - A block of notes sits above the table: the readers skip the first 10
      rows (SAMM_MEGC.py: ``row_id <= 9``; SOFTNet-style: ``skiprows=[0..9]``)
      and name the columns Subject, Filename ("006_1_1"), Inducement Code,
      Onset, Apex, Offset, Duration, Type ("Macro" / "Micro - 1/2"), Action
      Units, Notes. Here the header row is looked up by name in the first 30
      rows of every sheet (the V1 file names its sheet
      ``FACS_Movement_Only``), so a moved block still loads.
    - Frame numbers equal the number at the end of the image name (SAMM_MEGC.py
      globs ``{subject}_{video}_*{onset:04d}.jpg``); the first image is
      ``_0001``. Onsets stored as floats are rounded (``int(x + 0.5)``).
CAS(ME)^3 Part A (``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``, sheet
``label``, and ``cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx``; frames
``part_A/data/part_A/spNO.1/a/color/0.jpg``)
    - A normal header row: Subject ("spNO.1"), Filename ("a"), Onset, Apex,
      Offset, ..., emotion, AU in the ME file; sub, seq, onset, apex, offset,
      emotion in the MaE file (both read by name in the public readers; the
      ME file holds micro-expressions, the MaE file macro-expressions).
    - "JpgIndex": the numbers are the names of the ``color/N.jpg`` files, which
      start at ``0.jpg`` (readers open ``color/{onset}.jpg``).
    - Labels write ``spNO`` where some copies of the folders say ``spNo``:
      folder names are matched without regard to case.

Not confirmed, so handled tolerantly: columns are matched by name patterns
(case-insensitive) wherever a header row exists; the sheet, header row and
columns used are logged (``logging``, level INFO, logger
``microexpr.datasets``), and a :class:`ParameterError` names the file, the
sheets and the text that was found when a needed column is missing. A frame
number that matches no image is mapped to the nearest image with a
:class:`DatasetWarning`; rows that cannot be used (unknown type, video folder
absent, offset before onset) are skipped with a warning that names the
spreadsheet row.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from microexpr.errors import ParameterError, VideoError

__all__ = [
    "DATASETS",
    "AnnotatedInterval",
    "DatasetVideo",
    "DatasetWarning",
    "load_dataset",
    "truth_dict",
]

#: Dataset keys and their nominal frame rates.
DATASETS = {"casme2": 30.0, "samm-lv": 200.0, "casme3": 30.0}

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
_HEADER_SEARCH_ROWS = 30
log = logging.getLogger(__name__)
_SEARCH_DEPTH = 5


class DatasetWarning(UserWarning):
    """A dataset row or file was skipped or adjusted while loading."""


@dataclass
class AnnotatedInterval:
    """One coded expression.

    Attributes
    ----------
    onset_frame, offset_frame : int
        0-based positions in :attr:`DatasetVideo.frames`, both included.
    apex_frame : int or None
        0-based position of the apex, None where it was not coded.
    kind : {"micro", "macro"}
    emotion : str or None
        The dataset's emotion label, where it has one.
    aus : str or None
        The action units as coded (free text, e.g. "L12+R14").
    """

    onset_frame: int
    apex_frame: int | None
    offset_frame: int
    kind: str
    emotion: str | None = None
    aus: str | None = None


@dataclass
class DatasetVideo:
    """One long video of a dataset: its frame images and coded intervals.

    Attributes
    ----------
    name : str
        Unique within the dataset, e.g. "s15_0401", "006_1", "spNO.1_a".
    subject : str
    frames : list of Path
        The frame images, sorted by the number in their names.
    fps : float
        The dataset's nominal frame rate.
    intervals : list of AnnotatedInterval
        Sorted by onset.
    """

    name: str
    subject: str
    frames: list[Path]
    fps: float
    intervals: list[AnnotatedInterval] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.frames)

    def frame_times(self) -> np.ndarray:
        """Presentation time of every frame, seconds: ``i / fps``.

        Returns
        -------
        times : float64 array of shape (n_frames,)
            The images carry no timestamps, so the nominal rate is used.
        """
        return np.arange(self.n_frames, dtype=np.float64) / self.fps

    def iter_frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """Read the frames in order.

        Yields
        ------
        image : uint8 array of shape (H, W, 3)
            RGB.
        t : float
            Presentation time in seconds (``i / fps``).

        Raises
        ------
        VideoError
            An image file is missing or cannot be decoded (the frames before
            it have been yielded).
        """
        import cv2

        for t, path in zip(self.frame_times(), self.frames):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise VideoError(f"{path}: frame image is missing or cannot be decoded")
            yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB), float(t)


def truth_dict(video: DatasetVideo) -> dict:
    """The truth document of one video, as :mod:`microexpr.evaluate` reads it.

    Parameters
    ----------
    video : DatasetVideo

    Returns
    -------
    dict
        ``video``, ``fps``, ``n_frames``, ``frame_times`` (seconds), ``events``
        (onset/apex/offset in seconds and as 0-based frames, ``kind``,
        ``emotion``, ``aus``), and empty ``blinks`` and ``nuisances``.
    """
    times = video.frame_times()
    events = []
    for interval in video.intervals:
        apex = interval.apex_frame
        events.append(
            {
                "onset": float(times[interval.onset_frame]),
                "apex": float(times[apex]) if apex is not None else None,
                "offset": float(times[interval.offset_frame]),
                "onset_frame": interval.onset_frame,
                "apex_frame": apex,
                "offset_frame": interval.offset_frame,
                "kind": interval.kind,
                "emotion": interval.emotion,
                "aus": interval.aus,
            }
        )
    return {
        "video": video.name,
        "fps": video.fps,
        "n_frames": video.n_frames,
        "frame_times": times.tolist(),
        "events": events,
        "blinks": [],
        "nuisances": [],
    }


def load_dataset(
    root: str | Path,
    dataset: str,
    *,
    annotations: str | Path | Sequence[str | Path] | None = None,
) -> list[DatasetVideo]:
    """Load every video of a dataset with its coded intervals.

    Parameters
    ----------
    root : str or Path
        The dataset's folder as unpacked (it, or a folder up to five levels
        below it, holds the frame folders and the spreadsheet).
    dataset : {"casme2", "samm-lv", "casme3"}
    annotations : path or list of paths, optional
        The annotation spreadsheet(s) to use instead of searching ``root``
        (for CAS(ME)^3: the ME file and the MaE file).

    Returns
    -------
    list of DatasetVideo
        Sorted by name; videos without coded intervals are included (they
        count for false positives).

    Raises
    ------
    ParameterError
        The folder, the frames or the spreadsheet is missing, or the
        spreadsheet lacks a needed sheet or column (the message names them).
    """
    root = Path(root)
    if dataset not in DATASETS:
        raise ParameterError(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
    if not root.is_dir():
        raise ParameterError(f"{root}: dataset folder not found")
    if annotations is None:
        files = None
    elif isinstance(annotations, (str, Path)):
        files = [Path(annotations)]
    else:
        files = [Path(a) for a in annotations]
    loader = {"casme2": _load_casme2, "samm-lv": _load_samm, "casme3": _load_casme3}[dataset]
    videos = loader(root, files)
    return sorted(videos, key=lambda v: v.name)


# ---------------------------------------------------------------------------
# Files, frames and cells
# ---------------------------------------------------------------------------
def _warn(message: str) -> None:
    warnings.warn(message, DatasetWarning, stacklevel=4)


def _walk(root: Path, depth: int = _SEARCH_DEPTH) -> Iterator[Path]:
    """Every entry up to ``depth`` levels below ``root``, without listing
    folders whose first entries are frame images (they hold thousands)."""
    level = [root]
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                with os.scandir(folder) as scan:
                    head = list(itertools.islice(scan, 50))
                    if any(Path(e.name).suffix.lower() in _IMAGE_SUFFIXES for e in head):
                        continue
                    entries = head + list(scan)
            except OSError:
                continue
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                yield path
                if entry.is_dir():
                    below.append(path)
        level = below


def _find_dir(root: Path, pattern: str, what: str) -> Path:
    regex = re.compile(pattern, re.IGNORECASE)
    for entry in _walk(root):
        if entry.is_dir() and regex.fullmatch(entry.name):
            return entry
    raise ParameterError(
        f"{root}: no {what} folder found (looked for {pattern!r} up to {_SEARCH_DEPTH} levels down)"
    )


def _find_spreadsheets(root: Path, pattern: str) -> list[Path]:
    regex = re.compile(pattern, re.IGNORECASE)
    return sorted(
        e
        for e in _walk(root)
        if e.is_file() and e.suffix.lower() in (".xlsx", ".xls") and regex.search(e.name)
    )


def _pick_spreadsheet(root: Path, pattern: str, what: str) -> Path:
    found = _find_spreadsheets(root, pattern)
    if not found:
        raise ParameterError(
            f"{root}: no {what} spreadsheet found (looked for names matching {pattern!r}); "
            "pass annotations= to name it"
        )
    if len(found) > 1:
        _warn(
            f"{len(found)} {what} spreadsheets found ({[str(f) for f in found]}); using {found[-1]}"
        )
    return found[-1]


def _frame_number(path: Path) -> int | None:
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else None


def _list_frames(folder: Path) -> tuple[list[Path], np.ndarray]:
    """Images in ``folder`` sorted by the last number in their names."""
    numbered = []
    for path in folder.iterdir():
        if path.suffix.lower() in _IMAGE_SUFFIXES:
            number = _frame_number(path)
            if number is not None:
                numbered.append((number, path.name, path))
    numbered.sort()
    return [p for _, _, p in numbered], np.array([n for n, _, _ in numbered], dtype=np.int64)


def _read_sheets(path: Path) -> dict:
    """Every sheet of a spreadsheet as a raw grid (no header interpretation)."""
    import pandas as pd

    if not path.is_file():
        raise ParameterError(f"{path}: annotation spreadsheet not found")
    try:
        return pd.read_excel(path, sheet_name=None, header=None, dtype=object)
    except ImportError as error:
        raise ParameterError(
            f"{path}: reading this spreadsheet needs an extra package ({error}); "
            "install openpyxl for .xlsx or xlrd for .xls"
        ) from None
    except Exception as error:  # pandas raises many types for damaged files
        raise ParameterError(
            f"{path}: cannot be read as a spreadsheet ({type(error).__name__}: {error})"
        ) from None


def _cell_text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _cell_number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    text = _cell_text(value)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _find_header(sheets: dict, patterns: dict[str, str], required: Sequence[str]):
    """The first sheet and row (within the first 30) whose cells match every
    required column pattern; returns (sheet name, row, {column: index})."""
    for name, grid in sheets.items():
        for row in range(min(_HEADER_SEARCH_ROWS, len(grid))):
            texts = [(_cell_text(v) or "").lower() for v in grid.iloc[row]]
            found = {}
            for key, pattern in patterns.items():
                regex = re.compile(pattern, re.IGNORECASE)
                hits = [i for i, text in enumerate(texts) if regex.fullmatch(text)]
                if hits:
                    found[key] = hits[0]
            if all(key in found for key in required):
                header = {key: str(grid.iloc[row, i]).strip() for key, i in found.items()}
                log.info("sheet %r, header on row %d: columns %s", name, row + 1, header)
                return name, row, found
    return None


def _header_error(path: Path, sheets: dict, what: Sequence[str]) -> ParameterError:
    seen = {}
    for name, grid in sheets.items():
        cells = [
            _cell_text(v)
            for row in range(min(_HEADER_SEARCH_ROWS, len(grid)))
            for v in grid.iloc[row]
        ]
        seen[name] = [c for c in cells if c and not _cell_number(c)][:20]
    return ParameterError(
        f"{path}: no header row naming the columns {list(what)} in the first "
        f"{_HEADER_SEARCH_ROWS} rows of any sheet; text found per sheet: {seen}"
    )


@dataclass
class _Row:
    where: str  # "file, sheet, row" for messages
    video: str  # key into the videos found on disk
    onset: float
    apex: float | None
    offset: float | None
    kind: str | None
    emotion: str | None
    aus: str | None


def _kind(text: str | None) -> str | None:
    lowered = (text or "").lower()
    if lowered.startswith("micro"):
        return "micro"
    if lowered.startswith("macro"):
        return "macro"
    return None


def _position(numbers: np.ndarray, number: float, where: str, video: str) -> int:
    """0-based position of the image whose name holds ``number``; the
    nearest image (with a warning) when none does."""
    number = int(math.floor(number + 0.5))
    hits = np.flatnonzero(numbers == number)
    if hits.size:
        return int(hits[0])
    nearest = int(np.argmin(np.abs(numbers - number)))
    _warn(
        f"{where}: frame {number} has no image in video {video} "
        f"(images {numbers[0]}..{numbers[-1]}); using image {numbers[nearest]}"
    )
    return nearest


def _attach(
    rows: list[_Row], videos: dict[str, DatasetVideo], numbers: dict[str, np.ndarray]
) -> None:
    """Turn spreadsheet rows into 0-based intervals of the videos found."""
    for row in rows:
        video = videos.get(row.video)
        if video is None:
            _warn(f"{row.where}: no frame folder for video {row.video}; row skipped")
            continue
        if row.kind is None:
            _warn(f"{row.where}: expression type is neither micro nor macro; row skipped")
            continue
        apex = row.apex if row.apex is not None and row.apex > 0 else None
        offset = row.offset
        if offset is None or offset == 0:
            # Offset 0 means not coded: the apex ends the expression.
            offset = apex
        if offset is None or offset < row.onset:
            _warn(
                f"{row.where}: offset {row.offset} is missing or before onset {row.onset}; "
                "row skipped"
            )
            continue
        table = numbers[row.video]
        onset_frame = _position(table, row.onset, row.where, row.video)
        offset_frame = _position(table, offset, row.where, row.video)
        apex_frame = _position(table, apex, row.where, row.video) if apex is not None else None
        if offset_frame < onset_frame:
            _warn(f"{row.where}: offset maps before onset in video {row.video}; row skipped")
            continue
        video.intervals.append(
            AnnotatedInterval(onset_frame, apex_frame, offset_frame, row.kind, row.emotion, row.aus)
        )
    for video in videos.values():
        video.intervals.sort(key=lambda i: (i.onset_frame, i.offset_frame))


def _video(name: str, subject: str, folder: Path, fps: float, numbers: dict) -> DatasetVideo | None:
    frames, table = _list_frames(folder)
    if not frames:
        _warn(f"{folder}: no numbered frame images; video {name} left out")
        return None
    numbers[name] = table
    return DatasetVideo(name=name, subject=subject, frames=frames, fps=fps)


# ---------------------------------------------------------------------------
# CAS(ME)^2
# ---------------------------------------------------------------------------
def _load_casme2(root: Path, files: list[Path] | None) -> list[DatasetVideo]:
    rawpic = _find_dir(root, r"rawpic", "rawpic (frame images)")
    path = (
        files[0]
        if files
        else _pick_spreadsheet(root, r"code_final", "CAS(ME)^2 coding (CAS(ME)^2code_final.xlsx)")
    )
    sheets = _read_sheets(path)
    names = list(sheets)
    lowered = {n.lower().strip(): n for n in names}
    rule1, rule2 = lowered.get("naming rule1"), lowered.get("naming rule2")
    if rule1 is None or rule2 is None:
        raise ParameterError(
            f"{path}: expected the sheets 'naming rule1' and 'naming rule2' beside the "
            f"coding sheet; found sheets {names}"
        )
    coding = next((n for n in names if "code" in n.lower()), names[0])

    folder_of_participant = {}
    for _, cells in sheets[rule1].iterrows():
        values = list(cells) + [None] * 3
        number, label, participant = (
            _cell_number(values[0]),
            _cell_text(values[1]),
            _cell_number(values[2]),
        )
        if participant is None:
            continue
        if label is not None and re.fullmatch(r"s\d+", label, re.IGNORECASE):
            folder_of_participant[int(participant)] = label.lower()
        elif number is not None:
            folder_of_participant[int(participant)] = f"s{int(number)}"
    code_of_clip = {}
    for _, cells in sheets[rule2].iterrows():
        values = list(cells) + [None] * 2
        code, clip = _cell_text(values[0]), _cell_text(values[1])
        if code is not None and clip is not None:
            code_of_clip[clip.lower()] = code.split(".")[0].zfill(4)
    if not folder_of_participant or not code_of_clip:
        raise ParameterError(
            f"{path}: 'naming rule1' must map participants (column 3) to folder numbers (column 1) "
            f"and 'naming rule2' codes (column 1) to clip names (column 2); found "
            f"{len(folder_of_participant)} and {len(code_of_clip)} usable rows"
        )

    numbers: dict[str, np.ndarray] = {}
    videos: dict[str, DatasetVideo] = {}
    for subject_dir in sorted(p for p in rawpic.iterdir() if p.is_dir()):
        subject = subject_dir.name.lower()
        for video_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            match = re.match(r"\d+_(\d{4})", video_dir.name)
            if match is None:
                _warn(f"{video_dir}: folder name is not '<subject>_<4-digit code>...'; left out")
                continue
            name = f"{subject}_{match.group(1)}"
            video = _video(name, subject, video_dir, DATASETS["casme2"], numbers)
            if video is not None:
                videos[name] = video

    grid = sheets[coding]
    rows = []
    for index, cells in grid.iterrows():
        where = f"{path.name}, sheet {coding!r}, row {index + 1}"
        values = list(cells) + [None] * 9
        onset = _cell_number(values[2])
        if onset is None:
            if index > 0:  # a header line is expected at most on the first row
                _warn(f"{where}: onset {values[2]!r} is not a number; row skipped")
            continue
        participant = _cell_number(values[0])
        clip = _cell_text(values[1])
        folder = folder_of_participant.get(int(participant)) if participant is not None else None
        code = code_of_clip.get(clip.split("_")[0].lower()) if clip else None
        if folder is None or code is None:
            _warn(
                f"{where}: participant {values[0]!r} or clip {values[1]!r} is not in the "
                "naming rules; row skipped"
            )
            continue
        rows.append(
            _Row(
                where=where,
                video=f"{folder}_{code}",
                onset=onset,
                apex=_cell_number(values[3]),
                offset=_cell_number(values[4]),
                kind=_kind(_cell_text(values[7])),
                emotion=_cell_text(values[6]),
                aus=_cell_text(values[5]),
            )
        )
    _attach(rows, videos, numbers)
    return list(videos.values())


# ---------------------------------------------------------------------------
# SAMM Long Videos
# ---------------------------------------------------------------------------
_SAMM_COLUMNS = {
    "subject": r"subject",
    "filename": r"file ?name",
    "onset": r"onset( ?frame)?",
    "apex": r"apex( ?frame)?",
    "offset": r"offset( ?frame)?",
    "type": r"type",
    "aus": r"action ?units?|aus?",
    "emotion": r"(estimated )?emotion",
}


def _load_samm(root: Path, files: list[Path] | None) -> list[DatasetVideo]:
    frames_root = _find_dir(root, r"samm_longvideos", "SAMM_longvideos (frame images)")
    if files:
        path = files[0]
    elif _find_spreadsheets(root, r"samm.*long.?videos"):
        path = _pick_spreadsheet(root, r"samm.*long.?videos", "SAMM Long Videos annotation")
    else:
        path = _pick_spreadsheet(root, r"samm", "SAMM Long Videos annotation")
    sheets = _read_sheets(path)
    required = ("filename", "onset", "offset", "type")
    header = _find_header(sheets, _SAMM_COLUMNS, required)
    if header is None:
        raise _header_error(path, sheets, required)
    sheet, header_row, columns = header

    numbers: dict[str, np.ndarray] = {}
    videos: dict[str, DatasetVideo] = {}
    for video_dir in sorted(p for p in frames_root.iterdir() if p.is_dir()):
        name = video_dir.name
        video = _video(name, name.split("_")[0], video_dir, DATASETS["samm-lv"], numbers)
        if video is not None:
            videos[name] = video

    grid = sheets[sheet]
    rows = []
    for index in range(header_row + 1, len(grid)):
        cells = grid.iloc[index]
        where = f"{path.name}, sheet {sheet!r}, row {index + 1}"
        filename = _cell_text(cells.iloc[columns["filename"]])
        onset = _cell_number(cells.iloc[columns["onset"]])
        if filename is None and onset is None:
            continue  # blank line
        parts = (filename or "").split("_")
        if len(parts) < 2 or onset is None:
            _warn(
                f"{where}: filename {filename!r} is not '<subject>_<video>_<n>' or onset "
                "is missing; row skipped"
            )
            continue

        def optional(key):
            return cells.iloc[columns[key]] if key in columns else None

        rows.append(
            _Row(
                where=where,
                video=f"{parts[0]}_{parts[1]}",
                onset=onset,
                apex=_cell_number(optional("apex")),
                offset=_cell_number(cells.iloc[columns["offset"]]),
                kind=_kind(_cell_text(cells.iloc[columns["type"]])),
                emotion=_cell_text(optional("emotion")),
                aus=_cell_text(optional("aus")),
            )
        )
    _attach(rows, videos, numbers)
    return list(videos.values())


# ---------------------------------------------------------------------------
# CAS(ME)^3 Part A
# ---------------------------------------------------------------------------
_CASME3_COLUMNS = {
    "subject": r"subject|sub",
    "filename": r"file ?name|seq(uence)?",
    "onset": r"onset( ?frame)?",
    "apex": r"apex( ?frame)?",
    "offset": r"offset( ?frame)?",
    "type": r"(expression )?type",
    "emotion": r"emotion|estimated emotion",
    "aus": r"aus?|action ?units?",
}


def _subject_key(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def _load_casme3(root: Path, files: list[Path] | None) -> list[DatasetVideo]:
    if files:
        labelled = [(f, "macro" if "mae" in f.name.lower() else "micro") for f in files]
    else:
        micro = _find_spreadsheets(root, r"_me_label")
        macro = _find_spreadsheets(root, r"_mae_label")
        if not micro and not macro:
            raise ParameterError(
                f"{root}: no CAS(ME)^3 label spreadsheet found "
                "(cas(me)3_part_A_ME_label_JpgIndex_*.xlsx "
                "or ..._MaE_label_JpgIndex_*.xlsx); pass annotations= to name them"
            )
        for found, what in ((micro, "ME"), (macro, "MaE")):
            if len(found) > 1:
                _warn(
                    f"{len(found)} CAS(ME)^3 {what} label files found "
                    f"({[str(f) for f in found]}); using {found[-1]}"
                )
        labelled = [
            (found[-1], kind) for found, kind in ((micro, "micro"), (macro, "macro")) if found
        ]

    numbers: dict[str, np.ndarray] = {}
    videos: dict[str, DatasetVideo] = {}
    subject_regex = re.compile(r"sp\s*no\.?\s*\d+", re.IGNORECASE)
    for subject_dir in (e for e in _walk(root) if e.is_dir() and subject_regex.fullmatch(e.name)):
        for sequence_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            color = next(
                (p for p in sequence_dir.iterdir() if p.is_dir() and p.name.lower() == "color"),
                sequence_dir,
            )
            name = f"{subject_dir.name}_{sequence_dir.name}"
            key = f"{_subject_key(subject_dir.name)}_{sequence_dir.name.lower()}"
            if key in videos:
                _warn(f"{sequence_dir}: a second copy of video {name}; left out")
                continue
            video = _video(key, subject_dir.name, color, DATASETS["casme3"], numbers)
            if video is not None:
                video.name = name
                videos[key] = video
    if not videos:
        raise ParameterError(
            f"{root}: no CAS(ME)^3 frame folders (spNO.<n>/<sequence>/color/<n>.jpg) found"
        )

    rows = []
    required = ("subject", "filename", "onset", "offset")
    for path, default_kind in labelled:
        sheets = _read_sheets(path)
        if "label" in sheets:  # the ME file's table sheet
            sheets = {"label": sheets["label"], **sheets}
        header = _find_header(sheets, _CASME3_COLUMNS, required)
        if header is None:
            raise _header_error(path, sheets, required)
        sheet, header_row, columns = header
        grid = sheets[sheet]
        for index in range(header_row + 1, len(grid)):
            cells = grid.iloc[index]
            where = f"{path.name}, sheet {sheet!r}, row {index + 1}"
            subject = _cell_text(cells.iloc[columns["subject"]])
            sequence = _cell_text(cells.iloc[columns["filename"]])
            onset = _cell_number(cells.iloc[columns["onset"]])
            if subject is None and onset is None:
                continue
            if subject is None or sequence is None or onset is None:
                _warn(f"{where}: subject, filename or onset is missing; row skipped")
                continue

            def optional(key):
                return cells.iloc[columns[key]] if key in columns else None

            kind = _kind(_cell_text(optional("type"))) if "type" in columns else default_kind
            rows.append(
                _Row(
                    where=where,
                    video=f"{_subject_key(subject)}_{sequence.lower()}",
                    onset=onset,
                    apex=_cell_number(optional("apex")),
                    offset=_cell_number(cells.iloc[columns["offset"]]),
                    kind=kind,
                    emotion=_cell_text(optional("emotion")),
                    aus=_cell_text(optional("aus")),
                )
            )
    _attach(rows, videos, numbers)
    return list(videos.values())
