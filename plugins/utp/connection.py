"""One uTP connection (BEP 29) as a state machine: no sockets, no reactor. Pure.

It takes decoded packets (``receive``), bytes to send (``write``), ``close``/``abort``,
and the passing of time (``on_timer`` once ``deadline`` is reached, on the clock it was
given); it answers with datagrams through ``send`` and with events to its ``events``
object (connected, data, writing paused/resumed, closed). The adapter calls ``flush``
after each batch of datagrams: in-order data goes to the reader then, in one piece; what
the batch's acks let out is sent then, as one burst (``send_many``: one system call where
the kernel takes it, not one per ack); and acks are deferred to then as libtorrent does,
unless a data packet carried them first. Per packet the work is what it newly does: an ack
walks the packets it newly covers (and a selective ack the holes left in its range),
never the whole window; a burst packs its header once, each packet only its seq_nr.

Sequence numbers: the initiator's SYN is seq 1 on ``connection_id = recv_id`` and it sends
on ``recv_id + 1``; the acceptor receives on ``SYN.connection_id + 1``, sends on
``SYN.connection_id``, and answers with a STATE whose seq_nr is its first (unconsumed)
number. DATA and FIN consume a number; STATE does not.

Sending: bytes are cut into packets of ``packet_size`` when the window allows (the least
of LEDBAT's cwnd and the peer's advertised window, one packet always when nothing is in
flight); a packet shorter than that waits while anything is in flight (Nagle, as
libtorrent). Lost packets are resent on three duplicate acks, on a selective ack that
shows three later packets arrived, or on timeout (cwnd back to one packet, the timeout
doubling). Receiving: in-order data goes to the reader at once (unless paused), packets
ahead wait in a reorder buffer of at most ``UTP_REORDER_PACKETS``, everything held within
``UTP_RECV_WINDOW`` bytes, which is the window we advertise.

Size: about 650 lines, because the send side (segmenting, window, three resend rules) and
the receive side (reorder buffer, acks, FIN) of one connection share its sequence state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from btd.core.limits import (
    UTP_DATA_RESENDS,
    UTP_FIN_RESENDS,
    UTP_RECV_WINDOW,
    UTP_REORDER_PACKETS,
    UTP_SEND_BUFFER,
    UTP_SYN_RESENDS,
)

from .ledbat import Ledbat, RttTimer
from .packet import (
    SEQ_MASK,
    ST_DATA,
    ST_FIN,
    ST_RESET,
    ST_STATE,
    ST_SYN,
    U32,
    Packet,
    header_parts,
    pack_seq,
    seq_add,
    seq_less,
)

PACKET_SIZE = 1360
"""Payload bytes per DATA packet: with the 20-byte header and a selective ack of up to
``SACK_BYTES`` the datagram stays within 1452 bytes (an IPv6 path of MTU 1500)."""
SACK_BYTES = 64  # bitmask bytes we send: 512 packets past ack_nr + 1 (UTP_REORDER_PACKETS)
_SACK_BITS = (1 << SACK_BYTES * 8) - 1
DUP_ACKS = 3  # duplicate acks (or later packets selectively acked) before a resend: BEP 29


class State(Enum):
    SYN_SENT = "syn_sent"
    CONNECTED = "connected"
    FIN_SENT = "fin_sent"
    CLOSED = "closed"


class Events(Protocol):
    """What a connection tells its owner (the transport)."""

    def connected(self) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def closed(self, reason: str | None) -> None:
        """None: an orderly close (FIN both ways or acked); else why it failed."""


@dataclass(slots=True)
class _Out:
    seq: int
    type: int
    payload: bytes
    sent_at: float = 0.0
    transmissions: int = 0
    lost: bool = False  # marked for resending (not counted in flight)
    fast_resent: bool = False


class Connection:
    """One uTP connection; see the module docstring."""

    def __init__(
        self,
        clock: Callable[[], float],
        send: Callable[[bytes], None],
        events: Events,
        *,
        recv_id: int,
        send_id: int,
        packet_size: int = PACKET_SIZE,
        send_many: Callable[[list[bytes]], None] | None = None,
    ) -> None:
        self.clock = clock
        self._send = send
        self._send_many = send_many or self._one_by_one
        self.events = events
        self.recv_id = recv_id & 0xFFFF
        self.send_id = send_id & 0xFFFF
        self.packet_size = packet_size
        self.state = State.SYN_SENT
        self.seq_nr = 1  # the next number to consume
        self.acked_seq = 0  # every number up to this one is acked
        self.ack_nr = 0  # the peer's last in-order number
        self.cc = Ledbat(packet_size)
        self.rtt = RttTimer()
        self.peer_wnd = packet_size
        self.reply_micro = 0
        # send side
        self._sendq = bytearray()
        self._out: dict[int, _Out] = {}  # sent, not acked, in sequence order
        self._out_bytes = 0
        self._lost: set[int] = set()  # numbers of packets to resend
        self.in_flight = 0
        self._dup_acks = 0
        self._stalls = 0  # timeouts in a row with no ack moving forward
        self._loss_seq = 0  # no second window cut for losses before this number
        self._timer_start: float | None = None
        self._probe = False
        self._cwnd_full = False  # the last send stopped at the window: acks may grow it
        self._writing_paused = False
        self._closing = False
        self._fin_seq: int | None = None
        # receive side
        self._reorder: dict[int, bytes | memoryview | None] = {}  # None: the peer's FIN
        self._sack_bits = 0  # bit i: ack_nr + 2 + i is in _reorder (kept as they change)
        self._reorder_bytes = 0
        self._unread = bytearray()
        self._reading_paused = False
        self._ack_pending = False
        self._eof_seq: int | None = None
        self._eof_reported = False
        self._syn_seq: int | None = None
        self._delivered: list[bytes | memoryview] = []  # in order, for the reader at flush
        self._delivered_bytes = 0
        # counters
        self.resent = 0
        self.timeouts = 0

    def _one_by_one(self, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            self._send(datagram)

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def connect(
        cls, clock: Callable[[], float], send: Callable[[bytes], None], events: Events,
        *, conn_id: int, packet_size: int = PACKET_SIZE,
        send_many: Callable[[list[bytes]], None] | None = None,
    ) -> Connection:  # fmt: skip
        """Dial: send a SYN on ``conn_id`` (our receive id); the peer answers on it."""
        conn = cls(
            clock, send, events, recv_id=conn_id, send_id=conn_id + 1, packet_size=packet_size,
            send_many=send_many,
        )  # fmt: skip
        syn = _Out(conn.seq_nr, ST_SYN, b"")
        conn.seq_nr = seq_add(conn.seq_nr, 1)
        conn._out[syn.seq] = syn
        conn._send(conn._transmit(syn, conn.clock()))
        return conn

    @classmethod
    def accept(
        cls, clock: Callable[[], float], send: Callable[[bytes], None], events: Events,
        syn: Packet, *, seq_nr: int, packet_size: int = PACKET_SIZE,
        send_many: Callable[[list[bytes]], None] | None = None,
    ) -> Connection:  # fmt: skip
        """Answer a SYN: connected at once, its STATE carries our first number."""
        conn = cls(
            clock,
            send,
            events,
            recv_id=syn.connection_id + 1,
            send_id=syn.connection_id,
            packet_size=packet_size,
            send_many=send_many,
        )
        conn.state = State.CONNECTED
        conn.seq_nr = seq_nr & SEQ_MASK
        conn.acked_seq = seq_add(seq_nr, -1)
        conn._loss_seq = conn.acked_seq
        conn.ack_nr = syn.seq_nr
        conn._syn_seq = syn.seq_nr
        conn._note_peer(syn)
        conn._send_state()
        return conn

    # -- what the owner calls --------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closing or self.state is State.CLOSED:
            return
        self._sendq += data
        self._send_pending()
        self._check_writing()

    def close(self) -> None:
        """Orderly close: everything written goes first, then a FIN; closed once acked."""
        if self._closing or self.state is State.CLOSED:
            return
        if self.state is State.SYN_SENT:
            self._finish("closed before connecting")
            return
        self._closing = True
        self._send_pending()

    def abort(self) -> None:
        """Close at once: a RESET, nothing more sent or delivered."""
        if self.state is State.CLOSED:
            return
        if self.state is not State.SYN_SENT:
            self._emit(ST_RESET, self.seq_nr, b"")
        self._finish("aborted")

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        if not self._reading_paused:
            return
        self._reading_paused = False
        was_small = self._window() < self.packet_size
        if self._unread:
            data = bytes(self._unread)
            self._unread.clear()
            self.events.data_received(data)
        if was_small and self.state is not State.CLOSED:
            self._send_state()  # the window opened: tell the peer
        self._check_eof()

    @property
    def buffered(self) -> int:
        """Bytes written and not yet acked (the figure the writer is paused on)."""
        return len(self._sendq) + self._out_bytes

    @property
    def deadline(self) -> float | None:
        """When ``on_timer`` is due (clock seconds), None while nothing waits on an ack."""
        if self.state is State.CLOSED or self._timer_start is None:
            return None
        return self._timer_start + self.rtt.timeout

    def flush(self) -> None:
        """End of a batch of datagrams: hand the reader what arrived in order (one call
        per batch, not per packet: the wire decoder above is paid per call), send what
        the acks of the batch let out (one burst, not a packet per ack), then the deferred
        ack if no packet carried it."""
        if self.state is State.CLOSED:
            return
        if self._delivered:
            data = b"".join(self._delivered)  # one copy of each payload, one allocation
            self._delivered.clear()
            self._delivered_bytes = 0
            self.events.data_received(data)
            if self.state is State.CLOSED:
                return
        self._send_pending()
        if self._ack_pending and self.state is not State.CLOSED:
            self._send_state()
        self._check_eof()

    def on_timer(self) -> None:
        deadline = self.deadline
        if deadline is None or self.clock() < deadline:
            return
        self.timeouts += 1
        if not self._out:  # a zero window: probe with one packet
            self._probe = True
            self.rtt.back_off()
            self._timer_start = self.clock()
            self._send_pending()
            return
        oldest = next(iter(self._out.values()))
        limit = {ST_SYN: UTP_SYN_RESENDS, ST_FIN: UTP_FIN_RESENDS}.get(
            oldest.type, UTP_DATA_RESENDS
        )
        self._stalls += 1
        if self._stalls > limit:
            self._finish("connect timed out" if oldest.type == ST_SYN else "timed out")
            return
        for out in self._out.values():
            if not out.lost:
                out.lost = True
                self._lost.add(out.seq)
                self.in_flight -= len(out.payload)
        self.cc.on_timeout()
        self.rtt.back_off()
        self._loss_seq = seq_add(self.seq_nr, -1)
        self._timer_start = self.clock()
        self._send_pending()

    # -- receiving -------------------------------------------------------------------------
    def receive(self, packet: Packet) -> None:
        """A packet on our ``recv_id`` (the adapter matched the address and id). What it
        lets out is sent by ``flush``, at the end of the batch."""
        if self.state is State.CLOSED:
            return
        kind = packet.type
        if kind == ST_RESET:
            self._finish("reset by peer")
            return
        if kind == ST_SYN:
            if packet.seq_nr == self._syn_seq:
                self._send_state()  # our STATE was lost: the SYN comes again
            return
        if self.state is State.SYN_SENT:
            if packet.ack_nr != seq_add(self.seq_nr, -1):
                return
            self.state = State.CONNECTED
            self.ack_nr = seq_add(packet.seq_nr, -1)
            self._note_peer(packet)
            self.events.connected()
            if self.state is State.CLOSED:
                return
        self._note_peer(packet)
        if self._on_ack(packet):
            if self.state is State.CLOSED:
                return
            self._check_writing()
        if kind != ST_STATE:
            self._on_data(packet)
            self._check_eof()

    def _note_peer(self, packet: Packet) -> None:
        self.reply_micro = (int(self.clock() * 1_000_000) - packet.timestamp) & U32
        self.peer_wnd = packet.wnd_size

    def _on_ack(self, packet: Packet) -> bool:
        """The ack and selective ack of ``packet``: costs what it newly acks (and the
        bitmask's length), not the window. True if anything was acked."""
        ack = packet.ack_nr
        acked_seq = self.acked_seq
        out_map = self._out
        if ack == acked_seq and packet.sack is None:  # nothing new acked (the common
            if out_map:  # case for a data packet)
                if packet.type == ST_STATE:
                    self._dup_ack()
            elif not (self._sendq and self.peer_wnd < self.packet_size):
                self._timer_start = None
            return False
        now = self.clock()
        in_flight_before = self.in_flight
        acked_bytes = 0
        progress = False
        if 0 < ((ack - acked_seq) & SEQ_MASK) < 0x8000 and seq_less(ack, self.seq_nr):
            seq = (acked_seq + 1) & SEQ_MASK
            end = (ack + 1) & SEQ_MASK
            while seq != end:
                out = out_map.pop(seq, None)
                if out is not None:
                    size = len(out.payload)
                    acked_bytes += size
                    self._out_bytes -= size
                    if out.lost:
                        self._lost.discard(seq)
                    else:
                        self.in_flight -= size
                    if seq == ack and out.transmissions == 1:
                        self.rtt.sample(now - out.sent_at)
                seq = (seq + 1) & SEQ_MASK
            self.acked_seq = ack
            progress = True
        if packet.sack is not None and out_map:
            acked_bytes += self._on_sack(ack, packet.sack, now)
        if progress:
            self._dup_acks = 0
            self._stalls = 0
            self.rtt.progress()
            self._timer_start = now if out_map else None
        elif packet.type == ST_STATE and ack == self.acked_seq and acked_bytes == 0:
            self._dup_ack()
        if acked_bytes:
            if packet.timestamp_diff:
                self.cc.on_delay_sample(packet.timestamp_diff, now)
            self.cc.on_ack(acked_bytes, in_flight_before, self._cwnd_full)
        if not out_map and not (self._sendq and self.peer_wnd < self.packet_size):
            self._timer_start = None
        if (
            self._fin_seq is not None
            and self._fin_seq not in out_map
            and self.state is State.FIN_SENT
        ):
            self._fin_acked()
        return acked_bytes > 0

    def _dup_ack(self) -> None:
        self._dup_acks += 1
        if self._dup_acks == DUP_ACKS:
            self._mark_lost(next(iter(self._out)))

    def _acked(self, out: _Out, now: float, *, sample: bool) -> int:
        self._out_bytes -= len(out.payload)
        if out.lost:
            self._lost.discard(out.seq)
        else:
            self.in_flight -= len(out.payload)
        if sample and out.transmissions == 1:
            self.rtt.sample(now - out.sent_at)
        return len(out.payload)

    def _on_sack(self, ack: int, mask: bytes, now: float) -> int:
        """Walks the unacked packets in the bitmask's range, in order (``_out`` is in
        sequence order): those it newly covers are acked, the rest are holes, lost once
        ``DUP_ACKS`` packets after them arrived. The cost is what the ack newly covers and
        the holes left, not the window."""
        base = (ack + 2) & SEQ_MASK  # bit 0; ack + 1 is the hole the bitmask is sent for
        bits = int.from_bytes(mask, "little")
        nbits = len(mask) * 8
        sacked: list[int] = []
        holes: list[tuple[int, int]] = []
        for seq in self._out:
            bit = (seq - base) & SEQ_MASK
            if bit == SEQ_MASK:  # ack + 1
                holes.append((seq, -1))
            elif bit >= nbits:
                break
            elif bits >> bit & 1:
                sacked.append(seq)
            else:
                holes.append((seq, bit))
        acked_bytes = 0
        for seq in sacked:
            acked_bytes += self._acked(self._out.pop(seq), now, sample=False)
        for seq, bit in holes:
            if (bits >> (bit + 1)).bit_count() < DUP_ACKS:
                break  # later holes have fewer still
            self._mark_lost(seq)
        return acked_bytes

    def _mark_lost(self, seq: int) -> None:
        out = self._out.get(seq)
        if out is None or out.fast_resent:
            return
        out.fast_resent = True
        if not out.lost:
            out.lost = True
            self._lost.add(seq)
            self.in_flight -= len(out.payload)
        if seq_less(self._loss_seq, seq):
            self.cc.on_loss()
            self._loss_seq = seq_add(self.seq_nr, -1)

    def _on_data(self, packet: Packet) -> None:
        seq = packet.seq_nr
        body: bytes | memoryview | None = packet.payload if packet.type == ST_DATA else None
        if (  # the common case first: the next packet, nothing held, reading, room for it
            body
            and seq == (self.ack_nr + 1) & SEQ_MASK
            and not self._reorder
            and self._eof_seq is None
            and not self._reading_paused
            and len(body) <= UTP_RECV_WINDOW - len(self._unread) - self._delivered_bytes
        ):
            self._ack_pending = True
            self.ack_nr = seq
            self._delivered.append(body)
            self._delivered_bytes += len(body)
            return
        if body is not None and not body:
            return
        if self._eof_seq is not None and not seq_less(seq, self._eof_seq) and seq != self._eof_seq:
            return  # past the peer's FIN
        if not seq_less(self.ack_nr, seq):
            self._ack_pending = True  # old: our ack was lost, say it again
            return
        self._ack_pending = True
        size = len(body) if body else 0
        distance = (seq - self.ack_nr) & SEQ_MASK
        if distance > UTP_REORDER_PACKETS or size > self._window():
            return  # no room: the peer resends
        if body is None:
            self._eof_seq = seq
        if seq in self._reorder:
            return
        if distance > 1:
            self._reorder[seq] = body
            self._sack_bits |= 1 << (distance - 2)
            self._reorder_bytes += size
            return
        self._consume(body)
        while True:
            nxt = seq_add(self.ack_nr, 1)
            if nxt not in self._reorder:
                break
            held = self._reorder.pop(nxt)
            self._reorder_bytes -= len(held) if held else 0
            self._consume(held)

    def _consume(self, body: bytes | memoryview | None) -> None:
        self.ack_nr = seq_add(self.ack_nr, 1)
        self._sack_bits >>= 1
        if body is None:
            return
        if self._reading_paused:
            self._unread += body
        else:
            self._delivered.append(body)
            self._delivered_bytes += len(body)

    def _window(self) -> int:
        return max(
            0, UTP_RECV_WINDOW - len(self._unread) - self._delivered_bytes - self._reorder_bytes
        )

    def _check_eof(self) -> None:
        if (
            self._eof_seq is not None
            and self.ack_nr == self._eof_seq
            and not self._unread
            and not self._delivered
            and not self._eof_reported
            and self.state is not State.CLOSED
        ):
            self._eof_reported = True
            self._send_state()  # ack the FIN now, we are about to forget the connection
            self._finish(None)

    # -- sending ---------------------------------------------------------------------------
    def _send_pending(self) -> None:
        """Send what the window lets out, resends first, as one burst."""
        if self.state is State.CLOSED:
            return
        window = min(self.cc.cwnd, self.peer_wnd)
        now = self.clock()
        burst: list[bytes] = []
        full = False
        if self._lost:
            for seq in sorted(self._lost, key=lambda n: (n - self.acked_seq) & SEQ_MASK):
                out = self._out[seq]
                if self.in_flight and self.in_flight + len(out.payload) > window:
                    full = True  # (no new data, and no FIN, before these)
                    break
                self._lost.discard(seq)
                out.lost = False
                self.in_flight += len(out.payload)
                self.resent += 1
                burst.append(self._transmit(out, now))
        if not full and self.state is State.CONNECTED:
            full = self._segment(window, now, burst)
            if self._closing and not self._sendq and self._fin_seq is None:
                fin = _Out(self.seq_nr, ST_FIN, b"")
                self.seq_nr = seq_add(self.seq_nr, 1)
                self._fin_seq = fin.seq
                self._out[fin.seq] = fin
                self.state = State.FIN_SENT
                burst.append(self._transmit(fin, now))
        # LEDBAT grows the window only when it was what held the sender back
        self._cwnd_full = full and self.in_flight + self.packet_size > self.cc.cwnd
        if burst:
            self._ack_pending = False
            self._send_many(burst)

    def _segment(self, window: int, now: float, burst: list[bytes]) -> bool:
        """Cut new packets from the send queue into ``burst``; True if the window stopped it."""
        sendq = self._sendq
        out_map = self._out
        packet_size = self.packet_size
        in_flight = self.in_flight
        seq = self.seq_nr
        before, after = self._header(now)
        full = False
        while sendq and len(out_map) < UTP_REORDER_PACKETS:
            size = min(packet_size, len(sendq))
            if in_flight:
                if in_flight + size > window:
                    full = True
                    break
                if size < packet_size:
                    break  # Nagle: a short packet waits for the acks
            elif size > self.peer_wnd and not self._probe:
                if self._timer_start is None:
                    self._timer_start = now  # probe when it runs out
                full = True
                break
            self._probe = False
            payload = bytes(sendq[:size])
            del sendq[:size]
            out = _Out(seq, ST_DATA, payload, now, 1)
            out_map[seq] = out
            self._out_bytes += size
            in_flight += size
            burst.append(b"".join((before, pack_seq(seq), after, payload)))
            seq = (seq + 1) & SEQ_MASK
        if seq != self.seq_nr and self._timer_start is None:
            self._timer_start = now
        self.seq_nr = seq
        self.in_flight = in_flight
        return full

    def _transmit(self, out: _Out, now: float) -> bytes:
        out.sent_at = now
        out.transmissions += 1
        if self._timer_start is None:
            self._timer_start = now
        before, after = self._header(now, out.type)
        return b"".join((before, pack_seq(out.seq), after, out.payload))

    def _send_state(self) -> None:
        self._emit(ST_STATE, self.seq_nr, b"")

    def _header(self, now: float, kind: int = ST_DATA) -> tuple[bytes, bytes]:
        """The header of a packet sent now, less its seq_nr (``packet.header_parts``):
        everything else in it is the same for a whole burst."""
        sack = None
        if self._sack_bits:  # the selective ack from the bits kept, not a walk of _reorder
            bits = self._sack_bits & _SACK_BITS
            if bits:
                sack = bits.to_bytes((bits.bit_length() + 31) // 32 * 4, "little")
        return header_parts(
            kind,
            self.recv_id if kind == ST_SYN else self.send_id,
            int(now * 1_000_000),
            self.reply_micro,
            self._window(),
            self.ack_nr,
            sack,
        )

    def _emit(self, kind: int, seq: int, payload: bytes) -> None:
        self._ack_pending = False
        before, after = self._header(self.clock(), kind)
        self._send(b"".join((before, pack_seq(seq), after, payload)))

    # -- writer back-pressure and the end --------------------------------------------------------
    def _check_writing(self) -> None:
        if self.state is State.CLOSED:
            return
        buffered = self.buffered
        if not self._writing_paused and buffered > UTP_SEND_BUFFER:
            self._writing_paused = True
            self.events.pause_writing()
        elif self._writing_paused and buffered <= UTP_SEND_BUFFER // 2:
            self._writing_paused = False
            self.events.resume_writing()

    def _fin_acked(self) -> None:
        self._finish(None)

    def _finish(self, reason: str | None) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self._timer_start = None
        self._out.clear()
        self._lost.clear()
        self._sendq.clear()
        self._reorder.clear()
        self._sack_bits = 0
        self.events.closed(reason)
