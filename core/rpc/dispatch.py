"""From one received line to the JSON-RPC reply it needs, through jsonrpcserver.

jsonrpcserver is used with an explicit ``methods`` dict only (never its global
``@method`` registry). Our methods are plain callables; ``wrap_method`` adapts
them: a return value becomes ``Success``, ``RpcError`` becomes ``Error``, a
Deferred (or coroutine) becomes a pending reply the server settles later, and
the wrapper keeps the method's signature so jsonrpcserver's own parameter check
(wrong arity or names -> -32602) still applies. A method may carry a ``wire_form``: the
same method, whose result has parts already encoded (``json_text.Encoded``, e.g. the kept
rows of ``torrent.list``); replies use it, callers in the daemon (plugins) get plain values.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jsonrpcserver import Error, Success, dispatch_to_response
from jsonrpcserver.exceptions import JsonRpcError
from jsonrpcserver.main import default_validator
from jsonrpcserver.response import to_serializable_one
from jsonrpcserver.sentinels import NODATA
from oslash.either import Left, Right
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.limits import RPC_MAX_BATCH_CALLS, RPC_MAX_JSON_CONTAINERS
from btd.core.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    RpcError,
    invalid_params,
)
from btd.core.rpc.json_text import dumps

_log = Logger()

MAX_DEPTH = 64
_CONNECTION_FLAG = "_btd_with_connection"
Message = dict[str, Any]


def with_connection(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a method that needs the calling ControlConnection as its first argument."""
    setattr(fn, _CONNECTION_FLAG, True)
    return fn


def needs_connection(fn: Callable[..., Any]) -> bool:
    return bool(getattr(fn, _CONNECTION_FLAG, False))


_JSON_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _json_name(value: Any) -> str:
    for kind in (bool, int, float, str, list, dict, type(None)):
        if isinstance(value, kind):
            return _JSON_NAMES[kind]
    return type(value).__name__


def require(name: str, value: Any, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """Check one JSON parameter's type; raise -32602 naming it if wrong; return it.

    JSON has no separate bool/int/float: ``True`` is not an integer here, and an
    integer is accepted where a number (``float``) is asked for.
    """
    if value is None and optional:
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is bool and isinstance(value, bool):
            return value
        if k is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if k is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if k not in (bool, int, float) and isinstance(value, k):
            return value
    wanted = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
    if optional:
        wanted += " or null"
    raise invalid_params(name, f"expected {wanted}, got {_json_name(value)}")


def error_message(code: int, message: str, data: Any = NODATA, id: Any = None) -> Message:
    """A JSON-RPC error response object (``data`` omitted when NODATA)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not NODATA:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": id}


def _rpc_error_data(data: Any) -> Any:
    return NODATA if data is None else data


def internal_error(exc: BaseException) -> tuple[int, str, Any]:
    """-32603 for an exception nobody meant to raise; the message says what it was."""
    text = str(exc) or type(exc).__name__
    return INTERNAL_ERROR, f"Internal error: {text}", {"type": type(exc).__name__}


@dataclass(eq=False)
class _Pending:
    """Placeholder result: the value arrives later through ``deferred``."""

    deferred: Deferred[Any]


@dataclass(frozen=True)
class PendingReply:
    """One member of a reply whose result is a Deferred still to fire."""

    id: Any
    deferred: Deferred[Any]


@dataclass(frozen=True)
class Reply:
    """What one line needs as an answer: a single response or a batch."""

    batch: bool
    items: tuple[Message | PendingReply, ...]


@dataclass(frozen=True)
class Batch:
    """A checked batch (at most RPC_MAX_BATCH_CALLS requests): the server runs its members
    one per reactor turn (``Dispatcher.dispatch_member``) and answers them in one line."""

    members: tuple[Any, ...]


@dataclass
class CallContext:
    """jsonrpcserver's ``context``: the connection, and Deferreds started by this line."""

    connection: Any
    pending: list[_Pending] = field(default_factory=list)


def wrap_method(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adapt one of our methods to jsonrpcserver's calling convention (see module doc)."""
    fn = getattr(fn, "wire_form", fn)
    conn = needs_connection(fn)
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no introspectable signature: accept anything
        params = [
            inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
        ]
    if conn:
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if params and params[0].kind in positional:
            params = params[1:]
        elif not params or params[0].kind != inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(f"{name}: a @with_connection method takes the connection first")

    def call(context: CallContext, /, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(context.connection, *args, **kwargs) if conn else fn(*args, **kwargs)
        except RpcError as exc:
            return Error(exc.code, exc.message, _rpc_error_data(exc.data))
        except JsonRpcError:
            raise  # jsonrpcserver's own way of failing; it knows what to do
        except Exception as exc:
            _log.failure("RPC method {name} failed", name=name)
            return Error(*internal_error(exc))
        if isinstance(result, (Left, Right)):
            return result  # already a jsonrpcserver Result
        if inspect.iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        if isinstance(result, Deferred):
            pending = _Pending(result)
            context.pending.append(pending)
            return Success(pending)
        return Success(result)

    ctx = inspect.Parameter("__btd_context", inspect.Parameter.POSITIONAL_ONLY)
    call.__signature__ = inspect.Signature([ctx, *params])  # type: ignore[attr-defined]
    call.__name__ = getattr(fn, "__name__", name)
    call.__doc__ = fn.__doc__
    return call


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class DuplicateKey(ValueError):
    """An object names the same key twice: which one was meant is not ours to guess."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: ``{"method": "a", "method": "b"}`` is refused, not "b"
    (core/limits.py RPC_DUPLICATE_KEYS)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise DuplicateKey(f"duplicate key {key!r} in an object")
            seen.add(key)
    return obj


def _too_deep(obj: Any, limit: int) -> bool:
    """True if arrays/objects nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


class Dispatcher:
    """Holds the (wrapped) methods and turns one frame into a ``Reply`` or None."""

    def __init__(self, methods: Mapping[str, Callable[..., Any]], max_depth: int = MAX_DEPTH):
        self.max_depth = max_depth
        self._methods: Mapping[str, Callable[..., Any]] = MappingProxyType({})
        self._wrapped: dict[str, Callable[..., Any]] = {}
        self.set_methods(methods)

    @property
    def methods(self) -> Mapping[str, Callable[..., Any]]:
        """The current methods as given (read-only), for listings such as session.methods."""
        return self._methods

    def set_methods(self, methods: Mapping[str, Callable[..., Any]]) -> None:
        """Replace every method at once (wrapping fails early on a bad @with_connection)."""
        wrapped = {name: wrap_method(name, fn) for name, fn in methods.items()}
        self._methods = MappingProxyType(dict(methods))
        self._wrapped = wrapped

    def dispatch(self, frame: bytes, connection: Any) -> Reply | Batch | None:
        """Parse, check and run one line; None when nothing is to be sent back; a Batch
        for the caller to run member by member."""
        try:
            text = frame.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _single(error_message(PARSE_ERROR, "Parse error", f"not UTF-8: {exc}"))
        if not text.strip():
            return None  # blank lines are ignored (handy with socat/nc)
        containers = frame.count(b"{") + frame.count(b"[")  # C speed, before json.loads
        if containers > RPC_MAX_JSON_CONTAINERS:
            return _single(
                error_message(
                    INVALID_REQUEST,
                    f"Invalid request: more than {RPC_MAX_JSON_CONTAINERS} JSON objects and "
                    "arrays in one line; split it",
                    {"max_containers": RPC_MAX_JSON_CONTAINERS},
                )
            )
        try:
            parsed = json.loads(
                text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
            )
        except RecursionError:
            return _single(self._too_deep_error())
        except DuplicateKey as exc:
            return _single(error_message(INVALID_REQUEST, "Invalid request", str(exc)))
        except ValueError as exc:
            return _single(error_message(PARSE_ERROR, "Parse error", str(exc)))
        if isinstance(parsed, (dict, list)) and _too_deep(parsed, self.max_depth):
            return _single(self._too_deep_error())
        if isinstance(parsed, list) and parsed:
            return _batch(parsed)
        return self.dispatch_member(parsed, connection)

    def dispatch_member(self, parsed: Any, connection: Any) -> Reply | None:
        """Run one parsed request (a batch member, or a whole line)."""
        context = CallContext(connection)
        responses = dispatch_to_response(
            "", self._wrapped, context=context, deserializer=lambda _text: parsed
        )
        return self._to_reply(responses, context)

    def _too_deep_error(self) -> Message:
        return error_message(
            INVALID_REQUEST, "Invalid request", f"JSON nested deeper than {self.max_depth} levels"
        )

    def _to_reply(self, responses: Any, context: CallContext) -> Reply | None:
        batch = isinstance(responses, list)
        answered: set[int] = set()
        items: list[Message | PendingReply] = []
        for response in responses if batch else ([] if responses is None else [responses]):
            value = response._value if isinstance(response, Right) else None
            if value is not None and isinstance(value.result, _Pending):
                answered.add(id(value.result))
                items.append(PendingReply(value.id, value.result.deferred))
            else:
                items.append(to_serializable_one(response))
        for pending in context.pending:
            if id(pending) not in answered:  # a notification: nobody hears its failure
                pending.deferred.addErrback(_log_unanswered)
        return Reply(batch, tuple(items)) if items else None


def _single(message: Message) -> Reply:
    return Reply(False, (message,))


def _batch(parsed: list[Any]) -> Reply | Batch:
    """A batch over the cap, or with a malformed member, is one error for the whole line
    (a 2,000-call batch froze the daemon for 17 s: issue 13, class 5)."""
    if len(parsed) > RPC_MAX_BATCH_CALLS:
        return _single(
            error_message(
                INVALID_REQUEST,
                f"Invalid request: a batch of {len(parsed)} calls; at most "
                f"{RPC_MAX_BATCH_CALLS} in one line: split it",
                {"max_batch": RPC_MAX_BATCH_CALLS, "calls": len(parsed)},
            )
        )
    try:
        default_validator(parsed)
    except Exception:  # jsonschema's ValidationError, or anything its checks raise
        return _single(
            error_message(
                INVALID_REQUEST, "Invalid request", "The request failed schema validation"
            )
        )
    return Batch(tuple(parsed))


def _log_unanswered(failure: Failure) -> None:
    _log.failure("RPC notification failed", failure)


def settle(item: PendingReply) -> Deferred[Message]:
    """A Deferred of the response object for ``item``; it never fails."""

    def ok(result: Any) -> Message:
        return {"jsonrpc": "2.0", "result": result, "id": item.id}

    def failed(failure: Failure) -> Message:
        exc = failure.value
        if isinstance(exc, RpcError):
            return error_message(exc.code, exc.message, _rpc_error_data(exc.data), item.id)
        if isinstance(exc, JsonRpcError):
            return error_message(exc.code, exc.message, exc.data, item.id)
        _log.failure("RPC method failed (request id {id!r})", failure, id=item.id)
        return error_message(*internal_error(exc), id=item.id)

    return item.deferred.addCallbacks(ok, failed)


def _encode_one(message: Message) -> bytes:
    try:
        return dumps(message)
    except (TypeError, ValueError, RecursionError) as exc:
        _log.error("RPC result is not JSON (id {id!r}): {e}", id=message.get("id"), e=str(exc))
        fallback = error_message(
            INTERNAL_ERROR, f"Internal error: result is not JSON: {exc}", id=message.get("id")
        )
        return dumps(fallback)


def encode(batch: bool, messages: list[Message]) -> bytes:
    """One line of JSON: a response or a batch; a member that will not encode becomes -32603."""
    parts = [_encode_one(m) for m in messages]
    body = b"[" + b",".join(parts) + b"]" if batch else parts[0]
    return body + b"\n"


def encode_message(message: Message) -> bytes:
    """One line for a single message (a notification, a refusal)."""
    return encode(False, [message])


def encode_event(event: str, params: Mapping[str, Any]) -> str | None:
    """The ``event`` notification pushed to subscribers (the control socket's and the HTTP
    plugin's ``/events``), as one JSON text; None (logged) when ``params`` is not JSON."""
    body = {k: v for k, v in params.items() if k != "event"}
    message = {"jsonrpc": "2.0", "method": "event", "params": {"event": event, **body}}
    try:
        return dumps(message).decode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        _log.error("event {event} not sent, params not JSON: {e}", event=event, e=str(exc))
        return None
