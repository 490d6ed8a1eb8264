"""Who is on the other end of the control socket, and may they talk to us?

The kernel vouches for the peer's (pid, uid, gid) through SO_PEERCRED, taken at
connect() time; file permissions alone are not trusted (a 0660 socket in a 0750
directory is the first fence, this is the second). ``is_allowed`` is pure so the
policy can be tested with made-up uids.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

_log = Logger()

_CRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}

GroupsOf = Callable[[int, int], Iterable[int]]


@dataclass(frozen=True)
class PeerCred:
    """The credentials of the process that connected."""

    pid: int
    uid: int
    gid: int


def supplementary_groups(uid: int, gid: int) -> list[int]:
    """Every group the user ``uid`` belongs to (``gid`` included).

    An unknown uid (no passwd entry, e.g. a container's) has only ``gid``.
    """
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return [gid]
    try:
        return list(os.getgrouplist(name, gid))
    except OSError:
        return [gid]


def is_allowed(
    cred: PeerCred,
    our_uid: int,
    allowed_gid: int | None,
    groups_of: GroupsOf = supplementary_groups,
) -> bool:
    """The access policy: our own uid, root, or a member of ``allowed_gid``."""
    if cred.uid == our_uid or cred.uid == 0:
        return True
    if allowed_gid is None:
        return False
    if cred.gid == allowed_gid:
        return True
    try:
        return allowed_gid in set(groups_of(cred.uid, cred.gid))
    except (KeyError, OSError) as exc:  # a broken NSS lookup denies, never crashes
        _log.warn("group lookup for uid {uid} failed: {error}", uid=cred.uid, error=str(exc))
        return False


def read_peer_cred(sock: socket.socket) -> PeerCred | None:
    """SO_PEERCRED of a connected AF_UNIX socket; None where unsupported."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, _CRED.size)
    except OSError as exc:
        _log.warn("SO_PEERCRED failed: {error}", error=str(exc))
        return None
    pid, uid, gid = _CRED.unpack(raw)
    return PeerCred(pid=pid, uid=uid, gid=gid)


def transport_peer_cred(transport: Any) -> PeerCred | None:
    """Credentials of a Twisted UNIX transport's peer, or None (then access is denied)."""
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is None:
        return None
    sock = get_handle()
    if not isinstance(sock, socket.socket) or sock.family != socket.AF_UNIX:
        return None
    return read_peer_cred(sock)
