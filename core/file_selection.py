"""Which files of a torrent are wanted, and at what priority (pure; no I/O).

The user chooses per file: wanted or skipped, and a priority (``low``, ``normal``,
``high``); a skipped file keeps its priority for when it is wanted again. The picker
works on pieces, so ``piece_priorities`` turns the choice into one value per piece: the
highest of the files the piece touches (a piece that spans a wanted and a skipped file
is wanted), 0 when every file it touches is skipped. The values are libtorrent's:
0 skip, 1 low, 4 normal, 7 high (see core/picking.py).

Stored in the torrent's options (resume data) as ``files_skipped`` (indices) and
``file_priorities`` (index -> name, only those that are not ``normal``): a torrent
with everything wanted at normal stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from btd.core.picking import NORMAL

PRIORITIES = {"low": 1, "normal": NORMAL, "high": 7}
"""Priority names (RPC, btctl) and the piece priority each gives."""
_NAMES = {value: name for name, value in PRIORITIES.items()}


class FileSelectionError(ValueError):
    """A bad file index or priority; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class FileEntryLike(Protocol):
    @property
    def length(self) -> int: ...
    @property
    def pad(self) -> bool: ...


def check_indices(field: str, indices: Any, num_files: int) -> list[int]:
    """A list of distinct file indices 0..num_files-1 (FileSelectionError otherwise)."""
    if not isinstance(indices, list) or not all(
        type(i) is int and 0 <= i < num_files for i in indices
    ):
        raise FileSelectionError(
            field,
            f"must be a list of file indices 0..{num_files - 1} (the torrent has {num_files})",
        )
    return sorted(set(indices))


def check_priority(field: str, value: Any) -> int:
    """A priority name -> its piece priority (FileSelectionError otherwise)."""
    if not isinstance(value, str) or value not in PRIORITIES:
        raise FileSelectionError(field, f"must be one of {list(PRIORITIES)}")
    return PRIORITIES[value]


class FileSelection:
    """Per-file wanted flags and priorities of one torrent, and the per-piece view of them."""

    def __init__(
        self, files: Sequence[FileEntryLike], piece_length: int, total_length: int
    ) -> None:
        self._piece_length = piece_length
        self._num_pieces = -(-total_length // piece_length) if total_length else 0
        self._spans: list[range] = []  # pieces each file touches (empty: pad or zero length)
        pos = 0
        for entry in files:
            if entry.length and not entry.pad:
                first, last = pos // piece_length, (pos + entry.length - 1) // piece_length
                self._spans.append(range(first, last + 1))
            else:
                self._spans.append(range(0))
            pos += entry.length
        n = len(self._spans)
        self.wanted = bytearray([1]) * n
        self.priority = bytearray([NORMAL]) * n

    @property
    def num_files(self) -> int:
        return len(self._spans)

    @property
    def default(self) -> bool:
        """Everything wanted at normal priority (the common case: costs nothing)."""
        return all(self.wanted) and all(p == NORMAL for p in self.priority)

    def set(
        self, indices: Iterable[int], *, wanted: bool | None = None, priority: int | None = None
    ) -> bool:
        """Change the files; True if any piece priority may have changed."""
        changed = False
        for i in indices:
            if wanted is not None and self.wanted[i] != wanted:
                self.wanted[i] = int(wanted)
                changed = True
            if priority is not None and self.priority[i] != priority:
                self.priority[i] = priority
                changed = changed or bool(self.wanted[i])
        return changed

    def file_priority(self, index: int) -> int:
        """The piece priority file ``index`` asks for: 0 when skipped."""
        return self.priority[index] if self.wanted[index] else 0

    def priority_name(self, index: int) -> str:
        return _NAMES[self.priority[index]]

    def pieces_of(self, index: int) -> range:
        return self._spans[index]

    def skipped(self) -> list[int]:
        return [i for i in range(self.num_files) if not self.wanted[i]]

    def piece_priorities(self) -> bytearray:
        """One priority per piece: the highest of the files it touches (O(files + pieces))."""
        out = bytearray(self._num_pieces)
        for i, span in enumerate(self._spans):
            p = self.file_priority(i)
            if not p or not span:
                continue
            lo, hi = span.start, span.stop
            if out[lo] < p:
                out[lo] = p
            if hi - 1 > lo and out[hi - 1] < p:
                out[hi - 1] = p
            if hi - lo > 2:  # the inner pieces belong to this file alone
                out[lo + 1 : hi - 1] = bytes([p]) * (hi - lo - 2)
        return out

    # -- resume data ---------------------------------------------------------------------
    def to_options(self) -> dict[str, Any]:
        """The options members that record the selection (none for the default)."""
        out: dict[str, Any] = {}
        skipped = self.skipped()
        if skipped:
            out["files_skipped"] = skipped
        prios = {str(i): _NAMES[p] for i, p in enumerate(self.priority) if p != NORMAL}
        if prios:
            out["file_priorities"] = prios
        return out

    def load_options(self, options: dict[str, Any]) -> None:
        """Take ``files_skipped`` and ``file_priorities`` from stored options or
        ``torrent.add`` parameters; FileSelectionError names a bad one."""
        skipped = options.get("files_skipped")
        if skipped is not None:
            self.set(check_indices("files_skipped", skipped, self.num_files), wanted=False)
        prios = options.get("file_priorities")
        if prios is not None:
            if not isinstance(prios, dict):
                raise FileSelectionError(
                    "file_priorities", "must be an object of file index -> priority"
                )
            for key, name in prios.items():
                try:
                    index = int(key)
                except (TypeError, ValueError):
                    index = -1
                if not 0 <= index < self.num_files:
                    raise FileSelectionError(
                        "file_priorities", f"{key!r} is not a file index 0..{self.num_files - 1}"
                    )
                self.set([index], priority=check_priority("file_priorities", name))
