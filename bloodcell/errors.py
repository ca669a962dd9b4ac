"""Exceptions raised by bloodcell. Each message says what was expected, what was received and the fix.

Every error bloodcell raises on bad input or configuration is a :class:`BloodcellError`. The
subclasses also subclass the built-in exception that code catching them before this family
existed expects (``ValueError``, ``KeyError``, ``OSError``, ``FileNotFoundError``...).
``exit_code`` is the status the command line exits with: 2 when the command asked for something
that cannot be done as written (nothing was done), 1 when an input or output failed while working.
"""

__all__ = ["BloodcellError", "BusyError", "ChecksumError", "ConfigError", "DataError", "HubError", "ImageReadError",
           "InputNotFoundError", "ModelNotFoundError", "OutputExistsError"]


class BloodcellError(Exception):
    """Base class of the errors bloodcell raises on bad input or configuration."""

    exit_code = 1


class ConfigError(BloodcellError, ValueError):
    """An argument, setting or saved configuration that cannot be used as given."""

    exit_code = 2


class DataError(BloodcellError, ValueError):
    """A data set, label array or image batch that cannot be used as given."""

    exit_code = 2


class InputNotFoundError(BloodcellError, FileNotFoundError):
    """A file or folder that was named as an input does not exist."""

    exit_code = 2


class OutputExistsError(BloodcellError, FileExistsError):
    """An output would replace something that exists; it is refused rather than overwritten."""

    exit_code = 2


class BusyError(BloodcellError, OSError):
    """Another process holds the lock of a folder this one would write."""

    exit_code = 1


class ImageReadError(DataError):
    """A file or object could not be read as an image."""

    exit_code = 1


class ModelNotFoundError(BloodcellError, KeyError):
    """An architecture or pretrained-entry name is unknown."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class HubError(BloodcellError, OSError):
    """The Hugging Face Hub (or the local cache) could not provide what was asked."""


class ChecksumError(BloodcellError, ValueError):
    """A downloaded file does not have the sha256 its zoo entry pins."""
