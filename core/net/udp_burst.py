"""A burst of datagrams to one address in few system calls. Not Twisted: the OS socket.

A uTP sender lets out a window's worth of packets at once (one burst per batch of acks).
Sent one ``sendto`` each, the system calls cost more than the rest of the uTP send path
(on loopback the receiver's half of the stack runs inside the sender's call too). Linux's
UDP generic segmentation offload (``UDP_SEGMENT``, kernel 4.18+) takes a run of
equal-sized datagrams as one buffer in one call and cuts it into the same datagrams: the
peer sees no difference. A run is at most ``GSO_MAX_SEGMENTS`` datagrams and
``GSO_MAX_BYTES`` bytes, its last datagram may be shorter (the kernel allows that); a
datagram alone goes by ``sendto``. Where the kernel refuses the option for good (EIO: a
device without checksum offload; ENOPROTOOPT, EOPNOTSUPP) the sender sends one datagram per
call from then on; EINVAL (a path MTU below the segment) falls back for that run only.
Errors of the send itself (EAGAIN, ENETUNREACH...) propagate as OSError, as ``sendto``'s.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys

UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
SOL_UDP = getattr(socket, "SOL_UDP", 17)
GSO_MAX_SEGMENTS = 64  # linux UDP_MAX_SEGMENTS (64 before 6.1; more since)
GSO_MAX_BYTES = 65_000  # under an IPv4 datagram's 65,507-byte ceiling
_GSO_OFF = {errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP}
_pack_size = struct.Struct("=H").pack


def gso_supported() -> bool:
    """Linux 4.18 or later (an older kernel ignores the option and would send one datagram
    of the whole buffer)."""
    if sys.platform != "linux":
        return False
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (4, 18)


class BurstSender:
    """Sends lists of datagrams on one UDP socket; see the module docstring."""

    def __init__(self, sock: socket.socket, *, gso: bool | None = None) -> None:
        self._sendto = sock.sendto
        self._sendmsg = sock.sendmsg
        self.gso = gso_supported() if gso is None else gso
        self.calls = 0  # system calls made
        self.datagrams = 0  # datagrams sent

    def send(self, datagrams: list[bytes], addr: tuple[str, int]) -> None:
        self.datagrams += len(datagrams)
        if not self.gso or len(datagrams) == 1:
            for datagram in datagrams:
                self.calls += 1
                self._sendto(datagram, addr)
            return
        count = len(datagrams)
        i = 0
        while i < count:
            size = len(datagrams[i])
            limit = min(count, i + GSO_MAX_SEGMENTS, i + GSO_MAX_BYTES // size)
            j = i + 1
            while j < limit and len(datagrams[j]) == size:
                j += 1
            if j < limit and len(datagrams[j]) < size:
                j += 1  # a shorter datagram may end the run
            self._run(datagrams, i, j, size, addr)
            i = j

    def _run(
        self, datagrams: list[bytes], i: int, j: int, size: int, addr: tuple[str, int]
    ) -> None:
        if j - i > 1 and self.gso:
            self.calls += 1
            try:
                self._sendmsg(datagrams[i:j], [(SOL_UDP, UDP_SEGMENT, _pack_size(size))], 0, addr)
                return
            except OSError as exc:
                if exc.errno in _GSO_OFF:
                    self.gso = False
                elif exc.errno != errno.EINVAL:
                    raise
        for datagram in datagrams[i:j]:
            self.calls += 1
            self._sendto(datagram, addr)
