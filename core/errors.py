"""The error hierarchy: every error btd raises on bad input is a BtdError."""

from __future__ import annotations


class BtdError(Exception):
    """Base of every error btd raises deliberately."""


class BencodeError(BtdError):
    """Malformed or over-limit bencoded data; ``offset`` is the byte where it was found."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.reason = message
        self.offset = offset


class MetainfoError(BtdError):
    """A .torrent (or info dictionary) that is not a valid v1 metainfo."""


class ProtocolError(BtdError):
    """A peer broke the wire protocol; the connection is closed."""


class TrackerError(BtdError):
    """A tracker answered with garbage, a failure reason, or not at all."""


class ConfigError(BtdError):
    """A bad configuration: names the key path and, when known, the file and line."""

    def __init__(
        self, message: str, key: str = "", filename: str | None = None, line: int | None = None
    ) -> None:
        self.reason = message
        self.key = key
        self.filename = filename
        self.line = line
        where = ""
        if filename is not None:
            where = f"{filename}:{line}: " if line is not None else f"{filename}: "
        super().__init__(f"{where}{key + ': ' if key else ''}{message}")


class StorageError(BtdError):
    """Reading or writing a torrent's files failed (disk full, permissions, ...)."""
