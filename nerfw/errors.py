"""User-facing errors: the CLI prints them as one line, never as a traceback."""
from __future__ import annotations


class NerfwError(Exception):
    """An error caused by the user's input or environment, reported as one line."""


class DatasetError(NerfwError):
    """Bad dataset input. The message names the file, the line (when there is one) and what was expected."""

    def __init__(self, path, message: str, line: int | None = None):
        self.path, self.line = str(path), line
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")


class ConfigError(NerfwError):
    """A bad command-line flag or config value."""


class ImageError(NerfwError):
    """An image file that cannot be read."""
