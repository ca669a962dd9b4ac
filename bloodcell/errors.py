"""Exceptions raised by bloodcell. Each message says what was expected, what was received and the fix."""


class BloodcellError(Exception):
    """Base class of the errors bloodcell raises on bad input or configuration."""


class ImageReadError(BloodcellError, ValueError):
    """A file or object could not be read as an image."""


class ModelNotFoundError(BloodcellError, KeyError):
    """An architecture or pretrained-entry name is unknown."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class HubError(BloodcellError, OSError):
    """The Hugging Face Hub (or the local cache) could not provide what was asked."""


class ChecksumError(BloodcellError, ValueError):
    """A downloaded file does not have the sha256 its zoo entry pins."""
