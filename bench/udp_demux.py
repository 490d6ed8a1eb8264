"""Main-thread cost of the shared UDP socket's demultiplexing (core/net/udp.py) per
datagram: the first-byte classification and address handling, beside a direct call of the
same receiver in the same run (no sockets: a fake reactor's port feeds it).

    .venv/bin/python bench/udp_demux.py [DATAGRAMS]     # default 1,000,000

Prints nanoseconds per datagram for an IPv4 socket and a dual-stack ``::`` one (an IPv4
peer's mapped address, an IPv6 peer), the best of 3 runs.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from twisted.internet.protocol import DatagramProtocol  # noqa: E402
from udp_fakes import FakeUdpReactor  # noqa: E402

from btd.core.net.udp import UTP, UdpSockets  # noqa: E402
from btd.plugins.utp.packet import ST_DATA, Packet  # noqa: E402


class Sink(DatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        pass


def best(receiver: Any, packet: bytes, addr: tuple[str, int], n: int) -> float:
    """Seconds per datagram, the best of 3 runs of ``n``."""
    return (
        min(timeit.repeat(lambda: receiver.datagramReceived(packet, addr), number=n, repeat=3)) / n
    )


def main(n: int) -> None:
    packet = Packet(ST_DATA, 1, seq_nr=1, ack_nr=1).encode() + b"x" * 1360
    for host, source in (("127.0.0.1", "127.0.0.1"), ("::", "::ffff:127.0.0.1"), ("::", "::1")):
        reactor = FakeUdpReactor()
        sink = Sink()
        UdpSockets(reactor).open(host, 6881, UTP, sink)
        demux = best(reactor.ports[0].protocol, packet, (source, 5000), n)
        direct = best(sink, packet, (source, 5000), n)
        print(
            f"socket {host:<9} from {source:<16} demux {demux * 1e9:5.0f} ns/datagram, "
            f"direct call {direct * 1e9:4.0f} ns"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
