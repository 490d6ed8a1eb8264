"""btctl's help examples, bash/zsh completion and man page, generated from the parser."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from btd.ctl import main as ctl
from btd.ctl.base import EXIT_CODES
from btd.ctl.completion import bash_script, zsh_script
from btd.ctl.help import manpage
from btd.ctl.parser import COMMANDS, HelpFormatter, subparsers

HEAVY = ("twisted", "yaml", "jsonrpcserver", "pluggy", "rich")
BASH = shutil.which("bash") or "bash"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = ctl.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_command_has_help_with_examples() -> None:
    parser = ctl.build_parser()
    helps = {name: sub.format_help() for name, sub in subparsers(parser).items()}
    assert set(helps) == set(COMMANDS)
    missing = [name for name, text in helps.items() if "Example" not in text]
    assert missing == [], f"commands without examples in --help: {missing}"
    for name, text in helps.items():
        examples = text.split("Examples:\n", 1)[1]
        assert f"btctl {name}" in examples or f"btctl --json {name}" in examples, name


def test_top_level_help_lists_exit_code_7(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "  7    torrent failed" in out
    assert dict(EXIT_CODES)[7].startswith("torrent failed")


def test_help_formatter_wraps_prose_and_keeps_examples() -> None:
    parser = argparse.ArgumentParser(
        prog="x", formatter_class=HelpFormatter, description="word " * 40,
        epilog="Examples:\n  x --a    # one\n  x --b    # two",
    )  # fmt: skip
    text = parser.format_help()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Examples:\n  x --a    # one\n  x --b    # two" in text


# -- bash -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bash_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "btctl.bash"
    path.write_text(bash_script(ctl.build_parser(), "btd test"))
    return path


def complete(bash_file: Path, line: str) -> list[str]:
    """Run the completion function as bash would for ``line`` (cursor at its end)."""
    program = (
        f"source {bash_file}\n"
        'read -ra COMP_WORDS <<< "$LINE"\n'
        '[[ "$LINE" == *" " ]] && COMP_WORDS+=("")\n'
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        "_btctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", program], capture_output=True, check=False, text=True,
        timeout=30, env={"LINE": line, "PATH": "/nonexistent"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


def test_bash_script_is_valid_and_names_every_command(bash_file: Path, capsys) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    done = subprocess.run([BASH, "-n", str(bash_file)], capture_output=True, check=False, text=True)
    assert done.returncode == 0, done.stderr
    code, out, _ = run(capsys, "completion", "bash")
    assert code == 0 and out.startswith("# bash completion for btctl")
    assert "complete -F _btctl btctl" in out
    assert sorted(complete(bash_file, "btctl ")) == sorted(COMMANDS)


def test_bash_completes_options_and_values(bash_file: Path, tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    assert complete(bash_file, "btctl ad") == ["add", "add-peer"]
    assert complete(bash_file, "btctl --ti") == ["--timeout"]
    assert "--wait" in complete(bash_file, "btctl add --")
    assert complete(bash_file, "btctl --socket /x --json list --state s") == ["seeding", "stopped"]
    assert complete(bash_file, "btctl completion ") == ["bash", "zsh"]
    assert complete(bash_file, "btctl create --piece-size 1") == ["16K", "128K", "1M", "16M"]
    assert complete(bash_file, "btctl set 3f9a st") == ["strategy="]
    assert complete(bash_file, "btctl wait --timeout ") == []
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl.torrent").write_text("")
    assert complete(bash_file, f"btctl add --dir {tmp_path}/d") == [f"{tmp_path}/dl"]
    assert sorted(complete(bash_file, f"btctl add {tmp_path}/d")) == [
        f"{tmp_path}/dl", f"{tmp_path}/dl.torrent",
    ]  # fmt: skip


def test_bash_completes_hashes_from_the_daemon(bash_file: Path, tmp_path: Path) -> None:
    """HASH arguments ask `btctl --json list`; a stand-in btctl prints two torrents."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    fake = tmp_path / "bin" / "btctl"
    fake.parent.mkdir()
    listing = json.dumps([{"info_hash": "3f9a" + "1" * 36}, {"info_hash": "8c02" + "2" * 36}],
                         indent=2)  # fmt: skip
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/args\ncat <<'EOF'\n{listing}\nEOF\n")
    fake.chmod(0o755)
    program = (
        f"source {bash_file}; COMP_WORDS=(btctl --socket /s.sock pause 3f); COMP_CWORD=4; "
        '_btctl; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        [BASH, "--norc", "-c", program], capture_output=True, check=False, text=True, timeout=30,
        env={"PATH": f"{fake.parent}:/usr/bin:/bin"},
    )  # fmt: skip
    assert done.stdout.split() == ["3f9a" + "1" * 36]
    assert (tmp_path / "args").read_text() == "--socket /s.sock --timeout 3 --json list\n"


# -- zsh ------------------------------------------------------------------------------------------


def test_zsh_script_names_every_command_and_parses(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "completion", "zsh")
    assert code == 0 and out.startswith("#compdef btctl\n")
    for name in COMMANDS:
        assert f"\n        '{name}:" in out, name
        assert f"\n        {name})\n" in out, name
    assert "'*:HASH:_btctl_hashes'" in out and "--piece-size=" in out
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed: syntax not checked")
    path = tmp_path / "_btctl"
    path.write_text(out)
    done = subprocess.run(
        ["zsh", "-n", str(path)], capture_output=True, check=False, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


def test_zsh_quoting_survives_odd_help_text() -> None:
    parser = argparse.ArgumentParser(prog="btctl")
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("odd")
    child.add_argument("--it", metavar="A:B", help="it's [odd]: really")
    script = zsh_script(parser)
    assert "'--it=[it'\\''s (odd): really]:A\\:B: '" in script


# -- the man page -----------------------------------------------------------------------------------


def test_manpage_sections_and_commands(capsys) -> None:
    code, out, _ = run(capsys, "manpage")
    assert code == 0 and out.startswith('.TH BTCTL 1 "')
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS",
                    "ENVIRONMENT", "FILES"):  # fmt: skip
        assert f"\n.SH {section}\n" in out, section
    for name in COMMANDS:
        assert f'\n.SS "btctl {name.replace("-", chr(92) + "-")}' in out, name
    for number, _ in EXIT_CODES:
        assert f".TP\n\\fB{number}\\fR\n" in out, number
    assert ".B BTD_SOCKET" in out and "btd.sock" in out


def test_manpage_renders(tmp_path: Path) -> None:
    page = manpage(ctl.build_parser(), "1.2.3", date="2024-01-02")
    assert '.TH BTCTL 1 "2024-01-02" "btd 1.2.3" "btd manual"' in page
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed: rendering not checked")
    done = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-P", "-c"], input=page, capture_output=True, check=False,
        text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    text = done.stdout.replace("\u2010", "-").replace("\u2212", "-")
    assert "btctl - control a running btd BitTorrent daemon" in text
    for name in COMMANDS:
        assert f"btctl {name}" in text, name
    assert "btctl wait 3f9a" in text and "torrent failed" in text


def test_roff_escapes_what_would_break_the_page() -> None:
    parser = argparse.ArgumentParser(prog="btctl", description=".starts with a dot\\ and -x")
    page = manpage(parser, "1", date="2024-01-01")
    assert "\\&.starts with a dot\\e and \\-x" in page


def test_generators_import_nothing_heavy() -> None:
    program = (
        "import sys, io, contextlib\n"
        "from btd.ctl.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [main(['completion', 'bash']), main(['completion', 'zsh']), main(['manpage'])]\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(codes, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, check=False, text=True,
                          timeout=60)  # fmt: skip
    assert done.stdout.strip() == "[0, 0, 0] []", done.stderr
