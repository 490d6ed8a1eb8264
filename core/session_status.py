"""Read-only views of the Session as JSON-able dicts (``session.info``, ``session.stats``).

Kept apart from the Session the way torrent_status.py is kept apart from the Torrent: the
facade runs things, these only report them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from btd.core.version import __version__

if TYPE_CHECKING:
    from btd.core.session import Session


def info(session: Session) -> dict[str, Any]:
    """What ``session.info`` answers: which daemon this is and how it was configured."""
    config = session.config
    source = config.source
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime": round(session.uptime, 3),
        "started_at": session.started_at,
        "config_path": str(source) if source else None,
        "state_dir": str(config.daemon.state_dir),
        "download_dir": str(config.session.download_dir),
        "listen_port": session.listen_port,
        "torrents": len(session.torrents),
        "loading": session.loader.loading,  # stored torrents still coming up
        "plugins": list(session.plugins.enabled),
        **_store(session),
    }


def _store(session: Session) -> dict[str, Any]:
    """``resume_store``: "ok", "loading" or what was wrong (a line, shown by ``btctl
    status``); ``resume_store_report``: the counts, only when something was wrong."""
    report = session.store_report
    if report is not None:
        return {"resume_store": report.message, "resume_store_report": report.as_dict()}
    return {"resume_store": "ok" if session.loader.read else "loading"}


def stats(session: Session) -> dict[str, Any]:
    """What ``session.stats`` answers: totals over every torrent.

    The per-state counts are the Session's counters; rates only ask torrents with peers.
    """
    ts = session.torrents.values()
    fetches = session.magnets.fetches
    states = {state: n for state, n in session.state_counts.items() if n}
    if fetches:
        states["metadata"] = len(fetches)
    return {
        "torrents": len(ts) + len(fetches),
        "states": states,
        "peers": sum(len(t.peers) for t in ts),
        "download_rate": round(sum(t.download_rate() for t in ts if t.peers)),
        "upload_rate": round(sum(t.upload_rate() for t in ts if t.peers)),
        "downloaded": sum(t.downloaded for t in ts),
        "uploaded": sum(t.uploaded for t in ts),
        "uptime": round(session.uptime, 3),
        "listen_port": session.listen_port,
        "disconnects": session.disconnects.as_dict(),
    }
