"""notify_command: settings validation, scheduling on a fake reactor, and real children.

The real-process tests use the global reactor without running it: ``spin`` iterates it
(bounded by a deadline) and reaps children itself, since SIGCHLD handling is only
installed by ``reactor.run()``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet import process, reactor
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure

from btd.core.errors import ConfigError
from btd.core.events import EVENT_KINDS, TorrentEvent
from btd.core.plugin import make_plugin_manager
from btd.plugins.notify_command import (
    KILL_GRACE,
    OUTPUT_LIMIT,
    QUEUE_LIMIT,
    CommandRunner,
    CommandSpec,
    Settings,
    child_env,
    parse_settings,
)

HOSTILE = "it's \"quoted\"; $(touch pwned) `touch pwned2` & | > x\nsecond line \\ $HOME 'é'"
IH = "ab" * 20


def event(kind: str = "completed", name: str = "debian.iso", **data: Any) -> TorrentEvent:
    return TorrentEvent(kind, IH, name, "/srv/dl", dict(data))


class Logs:
    """A Logger whose events we keep, formatted."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.logger = Logger(namespace="test", observer=self.events.append)

    def text(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)

    def levels(self, name: str) -> list[str]:
        return [formatEvent(e) for e in self.events if e["log_level"].name == name]


# -- settings --------------------------------------------------------------------------


def test_settings_defaults_and_full() -> None:
    assert parse_settings(None) == Settings()
    settings = parse_settings(
        {
            "max_concurrent": 2,
            "commands": [
                {"argv": ["notify-send", "done"]},
                {"events": ["added", "error"], "argv": ["/bin/x"], "timeout": 1.5,
                 "env": {"A": "1", "B": 2}},
            ],
        }
    )  # fmt: skip
    assert settings.max_concurrent == 2
    first, second = settings.commands
    assert first == CommandSpec(("notify-send", "done"), frozenset(EVENT_KINDS), 60.0, ())
    assert second == CommandSpec(("/bin/x",), frozenset({"added", "error"}), 1.5,
                                 (("A", "1"), ("B", "2")))  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"commands": [{"argv": "notify-send done"}]}, "commands[0].argv", "not a string"),
        ({"commands": [{"argv": []}]}, "commands[0].argv", "must name a program"),
        ({"commands": [{"argv": ["x", "-n", 5]}]}, "commands[0].argv[2]", "must be a string"),
        ({"commands": [{"argv": ["x", None]}]}, "commands[0].argv[1]", "must be a string"),
        ({"commands": [{"argv": [""]}]}, "commands[0].argv[0]", "non-empty"),
        ({"commands": [{"argv": ["x", "a\0b"]}]}, "commands[0].argv[1]", "NUL"),
        ({"commands": [{}]}, "commands[0].argv", "required"),
        ({"commands": [{"argv": ["x"], "shell": True}]}, "commands[0].shell", "unknown key"),
        ({"commands": [{"argv": ["x"], "events": ["added", "done"]}]}, "commands[0].events[1]",
         "unknown event kind 'done'"),
        ({"commands": [{"argv": ["x"], "events": "added"}]}, "commands[0].events", "a list"),
        ({"commands": [{"argv": ["x"], "events": []}]}, "commands[0].events", "at least one"),
        ({"commands": [{"argv": ["x"], "timeout": 0}]}, "commands[0].timeout", "> 0"),
        ({"commands": [{"argv": ["x"], "timeout": "5"}]}, "commands[0].timeout", "> 0"),
        ({"commands": [{"argv": ["x"], "env": ["A=1"]}]}, "commands[0].env", "mapping"),
        ({"commands": [{"argv": ["x"], "env": {"A=B": "1"}}]}, "commands[0].env.A=B", "'='"),
        ({"commands": [{"argv": ["x"], "env": {"A": [1]}}]}, "commands[0].env.A", "string"),
        ({"commands": ["x"]}, "commands[0]", "mapping"),
        ({"commands": {"argv": ["x"]}}, "commands", "a list"),
        ({"max_concurrent": 0}, "max_concurrent", ">= 1"),
        ({"max_concurrent": True}, "max_concurrent", ">= 1"),
        ({"command": []}, "command", "unknown key"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_key(raw: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw)
    assert info.value.key == f"plugins.notify_command.{key}"
    assert words in info.value.reason


def test_configure_through_the_plugin_manager_is_fatal_on_bad_settings() -> None:
    host = make_plugin_manager({"notify_command": {"commands": [{"argv": "rm -rf /"}]}})
    config = SimpleNamespace(plugins={"notify_command": {"commands": [{"argv": "rm -rf /"}]}})
    with pytest.raises(ConfigError) as info:
        host.configure(config)
    assert info.value.key == "plugins.notify_command.commands[0].argv"
    good = SimpleNamespace(plugins={"notify_command": {"commands": [{"argv": ["true"]}]}})
    host.configure(good)
    runner = host.pm.get_plugin("notify_command").runner
    assert runner is not None
    assert runner.settings.commands[0].argv == ("true",)


def test_child_env() -> None:
    ev = event("error", name=HOSTILE, message="disk full", n=3)
    env = child_env(ev, [("EXTRA", "1"), ("BTD_NAME", "over")], {"PATH": "/bin", "HOME": "/h"})
    assert env["PATH"] == "/bin" and env["HOME"] == "/h" and env["EXTRA"] == "1"
    assert env["BTD_EVENT"] == "error" and env["BTD_INFO_HASH"] == IH
    assert env["BTD_SAVE_PATH"] == "/srv/dl"
    assert json.loads(env["BTD_DATA"]) == {"message": "disk full", "n": 3}
    assert env["BTD_NAME"] == "over"  # the configured env comes last
    assert child_env(ev, [], {})["BTD_NAME"] == HOSTILE


# -- scheduling on a fake reactor ---------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.signals: list[str] = []
        self.stdin_closed = False

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[SimpleNamespace] = []

    def spawnProcess(self, proto: Any, exe: str, args: list[str], env: Any = None) -> Any:
        if exe == "missing":
            raise OSError("No such file or directory")
        transport = FakeTransport()
        proto.makeConnection(transport)
        self.spawned.append(SimpleNamespace(proto=proto, exe=exe, args=args, env=env,
                                            transport=transport))  # fmt: skip
        return transport


def ended(child: SimpleNamespace, code: int = 0, signal: int | None = None) -> None:
    reason = ProcessDone(0) if code == 0 and signal is None else ProcessTerminated(code, signal)
    child.proto.processEnded(Failure(reason))


def runner(*specs: CommandSpec, max_concurrent: int = 4) -> tuple[CommandRunner, FakeReactor, Logs]:
    logs = Logs()
    clock = FakeReactor()
    r = CommandRunner(Settings(specs, max_concurrent), clock, environ={"PATH": "/p"},
                      log=logs.logger)  # fmt: skip
    return r, clock, logs


def test_spawns_argv_as_given_for_matching_events_only() -> None:
    r, clock, _ = runner(
        CommandSpec(("prog", "--flag", "$BTD_NAME"), frozenset({"completed"})),
        CommandSpec(("other",), frozenset({"added"})),
    )
    r.notify(event("completed", name=HOSTILE))
    r.notify(event("paused"))
    assert [(s.exe, s.args) for s in clock.spawned] == [("prog", ["prog", "--flag", "$BTD_NAME"])]
    spawned = clock.spawned[0]
    assert spawned.env["BTD_NAME"] == HOSTILE and spawned.env["PATH"] == "/p"
    assert spawned.transport.stdin_closed


def test_concurrency_limit_and_queue() -> None:
    r, clock, _ = runner(CommandSpec(("p",)), max_concurrent=2)
    for i in range(5):
        r.notify(event(name=f"t{i}"))
    assert [s.env["BTD_NAME"] for s in clock.spawned] == ["t0", "t1"]
    assert len(r.queue) == 3
    ended(clock.spawned[0])
    assert [s.env["BTD_NAME"] for s in clock.spawned] == ["t0", "t1", "t2"]
    ended(clock.spawned[1], code=3)
    ended(clock.spawned[2])
    assert [s.env["BTD_NAME"] for s in clock.spawned] == ["t0", "t1", "t2", "t3", "t4"]
    assert len(r.running) == 2 and not r.queue


def test_queue_is_bounded() -> None:
    r, clock, logs = runner(CommandSpec(("p",)), max_concurrent=1)
    for i in range(QUEUE_LIMIT + 3):
        r.notify(event(name=f"t{i}"))
    assert len(clock.spawned) == 1 and len(r.queue) == QUEUE_LIMIT and r.dropped == 2
    assert sum("dropped" in line for line in logs.levels("warn")) == 2


def test_events_before_start_wait_for_the_reactor() -> None:
    logs = Logs()
    r = CommandRunner(Settings((CommandSpec(("p",)),)), log=logs.logger, environ={})
    r.notify(event("added"))
    clock = FakeReactor()
    r.start(clock)
    assert [s.env["BTD_EVENT"] for s in clock.spawned] == ["added"]


def test_timeout_sends_term_then_kill() -> None:
    r, clock, logs = runner(CommandSpec(("p",), timeout=10))
    r.notify(event())
    child = clock.spawned[0]
    clock.advance(9.9)
    assert child.transport.signals == []
    clock.advance(0.1)
    assert child.transport.signals == ["TERM"]
    clock.advance(KILL_GRACE)
    assert child.transport.signals == ["TERM", "KILL"]
    ended(child, code=None, signal=9)  # type: ignore[arg-type]
    assert any("killed by signal 9 (timed out)" in line for line in logs.levels("warn"))
    assert not clock.getDelayedCalls() and not r.running


def test_exit_status_and_output_are_logged_and_capped() -> None:
    r, clock, logs = runner(CommandSpec(("p",)))
    r.notify(event())
    proto = clock.spawned[0].proto
    proto.outReceived(b"hello wor")
    proto.outReceived(b"ld\r\nsecond")
    proto.errReceived(b"oops \xff\n")
    proto.outReceived(b"x" * (OUTPUT_LIMIT + 100))
    ended(clock.spawned[0], code=2)
    text = logs.text()
    assert "stdout: hello world\n" in text + "\n"
    assert "stderr: oops \ufffd" in text
    assert "exited with status 2" in text
    logged = sum(len(formatEvent(e)) for e in logs.events if "stdout" in formatEvent(e))
    assert logged < OUTPUT_LIMIT + 1000
    not_logged = len("hello world\r\nsecond") + 100  # seen past the cap
    assert f"stdout: {not_logged} more bytes not logged" in text


def test_a_program_that_cannot_start_is_logged() -> None:
    r, clock, logs = runner(CommandSpec(("missing",)), CommandSpec(("p",)))
    r.notify(event())
    assert [s.exe for s in clock.spawned] == ["p"]
    assert any("could not be started" in line for line in logs.levels("error"))


def test_stop_waits_for_running_commands_then_kills_them() -> None:
    r, clock, _ = runner(CommandSpec(("p",)), max_concurrent=1)
    r.notify(event(name="a"))
    r.notify(event(name="b"))
    done: list[Any] = []
    r.stop(5).addBoth(done.append)
    assert not done and not r.queue  # the queued one will not run
    r.notify(event(name="c"))
    assert len(clock.spawned) == 1
    clock.advance(5)
    assert clock.spawned[0].transport.signals == ["TERM"]
    ended(clock.spawned[0], signal=15)
    assert done == [None]
    assert len(clock.spawned) == 1


def test_stop_fires_when_commands_end() -> None:
    r, clock, _ = runner(CommandSpec(("p",)))
    r.notify(event())
    done: list[Any] = []
    r.stop(5).addBoth(done.append)
    ended(clock.spawned[0])
    assert done == [None] and not clock.getDelayedCalls()
    assert r.stop(5).result is None  # nothing running: at once


# -- real children on the real reactor ----------------------------------------------------


def spin(until: Any, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while not until() and time.monotonic() < end:
        reactor.iterate(0.01)  # type: ignore[attr-defined]
        process.reapAllProcesses()
    assert until(), f"condition not reached within {deadline} s"


def real_runner(*specs: CommandSpec) -> tuple[CommandRunner, Logs]:
    logs = Logs()
    return CommandRunner(Settings(specs), reactor, log=logs.logger), logs


def test_hostile_name_reaches_a_real_child_byte_exact(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # where `touch pwned` would land if anything ran a shell
    out = tmp_path / "out.txt"
    code = (
        "import os, sys\n"
        "open(sys.argv[1], 'wb').write(os.environb[b'BTD_NAME'])\n"
        "print('argv', sys.argv[2:])\n"
    )
    argv = (sys.executable, "-c", code, str(out), "$BTD_NAME", "`id`", "a b")
    r, logs = real_runner(CommandSpec(argv, timeout=30, env=(("EXTRA", "1"),)))
    r.notify(event("completed", name=HOSTILE))
    spin(lambda: not r.running)
    assert out.read_bytes() == HOSTILE.encode()
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    text = logs.text()
    assert "exited with status 0" in text
    assert "argv ['$BTD_NAME', '`id`', 'a b']" in text


def test_real_child_gets_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BTD_TEST_INHERITED", "yes")
    out = tmp_path / "env.json"
    code = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    r, _ = real_runner(CommandSpec((sys.executable, "-c", code, str(out)), env=(("X", "y"),)))
    r.notify(event("error", message="boom"))
    spin(lambda: not r.running)
    env = json.loads(out.read_text())
    assert env["BTD_TEST_INHERITED"] == "yes" and env["X"] == "y"
    assert env["BTD_EVENT"] == "error" and env["BTD_INFO_HASH"] == IH
    assert env["BTD_SAVE_PATH"] == "/srv/dl"
    assert json.loads(env["BTD_DATA"]) == {"message": "boom"}


def test_real_child_is_killed_after_its_timeout() -> None:
    code = "import time\ntime.sleep(60)"
    r, logs = real_runner(CommandSpec((sys.executable, "-c", code), timeout=0.5))
    start = time.monotonic()
    r.notify(event())
    spin(lambda: not r.running)
    assert time.monotonic() - start < 20
    assert "killed by signal 15 (timed out)" in logs.text()


def test_missing_real_program_does_not_raise(tmp_path: Path) -> None:
    r, logs = real_runner(CommandSpec((str(tmp_path / "no-such-program"),)))
    r.notify(event())
    spin(lambda: not r.running)
    text = logs.text()
    assert "could not be started" in text or "exited with status" in text
