"""A simulated UDP path between two uTP connection machines, on a fake clock.

Datagrams are delayed (a fixed delay plus jitter, which reorders them), lost at random or
by a rule, and optionally squeezed through a bottleneck of ``rate`` bytes per second with
a queue (the queueing delay LEDBAT watches). Side 0 dials; side 1 accepts the first SYN.
``run`` advances the clock from event to event (datagram arrivals, connection deadlines):
no sleeping, and every run is reproducible from its seed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from btd.plugins.utp.connection import Connection
from btd.plugins.utp.packet import ST_SYN, Packet, decode


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """A connection's events (the Events protocol), kept for assertions."""

    data: bytearray = field(default_factory=bytearray)
    is_connected: bool = False
    reasons: list[str | None] = field(default_factory=list)
    paused: int = 0
    resumed: int = 0
    on_data: Callable[[bytes], None] | None = None

    def connected(self) -> None:
        self.is_connected = True

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.on_data is not None:
            self.on_data(data)

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def closed(self, reason: str | None) -> None:
        self.reasons.append(reason)


class Link:
    def __init__(
        self,
        *,
        delay: float = 0.01,
        jitter: float = 0.0,
        loss: float = 0.0,
        rate: float | None = None,
        seed: int = 1,
        drop: Callable[[int, Packet], bool] | None = None,
        packet_size: int | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.rng = random.Random(seed)
        self.delay, self.jitter, self.loss, self.rate = delay, jitter, loss, rate
        self.drop = drop
        self.packet_size = packet_size
        self.queue: list[tuple[float, int, int, bytes]] = []
        self._order = 0
        self.busy_until = [0.0, 0.0]
        self.sent: list[tuple[float, int, Packet]] = []  # (time, from side, packet)
        self.rec = [Recorder(), Recorder()]
        self.conns: list[Connection | None] = [None, None]
        self.up = True

    def _sender(self, side: int) -> Callable[[bytes], None]:
        def send(datagram: bytes) -> None:
            now = self.clock.now
            packet = decode(datagram)
            self.sent.append((now, side, packet))
            if not self.up or self.rng.random() < self.loss:
                return
            if self.drop is not None and self.drop(side, packet):
                return
            at = now
            if self.rate is not None:
                start = max(now, self.busy_until[side])
                self.busy_until[side] = at = start + len(datagram) / self.rate
            at += self.delay + self.rng.uniform(0, self.jitter)
            self._order += 1
            heapq.heappush(self.queue, (at, self._order, 1 - side, datagram))

        return send

    def connect(self, conn_id: int = 0x1234) -> Connection:
        kw = {} if self.packet_size is None else {"packet_size": self.packet_size}
        conn = Connection.connect(self.clock, self._sender(0), self.rec[0], conn_id=conn_id, **kw)
        self.conns[0] = conn
        return conn

    def _deliver(self, side: int, datagram: bytes) -> None:
        packet = decode(datagram)
        conn = self.conns[side]
        if conn is None:
            if side == 1 and packet.type == ST_SYN:
                kw = {} if self.packet_size is None else {"packet_size": self.packet_size}
                self.conns[1] = Connection.accept(
                    self.clock,
                    self._sender(1),
                    self.rec[1],
                    packet,
                    seq_nr=self.rng.randrange(1 << 16),
                    **kw,
                )
            return
        conn.receive(packet)

    def step(self) -> bool:
        """Advance to the next event and run it; False when nothing is left to happen."""
        times = [c.deadline for c in self.conns if c is not None and c.deadline is not None]
        next_packet = self.queue[0][0] if self.queue else None
        if next_packet is None and not times:
            return False
        timer = min(times) if times else None
        if next_packet is not None and (timer is None or next_packet <= timer):
            self.clock.now = max(self.clock.now, next_packet)
            touched = set()
            while self.queue and self.queue[0][0] <= self.clock.now:
                _, _, side, datagram = heapq.heappop(self.queue)
                self._deliver(side, datagram)
                touched.add(side)
            for side in touched:  # the end of a batch: deferred acks go out
                conn = self.conns[side]
                if conn is not None:
                    conn.flush()
        else:
            assert timer is not None
            self.clock.now = max(self.clock.now, timer)
            for conn in self.conns:
                if (
                    conn is not None
                    and conn.deadline is not None
                    and conn.deadline <= self.clock.now
                ):
                    conn.on_timer()
        return True

    def run(self, until: Callable[[], bool], *, seconds: float = 600.0) -> None:
        end = self.clock.now + seconds
        while not until():
            if not self.step():
                raise AssertionError("nothing left to happen and the condition is not met")
            if self.clock.now > end:
                raise AssertionError(f"not met within {seconds} simulated seconds")

    def established(self) -> tuple[Connection, Connection]:
        self.connect()
        self.run(lambda: self.rec[0].is_connected and self.conns[1] is not None)
        a, b = self.conns
        assert a is not None and b is not None
        return a, b
