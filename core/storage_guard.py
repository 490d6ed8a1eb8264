"""Storage availability: is a torrent's save path still the disk its data was written to?

A finished torrent whose disk is not mounted at start must not come back at 0 % and
download everything again onto whatever file system is under the mount point (Deluge
#479, libtorrent #3134). Each torrent's save path (its storage root) and the device it was
on (``st_dev``) are recorded in resume data; ``storage_problem`` compares them with what
a probe (``btd.core.storage.probe_root``) says now. A torrent with progress whose root is
gone, empty or on another device with none of its files goes to state ``error`` with a
``storage missing: PATH ...`` message: nothing is created, its progress is kept.

``StorageGuard`` then waits for the storage to come back at the cost of the distinct
missing roots, not of the torrents: ONE scheduler timer re-probes each root every
``STORAGE_RETRY_INTERVAL`` seconds (one pool job for all of them), and only a root whose
probe changed wakes its torrents, which check again. 2,000 torrents on one unmounted disk
cost one stat per interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from btd.core.limits import STORAGE_RETRY_INTERVAL
from btd.core.scheduler import Scheduler, Ticker
from btd.core.storage import STORAGE_MISSING, RootProbe, probe_root


def storage_problem(
    root: Path,
    recorded_dev: int | None,
    probe: RootProbe,
    *,
    had_files: bool,
    files_found: bool | None,
) -> str | None:
    """Why the torrent's storage is missing, or None when it may go on (pure).

    ``recorded_dev``: the device the data was on (None: not recorded, older resume data);
    ``had_files``: resume data (or the pieces had) says some of its files were written;
    ``files_found``: some of them exist now (None: not looked, a paused torrent). A torrent
    that never wrote anything may create its folder as before. Files found on another
    device are accepted (a disk that came back under another device number); with none
    found, a changed device means an unmounted disk's mount point.
    """
    if not had_files:
        return None
    if probe.error is not None and not probe.is_dir:
        return f"{STORAGE_MISSING}: {root}: {probe.error}"
    if not probe.exists:
        return f"{STORAGE_MISSING}: {root} does not exist"
    if not probe.is_dir:
        return f"{STORAGE_MISSING}: {root} is not a directory"
    if files_found:
        return None
    if probe.empty:
        return f"{STORAGE_MISSING}: {root} is empty (a disk not mounted?)"
    if recorded_dev is not None and probe.dev != recorded_dev:
        return f"{STORAGE_MISSING}: {root} is on another device than before (a disk not mounted?)"
    return None  # the same disk, files deleted: the check finds what is left, as before


def had_files(file_sizes: Sequence[int], pieces_had: int) -> bool:
    """Resume data says something was written: a piece had or a file present when saved."""
    return pieces_had > 0 or any(size >= 0 for size in file_sizes)


def probe_roots(roots: Iterable[Path]) -> dict[Path, RootProbe]:
    """Blocking (the thread pool): each root probed once."""
    return {root: probe_root(root) for root in roots}


class StorageGuard:
    """The torrents whose storage is missing, by root, and the one timer that re-probes.

    A waiting torrent has ``retry_storage()``: called (after ``forget``) when its root's
    probe differs from the one it failed with. ``probe(root)`` shares one pool job between
    the callers asking for the same root at once (paused torrents at start).
    """

    def __init__(
        self,
        scheduler: Scheduler,
        run_blocking: Callable[..., Any],
        interval: float = STORAGE_RETRY_INTERVAL,
    ) -> None:
        self._run = run_blocking
        self._waiting: dict[Path, dict[Any, None]] = {}
        self._seen: dict[Path, RootProbe] = {}  # the probe its torrents failed with
        self._asking: dict[Path, list[Callable[[RootProbe], None]]] = {}
        self._ticker = Ticker(scheduler, self._round, interval)
        self.rounds = 0  # probing rounds run (tests, measurements)

    def __len__(self) -> int:
        """Torrents waiting."""
        return sum(len(ts) for ts in self._waiting.values())

    @property
    def roots(self) -> list[Path]:
        """The distinct roots being watched."""
        return list(self._waiting)

    def wait(self, torrent: Any, root: Path, probe: RootProbe | None) -> None:
        """``torrent``'s storage at ``root`` is missing (``probe``: what was seen then)."""
        self._waiting.setdefault(root, {})[torrent] = None
        if probe is not None:
            self._seen[root] = probe
        self._ticker.wake()

    def forget(self, torrent: Any, root: Path) -> None:
        waiting = self._waiting.get(root)
        if waiting is not None:
            waiting.pop(torrent, None)
            if not waiting:
                del self._waiting[root]
                self._seen.pop(root, None)

    def probe(self, root: Path, answer: Callable[[RootProbe], None]) -> None:
        """Probe ``root`` off the reactor and call ``answer`` with what was found."""
        asking = self._asking.get(root)
        if asking is not None:
            asking.append(answer)
            return
        self._asking[root] = [answer]

        def found(probes: dict[Path, RootProbe]) -> None:
            for callback in self._asking.pop(root, []):
                callback(probes[root])

        self._run(probe_roots, [root]).addCallback(found)

    def _round(self) -> None:
        roots = list(self._waiting)
        if not roots:
            return
        self.rounds += 1
        d = self._run(probe_roots, roots)
        d.addCallback(self._probed)
        d.addBoth(self._rearm)

    def _rearm(self, result: Any) -> Any:
        if self._waiting:
            self._ticker.wake()
        return result  # a failure goes on to be logged

    def _probed(self, probes: dict[Path, RootProbe]) -> None:
        for root, probe in probes.items():
            if root not in self._waiting or self._seen.get(root) == probe:
                continue
            waiting = self._waiting.pop(root)
            self._seen.pop(root, None)
            for torrent in waiting:
                torrent.retry_storage()
