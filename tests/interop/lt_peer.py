"""A libtorrent peer in its own process, for interop tests and benchmarks (loopback only).

Usage: python lt_peer.py (seed|leech) TORRENT|MAGNET SAVE_DIR [--peer HOST:PORT]...
[--utp-only] [--encryption rc4|both] (MSE forced both ways: RC4 only, or plaintext allowed after the
handshake; default: libtorrent's own, which tries MSE first and accepts both)
Prints ``PORT <n>`` once listening, ``DONE <seconds>`` when a leech completes, and serves
until stdin closes (the parent's handle on its lifetime). DHT, LSD, UPnP and NAT-PMP are off.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import libtorrent as lt


def encryption_settings(level: str | None) -> dict:
    """MSE forced both ways at ``level`` (``rc4``, ``both``), or libtorrent's defaults."""
    if level is None:
        return {}
    return {
        "out_enc_policy": lt.enc_policy.forced,
        "in_enc_policy": lt.enc_policy.forced,
        "allowed_enc_level": {"rc4": lt.enc_level.rc4, "both": lt.enc_level.both}[level],
        "prefer_rc4": level == "rc4",
    }


def make_session(
    utp: bool = False,
    encryption: str | None = None,
    host: str = "127.0.0.1",
    tcp: bool = True,
) -> lt.session:
    """A loopback session; ``host`` is the address it listens on and dials from (``::1``
    for an IPv6-only peer); ``tcp=False`` (with ``utp``) speaks uTP only."""
    listen = f"[{host}]:0" if ":" in host else f"{host}:0"
    return lt.session(
        {
            **encryption_settings(encryption),
            "listen_interfaces": listen,
            "outgoing_interfaces": host,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_ip_notifier": False,
            "dht_bootstrap_nodes": "",
            "allow_multiple_connections_per_ip": True,
            "enable_outgoing_utp": utp,
            "enable_incoming_utp": utp,
            "enable_outgoing_tcp": tcp,
            "enable_incoming_tcp": tcp,
            "user_agent": "lt_peer",
            "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.storage_notification,
            "close_redundant_connections": False,
            "announce_to_all_trackers": True,
            "announce_to_all_tiers": True,
        }
    )


def wait_listening(ses: lt.session, timeout: float = 10.0) -> None:
    """Print the port only once the TCP listen socket is really open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for alert in ses.pop_alerts():
            if (
                isinstance(alert, lt.listen_succeeded_alert)
                and alert.socket_type == lt.socket_type_t.tcp
            ):
                return
            if isinstance(alert, lt.listen_failed_alert):
                raise SystemExit(f"libtorrent could not listen: {alert.message()}")
    raise SystemExit("libtorrent did not start listening")


def wait_started(ses: lt.session, handle: lt.torrent_handle, timeout: float = 30.0) -> None:
    """libtorrent refuses peers while a torrent is still being checked: wait it out."""
    ready = (
        lt.torrent_status.states.seeding,
        lt.torrent_status.states.downloading,
        lt.torrent_status.states.downloading_metadata,
    )
    deadline = time.monotonic() + timeout
    while handle.status().state not in ready or handle.status().paused:
        if time.monotonic() > deadline:
            raise SystemExit("libtorrent did not start the torrent")
        ses.wait_for_alert(100)
        ses.pop_alerts()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["seed", "leech"])
    parser.add_argument("torrent")
    parser.add_argument("save")
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = none")
    parser.add_argument("--encryption", choices=["rc4", "both"], default=None)
    parser.add_argument("--host", default="127.0.0.1", help="listen and dial from (::1)")
    parser.add_argument("--utp-only", action="store_true", help="uTP on, TCP off both ways")
    args = parser.parse_args()

    utp_only = {"utp": True, "tcp": False} if args.utp_only else {}
    ses = make_session(encryption=args.encryption, host=args.host, **utp_only)
    if args.torrent.startswith("magnet:"):  # metadata comes from the peers (BEP 9)
        params = lt.parse_magnet_uri(args.torrent)
    else:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.save
    # Not queued by the auto-manager: the torrent takes peers as soon as it is added.
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    if args.mode == "seed":
        params.flags |= lt.torrent_flags.seed_mode
    wait_listening(ses)
    handle = ses.add_torrent(params)
    if args.upload_limit:
        handle.set_upload_limit(args.upload_limit)
    wait_started(ses, handle)
    print(f"PORT {ses.listen_port()}", flush=True)
    for peer in args.peer:
        host, port = peer.rsplit(":", 1)
        handle.connect_peer((host.strip("[]"), int(port)))

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    started = time.monotonic()
    done_reported = False
    finished: float | None = None  # seconds to completion; DONE once the files hold it all
    while not stop.is_set():
        status = handle.status()
        if args.mode == "leech" and finished is None and status.is_seeding:
            # Every piece passed its hash, but libtorrent 2 may still hold blocks in its
            # store buffer: flush, and report once cache_flushed_alert says they are written.
            finished = time.monotonic() - started
            handle.flush_cache()
        if args.mode == "leech" and not done_reported and finished is None:
            if time.monotonic() - started > args.timeout:
                print(f"TIMEOUT progress={status.progress:.3f}", flush=True)
                return 1
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.cache_flushed_alert) and finished is not None:
                if not done_reported:
                    print(f"DONE {finished:.3f}", flush=True)
                    done_reported = True
            elif alert.category() & lt.alert.category_t.error_notification:
                print(f"ALERT {alert.message()}", file=sys.stderr, flush=True)
        ses.wait_for_alert(100)  # wakes on any alert, at most 0.1 s
    return 0


if __name__ == "__main__":
    sys.exit(main())
