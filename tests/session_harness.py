"""A whole Session made synchronous, for the session, resume, magnet and RPC method tests.

The session runs on a MemoryReactorClock with a verifier that really hashes the files
(hashlib) inline and ``threadpool = None`` (``run_blocking`` runs at once), so every
Deferred has fired by the time the call returns unless a test holds the work back
(``HeldBlocking``, ``HashingVerifier.hold_rechecks``). Torrents are built here with
16 KiB pieces and encoded with btd's own bencode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from btd.core.bencode import encode
from btd.core.bitfield import Bitfield
from btd.core.config import default_config
from btd.core.errors import StorageError
from btd.core.events import TorrentEvent
from btd.core.plugin import hookimpl, make_plugin_manager
from btd.core.session import Session

PL = 16 * 1024  # the smallest piece length a .torrent may use


# -- torrents ------------------------------------------------------------------------------------
def content(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def hashes(data: bytes) -> bytes:
    return b"".join(hashlib.sha1(data[i : i + PL]).digest() for i in range(0, len(data), PL))


def _b(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


def single(name: str | bytes, data: bytes, **top: Any) -> bytes:
    """A single-file .torrent of ``data``; ``top`` adds keys beside ``info``."""
    info = {b"name": _b(name), b"piece length": PL, b"length": len(data), b"pieces": hashes(data)}
    return encode({b"info": info, **top})


def multi(name: str | bytes, files: list[tuple[list[Any], bytes]]) -> bytes:
    """A multi-file .torrent: (path parts, content) per file, pieces across the files."""
    blob = b"".join(data for _, data in files)
    entries = [{b"length": len(data), b"path": [_b(p) for p in path]} for path, data in files]
    info = {b"name": _b(name), b"piece length": PL, b"files": entries, b"pieces": hashes(blob)}
    return encode({b"info": info})


# -- the session's collaborators -----------------------------------------------------------------
class HashingVerifier:
    """The Verifier's interface, done inline: recheck really hashes what is on disk.

    ``rechecks`` lists the pieces each recheck read (None: all of them); while
    ``hold_rechecks`` is set a recheck waits in ``held`` until a test fires it.
    """

    def __init__(self) -> None:
        self.rechecks: list[list[int] | None] = []
        self.hold_rechecks = False
        self.held: list[defer.Deferred[Bitfield]] = []

    def want_files(self, storage: Any, indices: list[int]) -> defer.Deferred[None]:
        for index in indices:
            storage.want_file(index)
        storage.flush()
        return defer.succeed(None)

    def recheck(
        self,
        storage: Any,
        piece_hashes: bytes,
        piece_length: int,
        total_length: int,
        *,
        pieces: Any = None,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> defer.Deferred[Bitfield]:
        n = -(-total_length // piece_length)
        wanted = list(range(n)) if pieces is None else sorted(pieces)
        self.rechecks.append(None if pieces is None else wanted)
        if self.hold_rechecks:
            self.held.append(defer.Deferred())
            return self.held[-1]
        have = Bitfield(n)
        for i in wanted:
            try:
                data = storage.read_piece(i)
            except StorageError:
                continue
            if hashlib.sha1(data).digest() == piece_hashes[20 * i : 20 * i + 20]:
                have.add(i)
        if on_progress is not None:
            on_progress(len(wanted), len(wanted))
        return defer.succeed(have)

    def verify_and_write(self, storage: Any, index: int, data: bytes, expected: bytes) -> Any:
        ok = hashlib.sha1(data).digest() == expected
        if ok:
            storage.write_piece(index, bytes(data))
        return defer.succeed(ok)

    def read_blocks(self, storage: Any, spans: list[tuple[int, int, int]]) -> Any:
        return defer.maybeDeferred(lambda: [storage.read(*span) for span in spans])

    def read_block(self, storage: Any, index: int, begin: int, length: int) -> Any:
        return defer.maybeDeferred(storage.read, index, begin, length)

    def flush(self, storage: Any) -> Any:
        return defer.maybeDeferred(storage.flush)

    def check_files(self, storage: Any) -> Any:
        return defer.maybeDeferred(storage.check_files)


class HeldBlocking:
    """Replaces ``run_blocking``: the work waits until ``run()`` (a thread pool that is slow)."""

    def __init__(self) -> None:
        self.queue: list[tuple[Callable[..., Any], tuple[Any, ...], defer.Deferred[Any]]] = []

    def __call__(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.queue.append((fn, args, d))
        return d

    def run(self) -> None:
        while self.queue:
            self.run_one()

    def run_one(self) -> None:
        """The oldest job that waits (and what its callbacks queue stays queued)."""
        fn, args, d = self.queue.pop(0)
        try:
            value = fn(*args)
        except Exception:
            d.errback(Failure())
        else:
            d.callback(value)


class Probe:
    """A plugin that records the torrent events it is given."""

    def __init__(self) -> None:
        self.events: list[TorrentEvent] = []

    @hookimpl
    def btd_torrent_event(self, event: TorrentEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def make_session(
    tmp_path: Path,
    probe: Probe | None = None,
    *,
    plugins: dict[str, Any] | None = None,
    verifier: Any = None,
    **session_keys: Any,
) -> Session:
    """A Session with its state in ``tmp_path/state`` and downloads in ``tmp_path/dl``.

    By default only the piece pickers are enabled, so torrents are kept by the file store
    (``<state_dir>/torrents/``). Given ``plugins``, the config names them and they are
    configured, as the daemon does. ``probe`` is registered as an extra plugin.
    """
    cfg = default_config({"HOME": str(tmp_path)})
    cfg = dataclasses.replace(
        cfg,
        daemon=dataclasses.replace(cfg.daemon, state_dir=tmp_path / "state"),
        session=dataclasses.replace(cfg.session, download_dir=tmp_path / "dl", **session_keys),
        **({} if plugins is None else {"plugins": plugins}),
    )
    host = make_plugin_manager(
        {"rarest_first": {}, "sequential": {}} if plugins is None else plugins,
        extra={"probe": probe} if probe else None,
    )
    if plugins is not None:
        host.configure(cfg)
    return Session(
        cfg,
        host,
        MemoryReactorClock(),
        verifier=HashingVerifier() if verifier is None else verifier,
    )


def result(d: Any) -> Any:
    """The value of an already-fired Deferred (its failure raised)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]
