"""The control socket's file: where it lives, who may open it, and cleaning up.

The directory is made 0750 when missing and must belong to us or root and be writable by
nobody else (not even sticky like /tmp: issue 13 class 8); the
socket is bound under umask 0117 so it is 0660 from its first instant; an old
socket file is replaced only when nothing answers on it, and anything that is
not a socket is never deleted. On stop the file is removed only if it is still
the one we bound.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

from twisted.internet import tcp, unix
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.errors import BtdError

_log = Logger()


class ControlPort(unix.Port):
    """A UNIX port that removes its socket file on stop only if it is still ours."""

    _identity: tuple[int, int] | None = None

    def startListening(self) -> None:
        super().startListening()
        st = os.stat(self._bindPath)
        self._identity = (st.st_dev, st.st_ino)

    def connectionLost(self, reason: Failure) -> None:
        try:
            st = os.lstat(self._bindPath)
            if (st.st_dev, st.st_ino) == self._identity:
                os.unlink(self._bindPath)
        except OSError as exc:
            _log.warn("cannot remove control socket {path}: {e}", path=self._bindPath, e=str(exc))
        tcp.Port.connectionLost(self, reason)  # skip unix.Port's unconditional unlink


def bind_control_socket(reactor: Any, path: Path, factory: Any) -> tuple[ControlPort, bool]:
    """Listen on ``path`` for ``factory``; also say whether the directory was created.

    Raises BtdError if another daemon answers on ``path``, if ``path`` is not a
    socket, or if the directory or socket cannot be made.
    """
    created = prepare_directory(path.parent)
    remove_stale(path)
    old_umask = os.umask(0o117)  # the socket is born 0660: no window with wider rights
    try:
        port = ControlPort(str(path), factory, mode=0o660, reactor=reactor)
        port.startListening()
    except CannotListenError as exc:
        raise BtdError(f"cannot listen on {path}: {exc.socketError}") from exc
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o660)
    return port, created


def prepare_directory(directory: Path) -> bool:
    """Create missing directories 0750; True if ``directory`` itself was created."""
    missing = []
    probe = directory
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = probe.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o750)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BtdError(f"cannot create socket directory {d}: {exc}") from exc
        os.chmod(d, 0o750)
    if not directory.is_dir():
        raise BtdError(f"socket directory {directory} is not a directory")
    st = directory.stat()  # through a symlink: the folder the socket really goes in
    shown = str(directory)
    if os.path.islink(directory):
        shown += f" (a symlink to {os.path.realpath(directory)})"
    if st.st_uid not in (os.geteuid(), 0):
        raise BtdError(f"socket directory {shown} belongs to uid {st.st_uid}; refusing to use it")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "everyone" if st.st_mode & stat.S_IWOTH else "its group"
        raise BtdError(
            f"socket directory {shown} is writable by {who} (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): they could put their own socket in its place "
            "and receive every btctl command; use a folder only the daemon's user can write "
            "(chmod go-w, or the default $XDG_RUNTIME_DIR/btd)"
        )
    return directory in missing


def remove_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise BtdError(f"{path} exists and is not a socket; refusing to replace it")
    if _answers(path):
        raise BtdError(f"another daemon is listening on {path}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    _log.info("removed stale control socket {path}", path=str(path))


def _answers(path: Path) -> bool:
    """Does something accept connections on the socket file ``path``?"""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(str(path))
    except BlockingIOError:
        return True  # alive, its backlog is full
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        raise BtdError(f"cannot tell whether {path} is in use: {exc}") from exc
    finally:
        probe.close()
    return True


def give_group(path: Path, gid: int, with_directory: bool) -> None:
    """Best effort: the allowed group must own the socket (0660) and its directory (0750).

    A directory we did not create (a home, a systemd RuntimeDirectory) is left alone.
    """
    for target in (path, path.parent) if with_directory else (path,):
        try:
            os.chown(target, -1, gid)
        except OSError as exc:
            _log.warn(
                "cannot give {path} to group {gid}; its members may not connect: {e}",
                path=str(target),
                gid=gid,
                e=str(exc),
            )
