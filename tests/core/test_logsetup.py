from __future__ import annotations

import io

from twisted.internet.protocol import Factory
from twisted.logger import Logger, LogLevel, LogPublisher, globalLogPublisher

from btd.core.logsetup import LogControl, format_line


def test_journald_prefix() -> None:
    event = {"log_level": LogLevel.warn, "log_namespace": "btd.x", "log_format": "hi {n}", "n": 3}
    assert format_line(event, journald=True) == "<4>btd.x: hi 3\n"
    assert format_line(event, journald=False).endswith(" warning btd.x: hi 3\n")


def test_multiline_is_indented() -> None:
    event = {"log_level": LogLevel.error, "log_namespace": "n", "log_format": "a\nb"}
    assert format_line(event, journald=True) == "<3>n: a\n    b\n"


def test_level_filter_changes_live() -> None:
    stream = io.StringIO()
    control = LogControl("warning", stream, journald=True)
    publisher = LogPublisher(control.observer)
    log = Logger(namespace="t", observer=publisher)
    log.info("hidden")
    log.warn("shown")
    control.set_level("debug")
    log.debug("now shown")
    assert stream.getvalue() == "<4>t: shown\n<7>t: now shown\n"


def test_twisted_legacy_chatter_is_debug() -> None:
    stream = io.StringIO()
    control = LogControl("info", stream, journald=True)
    publisher = LogPublisher(control.observer)
    legacy = Logger(namespace="log_legacy", observer=publisher)
    legacy.info("Factory starting on 6881")
    Logger(namespace="btd", observer=publisher).info("ours")
    control.set_level("debug")
    legacy.info("Factory starting on 6882")
    assert stream.getvalue() == "<6>btd: ours\n<7>log_legacy: Factory starting on 6882\n"


class Announce(Factory):
    """Like treq's HTTP client factory: noisy, started and stopped once per request."""


def test_factory_start_and_stop_are_debug() -> None:
    stream = io.StringIO()
    control = LogControl("info", stream, journald=True)
    globalLogPublisher.addObserver(control.observer)
    try:
        factory = Announce()
        assert factory.noisy
        factory.doStart()
        factory.doStop()
        Logger(namespace="btd").info("ours")
        assert stream.getvalue() == "<6>btd: ours\n"
        control.set_level("debug")
        factory.doStart()
        factory.doStop()
    finally:
        globalLogPublisher.removeObserver(control.observer)
    lines = stream.getvalue().splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == [f"<7>{__name__}.Announce"] * 2
    assert "Starting factory" in lines[0] and "Stopping factory" in lines[1]


def test_other_levels_and_our_own_info_are_untouched() -> None:
    stream = io.StringIO()
    control = LogControl("info", stream, journald=True)
    publisher = LogPublisher(control.observer)
    Logger(namespace="log_legacy", observer=publisher).error("legacy error")
    Logger(namespace="btd.core.session", observer=publisher).info("Starting factory of ours")
    assert (
        stream.getvalue()
        == "<3>log_legacy: legacy error\n<6>btd.core.session: Starting factory of ours\n"
    )
