"""Exception hierarchy shared by every part of microexpr."""

from __future__ import annotations

__all__ = [
    "MicroexprError",
    "ParameterError",
    "VideoError",
    "ModelNotFoundError",
    "LandmarkError",
]


class MicroexprError(Exception):
    """Base class of every error microexpr raises on purpose."""


class ParameterError(MicroexprError, ValueError):
    """An argument has the wrong value, shape or dtype."""


class VideoError(MicroexprError):
    """A video could not be opened, decoded or written."""


class ModelNotFoundError(MicroexprError, FileNotFoundError):
    """The face landmark model file could not be located."""


class LandmarkError(MicroexprError, ValueError):
    """Landmarks are malformed (wrong scheme, shape, or non-finite values)."""
