"""Main-thread cost per received block: a real Torrent and PeerProtocol fed PIECE messages in
256 KiB reads (no sockets, no hashing, no disk), so the per-block Python work is measured
apart from the kernel and the pool threads.

    .venv/bin/python bench/receive_path.py [PIECES]     # 1 MiB pieces, default 256

Prints microseconds per block, the best of 3 runs (process CPU time).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torrent_harness as th  # noqa: E402
from twisted.internet import defer  # noqa: E402

from btd.core.wire import messages as m  # noqa: E402
from btd.core.wire.codec import encode  # noqa: E402

READ = 256 * 1024


def configure(pieces: int) -> None:
    th.PIECE_LENGTH = 1 << 20
    th.NUM_PIECES = pieces
    th.TOTAL_LENGTH = th.PIECE_LENGTH * pieces
    th.FILE_SIZES = (("a.bin", th.TOTAL_LENGTH),)
    th.CONTENT = os.urandom(th.TOTAL_LENGTH)


def run() -> float:
    """One download from one fake seed; microseconds of CPU per block received."""
    with tempfile.TemporaryDirectory() as tmp:
        swarm = th.Swarm(Path(tmp))
        swarm.verifier.verify_and_write = lambda storage, index, data, expected: defer.succeed(True)
        swarm.start()
        conn = swarm.seed_peer()
        total = 0.0
        blocks = 0
        while not swarm.torrent.book.have.complete:
            reqs = [x for x in conn.new() if isinstance(x, m.Request)]
            if not reqs:
                swarm.clock.advance(1)
                continue
            stream = b"".join(
                encode(m.Piece(r.index, r.begin, _block(r.index, r.begin, r.length))) for r in reqs
            )
            started = time.process_time()
            for i in range(0, len(stream), READ):
                conn.proto.dataReceived(stream[i : i + READ])
            total += time.process_time() - started
            blocks += len(reqs)
        return total / blocks * 1e6


def _block(index: int, begin: int, length: int) -> bytes:
    start = index * th.PIECE_LENGTH + begin
    return th.CONTENT[start : start + length]


def main() -> int:
    configure(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
    best = min(run() for _ in range(3))
    print(f"{best:.2f} us per block (best of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
