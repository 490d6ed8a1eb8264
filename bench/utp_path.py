"""Python cost per uTP packet of the connection machine alone: one Connection sends to
another on a fake clock (no sockets, no reactor, no BitTorrent above), so the send path
(acks taken, packets cut and encoded) and the receive path (datagrams decoded, data
delivered, acks sent) are measured apart from the kernel.

    .venv/bin/python bench/utp_path.py [MIB]     # default 64

Two peers: one that acks once per batch of datagrams (as btd and libtorrent do), and one
that acks every packet (the sender's worst case). Prints microseconds per data packet and
CPU seconds per GiB on each side, the best of 3 runs (thread CPU time).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from utp_link import FakeClock, Recorder  # noqa: E402

from btd.plugins.utp.connection import Connection  # noqa: E402
from btd.plugins.utp.packet import decode  # noqa: E402

RTT = 0.001  # seconds of fake clock per round trip
BLOCK = b"x" * (16384 + 13)  # what the uploader writes: a PIECE message


class _Counter(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    def data_received(self, data: bytes) -> None:
        self.received += len(data)


def run(mib: int, ack_each: bool) -> tuple[int, float, float]:
    """(data packets, sender CPU seconds, receiver CPU seconds)."""
    clock = FakeClock()
    a_out: list[bytes] = []
    b_out: list[bytes] = []
    sink = _Counter()
    a = Connection.connect(clock, a_out.append, Recorder(), conn_id=100)
    b = Connection.accept(clock, b_out.append, sink, decode(a_out.pop()), seq_nr=5000)
    total = mib * 1024 * 1024
    written = 0
    cpu_a = cpu_b = 0.0
    packets = 0
    while sink.received < total:
        t0 = time.thread_time()
        batch, b_out[:] = b_out[:], []
        for datagram in batch:
            a.receive(decode(datagram))
        a.flush()
        while written < total and a.buffered < 1024 * 1024:
            a.write(BLOCK)
            written += len(BLOCK)
        t1 = time.thread_time()
        clock.now += RTT / 2
        batch, a_out[:] = a_out[:], []
        packets += len(batch)
        t2 = time.thread_time()
        for datagram in batch:
            b.receive(decode(datagram))
            if ack_each:
                b.flush()
        b.flush()
        t3 = time.thread_time()
        clock.now += RTT / 2
        cpu_a += t1 - t0
        cpu_b += t3 - t2
        if a.deadline is not None and clock.now >= a.deadline:
            a.on_timer()
    return packets, cpu_a, cpu_b


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    for ack_each, label in ((False, "acks per batch"), (True, "acks per packet")):
        runs = [run(mib, ack_each) for _ in range(3)]
        packets = runs[0][0]
        send = min(r[1] for r in runs)
        recv = min(r[2] for r in runs)
        per_gib = 1024 / mib
        print(
            f"{label:16} {packets} packets: sender {send / packets * 1e6:.2f} us/packet "
            f"({send * per_gib:.2f} CPU-s/GiB), receiver {recv / packets * 1e6:.2f} us/packet "
            f"({recv * per_gib:.2f} CPU-s/GiB)"
        )


if __name__ == "__main__":
    main()
