"""Text for people: btctl's shared formatting helpers (pure functions, standard library only).

Everything a command prints about sizes, rates, durations and torrents goes through here,
so ``list``, ``info``, ``wait`` and ``watch`` show the same thing the same way, and no text
from the daemon (torrent names, paths, peer clients) reaches the terminal with control
characters in it (:func:`clean`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import zip_longest
from typing import Any

NAME_WIDTH = 32  # keeps `btctl list` near 120 columns
PIECE_CELLS = 64  # width of the piece map in `info` and watch's detail pane
PIECE_GLYPHS = "░▒▓█"  # a cell's pieces: none, under half, half or more, all verified
LIST_HEADERS = ("HASH", "NAME", "STATE", "DONE", "SIZE", "DOWN", "UP", "PEERS", "ETA", "RATIO")
LIST_FIELDS = (
    "info_hash", "name", "state", "state_detail", "queue_position", "progress", "size",
    "download_rate", "upload_rate", "peers", "eta", "left", "ratio",
)  # fmt: skip
"""What the table needs of each torrent: `btctl list` asks for no more (10,000 torrents
with every field cost the daemon several times as much to build and send)."""

# (letter, peer.info key): shown in this order, "." when the flag is off.
PEER_FLAGS = (
    ("I", "am_interested"),  # we are interested in the peer
    ("C", "peer_choking"),  # the peer chokes us
    ("i", "peer_interested"),  # the peer is interested in us
    ("c", "am_choking"),  # we choke the peer
    ("S", "snubbed"),  # the peer sent nothing for a while
)


def clean(value: Any, missing: str | None = None) -> Any:
    """Control characters from torrent names, paths or peers must not reach the terminal.

    Text comes back with each control character replaced by ``?``; other values come back
    as they are (a table shows None as ``-``). With ``missing``, the result is always text:
    None becomes ``missing`` and any other value its ``str()``, cleaned.
    """
    if missing is not None:
        value = missing if value is None else str(value)
    if not isinstance(value, str):
        return value
    return value if value.isprintable() else value.translate(_CONTROL_CHARACTERS)


_CONTROL_CHARACTERS = dict.fromkeys([*range(32), *range(127, 160)], "?")


def trunc(text: Any, width: int = NAME_WIDTH) -> str:
    """Cleaned text cut to ``width`` columns with an ellipsis (None: ``-``)."""
    text = str(clean(text if text is not None else "-"))
    return text if len(text) <= width else text[: width - 1] + "…"


def format_duration(seconds: float | int | None) -> str:
    """``93784`` -> ``1d 2h 03m``; ``3723`` -> ``1h 02m 03s``; ``42`` -> ``42s``."""
    if seconds is None:
        return "-"
    total = int(seconds)
    if total < 0:
        return "-"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_bytes(count: float | int | None) -> str:
    """Binary units, one decimal: ``1536`` -> ``1.5 KiB``."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_rate(per_second: float | int | None) -> str:
    """A transfer rate: ``1536`` -> ``1.5 KiB/s``."""
    return "-" if per_second is None else f"{format_bytes(per_second)}/s"


_RATE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_NO_LIMIT = frozenset({"0", "none", "off", "unlimited"})
MAX_RATE = 10**12  # what the daemon accepts (btd.core.bandwidth.MAX_RATE)


def parse_rate(text: str) -> int:
    """A speed limit as typed: bytes/s, or with k, M, G (binary: ``500k`` = 512,000 B/s, as
    btctl shows rates in KiB/s), optionally followed by ``B``/``iB`` and ``/s``; ``0``,
    ``none``, ``off`` and ``unlimited`` are 0 (no limit). ValueError names what is wrong."""
    raw = str(text).strip().lower()
    if raw in _NO_LIMIT:
        return 0
    body = raw.removesuffix("/s").removesuffix("ib").removesuffix("b") if raw else raw
    unit = body[-1:] if body[-1:] in ("k", "m", "g") else ""
    number = body[: len(body) - len(unit)].strip()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not number or value != value or value < 0:
        raise ValueError(
            f"invalid rate {text!r}: expected bytes/s or a number with k, M or G "
            "(500k, 5M, 1.5M; 0 = unlimited)"
        )
    rate = round(value * _RATE_UNITS[unit])
    if rate > MAX_RATE:
        raise ValueError(f"invalid rate {text!r}: at most {MAX_RATE} bytes/s")
    return rate


def format_limit(rate: Any) -> str:
    """A speed limit for people: ``0`` is ``unlimited``."""
    return "unlimited" if not rate else format_rate(rate)


def format_progress(fraction: float | int | None) -> str:
    """``0.12345`` -> ``12.3%``; rounded down, so only a complete thing shows ``100.0%``."""
    if fraction is None:
        return "-"
    tenths = int(float(fraction) * 1000 + 1e-9)  # floor; the epsilon absorbs 0.1234999...
    return f"{tenths / 10:.1f}%"


def format_fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """Aligned ``key:  value`` lines (the human form of a single record)."""
    items = [(key, "-" if value is None else str(value)) for key, value in pairs]
    if not items:
        return ""
    width = max(len(key) for key, _ in items) + 1
    return "\n".join(f"{key + ':':<{width}}  {value}" for key, value in items)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain left-aligned table (the human form of a list; a short row is padded)."""
    text_rows = [list(headers), *(["-" if c is None else str(c) for c in row] for row in rows)]
    widths = [max(map(len, column)) for column in zip_longest(*text_rows, fillvalue="")]
    pad = [""] * len(widths)
    line = "  ".join(f"{{:<{width}}}" for width in widths).format  # 10,000 rows: C per row
    return "\n".join([line(*row, *pad[len(row) :]).rstrip() for row in text_rows])


def first_line(text: Any) -> str:
    """The first non-empty line of a docstring (or '')."""
    for line in str(text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """:func:`format_table` of cleaned cells."""
    return format_table(
        headers,
        ([c if type(c) is not str or c.isprintable() else clean(c) for c in row] for row in rows),
    )


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """:func:`format_fields` of cleaned values."""
    return format_fields((key, clean(value)) for key, value in pairs)


def eta(record: dict[str, Any]) -> str:
    """A torrent's time left, or ``-`` when it is complete or unknown."""
    seconds = record.get("eta")
    if seconds is None or record.get("left") == 0 or (record.get("progress") or 0) >= 1:
        return "-"
    return format_duration(seconds)


def ratio(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def when(timestamp: Any) -> str | None:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS`` (None when it is not a number)."""
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def state_cell(t: dict[str, Any]) -> Any:
    """The STATE column: the state, marked ``!`` when the daemon says why it waits."""
    state = t.get("state")
    if state == "queued" and t.get("queue_position") is not None:
        return f"queued #{t['queue_position']}"  # its place in the queue (0 = first)
    return f"{state}!" if t.get("state_detail") and state is not None else state


def list_rows(torrents: list[dict[str, Any]]) -> list[list[Any]]:
    """`btctl list`'s rows, in LIST_HEADERS order."""
    return [
        [
            str(t.get("info_hash", ""))[:8],
            trunc(t.get("name")),
            state_cell(t),
            format_progress(t.get("progress")),
            format_bytes(t.get("size")),
            format_rate(t.get("download_rate")),
            format_rate(t.get("upload_rate")),
            t.get("peers"),
            eta(t),
            ratio(t.get("ratio")),
        ]
        for t in torrents
    ]


def state_notes(torrents: list[dict[str, Any]]) -> str:
    """One line per torrent whose state has a detail: ``HASH8 STATE!: detail``."""
    return "\n".join(
        f"{str(t.get('info_hash', ''))[:8]} {clean(t.get('state'), '-')}!: "
        f"{clean(t.get('state_detail'))}"
        for t in torrents
        if t.get("state_detail")
    )


def peer_flags(peer: dict[str, Any]) -> str:
    return "".join(letter if peer.get(key) else "." for letter, key in PEER_FLAGS)


def peer_address(peer: dict[str, Any]) -> str:
    host = str(peer.get("address", "?"))
    return f"[{host}]:{peer.get('port')}" if ":" in host else f"{host}:{peer.get('port')}"


def peer_row(p: dict[str, Any]) -> list[str]:
    """One peer as table cells: ADDRESS CLIENT DONE DOWN UP FLAGS (`peers`, `info`, watch)."""
    return [
        peer_address(p),
        trunc(p.get("client") or "?", 20),
        format_progress(p.get("progress")),
        format_rate(p.get("download_rate")),
        format_rate(p.get("upload_rate")),
        peer_flags(p),
    ]


def piece_cells(piece_map: str | None, pieces: int | None, cells: int = PIECE_CELLS) -> str:
    """A hex bitfield (piece 0 = top bit of byte 0) as at most ``cells`` block characters."""
    try:
        raw = bytes.fromhex(piece_map or "")
    except ValueError:
        return ""
    bits = len(raw) * 8
    total = bits if pieces is None or pieces < 0 else min(pieces, bits)
    if total == 0:
        return ""
    value = int.from_bytes(raw, "big")
    count = min(cells, total)
    out = []
    for c in range(count):
        lo, hi = c * total // count, (c + 1) * total // count
        have = ((value >> (bits - hi)) & ((1 << (hi - lo)) - 1)).bit_count()
        level = 0 if have == 0 else 3 if have == hi - lo else 2 if 2 * have >= hi - lo else 1
        out.append(PIECE_GLYPHS[level])
    return "".join(out)


def format_disconnects(counts: Any) -> str | None:
    """``closed_by_peer 3, timeout 1``: the non-zero reasons in the daemon's order ("none" if
    all are zero; None when the daemon sent no counts, i.e. one from before they existed)."""
    if not isinstance(counts, dict):
        return None
    shown = [f"{clean(k)} {n}" for k, n in counts.items() if isinstance(n, int) and n > 0]
    return ", ".join(shown) or "none"


def human_added(reply: dict[str, Any]) -> str:
    """``added HASH NAME``, or ``already present HASH NAME``."""
    verb = "added" if reply.get("added", True) else "already present"
    return f"{verb} {reply.get('info_hash')} {clean(reply.get('name'))}"


def dir_not_applied(reply: dict[str, Any], asked_dir: str | None) -> str | None:
    """What to tell the user when `add --dir DIR` met a torrent that was already there in
    another folder (the daemon does not move it); None when there is nothing to say."""
    stays = reply.get("save_path")
    if reply.get("added", True) or asked_dir is None or stays == asked_dir:
        return None
    where = f"in {clean(stays)}" if stays else "where it is"  # older daemons do not say
    return (
        f"{reply.get('info_hash')}: already added; it stays {where} "
        f"(--dir {clean(asked_dir)} was not applied)"
    )


MAX_INDICES = 1_000_000  # a range like 0-999999999 is a typo, not a request


def parse_indices(option: str, text: str) -> list[int]:
    """``"1,3,5-7"`` -> ``[1, 3, 5, 6, 7]`` (0-based file indices); ValueError if bad."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise ValueError(
                f"{option}: expected file indices like 1,3,5-7 (0-based), got {text!r}"
            ) from None
        if first < 0 or last < first:
            raise ValueError(f"{option}: bad range {part.strip()!r} in {text!r}")
        out.extend(range(first, last + 1))
        if len(out) > MAX_INDICES:
            raise ValueError(f"{option}: more than {MAX_INDICES} file indices")
    return sorted(set(out))


def parse_value(text: str) -> Any:
    """A setting typed as ``KEY=VALUE``, read as YAML reads a plain scalar: ``null`` (or
    nothing), booleans (true/false, yes/no, on/off), integers (decimal: ``0022`` is 22), floats,
    rates and sizes with a unit (``5M``: see :func:`parse_rate`), text in quotes as it is, and
    anything else as text."""
    stripped = text.strip()
    lower = stripped.lower()
    if lower in ("", "null", "~", "none"):
        return None
    if lower in ("true", "yes", "on"):
        return True
    if lower in ("false", "no", "off"):
        return False
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        return stripped[1:-1]
    for kind in (int, float):
        try:
            number = kind(stripped)
        except ValueError:
            continue
        if number == number and number not in (float("inf"), float("-inf")):  # no nan, inf
            return number
        return text
    try:
        return parse_rate(stripped)
    except ValueError:
        return text
