from __future__ import annotations

import os
import socket

from btd.core.rpc.peercred import (
    PeerCred,
    is_allowed,
    read_peer_cred,
    supplementary_groups,
    transport_peer_cred,
)

OURS = 1000
GROUP = 4242


def no_groups(uid: int, gid: int) -> list[int]:
    return [gid]


def test_same_uid_allowed() -> None:
    assert is_allowed(PeerCred(1, OURS, 1000), OURS, None, no_groups)


def test_root_allowed() -> None:
    assert is_allowed(PeerCred(1, 0, 0), OURS, None, no_groups)


def test_other_uid_refused() -> None:
    assert not is_allowed(PeerCred(1, 1001, 1001), OURS, None, no_groups)


def test_other_uid_refused_when_not_in_group() -> None:
    assert not is_allowed(PeerCred(1, 1001, 1001), OURS, GROUP, no_groups)


def test_primary_gid_in_allowed_group() -> None:
    assert is_allowed(PeerCred(1, 1001, GROUP), OURS, GROUP, no_groups)


def test_supplementary_group_member() -> None:
    def groups(uid: int, gid: int) -> list[int]:
        return [gid, GROUP] if uid == 1001 else [gid]

    assert is_allowed(PeerCred(1, 1001, 1001), OURS, GROUP, groups)
    assert not is_allowed(PeerCred(1, 1002, 1002), OURS, GROUP, groups)


def test_broken_group_lookup_denies() -> None:
    def broken(uid: int, gid: int) -> list[int]:
        raise KeyError(uid)

    assert not is_allowed(PeerCred(1, 1001, 1001), OURS, GROUP, broken)


def test_unknown_uid_has_only_its_gid() -> None:
    # 2**31 - 7 is no one's uid on a sane system
    assert supplementary_groups(2**31 - 7, 31337) == [31337]


def test_known_uid_groups_include_gid() -> None:
    uid, gid = os.getuid(), os.getgid()
    assert gid in supplementary_groups(uid, gid)


def test_read_peer_cred_on_a_real_socketpair() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        cred = read_peer_cred(a)
    assert cred == PeerCred(os.getpid(), os.geteuid(), os.getegid())


def test_transport_without_a_unix_socket_has_no_cred() -> None:
    class NoHandle:
        pass

    class TcpHandle:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def getHandle(self) -> socket.socket:
            return self.sock

    assert transport_peer_cred(NoHandle()) is None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        assert transport_peer_cred(TcpHandle(tcp)) is None
