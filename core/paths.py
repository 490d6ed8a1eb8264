"""Where btd keeps things by default, shared by the daemon and btctl.

Kept free of heavy imports: btctl calls it on every start.
Under systemd the unit's ``RuntimeDirectory=``/``StateDirectory=`` win; otherwise the
XDG base directories; otherwise the classic home-relative fallbacks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SOCKET_NAME = "btd.sock"


def _first_dir(value: str | None) -> str | None:
    # systemd joins several directories with ':'; ours is the first.
    return value.split(":")[0] if value else None


def runtime_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The directory that holds the control socket."""
    systemd = _first_dir(env.get("RUNTIME_DIRECTORY"))
    if systemd:
        return Path(systemd)
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "btd"
    return Path(f"/tmp/btd-{os.getuid()}")


def default_socket(env: Mapping[str, str] = os.environ) -> Path:
    """The control socket a daemon with no explicit ``control.socket`` listens on."""
    return runtime_dir(env) / SOCKET_NAME


def default_state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Resume data, the lock and copies of added .torrent files live here."""
    systemd = _first_dir(env.get("STATE_DIRECTORY"))
    if systemd:
        return Path(systemd)
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME", "~")).expanduser() / ".local" / "share"
    return base / "btd"


def default_download_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Downloads land here unless a torrent or the config names another folder."""
    xdg = env.get("XDG_DOWNLOAD_DIR")
    if xdg:
        return Path(xdg)
    return Path(env.get("HOME", "~")).expanduser() / "Downloads"


def default_config_candidates(env: Mapping[str, str] = os.environ) -> list[Path]:
    """Config files tried in order when neither --config nor $BTD_CONFIG is given."""
    candidates = []
    if env.get("BTD_SYSTEM_SERVICE"):  # set by systemd/btd.service
        candidates.append(Path("/etc/btd/btd.yaml"))
    xdg = env.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME", "~")).expanduser() / ".config"
    candidates.append(base / "btd" / "btd.yaml")
    return candidates
