"""uTP connection machines against each other through a simulated path (tests/utp_link.py):
handshake, ordered delivery under loss and reordering, resend rules, timers, FIN/RESET,
and every buffer bounded. Fake clock, no sleeps."""

from __future__ import annotations

import random

import pytest
from utp_link import FakeClock, Link, Recorder

from btd.core.limits import (
    UTP_DATA_RESENDS,
    UTP_RECV_WINDOW,
    UTP_REORDER_PACKETS,
    UTP_SEND_BUFFER,
    UTP_SYN_RESENDS,
)
from btd.plugins.utp.connection import PACKET_SIZE, SACK_BYTES, Connection, State
from btd.plugins.utp.ledbat import MIN_TIMEOUT
from btd.plugins.utp.packet import (
    ST_DATA,
    ST_FIN,
    ST_RESET,
    ST_STATE,
    ST_SYN,
    Packet,
    decode,
    sack_mask,
)

DATA = bytes(range(256)) * 2000  # 512,000 bytes
BACK = bytes(range(255, -1, -1)) * 1000


def test_handshake_ids_and_numbers() -> None:
    link = Link()
    a, b = link.established()
    syn = link.sent[0][2]
    state = next(p for _, side, p in link.sent if side == 1)
    assert (syn.type, syn.connection_id, syn.seq_nr) == (ST_SYN, 0x1234, 1)
    assert (a.recv_id, a.send_id) == (0x1234, 0x1235)
    assert (b.recv_id, b.send_id) == (0x1235, 0x1234)
    assert (state.type, state.connection_id, state.ack_nr) == (ST_STATE, 0x1234, 1)
    a.write(b"hello")
    link.run(lambda: bytes(link.rec[1].data) == b"hello")
    first = next(p for _, side, p in link.sent if side == 0 and p.type == ST_DATA)
    assert (first.connection_id, first.seq_nr) == (0x1235, 2)
    b.write(b"world")
    link.run(lambda: bytes(link.rec[0].data) == b"world")
    reply = next(p for _, side, p in link.sent if side == 1 and p.type == ST_DATA)
    assert reply.seq_nr == state.seq_nr  # the STATE did not consume its number


def test_both_ways_and_orderly_close() -> None:
    link = Link(delay=0.02)
    a, b = link.established()
    a.write(DATA)
    b.write(BACK)
    a.close()
    link.run(lambda: bool(link.rec[0].reasons and link.rec[1].reasons))
    assert bytes(link.rec[1].data) == DATA
    assert bytes(link.rec[0].data) == BACK
    assert link.rec[0].reasons == [None] and link.rec[1].reasons == [None]
    assert any(p.type == ST_FIN for _, side, p in link.sent if side == 0)
    assert a.resent == 0 and a.timeouts == 0


@pytest.mark.parametrize("seed", range(6))
def test_intact_and_in_order_under_loss_and_reordering(seed: int) -> None:
    link = Link(delay=0.02, jitter=0.03, loss=0.1, seed=seed)
    a, b = link.established()
    a.write(DATA)
    b.write(BACK)
    link.run(lambda: len(link.rec[1].data) >= len(DATA) and len(link.rec[0].data) >= len(BACK))
    assert bytes(link.rec[1].data) == DATA
    assert bytes(link.rec[0].data) == BACK
    assert a.resent > 0 and b.resent > 0
    sacks = [p for _, side, p in link.sent if p.sack is not None]
    assert {side for _, side, p in link.sent if p.sack is not None} == {0, 1}
    assert all(len(p.sack) % 4 == 0 for p in sacks)


def test_one_lost_packet_is_resent_before_the_timeout() -> None:
    dropped: list[int] = []

    def drop(side: int, packet: Packet) -> bool:
        if side == 0 and packet.type == ST_DATA and not dropped and packet.seq_nr == 12:
            dropped.append(packet.seq_nr)
            return True
        return False

    link = Link(delay=0.01, drop=drop)
    a, _ = link.established()
    a.write(DATA)
    link.run(lambda: len(link.rec[1].data) >= len(DATA))
    assert dropped and bytes(link.rec[1].data) == DATA
    assert a.timeouts == 0 and a.resent == 1  # three later packets told: fast retransmit
    sent_at = [t for t, side, p in link.sent if side == 0 and p.type == ST_DATA and p.seq_nr == 12]
    # within about two round trips (20 ms each), not after a timeout or hundreds of dup acks
    assert len(sent_at) == 2 and sent_at[1] - sent_at[0] <= 0.05


def test_syn_resends_back_off_then_fail() -> None:
    link = Link()
    link.up = False
    link.connect()
    link.run(lambda: bool(link.rec[0].reasons))
    times = [t for t, _, p in link.sent if p.type == ST_SYN]
    assert len(times) == 1 + UTP_SYN_RESENDS
    gaps = [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)]
    assert gaps == [1.0 * 2**i for i in range(UTP_SYN_RESENDS)]  # initial 1 s, doubling
    assert link.rec[0].reasons == ["connect timed out"]
    assert not link.rec[0].is_connected


def test_lost_state_reply_is_answered_again() -> None:
    states: list[Packet] = []

    def drop(side: int, packet: Packet) -> bool:
        if side == 1 and packet.type == ST_STATE and not states:
            states.append(packet)
            return True
        return False

    link = Link(drop=drop)
    link.established()
    assert states and sum(p.type == ST_SYN for _, _, p in link.sent) == 2


def test_data_timeouts_back_off_from_the_estimate_then_fail() -> None:
    link = Link(delay=0.001)
    a, _ = link.established()
    a.write(b"x" * 100)
    link.run(lambda: len(link.rec[1].data) == 100)
    assert a.rtt.timeout == MIN_TIMEOUT  # a 2 ms path: the 500 ms floor
    link.up = False
    a.write(b"y" * 100)
    link.run(lambda: bool(link.rec[0].reasons))
    times = [
        t for t, side, p in link.sent if side == 0 and p.type == ST_DATA and p.payload[:1] == b"y"
    ]
    gaps = [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)]
    assert gaps == [MIN_TIMEOUT * 2**i for i in range(UTP_DATA_RESENDS)]
    assert link.rec[0].reasons == ["timed out"]


def test_abort_sends_reset() -> None:
    link = Link()
    a, b = link.established()
    a.abort()
    link.run(lambda: bool(link.rec[1].reasons))
    assert link.rec[1].reasons == ["reset by peer"]
    assert link.rec[0].reasons == ["aborted"]
    assert any(p.type == ST_RESET for _, side, p in link.sent if side == 0)
    assert b.state is State.CLOSED and b.deadline is None


def test_lost_fin_is_resent() -> None:
    fins: list[Packet] = []

    def drop(side: int, packet: Packet) -> bool:
        if packet.type == ST_FIN and not fins:
            fins.append(packet)
            return True
        return False

    link = Link(drop=drop)
    a, _ = link.established()
    a.write(b"bye")
    a.close()
    link.run(lambda: bool(link.rec[0].reasons and link.rec[1].reasons))
    assert link.rec[0].reasons == [None] and link.rec[1].reasons == [None]
    assert bytes(link.rec[1].data) == b"bye"
    assert sum(p.type == ST_FIN for _, _, p in link.sent) == 2


def test_reader_paused_closes_the_window_and_loses_nothing() -> None:
    link = Link(delay=0.01)
    a, b = link.established()
    b.pause_reading()
    big = bytes(range(256)) * (3 * UTP_RECV_WINDOW // 256)
    a.write(big)
    link.run(lambda: b._window() < PACKET_SIZE, seconds=60)  # noqa: SLF001
    link.run(lambda: False if link.queue else True)
    assert len(link.rec[1].data) == 0
    assert a.peer_wnd < PACKET_SIZE
    assert a.buffered > UTP_RECV_WINDOW
    b.resume_reading()
    link.run(lambda: len(link.rec[1].data) >= len(big), seconds=120)
    assert bytes(link.rec[1].data) == big
    assert link.rec[0].paused == 1 and link.rec[0].resumed == 1  # 3 MiB > UTP_SEND_BUFFER
    assert len(big) > UTP_SEND_BUFFER


def test_writer_paused_over_the_send_buffer() -> None:
    link = Link(delay=0.05)
    a, _ = link.established()
    a.write(b"a" * (UTP_SEND_BUFFER // 2))
    assert link.rec[0].paused == 0
    a.write(b"b" * (UTP_SEND_BUFFER // 2 + 1))
    assert link.rec[0].paused == 1
    link.run(lambda: link.rec[0].resumed == 1)
    assert a.buffered <= UTP_SEND_BUFFER // 2


def _acceptor(clock: FakeClock, sent: list[bytes], rec: Recorder) -> Connection:
    syn = Packet(ST_SYN, 7, seq_nr=1, ack_nr=0, wnd_size=1 << 20)
    return Connection.accept(clock, sent.append, rec, syn, seq_nr=100)


def test_reorder_buffer_is_bounded() -> None:
    clock, sent, rec = FakeClock(), [], Recorder()
    conn = _acceptor(clock, sent, rec)
    for ahead in (3, UTP_REORDER_PACKETS, UTP_REORDER_PACKETS + 1, 0x7000):
        conn.receive(
            Packet(ST_DATA, 8, seq_nr=1 + ahead, ack_nr=99, wnd_size=1 << 20, payload=b"z")
        )
    assert sorted(conn._reorder) == [4, 1 + UTP_REORDER_PACKETS]  # noqa: SLF001
    conn.flush()
    ack = decode(sent[-1])
    assert ack.type == ST_STATE and ack.ack_nr == 1 and ack.sack is not None
    assert ack.wnd_size == UTP_RECV_WINDOW - 2


def test_receive_window_is_bounded() -> None:
    clock, sent, rec = FakeClock(), [], Recorder()
    conn = _acceptor(clock, sent, rec)
    conn.pause_reading()
    body = b"q" * 60_000
    seq = 2
    for _ in range(UTP_RECV_WINDOW // len(body) + 3):
        conn.receive(Packet(ST_DATA, 8, seq_nr=seq, ack_nr=99, wnd_size=1 << 20, payload=body))
        seq += 1
    held = len(conn._unread)  # noqa: SLF001
    assert held <= UTP_RECV_WINDOW and held == (UTP_RECV_WINDOW // len(body)) * len(body)
    conn.resume_reading()
    assert len(rec.data) == held


def test_duplicate_data_is_acked_again_not_delivered_twice() -> None:
    clock, sent, rec = FakeClock(), [], Recorder()
    conn = _acceptor(clock, sent, rec)
    packet = Packet(ST_DATA, 8, seq_nr=2, ack_nr=99, wnd_size=1 << 20, payload=b"once")
    conn.receive(packet)
    conn.flush()
    conn.receive(packet)
    conn.flush()
    assert bytes(rec.data) == b"once"
    assert [decode(d).ack_nr for d in sent[-2:]] == [2, 2]


def test_no_timer_while_idle() -> None:
    link = Link()
    a, b = link.established()
    a.write(b"x" * 5000)
    link.run(lambda: len(link.rec[1].data) == 5000)
    link.run(lambda: not link.queue)
    assert a.deadline is None and b.deadline is None
    assert not link.step()


def test_a_stale_selective_ack_after_a_timeout_does_not_resend_again() -> None:
    """A hole resent fast, then by a timeout; selective acks sent before the peer got that
    resend still show the hole and must not resend it once more (they used to: the packet
    then ran out of resends twice as fast)."""
    clock, sent, rec = FakeClock(), [], Recorder()
    conn = Connection.connect(clock, sent.append, rec, conn_id=50)
    conn.receive(Packet(ST_STATE, 50, seq_nr=700, ack_nr=1, wnd_size=1 << 20, timestamp_diff=5))
    conn.cc.cwnd = 10 * PACKET_SIZE
    conn.write(b"d" * (PACKET_SIZE * 5))  # seq 2..6

    def sends_of_2() -> int:
        return sum(1 for d in sent if decode(d).type == ST_DATA and decode(d).seq_nr == 2)

    def sack(mask: bytes) -> None:  # a batch of one datagram, as the adapter delivers it
        conn.receive(Packet(ST_STATE, 50, seq_nr=700, ack_nr=1, wnd_size=1 << 20, sack=mask))
        conn.flush()

    sack(b"\x07\0\0\0")  # 3, 4, 5 arrived: 2 is lost
    assert sends_of_2() == 2
    clock.now = conn.deadline  # type: ignore[assignment]
    conn.on_timer()
    assert sends_of_2() == 3
    for _ in range(4):  # sent by the peer before the timeout's resend reached it
        sack(b"\x0f\0\0\0")
    assert sends_of_2() == 3


class _CountingDict(dict):  # type: ignore[type-arg]
    """A dict that counts lookups, removals and the entries iterated."""

    ops = 0

    def pop(self, *args: object) -> object:
        _CountingDict.ops += 1
        return super().pop(*args)

    def get(self, *args: object) -> object:
        _CountingDict.ops += 1
        return super().get(*args)

    def __contains__(self, key: object) -> bool:
        _CountingDict.ops += 1
        return super().__contains__(key)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for key in super().__iter__():
            _CountingDict.ops += 1
            yield key


def _sending(count: int) -> tuple[FakeClock, Connection, list[list[bytes]]]:
    """A dialled connection with ``count`` data packets (seq 2...) in flight."""
    clock, sent, rec = FakeClock(), [], Recorder()
    bursts: list[list[bytes]] = []
    conn = Connection.connect(clock, sent.append, rec, conn_id=50, send_many=bursts.append)
    conn.receive(Packet(ST_STATE, 50, seq_nr=700, ack_nr=1, wnd_size=1 << 30, timestamp_diff=5))
    conn.flush()
    conn.cc.cwnd = 1 << 30
    conn.write(b"d" * (PACKET_SIZE * count))
    return clock, conn, bursts


def test_a_selective_ack_costs_what_it_newly_covers_not_the_window() -> None:
    _, conn, _ = _sending(450)
    assert len(conn._out) == 450  # noqa: SLF001
    all_but_two = b"\xfe" + b"\xff" * 63  # ack + 1 (seq 2) and bit 0 (seq 3) missing
    conn.receive(Packet(ST_STATE, 50, seq_nr=700, ack_nr=1, wnd_size=1 << 30, sack=all_but_two))
    conn.flush()
    assert sorted(conn._out) == [2, 3]  # noqa: SLF001
    conn._out = _CountingDict(conn._out)  # noqa: SLF001
    _CountingDict.ops = 0
    # the same bitmask again, and seq 3: one packet newly covered, 449 covered before
    conn.receive(Packet(ST_STATE, 50, seq_nr=700, ack_nr=1, wnd_size=1 << 30, sack=b"\xff" * 64))
    assert sorted(conn._out) == [2]  # noqa: SLF001
    assert _CountingDict.ops < 20  # (a scan of the bitmask was > 500)


def test_an_ack_costs_what_it_newly_covers() -> None:
    _, conn, _ = _sending(450)
    conn._out = _CountingDict(conn._out)  # noqa: SLF001
    _CountingDict.ops = 0
    conn.receive(Packet(ST_STATE, 50, seq_nr=700, ack_nr=4, wnd_size=1 << 30))  # seq 2, 3, 4
    assert len(conn._out) == 447 and _CountingDict.ops < 20  # noqa: SLF001


def test_a_batch_of_acks_lets_out_one_burst() -> None:
    """Acks only free the window; ``flush`` (the end of the batch) sends what they let out
    in one ``send_many``: one system call on Linux (GSO), not one per ack."""
    _, conn, bursts = _sending(40)
    conn.cc.cwnd = 40 * PACKET_SIZE
    conn.write(b"d" * (PACKET_SIZE * 20))  # queued: the window is full
    before = len(bursts)
    for ack in range(2, 12):  # ten acks, one packet each
        conn.receive(Packet(ST_STATE, 50, seq_nr=700, ack_nr=ack, wnd_size=1 << 30))
    assert len(bursts) == before
    conn.flush()
    assert len(bursts) == before + 1
    seqs = [decode(d).seq_nr for d in bursts[-1]]
    assert len(seqs) >= 10 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_the_window_grows_when_acks_come_in_batches() -> None:
    """Sends wait for the end of a batch of acks, so each ack of a batch finds a window
    the ones before it emptied: growth must follow whether the last send was held back by
    the window, not the window as each ack finds it (then only the first ack of a batch
    would count: one packet per round trip, not a doubling)."""
    clock, conn, _ = _sending(0)
    conn.cc.cwnd = 2 * PACKET_SIZE
    conn.write(b"d" * (PACKET_SIZE * 2000))
    for _ in range(8):  # round trips: every packet in flight acked, one ack each, one batch
        clock.now += 0.01
        for ack in range(conn.acked_seq + 1, conn.seq_nr):
            conn.receive(
                Packet(ST_STATE, 50, seq_nr=700, ack_nr=ack, wnd_size=1 << 30, timestamp_diff=5)
            )
        conn.flush()
    assert conn.cc.cwnd >= 64 * PACKET_SIZE  # slow start: doubling (2, 4, ... 512)


@pytest.mark.parametrize("seed", range(4))
def test_the_selective_ack_kept_as_packets_come_is_the_one_the_buffer_says(seed: int) -> None:
    """The bitmask is kept bit by bit as packets arrive and holes fill (not worked out by
    walking the reorder buffer for each ack): it must say what the buffer holds."""
    rng = random.Random(seed)
    clock, sent, rec = FakeClock(), [], Recorder()
    conn = _acceptor(clock, sent, rec)
    order = list(range(2, 2 + 3000))
    for i in range(0, len(order), 40):  # shuffled within windows of 40, some dropped
        window = order[i : i + 40]
        rng.shuffle(window)
        order[i : i + 40] = window
    pending = [seq for seq in order if rng.random() > 0.1]
    pending += order  # then everything again, in order: the resends (and duplicates)
    for n, seq in enumerate(pending):
        conn.receive(Packet(ST_DATA, 8, seq_nr=seq & 0xFFFF, ack_nr=99, payload=b"p"))
        if n % 7 == 0:
            conn.flush()
            got = decode(sent[-1]).sack
            assert got == sack_mask(conn.ack_nr, conn._reorder, SACK_BYTES)  # noqa: SLF001
    conn.flush()
    assert len(rec.data) == 3000 and decode(sent[-1]).sack is None
