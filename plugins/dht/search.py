"""Drives a pure Lookup over the network: sends what it asks for, feeds back the answers.

Kept apart from the Lookup so that the state machine stays free of Twisted, and apart
from the service so that one lookup's plumbing reads in one place. Answers arriving
synchronously (a closed node fails queries at once) do not recurse: a re-entrant call
only asks the running loop for one more round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from btd.plugins.dht.krpc import NodeInfo
from btd.plugins.dht.lookup import Lookup

log = Logger(namespace="btd.plugins.dht")

Address = tuple[str, int]


def run_lookup(
    lk: Lookup,
    send: Callable[[NodeInfo], defer.Deferred[Any]],
    alive: Callable[[], bool],
    on_peers: Callable[[list[Address]], None] | None = None,
) -> defer.Deferred[Lookup]:
    """Query until ``lk`` is done or ``alive()`` turns false; fires with ``lk``.

    ``send(node)`` sends the lookup's query (find_node or get_peers) and fires with the
    Response or fails; ``on_peers`` gets each batch of peers not seen before.
    """
    result: defer.Deferred[Lookup] = defer.Deferred()
    state = {"pumping": False, "again": False}

    def answered(response: Any, info: NodeInfo) -> None:
        fresh = lk.answered(info.node_id, response.nodes, response.token, response.values)
        if fresh and on_peers is not None:
            try:
                on_peers(fresh)
            except Exception:  # noqa: BLE001 - the lookup goes on whatever the consumer does
                log.failure("dht: peer consumer failed")
        pump()

    def failed(_: Any, info: NodeInfo) -> None:
        lk.failed(info.node_id)
        pump()

    def pump() -> None:
        if state["pumping"]:
            state["again"] = True
            return
        state["pumping"] = True
        try:
            while alive() and not result.called:
                state["again"] = False
                for info in lk.next_queries():
                    send(info).addCallbacks(
                        answered, failed, callbackArgs=(info,), errbackArgs=(info,)
                    )
                if not state["again"] or lk.done:
                    break
        finally:
            state["pumping"] = False
        if (lk.done or not alive()) and not result.called:
            result.callback(lk)

    pump()
    return result
