"""The error a user sees for a bad schema or dataset file: it names the file and the line."""

from __future__ import annotations

from pathlib import Path

from core.config import ConfigError


class InputError(ConfigError):
    """A schema or data file that does not match its format; `key` is 'FILE:LINE'."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line}" if line is not None else str(path), message)
