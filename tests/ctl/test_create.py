"""`btctl create`: the command line around btd.core.torrent_create (and --add)."""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from btdtest import write_files
from fake_daemon import FakeDaemon, Refused, run_btctl

from btd.core.metainfo import parse_metainfo
from btd.core.version import __version__
from btd.ctl import main as ctl
from btd.ctl.wait import ProgressBar

SIZES = {"photos/a.jpg": 100_000, "photos/raw/b.raw": 300_001, "photos/.meta": 10}


class AddDaemon(FakeDaemon):
    """Answers torrent.add (recording it); everything else is METHOD_NOT_FOUND."""

    def __init__(self, path: Path) -> None:
        self.added: list[dict[str, Any]] = []
        self.refuse = False
        super().__init__(path, {"torrent.add": self.add})

    def add(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.refuse:
            raise Refused(-32004, "disk full")
        self.added.append(params)
        meta = parse_metainfo(base64.b64decode(params["metainfo"]))
        return {"info_hash": meta.hex, "name": meta.name, "added": True}


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BTD_SOCKET", raising=False)
    monkeypatch.setattr(ProgressBar, "wanted", staticmethod(lambda stream: False))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_files(tmp_path / "share", SIZES)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[AddDaemon]:
    fake = AddDaemon(tmp_path / "btd.sock")
    yield fake
    fake.stop()


@pytest.fixture
def btctl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    return functools.partial(run_btctl, capsys, "--socket", str(tmp_path / "btd.sock"))


def test_create_folder_default_output(btctl, tmp_path: Path) -> None:
    before = int(time.time())
    code, out, err = btctl("create", str(tmp_path / "share" / "photos"))
    assert (code, err) == (0, "")
    written = tmp_path / "work" / "photos.torrent"
    meta = parse_metainfo(written.read_bytes())
    assert out.splitlines() == [
        f"created {written}",
        f"  photos: {400_011 / 1024:.1f} KiB in 3 files, {meta.num_pieces} pieces of 16.0 KiB",
        f"  info hash {meta.hex}",
    ]
    assert meta.created_by == f"btd {__version__}" and before <= (meta.creation_date or 0)
    assert [f.path[1:] for f in meta.files] == [(".meta",), ("a.jpg",), ("raw", "b.raw")]
    assert not meta.private and meta.announce_tiers == () and meta.piece_length == 16 * 1024


def test_create_options(btctl, tmp_path: Path) -> None:
    out_file = tmp_path / "x.torrent"
    code, _, _ = btctl(
        "create", str(tmp_path / "share" / "photos" / "a.jpg"), "-o", str(out_file),
        "-t", "http://a.example/announce", "--tracker", "udp://b.example:6969",
        "--private", "--comment", "holiday", "--piece-size", "32K",
    )  # fmt: skip
    meta = parse_metainfo(out_file.read_bytes())
    assert code == 0 and meta.name == "a.jpg" and not meta.multi_file
    assert meta.announce_tiers == (("http://a.example/announce",), ("udp://b.example:6969",))
    assert meta.private and meta.comment == "holiday" and meta.piece_length == 32 * 1024


def test_refuses_to_overwrite_unless_forced(btctl, tmp_path: Path) -> None:
    target = tmp_path / "work" / "photos.torrent"
    target.write_bytes(b"precious")
    code, out, err = btctl("create", str(tmp_path / "share" / "photos"))
    assert (code, out) == (ctl.EXIT_USAGE, "") and "exists; use --force" in err
    assert target.read_bytes() == b"precious"
    code, _, _ = btctl("create", str(tmp_path / "share" / "photos"), "--force")
    assert code == 0 and parse_metainfo(target.read_bytes()).name == "photos"
    assert sorted(p.name for p in target.parent.iterdir()) == ["photos.torrent"]  # no temp left


def test_output_inside_the_folder_is_not_hashed_into_itself(btctl, tmp_path: Path) -> None:
    folder = tmp_path / "share" / "photos"
    inside = folder / "photos.torrent"
    _, _, first_err = btctl("create", str(folder), "-o", str(inside))
    first = parse_metainfo(inside.read_bytes())
    code, _, err = btctl("create", str(folder), "-o", str(inside), "--force")
    assert code == 0 and parse_metainfo(inside.read_bytes()).hex == first.hex
    assert first_err == "" and "skipped (symlinks, special files): photos.torrent" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--piece-size", "48K"], "power of two"),
        (["--piece-size", "lots"], "bad size"),
        (["-t", "ftp://t.example/"], "bad tracker URL"),
    ],
)
def test_bad_options_are_usage_errors_before_hashing(btctl, tmp_path, argv, message) -> None:
    code, out, err = btctl("create", str(tmp_path / "share" / "photos"), *argv)
    assert (code, out) == (ctl.EXIT_USAGE, "") and message in err
    assert list((tmp_path / "work").iterdir()) == []


def test_unusable_path_exits_6(btctl, tmp_path: Path) -> None:
    code, out, err = btctl("create", str(tmp_path / "nothing"))
    assert (code, out) == (ctl.EXIT_BAD_INPUT, "") and "cannot read" in err
    (tmp_path / "empty").mkdir()
    assert btctl("create", str(tmp_path / "empty"))[0] == 6
    code, _, err = btctl("create", str(tmp_path / "share"), "-o", str(tmp_path / "no/dir/x"))
    assert code == 6 and "cannot write" in err


def test_json_output(btctl, tmp_path: Path) -> None:
    code, out, _ = btctl("--json", "create", str(tmp_path / "share" / "photos"), "-t",
                         "http://a.example/announce", "--piece-size", "64K")  # fmt: skip
    result = json.loads(out)
    meta = parse_metainfo((tmp_path / "work" / "photos.torrent").read_bytes())
    assert code == 0 and result == {
        "file": str(tmp_path / "work" / "photos.torrent"), "info_hash": meta.hex,
        "name": "photos", "size": 400_011, "files": 3, "piece_length": 65536,
        "pieces": meta.num_pieces, "private": False, "version": "v1", "info_hash_v2": None,
        "trackers": ["http://a.example/announce"], "skipped": [], "added": None,
    }  # fmt: skip


def test_v2_and_hybrid(btctl, daemon, tmp_path: Path) -> None:
    """--v2 / --hybrid (BEP 52): both info hashes reported, and either goes to the daemon
    with --add."""
    folder = str(tmp_path / "share" / "photos")
    code, out, _ = btctl("--json", "create", folder, "--hybrid", "--add")
    result = json.loads(out)
    meta = parse_metainfo((tmp_path / "work" / "photos.torrent").read_bytes())
    assert code == 0 and result["version"] == "hybrid"
    assert result["info_hash"] == meta.hex and len(result["info_hash_v2"]) == 64
    assert result["added"]["info_hash"] == meta.hex and len(daemon.added) == 1
    code, out, _ = btctl("--json", "create", folder, "--v2", "-o", "v2.torrent")
    result = json.loads(out)
    assert code == 0 and result["version"] == "v2"
    assert result["info_hash"] == result["info_hash_v2"][:40]
    code, out, _ = btctl("--json", "create", folder, "--v2", "--add", "-o", "again.torrent")
    assert code == 0 and json.loads(out)["added"]["info_hash"] == result["info_hash"]
    code, _, err = btctl("create", folder, "--v2", "--hybrid")
    assert code == ctl.EXIT_USAGE and "not allowed with" in err


def test_add_hands_it_to_the_daemon_to_seed(btctl, daemon, tmp_path: Path) -> None:
    folder = tmp_path / "share" / "photos"
    code, out, err = btctl("create", str(folder), "--add")
    data = (tmp_path / "work" / "photos.torrent").read_bytes()
    meta = parse_metainfo(data)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == f"added {meta.hex} to btd, seeding from {tmp_path / 'share'}"
    assert daemon.added == [
        {"metainfo": base64.b64encode(data).decode(), "save_path": str(tmp_path / "share")}
    ]
    code, out, _ = btctl("--json", "create", str(folder), "--add", "--force")
    assert code == 0 and json.loads(out)["added"] == {
        "info_hash": meta.hex, "name": "photos", "added": True,
    }  # fmt: skip


def test_add_refused_or_no_daemon(btctl, daemon, tmp_path: Path) -> None:
    daemon.refuse = True
    code, out, err = btctl("--json", "create", str(tmp_path / "share" / "photos"), "--add")
    assert code == ctl.EXIT_REMOTE_ERROR and "create --add: disk full" in err
    assert json.loads(out)["added"]["error"]["message"] == "disk full"
    daemon.stop()
    (tmp_path / "btd.sock").unlink()
    code, _, err = btctl("create", str(tmp_path / "share" / "photos"), "--add", "--force")
    assert code == ctl.EXIT_UNREACHABLE and "cannot reach btd" in err
    assert (tmp_path / "work" / "photos.torrent").exists()  # written before --add


def test_no_daemon_needed_without_add(btctl, tmp_path: Path) -> None:
    assert not (tmp_path / "btd.sock").exists()
    assert btctl("create", str(tmp_path / "share" / "photos"))[0] == 0


def test_progress_bar_on_a_terminal(btctl, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ProgressBar, "wanted", staticmethod(lambda stream: True))
    code, _, err = btctl("create", str(tmp_path / "share" / "photos"))
    assert code == 0
    drawn = [part for part in err.split("\r") if part.strip()]
    assert drawn and drawn[-1].startswith("photos [") and "100.0%" in drawn[-1]
    assert err.endswith("\r")  # blanked before the result is printed


def test_create_imports_nothing_heavy(tmp_path: Path) -> None:
    import subprocess
    import sys

    heavy = ("twisted", "yaml", "jsonrpcserver", "pluggy", "rich")
    program = (
        "import sys\n"
        "from btd.ctl.main import main\n"
        f"code = main(['create', {str(tmp_path / 'share' / 'photos')!r}, '-o', "
        f"{str(tmp_path / 'p.torrent')!r}])\n"
        f"print(code, sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, check=False, text=True, timeout=60
    )
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr
