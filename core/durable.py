"""Making a new or renamed file's folder entry durable: fsync of the folder itself.

A file's own fsync does not cover its name; after a create, a rename or an unlink, the folder
must be synced too or a crash can lose the change.
"""

from __future__ import annotations

import os
from pathlib import Path

_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path: str | Path, *, strict: bool = True) -> None:
    """fsync the folder ``path``. ``strict=False``: a folder that cannot be opened or synced
    (some file systems refuse fsync on folders) is let go, the files being synced already."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if strict:
            raise
    finally:
        os.close(fd)
