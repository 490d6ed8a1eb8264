"""The DHT plugin at work: joins the DHT, finds peers for torrents, announces them.

Start: the state file (node id, known nodes) is read off the reactor thread, the UDP
socket is bound, and we join through the configured bootstrap nodes and the saved ones
(find_node for our own id, then a lookup of it). Every minute, buckets untouched for 15
minutes are refreshed (a lookup of a random id in their range), stored peers expire, and
an empty table bootstraps again. The table is saved every 5 minutes and at stop.

Torrents: every active, non-private torrent gets a get_peers lookup at once and then
every ``announce_interval``; each peer found goes to ``torrent.add_peers``, and we
announce our TCP port to the ``k`` nearest nodes that gave a token (a hybrid, BEP 52: under
both ``swarm_ids`` in one round; peers found under the v2 id go over tagged with it). A
torrent whose lookup reached nobody (an empty table) tries again after 5, 10, 20... (at most
60) seconds. Peers announced to OUR node for a torrent we run are handed to it as well.
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from btd.plugins.dht import state as state_file
from btd.plugins.dht.krpc import NodeInfo, usable
from btd.plugins.dht.lookup import Lookup
from btd.plugins.dht.node import DhtNode
from btd.plugins.dht.search import run_lookup

log = Logger(namespace="btd.plugins.dht")

Address = tuple[str, int]
MAINTAIN_EVERY = 60.0
SAVE_EVERY = 300.0
RETRY_FIRST = 5.0
MAX_REFRESHES = 3  # bucket refresh lookups started per maintenance round


@dataclass(frozen=True)
class Settings:
    port: int | None = None  # None: the peer port
    bind: str | None = None  # None: follows session.listen_host
    bootstrap: tuple[Address, ...] = ()
    state_file: Path | None = None
    announce_interval: float = 900.0
    ip_rate: float = 5.0
    ip_burst: float = 20.0
    global_rate: float = 250.0
    send_rate: float = 50.0
    shared: bool = False  # not a key: the DhtPlugin sets it (the socket is session.udp's)


@dataclass(eq=False)
class _Tracked:
    info_hash: bytes
    timer: IDelayedCall | None = None
    running: bool = False
    retries: int = 0


@dataclass
class _Counters:
    lookups_done: int = 0
    peers_found: int = 0
    announces_out: int = 0
    bootstraps: int = 0


class DhtService:
    """Owns the DhtNode for one session; hooks call start/stop/torrent_event/status."""

    def __init__(
        self,
        session: Any,
        settings: Settings,
        *,
        rng: random.Random | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.session = session
        self.settings = settings
        self.reactor = session.reactor
        self.rng = rng if rng is not None else random.Random()
        self._random_bytes = random_bytes
        self.path = settings.state_file or Path(session.state_dir) / "dht.dat"
        self.node: DhtNode | None = None
        self.error: str | None = None
        self.lookups: set[Lookup] = set()
        self.tracked: dict[bytes, _Tracked] = {}
        self.counters = _Counters()
        self._loops: list[LoopingCall] = []
        self._bootstrap_retry = RETRY_FIRST
        self._bootstrap_timer: IDelayedCall | None = None
        self._bootstrapping = False
        self._save_lock = defer.DeferredLock()  # one writer of the state file at a time
        self.stopped = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> defer.Deferred[None]:
        d = self.session.run_blocking(state_file.read_state, self.path)
        d.addErrback(self._unreadable)
        d.addCallback(self._start_with)
        d.addErrback(lambda f: log.failure("dht: start failed", f))
        return d

    def _unreadable(self, failure: Any) -> None:
        log.error(
            "dht: cannot read {p}: {e}; starting afresh",
            p=str(self.path),
            e=failure.getErrorMessage(),
        )

    def _start_with(self, data: bytes | None) -> None:
        if self.stopped:
            return
        node_id, saved = None, []
        if data is not None:
            try:
                node_id, saved = state_file.decode_state(data)
            except state_file.StateError as exc:
                log.error(
                    "dht: state file {p} is unusable ({e}); starting afresh",
                    p=str(self.path),
                    e=str(exc),
                )
        node_id = node_id or self._random_bytes(20)
        s = self.settings
        assert s.bind is not None and s.port is not None  # resolved by the DhtPlugin
        node = DhtNode(
            self.reactor,
            node_id,
            bind=s.bind,
            port=s.port,
            ip_rate=s.ip_rate,
            ip_burst=s.ip_burst,
            global_rate=s.global_rate,
            send_rate=s.send_rate,
            rng=self.rng,
            random_bytes=self._random_bytes,
            on_announce=self._announced_to_us,
        )
        try:  # on the peer port, session.udp's socket (uTP's too: core/net/udp.py)
            node.listen(self.session.udp if s.shared else None)
        except CannotListenError as exc:  # the port is taken, the address is not ours
            self.error = f"cannot bind UDP {s.bind}:{s.port}: {exc}"
            log.error("dht: {e}; the DHT is off", e=self.error)
            return
        self.node = node
        for info in saved:
            node.routing.add_loaded(info.node_id, info.address)
        log.info(
            "dht: node {id} on {h}:{p}, {n} saved node(s)",
            id=node_id.hex()[:8],
            h=s.bind,
            p=node.port,
            n=len(node.routing),
        )
        for every, job in ((MAINTAIN_EVERY, self._maintain), (SAVE_EVERY, self.save)):
            loop = LoopingCall(job)
            loop.clock = self.reactor
            loop.start(every, now=False).addErrback(lambda f: log.failure("dht: timer", f))
            self._loops.append(loop)
        self.bootstrap()
        for torrent in self.session.swarms():
            self._track(torrent)

    def stop(self) -> defer.Deferred[None]:
        self.stopped = True
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        if self._bootstrap_timer is not None and self._bootstrap_timer.active():
            self._bootstrap_timer.cancel()
        for info_hash in list(self.tracked):
            self._untrack(info_hash)
        node = self.node
        if node is None:
            return defer.succeed(None)
        saved = self.save()
        self.node = None
        d = defer.DeferredList([saved, node.close()], consumeErrors=True)
        return d.addCallback(lambda _: None)

    def save(self) -> defer.Deferred[None]:
        node = self.node
        if node is None:
            return defer.succeed(None)
        now = self.reactor.seconds()
        known = [
            NodeInfo(n.node_id, n.host, n.port)
            for n in node.routing.nodes()
            if n.state(now) != "bad"
        ]
        data = state_file.encode_state(node.node_id, known)
        d = self._save_lock.run(self.session.run_blocking, state_file.write_state, self.path, data)
        d.addErrback(
            lambda f: log.error(
                "dht: saving {p} failed: {e}", p=str(self.path), e=f.getErrorMessage()
            )
        )
        return d

    # -- joining ----------------------------------------------------------------------------
    def _own_address(self, address: Address) -> bool:
        return self.node is not None and address == (self.settings.bind, self.node.port)

    def bootstrap(self) -> defer.Deferred[None]:
        """find_node(our id) via the bootstrap and saved nodes, then a lookup of our id."""
        node = self.node
        if node is None or self._bootstrapping:
            return defer.succeed(None)
        self._bootstrapping = True
        self.counters.bootstraps += 1
        found: list[NodeInfo] = []

        def ask(address: Address) -> defer.Deferred[None]:
            if self._own_address(address) or not usable(*address) or self.node is None:
                return defer.succeed(None)
            d = node.find_node(address, node.node_id)

            def answered(response: Any) -> None:
                found.append(NodeInfo(response.sender, *address))
                found.extend(response.nodes)

            return d.addCallbacks(answered, lambda _: None)

        def resolved(addresses: list[Address]) -> defer.Deferred[Any]:
            saved = [n.address for n in node.routing.nodes()]
            return defer.DeferredList([ask(a) for a in dict.fromkeys(addresses + saved)])

        def then_lookup(_: object) -> defer.Deferred[Any]:
            return self.lookup(node.node_id, "find_node", seeds=found)

        def finished(_: object) -> None:
            self._bootstrapping = False
            if self.node is None:
                return
            if node.routing.live_count():
                self._bootstrap_retry = RETRY_FIRST
                for tracked in self.tracked.values():  # those that had nobody to ask
                    if tracked.retries and not tracked.running:
                        self._schedule(tracked, 0)
            elif self.settings.bootstrap and not self.stopped:
                self._bootstrap_timer = self.reactor.callLater(
                    self._bootstrap_retry, self.bootstrap
                )
                self._bootstrap_retry = min(self._bootstrap_retry * 2, MAINTAIN_EVERY)

        d = self._resolve_bootstrap()
        d.addCallback(resolved)
        d.addCallback(then_lookup)
        d.addBoth(finished)
        return d

    def _resolve_bootstrap(self) -> defer.Deferred[list[Address]]:
        def one(host: str, port: int) -> defer.Deferred[Address | None]:
            try:
                ipaddress.IPv4Address(host)
                return defer.succeed((host, port))
            except ValueError:
                pass
            d = self.reactor.resolve(host)
            d.addCallback(lambda ip: (ip, port))
            d.addErrback(
                lambda f: log.warning("dht: cannot resolve {h}: {e}", h=host, e=f.getErrorMessage())
            )
            return d

        ds = [one(h, p) for h, p in self.settings.bootstrap]
        d = defer.gatherResults(ds, consumeErrors=True) if ds else defer.succeed([])
        return d.addCallback(lambda results: [r for r in results if r])

    def _maintain(self) -> None:
        node = self.node
        if node is None:
            return
        now = self.reactor.seconds()
        node.peers.expire(now)
        if not node.routing.live_count():
            if self.settings.bootstrap:
                self.bootstrap()
            return
        for bucket in node.routing.stale_buckets(now)[:MAX_REFRESHES]:
            node.routing.touch(bucket, now)
            self.lookup(node.routing.random_id_in(bucket, self.rng), "find_node")

    # -- lookups --------------------------------------------------------------------------
    def lookup(
        self,
        target: bytes,
        method: str,
        *,
        seeds: list[NodeInfo] | None = None,
        on_peers: Callable[[list[Address]], None] | None = None,
    ) -> defer.Deferred[Lookup]:
        """An iterative find_node or get_peers lookup; fires with the finished Lookup."""
        node = self.node
        if node is None:
            return defer.succeed(Lookup(target, b"\0" * 20))
        known = node.routing.closest(target, 2 * node.routing.k)
        lk = Lookup(target, node.node_id, [NodeInfo(n.node_id, n.host, n.port) for n in known])
        lk.add(seeds or ())
        self.lookups.add(lk)

        def send(info: NodeInfo) -> defer.Deferred[Any]:
            if method == "get_peers":
                return node.get_peers(info.address, target, info.node_id)
            return node.find_node(info.address, target, info.node_id)

        def finished(done: Lookup) -> Lookup:
            self.lookups.discard(lk)
            self.counters.lookups_done += 1
            if self.node is node:
                node.routing.touch(node.routing.bucket_for(target), self.reactor.seconds())
            return done

        def alive() -> bool:
            return self.node is node and not self.stopped

        return run_lookup(lk, send, alive, on_peers).addCallback(finished)

    # -- torrents -------------------------------------------------------------------------
    def torrent_event(self, kind: str, info_hash_hex: str) -> None:
        try:
            info_hash = bytes.fromhex(info_hash_hex)
        except ValueError:
            return
        if kind in ("added", "started"):
            torrent = self.session.swarm(info_hash)
            if torrent is not None:
                self._track(torrent)
        elif kind in ("paused", "removed", "error"):
            self._untrack(info_hash)

    def _eligible(self, torrent: Any) -> bool:
        return bool(torrent.active) and not torrent.private  # BEP 27: no DHT for private

    def _track(self, torrent: Any) -> None:
        if self.node is None or torrent.info_hash in self.tracked or not self._eligible(torrent):
            return
        tracked = self.tracked[torrent.info_hash] = _Tracked(torrent.info_hash)
        self._schedule(tracked, 0)

    def _untrack(self, info_hash: bytes) -> None:
        tracked = self.tracked.pop(info_hash, None)
        if tracked is not None and tracked.timer is not None and tracked.timer.active():
            tracked.timer.cancel()

    def _schedule(self, tracked: _Tracked, delay: float) -> None:
        if tracked.timer is not None and tracked.timer.active():
            tracked.timer.cancel()
        tracked.timer = self.reactor.callLater(delay, self._announce, tracked)

    def _announce(self, tracked: _Tracked) -> None:
        torrent = self.session.swarm(tracked.info_hash)
        node = self.node
        if node is None or self.tracked.get(tracked.info_hash) is not tracked:
            return
        if torrent is None or not self._eligible(torrent):
            self._untrack(tracked.info_hash)
            return
        tracked.running = True
        now = self.reactor.seconds()
        ids = tuple(getattr(torrent, "swarm_ids", (tracked.info_hash,)))
        for swarm_id in ids:
            self._feed(torrent, node.peers.get(swarm_id, now), swarm_id)
        feed = lambda sid: lambda peers: self._feed(torrent, peers, sid)  # noqa: E731
        lookups = [self.lookup(sid, "get_peers", on_peers=feed(sid)) for sid in ids]
        d = defer.gatherResults(lookups, consumeErrors=True)
        d.addCallback(self._lookup_done, tracked, ids)
        d.addErrback(lambda f: log.failure("dht: announcing failed", f))

    def _lookup_done(self, lks: list[Lookup], tracked: _Tracked, ids: tuple[bytes, ...]) -> None:
        tracked.running = False
        node = self.node
        if node is None or self.tracked.get(tracked.info_hash) is not tracked:
            return
        port = self.session.listen_port
        if port:
            for lk, swarm_id in zip(lks, ids, strict=True):
                for info, token in lk.announce_targets():
                    self.counters.announces_out += 1
                    node.announce_peer(
                        info.address, swarm_id, port, token, info.node_id
                    ).addErrback(lambda _: None)
        if any(lk.closest_answered() for lk in lks):
            tracked.retries = 0
            self._schedule(tracked, self.settings.announce_interval)
        else:  # nobody answered: the table is empty or stale
            delay = min(
                RETRY_FIRST * 2 ** min(tracked.retries, 8),
                MAINTAIN_EVERY,
                self.settings.announce_interval,
            )
            tracked.retries += 1
            self._schedule(tracked, delay)

    def _feed(self, torrent: Any, peers: list[Address], swarm_id: bytes | None = None) -> None:
        own = (self.settings.bind, self.session.listen_port)
        fresh = [p for p in peers if p != own and usable(*p)]
        if fresh and torrent.active:
            self.counters.peers_found += len(fresh)
            if swarm_id is None or swarm_id == torrent.info_hash:
                torrent.add_peers(fresh)
            else:  # a hybrid's v2 swarm: dialled with that id
                torrent.add_peers(fresh, swarm_id=swarm_id)

    def _announced_to_us(self, info_hash: bytes, address: Address) -> None:
        torrent = self.session.swarm(info_hash)  # a hybrid by either id
        if torrent is not None and torrent.info_hash in self.tracked and self._eligible(torrent):
            self._feed(torrent, [address], info_hash)

    # -- status ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        node = self.node
        if node is None:
            return {"running": False, "error": self.error}
        now = self.reactor.seconds()
        counts = node.routing.counts(now)
        return {
            "running": True,
            "node_id": node.node_id.hex(),
            "bind": self.settings.bind,
            "port": node.port,
            "shared_socket": self.settings.shared,
            "nodes": len(node.routing),
            "good": counts["good"],
            "questionable": counts["questionable"],
            "buckets": len(node.routing.buckets),
            "lookups": len(self.lookups),
            "lookups_done": self.counters.lookups_done,
            "torrents": len(self.tracked),
            "peers_found": self.counters.peers_found,
            "announces_out": self.counters.announces_out,
            "peers_stored": len(node.peers),
            "info_hashes_stored": node.peers.info_hashes,
            "pending_queries": node.pending,
            **node.stats,
        }
