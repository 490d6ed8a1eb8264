"""A libtorrent peer for bench/swarm.py, in its own process (loopback only).

    python bench/lt_bench.py seed TORRENT SAVE_DIR [--utp-only]
    python bench/lt_bench.py leech TORRENT SAVE_DIR [--utp-only]

Both print ``PORT <n>`` once the torrent is ready (a seeder has checked its files: no
seed_mode, whose lazy hashing would land in the measured transfer). A leecher then reads one
line ``GO HOST:PORT`` from stdin, notes the time, dials that peer and prints
``DONE <start> <end>`` when its own ``torrent_finished_alert`` arrives (every piece passed
its hash check): both CLOCK_MONOTONIC readings, comparable with the parent's
``time.monotonic()``. Every process serves until stdin closes. DHT, LSD, UPnP, NAT-PMP and
uTP are off (the settings of tests/interop/lt_peer.py); ``--utp-only`` turns uTP on and TCP
off both ways (bench/swarm.py --utp-only).

``--encryption plain`` (bench/swarm.py's default) makes libtorrent dial and accept plaintext
only; ``default`` is libtorrent's own setting (it dials with the MSE handshake first and
takes plaintext after it when offered); ``require`` forces MSE with RC4 both ways.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import libtorrent as lt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "interop"))
from lt_peer import make_session, wait_listening, wait_started  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["seed", "leech"])
    parser.add_argument("torrent")
    parser.add_argument("save")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--encryption", choices=["plain", "default", "require"], default="plain")
    parser.add_argument("--utp-only", action="store_true")
    args = parser.parse_args()

    encryption = "rc4" if args.encryption == "require" else None
    if args.utp_only:
        ses = make_session(utp=True, tcp=False, encryption=encryption)
    else:
        ses = make_session(encryption=encryption)
    if args.encryption == "plain":
        off = lt.enc_policy.pe_disabled
        ses.apply_settings({"out_enc_policy": off, "in_enc_policy": off})
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.save
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    wait_listening(ses)
    handle = ses.add_torrent(params)
    wait_started(ses, handle, timeout=args.timeout)
    if args.mode == "seed":
        while not handle.status().is_seeding:  # checked and complete
            ses.wait_for_alert(100)
            ses.pop_alerts()
    print(f"PORT {ses.listen_port()}", flush=True)
    if args.mode == "seed":
        sys.stdin.read()
        return 0

    line = sys.stdin.readline().split()
    if not line or line[0] != "GO":
        return 0
    host, port = line[1].rsplit(":", 1)
    start = time.monotonic()
    handle.connect_peer((host, int(port)))
    deadline = start + args.timeout
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.torrent_finished_alert):
                print(f"DONE {start:.6f} {time.monotonic():.6f}", flush=True)
                sys.stdin.read()
                return 0
    print(f"TIMEOUT progress={handle.status().progress:.3f}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
