"""User-facing errors.

Every mistake a user can make (a corrupt image, a missing weight file, an impossible
setting) is raised as a ``LabError`` with a one-line message that says what to do.
The CLI prints it on stderr and exits non-zero; the dashboard shows it with st.error.
Anything else is a bug and keeps its traceback.
"""


class LabError(Exception):
    """Base class: the message is shown to the user as is."""


class ImageError(LabError):
    """The image cannot be read or is out of bounds."""


class WeightsMissingError(LabError):
    """A model's weight file is not on this machine."""


class CheckpointError(LabError):
    """A checkpoint is unsafe, corrupt, or for another architecture."""


class ConfigError(LabError):
    """A parameter is out of range or names something that does not exist."""


class Cancelled(LabError):
    """The user stopped a long run; partial results travel with it."""

    def __init__(self, message: str = "Cancelled by the user.", partial: object | None = None):
        super().__init__(message)
        self.partial = partial


class VideoError(LabError):
    """The video cannot be read, is over the limits, or its frames cannot be trusted (variable rate)."""
