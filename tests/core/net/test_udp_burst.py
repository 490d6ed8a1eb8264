"""BurstSender on real loopback sockets: the peer receives exactly the datagrams given, in
order, each alone, with GSO (fewer calls) and without; a kernel that refuses GSO for good
turns it off and loses nothing."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from btd.core.net.udp_burst import GSO_MAX_SEGMENTS, BurstSender, gso_supported


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    yield tx, rx
    tx.close()
    rx.close()


def _burst() -> list[bytes]:
    """Runs of equal sizes, a short one ending a run, sizes changing, more than one run's
    worth of segments."""
    out = [bytes([i % 251]) * 1380 for i in range(GSO_MAX_SEGMENTS + 10)]
    out.append(b"short")
    out += [bytes([i]) * 700 for i in range(5)] + [b"x" * 1400, b"y" * 20]
    return out


def _receive(rx: socket.socket, count: int) -> list[bytes]:
    rx.settimeout(5)
    return [rx.recv(70_000) for _ in range(count)]


@pytest.mark.parametrize("gso", [True, False])
def test_every_datagram_arrives_alone_and_in_order(
    pair: tuple[socket.socket, socket.socket], gso: bool
) -> None:
    if gso and not gso_supported():
        pytest.skip("no UDP GSO on this kernel")
    tx, rx = pair
    sender = BurstSender(tx, gso=gso)
    datagrams = _burst()
    sender.send(datagrams, rx.getsockname())
    assert _receive(rx, len(datagrams)) == datagrams
    assert sender.datagrams == len(datagrams)
    if gso:
        assert sender.calls <= 8 < len(datagrams)
    else:
        assert sender.calls == len(datagrams)


class _Refusing:
    """A socket whose kernel refuses UDP_SEGMENT with ``code``."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: object) -> int:
        self.sent.append(data)
        return len(data)

    def sendmsg(self, *args: object) -> int:
        raise OSError(self.code, "refused")


@pytest.mark.parametrize(("code", "stays_on"), [(errno.EIO, False), (errno.EINVAL, True)])
def test_refused_gso_falls_back_and_loses_nothing(code: int, stays_on: bool) -> None:
    sock = _Refusing(code)
    sender = BurstSender(sock, gso=True)  # type: ignore[arg-type]
    datagrams = [b"a" * 100] * 5
    sender.send(datagrams, ("127.0.0.1", 9))
    assert sock.sent == datagrams
    assert sender.gso is stays_on


def test_other_send_errors_propagate() -> None:
    sock = _Refusing(errno.EAGAIN)
    with pytest.raises(OSError):
        BurstSender(sock, gso=True).send([b"a"] * 3, ("127.0.0.1", 9))  # type: ignore[arg-type]
