"""Action units from region motion and blendshapes; emotions by EMFACS.

Each AU is read from the direction a face region moved between the event's
onset and apex (aligned crop, y down, "out" = away from the face midline),
following the FACS descriptions, and, when MediaPipe blendshapes are there,
from how much the matching blendshapes changed. Emotion is the EMFACS
prototype (see ``shared/notes/spotting.md``) closest to the AU pattern.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .regions import REGION_NAMES

__all__ = ["AU_LIST", "PROTOTYPES", "estimate_aus", "classify_emotion"]

AU_LIST = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 25, 26)

# EMFACS prototypes; disgust has two accepted variants.
PROTOTYPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "happiness": ((6, 12),),
    "sadness": ((1, 4, 15),),
    "surprise": ((1, 2, 5, 26),),
    "fear": ((1, 2, 4, 5, 7, 20, 26),),
    "anger": ((4, 5, 7, 23),),
    "disgust": ((9, 15, 16), (10, 17)),
    "contempt": ((12, 14),),
}

# Blendshape -> AU evidence (both sides averaged where there are two).
BLENDSHAPE_AUS: dict[int, tuple[str, ...]] = {
    1: ("browInnerUp",),
    2: ("browOuterUpLeft", "browOuterUpRight"),
    4: ("browDownLeft", "browDownRight"),
    5: ("eyeWideLeft", "eyeWideRight"),
    6: ("cheekSquintLeft", "cheekSquintRight"),
    7: ("eyeSquintLeft", "eyeSquintRight"),
    9: ("noseSneerLeft", "noseSneerRight"),
    10: ("mouthUpperUpLeft", "mouthUpperUpRight"),
    12: ("mouthSmileLeft", "mouthSmileRight"),
    14: ("mouthDimpleLeft", "mouthDimpleRight"),
    15: ("mouthFrownLeft", "mouthFrownRight"),
    16: ("mouthLowerDownLeft", "mouthLowerDownRight"),
    17: ("mouthShrugLower",),
    20: ("mouthStretchLeft", "mouthStretchRight"),
    23: ("mouthPressLeft", "mouthPressRight"),
    26: ("jawOpen",),
}

_INDEX = {name: i for i, name in enumerate(REGION_NAMES)}

# Face region group where each AU shows.
AU_GROUP = {1: "brows", 2: "brows", 4: "brows", 5: "eyes", 7: "eyes", 6: "cheeks", 9: "nose",
            10: "mouth", 12: "mouth", 14: "mouth", 15: "mouth", 16: "mouth", 20: "mouth",
            23: "mouth", 25: "mouth", 17: "chin", 26: "chin"}


def _pos(x: float) -> float:
    return x if x > 0.0 else 0.0


def estimate_aus(
    vectors: np.ndarray,
    *,
    scale: float,
    active: np.ndarray | None = None,
    blendshape_delta: Mapping[str, float] | None = None,
) -> tuple[dict[int, float], float]:
    """AU intensities in [0, 1] from region displacement at the apex.

    Parameters
    ----------
    vectors : (R, 2) array
        Mean (dx, dy) per region of :data:`REGION_NAMES`, px, reference
        region already subtracted; NaN rows are treated as still.
    scale : float
        Displacement (px) that reads as full intensity.
    active : (R,) bool array, optional
        Regions that moved significantly; others are ignored.
    blendshape_delta : mapping, optional
        Blendshape score change apex - onset.

    Returns
    -------
    aus : dict AU -> intensity (only AUs above 0.05)
    asymmetry : float in [0, 1], how one-sided the mouth-corner pull is
    """
    v = np.nan_to_num(np.asarray(vectors, dtype=np.float64)) / max(scale, 1e-9)
    if active is not None:
        v = v * np.asarray(active, dtype=np.float64)[:, None]

    def up(name: str) -> float:
        return -v[_INDEX[name], 1]

    def out(name: str) -> float:
        # Subject's right side sits on the image's left: out = -x there.
        dx = v[_INDEX[name], 0]
        return -dx if name.endswith("_right") else dx

    def both(f, base: str) -> tuple[float, float]:
        return f(base + "_right"), f(base + "_left")

    inner_up = np.mean(both(up, "brow_inner"))
    inner_out = np.mean(both(out, "brow_inner"))
    outer_up = np.mean(both(up, "brow_outer"))
    upper_lid_up = np.mean(both(up, "eye_upper"))
    lower_lid_up = np.mean(both(up, "eye_lower"))
    cheek_up = np.mean(both(up, "cheek"))
    corner_up_r, corner_up_l = both(up, "mouth_corner")
    corner_out_r, corner_out_l = both(out, "mouth_corner")
    upper_lip_up = up("upper_lip")
    lower_lip_up = up("lower_lip")
    chin_up = up("chin")
    nose_up = up("nose")

    pull_r = _pos(corner_up_r) + 0.5 * _pos(corner_out_r)
    pull_l = _pos(corner_up_l) + 0.5 * _pos(corner_out_l)
    corner_up = 0.5 * (corner_up_r + corner_up_l)
    corner_out = 0.5 * (corner_out_r + corner_out_l)
    lip_gap = upper_lip_up - lower_lip_up  # lips moving apart vertically

    raw = {
        1: _pos(inner_up),
        2: _pos(outer_up),
        4: _pos(-inner_up) * 0.7 + _pos(-inner_out),
        5: _pos(upper_lid_up),
        6: _pos(cheek_up),
        7: _pos(lower_lid_up) * 0.8 + 0.3 * _pos(-upper_lid_up),
        9: _pos(nose_up),
        10: _pos(upper_lip_up),
        12: 0.5 * (pull_r + pull_l),
        14: _pos(-corner_out) * 0.8,
        15: _pos(-corner_up),
        16: _pos(-lower_lip_up) * 0.6,
        17: _pos(chin_up) * 0.8 + 0.3 * _pos(lower_lip_up),
        20: _pos(corner_out) * (1.0 if abs(corner_up) < abs(corner_out) else 0.5),
        23: 0.5 * _pos(-lip_gap) + 0.5 * _pos(-corner_out),
        25: _pos(lip_gap) * 0.8,
        26: _pos(-chin_up),
    }
    if blendshape_delta:
        for au, names in BLENDSHAPE_AUS.items():
            values = [blendshape_delta[n] for n in names if n in blendshape_delta]
            if values:
                # A blendshape rise of ~0.25 reads as full intensity.
                raw[au] = 0.6 * raw[au] + 0.4 * _pos(float(np.mean(values))) * 4.0
    aus = {au: float(min(1.0, value)) for au, value in raw.items() if value > 0.05}
    asymmetry = abs(pull_r - pull_l) / (pull_r + pull_l + 1e-9) if (pull_r + pull_l) > 0.2 else 0.0
    return aus, float(asymmetry)


def classify_emotion(aus: Mapping[int, float], asymmetry: float = 0.0,
                     *, groups: Sequence[str] | None = None,
                     min_score: float = 0.45) -> tuple[str | None, float]:
    """The EMFACS prototype closest to ``aus`` (cosine similarity).

    With ``groups`` (the face region groups that moved), prototypes are
    compared only on the AUs those regions can show, so a partial (subtle)
    expression still matches its emotion; a prototype that has no AU there
    cannot match. Returns ``(None, best_score)`` when no prototype reaches
    ``min_score``. Contempt needs a one-sided mouth-corner pull; happiness is
    weakened by one.
    """
    observable = [a for a in AU_LIST if groups is None or AU_GROUP[a] in groups]
    vec = np.array([aus.get(a, 0.0) for a in observable])
    norm = np.linalg.norm(vec)
    if norm < 1e-9:
        return None, 0.0
    best, best_score = None, 0.0
    for emotion, variants in PROTOTYPES.items():
        for proto in variants:
            p = np.array([1.0 if a in proto else 0.0 for a in observable])
            if not p.any():
                continue
            # Fewer visible prototype AUs is weaker evidence.
            coverage = (p.sum() / len(proto)) ** 0.25
            score = float(vec @ p / (norm * np.linalg.norm(p))) * coverage
            if emotion == "contempt":
                score *= min(1.0, 0.3 + asymmetry)
            elif emotion == "happiness":
                score *= 1.0 - 0.5 * asymmetry
            if score > best_score:
                best, best_score = emotion, score
    if best_score < min_score:
        return None, best_score
    return best, best_score
