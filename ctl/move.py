"""``btctl move HASH DIR``: move a torrent's files to another folder (``torrent.move``).

DIR is made absolute here (relative to btctl's working folder), as ``add --dir`` does.
The daemon answers once the move has started; ``btctl info`` shows ``move_progress`` and
the events ``moving``/``moved`` (``btctl watch``) tell when it is done. Standard library
only, like the rest of btctl.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import EXIT_OK, Output
from btd.ctl.format import format_bytes


def cmd_move(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    target = os.path.abspath(os.path.expanduser(args.dir))
    reply = client.call("torrent.move", {"info_hash": args.info_hash, "path": target})

    def human(r: dict[str, Any]) -> str:
        return (
            f"moving {r.get('info_hash')} from {r.get('from')} to {r.get('to')} "
            f"({format_bytes(r.get('size'))}); it keeps seeding meanwhile"
        )

    out.emit(reply, human)
    return EXIT_OK
