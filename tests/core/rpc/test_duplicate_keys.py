"""Duplicate keys in a JSON-RPC request are refused, never "last key wins" (issue 13 class 6)."""

from __future__ import annotations

from typing import Any

from btd.core.rpc import errors as codes
from btd.core.rpc.dispatch import Dispatcher, Message


def dispatcher(calls: list[str]) -> Dispatcher:
    return Dispatcher(
        {
            "session.info": lambda: calls.append("info") or {"ok": True},
            "session.shutdown": lambda: calls.append("shutdown") or None,
        }
    )


def answer(d: Dispatcher, line: bytes) -> list[Message]:
    reply = d.dispatch(line, None)
    assert reply is not None
    return [item for item in reply.items if isinstance(item, dict)]


def test_a_repeated_method_key_is_an_invalid_request_and_runs_nothing() -> None:
    calls: list[str] = []
    d = dispatcher(calls)
    line = b'{"jsonrpc": "2.0", "method": "session.info", "method": "session.shutdown", "id": 1}'
    (err,) = answer(d, line)
    assert err["error"]["code"] == codes.INVALID_REQUEST
    assert "duplicate key 'method'" in err["error"]["data"]
    assert calls == []


def test_repeated_keys_anywhere_in_the_line_are_refused() -> None:
    calls: list[str] = []
    d = dispatcher(calls)
    lines: list[Any] = [
        b'{"jsonrpc": "2.0", "method": "session.info", "id": 1, "id": 2}',
        b'{"jsonrpc": "2.0", "method": "session.info", "params": {"a": 1, "a": 2}, "id": 1}',
        b'[{"jsonrpc": "2.0", "method": "session.info", "id": 1},'
        b' {"jsonrpc": "2.0", "method": "session.info", "method": "session.shutdown", "id": 2}]',
    ]
    for line in lines:
        (err,) = answer(d, line)
        assert err["error"]["code"] == codes.INVALID_REQUEST, line
    assert calls == []
    (ok,) = answer(d, b'{"jsonrpc": "2.0", "method": "session.info", "id": 3}')
    assert ok["result"] == {"ok": True} and calls == ["info"]
