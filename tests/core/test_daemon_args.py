"""``btd``'s command line, in process: flags, --check-config output, configuration exit codes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from btd.core import daemon
from btd.core.config import load_config
from btd.core.version import __version__


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user configuration or directories leak in."""
    monkeypatch.delenv("BTD_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var, sub in (
        ("XDG_CONFIG_HOME", "cfg"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))


def test_flags_override_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "btd.yaml"
    conf.write_text("daemon:\n  log_level: warning\nsession:\n  listen_port: 7000\n")
    args = daemon.parse_args(
        [
            "--config",
            str(conf),
            "--state-dir",
            str(tmp_path / "s"),
            "--socket",
            str(tmp_path / "r" / "btd.sock"),
            "--download-dir",
            str(tmp_path / "d"),
            "--listen-port",
            "0",
            "--log-level",
            "debug",
        ]
    )
    config = daemon.effective_config(args)
    assert config.source == conf
    assert config.daemon.state_dir == tmp_path / "s"
    assert config.daemon.log_level == "debug"
    assert config.control.socket == tmp_path / "r" / "btd.sock"
    assert config.session.download_dir == tmp_path / "d"
    assert config.session.listen_port == 0


def test_check_config_file_argument_wins_over_config(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("session:\n  upload_slots: 2\n")
    b.write_text("session:\n  upload_slots: 3\n")
    args = daemon.parse_args(["--config", str(a), "--check-config", str(b)])
    assert daemon.effective_config(args).session.upload_slots == 3
    bare = daemon.parse_args(["--config", str(a), "--check-config"])
    assert bare.check_config is True
    assert daemon.effective_config(bare).session.upload_slots == 2


def test_check_config_prints_one_header_and_the_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("session:\n  upload_slots: 7\n")
    assert daemon.main(["--check-config", str(good), "--listen-port", "0"]) == daemon.EX_OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("# ") and str(good) in lines[0]
    assert [line for line in lines if line.lstrip().startswith("#")] == [lines[0]]
    data = yaml.safe_load(out)
    assert data["session"]["upload_slots"] == 7
    assert data["session"]["listen_port"] == 0  # flags are part of the effective config
    reread = tmp_path / "reread.yaml"
    reread.write_text(out)
    expected = dataclasses.replace(load_config(good).session, listen_port=0)
    assert load_config(reread).session == expected


def test_check_config_without_a_file_prints_the_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert daemon.main(["--check-config"]) == daemon.EX_OK
    out = capsys.readouterr().out
    assert out.startswith("# effective btd configuration (from built-in defaults)")
    assert out.count("#") == 1


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("session:\n  upload_slots: 0\n", "bad.yaml:2: session.upload_slots: "),
        ("daemon:\n  log_levle: debug\n", "bad.yaml:2: daemon.log_levle: "),
        ("session: [\n", "bad.yaml:"),
        ("plugins:\n  nope: {}\n", "plugins.nope: unknown plugin"),
    ],
    ids=["bad-value", "unknown-key", "syntax", "unknown-plugin"],
)
@pytest.mark.parametrize("mode", ["--config", "--check-config"])
def test_bad_configuration_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, mode: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    before = bad.read_bytes()
    assert daemon.main([mode, str(bad)]) == daemon.EX_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("btd: configuration error: ")
    assert where in captured.err
    assert bad.read_bytes() == before


def test_bad_flag_exits_78(capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon.main(["--check-config", "--listen-port", "70000"]) == daemon.EX_CONFIG
    assert "--listen-port" in capsys.readouterr().err


def test_missing_config_file_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon.main(["--config", str(tmp_path / "absent.yaml")]) == daemon.EX_CONFIG
    assert "absent.yaml" in capsys.readouterr().err


def test_version_and_unknown_level(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        daemon.parse_args(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"btd {__version__}"
    with pytest.raises(SystemExit) as info:
        daemon.parse_args(["--log-level", "loud"])
    assert info.value.code == 2


# -- the default download folder (issue 13, class 8) ----------------------------------------------
@pytest.mark.parametrize("below", [False, True], ids=["a-file", "below-a-file"])
def test_check_config_refuses_a_download_dir_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], below: bool
) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a folder")
    target = plain / "dl" if below else plain
    assert daemon.main(["--check-config", "--download-dir", str(target)]) == daemon.EX_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("btd: configuration error: session.download_dir: ")
    assert str(plain) in captured.err
    assert plain.read_text() == "not a folder"


def test_check_config_accepts_a_missing_download_dir_it_will_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dl"
    assert daemon.main(["--check-config", "--download-dir", str(target)]) == daemon.EX_OK
    assert not target.exists()  # a check creates nothing


def test_start_creates_a_missing_download_dir_only_in_a_parent_that_exists(
    tmp_path: Path,
) -> None:
    from btd.core.errors import ConfigError
    from btd.core.torrent_data import make_download_dir

    make_download_dir(tmp_path / "dl")
    assert (tmp_path / "dl").is_dir()
    make_download_dir(tmp_path / "dl")  # there already: fine
    with pytest.raises(ConfigError, match=r"session.download_dir: .* nor does its parent"):
        make_download_dir(tmp_path / "unmounted" / "dl")
    assert not (tmp_path / "unmounted").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        make_download_dir(tmp_path / "file")
