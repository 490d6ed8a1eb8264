from __future__ import annotations

import io

from twisted.logger import Logger, LogLevel, LogPublisher

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
    control = LogControl("warning", stream)
    control.observer._observer.journald = True  # type: ignore[attr-defined]
    publisher = LogPublisher(control.observer)
    log = Logger(namespace="t", observer=publisher)
    log.info("hidden")
    log.warn("shown")
    control.set_level("debug")
    log.debug("now shown")
    assert stream.getvalue() == "<4>t: shown\n<7>t: now shown\n"


def test_twisted_legacy_chatter_is_debug() -> None:
    stream = io.StringIO()
    control = LogControl("info", stream)
    control.observer._observer.journald = True  # type: ignore[attr-defined]
    publisher = LogPublisher(control.observer)
    legacy = Logger(namespace="log_legacy", observer=publisher)
    legacy.info("Factory starting on 6881")
    Logger(namespace="btd", observer=publisher).info("ours")
    control.set_level("debug")
    legacy.info("Factory starting on 6882")
    assert stream.getvalue() == "<6>btd: ours\n<6>log_legacy: Factory starting on 6882\n"
