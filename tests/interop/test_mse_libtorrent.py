"""btd's MSE/PE handshake machines against libtorrent's, on raw loopback sockets.

libtorrent is set to refuse anything but encrypted connections (``pe_forced`` both ways),
once with RC4 only and once with plaintext allowed after the handshake. As initiator we
must get libtorrent's own BitTorrent handshake back through the stream; as responder,
libtorrent dials us and its handshake must come out of ours with the right info hash.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest
from btdtest import LT_PEER, import_libtorrent, seeded_torrent

from btd.core.wire.mse import Initiator, Responder, req2_key

pytestmark = pytest.mark.interop

PEER_ID = b"-BT0001-" + b"m" * 12


def plain_handshake(info_hash: bytes) -> bytes:
    return b"\x13BitTorrent protocol" + bytes(8) + info_hash + PEER_ID


def lt_seeder(tmp_path: Path, level: str):
    lt = import_libtorrent()
    spec = importlib.util.spec_from_file_location("lt_peer", LT_PEER)
    lt_peer = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(lt_peer)  # type: ignore[union-attr]
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, {"mse/a.bin": 256 * 1024}, "mse", "mse.torrent"
    )
    ses = lt_peer.make_session(encryption=level)
    lt_peer.wait_listening(ses)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(str(torrent))
    params.save_path = str(seed_dir)
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handle = ses.add_torrent(params)
    lt_peer.wait_started(ses, handle)
    return ses, handle, bytes.fromhex(info_hash)


def read_until(sock: socket.socket, machine, deadline: float = 10) -> bytes:
    """Run ``machine`` over the socket until its handshake is established; its payload."""
    sock.settimeout(deadline)
    while machine.established is None:
        data = sock.recv(65536)
        assert data, "libtorrent closed the connection during the MSE handshake"
        reply = machine.receive(data)
        if reply:
            sock.sendall(reply)
    return machine.established.payload


def read_exactly(sock: socket.socket, have: bytes, n: int, decrypt) -> bytes:
    while len(have) < n:
        data = sock.recv(65536)
        assert data, "libtorrent closed the connection"
        have += decrypt(data)
    return have


@pytest.mark.parametrize("level", ["rc4", "both"])
def test_btd_dials_libtorrent_encrypted(tmp_path: Path, level: str) -> None:
    ses, _handle, info_hash = lt_seeder(tmp_path, level)
    initiator = Initiator(info_hash, plain_handshake(info_hash))
    with socket.create_connection(("127.0.0.1", ses.listen_port()), timeout=10) as sock:
        sock.sendall(initiator.start())
        payload = read_until(sock, initiator)
        stream = initiator.established
        assert stream.rc4 == (level == "rc4")
        reply = read_exactly(sock, payload, 68, stream.decrypt)
    assert reply[:20] == b"\x13BitTorrent protocol"
    assert reply[28:48] == info_hash


@pytest.mark.parametrize("level", ["rc4", "both"])
def test_libtorrent_dials_btd_encrypted(tmp_path: Path, level: str) -> None:
    ses, handle, info_hash = lt_seeder(tmp_path, level)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)
        handle.connect_peer(("127.0.0.1", listener.getsockname()[1]))
        conn, _ = listener.accept()
        with conn:
            responder = Responder({req2_key(info_hash): info_hash}.get, policy="prefer")
            payload = read_until(conn, responder)
            stream = responder.established
            assert stream.info_hash == info_hash
            # At the "both" level libtorrent offers plaintext too, which btd then takes.
            assert stream.rc4 == (level == "rc4")
            hs = read_exactly(conn, payload, 68, stream.decrypt)
            assert hs[:20] == b"\x13BitTorrent protocol" and hs[28:48] == info_hash
            # Answer with our handshake: libtorrent keeps the connection and talks on.
            conn.sendall(stream.encrypt(plain_handshake(info_hash)))
            more = read_exactly(conn, b"", 4, stream.decrypt)
            assert len(more) >= 4  # a length prefix of libtorrent's next message
