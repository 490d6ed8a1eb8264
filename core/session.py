"""Session: the facade over everything the daemon runs.

RPC methods and plugins call the Session. It owns the torrents (and, through the
MagnetManager, the magnets waiting for metadata), fans torrent events out to plugins and
subscribed control connections, and keeps added torrents and their progress in the resume
store (``btd_resume_store``, else files in the state directory; see core/resume.py and
core/resume_saver.py). Peer connections (routing, dialling, the global limit) are the
``PeerConnector``'s (core/net/connector.py). Blocking work goes to the thread pool
(``run_blocking``).

Size: about 760 lines, because it is the facade: most of it is the wiring each part is
given (TorrentEnv, MagnetEnv, the store and its saver, the queue and the seeding goals,
the mover, the limits), adding and removing, and the counters kept up to date; start-up
loading is core/torrent_loader.py.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.alt_speed import AltSpeed
from btd.core.bandwidth import Bandwidth
from btd.core.batch_add import BatchEnv, BatchItem, add_batch
from btd.core.check_gate import CheckGate
from btd.core.config import Config
from btd.core.disk_space import DiskSpaceGuard
from btd.core.errors import ConfigError
from btd.core.events import TorrentEvent
from btd.core.extensions import Extensions
from btd.core.heap import HeapFreezer
from btd.core.labels import label_defaults
from btd.core.magnets import MagnetEnv, MagnetManager
from btd.core.metainfo import Metainfo, parse_metainfo
from btd.core.mover import Mover
from btd.core.net.connector import PeerConnector, make_peer_id
from btd.core.net.udp import UdpSockets
from btd.core.peer_slots import SlotPolicy, SpareSlots
from btd.core.plugin import PluginHost
from btd.core.queue import TorrentQueue
from btd.core.resume import (
    ResumeProgress,
    ResumeStoreError,
    StoredTorrent,
    save_options_batch,
    storage_root_fields,
    stored_storage_dev,
)
from btd.core.resume_recovery import StoreReport
from btd.core.resume_saver import ResumeSaver
from btd.core.scheduler import Pacer, Scheduler
from btd.core.seeding_goals import SeedClock, SeedingGoals
from btd.core.status_log import StatusLog
from btd.core.storage_guard import StorageGuard
from btd.core.swarm import Swarm, TorrentNotFound, find_swarm
from btd.core.swarm_peers import DisconnectCounts
from btd.core.torrent import Torrent
from btd.core.torrent_data import check_save_path
from btd.core.torrent_env import TorrentEnv, TorrentOptions
from btd.core.torrent_loader import TorrentLoader
from btd.core.torrent_settings import check_add, options_from, options_json
from btd.core.torrent_state import TorrentState
from btd.core.torrent_store import TorrentStore
from btd.core.tracker.health import TrackerHealth
from btd.core.version import __version__

_log = Logger()

ANNOUNCE_RATE = 50.0  # first announces per second after a burst (start-up, batch adds)
ANNOUNCE_BURST = 20


class Session:
    """All torrents and the daemon-wide state: the facade RPC methods and plugins call.

    ``verifier`` hashes and does the piece I/O (btd.core.verify.Verifier); ``threadpool``
    runs ``run_blocking`` work (None: at once, on the calling thread, as the tests do).
    """

    def __init__(
        self,
        config: Config,
        plugins: PluginHost,
        reactor: Any,
        *,
        verifier: Any,
        threadpool: Any = None,
        request_shutdown: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.reactor = reactor
        self.clock = reactor
        self._request_shutdown = request_shutdown
        self._started = reactor.seconds()
        self.started_at = time.time()  # wall clock, for people
        self._event_listeners: list[Callable[[TorrentEvent], None]] = []
        self.stopping = False
        self.torrents: dict[bytes, Torrent] = {}
        self._other_ids: dict[bytes, Torrent] = {}  # a hybrid's truncated v2 hash -> it
        self._adding: dict[bytes, Torrent] = {}  # being stored: not in ``torrents`` yet
        self._options_soon: dict[bytes, Torrent] = {}  # options to store together, next turn
        self.state_counts: Counter[str] = Counter()  # torrents per state, kept up to date
        self.scheduler = Scheduler(
            reactor, on_error=lambda exc: _log.failure("a timed call failed", Failure(exc))
        )
        self._announce_pacer = Pacer(reactor.seconds, ANNOUNCE_RATE, ANNOUNCE_BURST)
        # speed limits: ONE grant timer, ONE alt-schedule timer (core/bandwidth.py, alt_speed.py)
        self.bandwidth = Bandwidth(self.scheduler)
        self.alt_speed = AltSpeed(self.scheduler, self._alt_flipped, on=config.session.alt_enabled)
        self.alt_speed.set_schedule(config.session.alt_schedule)
        self._apply_limits()
        self._rng = random.Random()  # one for all torrents (a Random is 2.5 KB)
        self._shared_env: TorrentEnv | None = None
        self.tracker_health = TrackerHealth()  # a dead tracker is probed, not asked by all
        # torrents whose save path is missing: one timer probes their distinct roots
        self.storage_guard = StorageGuard(
            self.scheduler, lambda fn, *args: self.run_blocking(fn, *args)
        )
        self.mover = Mover(lambda fn, *args: self.run_blocking(fn, *args))  # torrent.move
        # downloads pause when their disk runs low (session.min_free_space)
        self.disk_space = DiskSpaceGuard(
            self.scheduler,
            lambda fn, *args: self.run_blocking(fn, *args),
            lambda: self.config.session.min_free_space,
            self._torrent_event,
        )
        self.loader = TorrentLoader(
            reactor,
            lambda fn, *args: self.run_blocking(fn, *args),  # late-bound: tests replace it
            self._bring_up,
            lambda: self.stopping,
            self._loaded,
            self._store_reported,
        )
        self.store_report: StoreReport | None = None  # what the store found wrong at start
        self.peer_id = make_peer_id(config.session.peer_id_prefix)
        self.listen_port = 0
        # The JSON-RPC methods table, set by the service once built: plugins that serve the
        # same RPC elsewhere (http) call these, never their own copies.
        self.rpc_methods: Mapping[str, Callable[..., Any]] = {}
        self.verifier = verifier
        self.check_gate = CheckGate()  # a bounded number of checks at once (core/check_gate.py)
        self.threadpool = threadpool
        handlers: dict[str, Any] = {}
        for contributed in plugins.call("btd_extension_handlers"):
            handlers.update(dict(contributed))
        self.extensions = Extensions(handlers)
        self.disconnects = DisconnectCounts()  # peer connection ends by reason, all torrents
        self.spare_slots = SpareSlots()  # torrents with a peer a newcomer may replace
        self.connector = PeerConnector(
            reactor,
            self.peer_id,
            swarm=self.swarm,
            swarms=self.swarms,
            max_connections=lambda: self.config.session.max_connections,
            stopping=lambda: self.stopping,
            dht_port=lambda: self.plugins.first("btd_dht_port"),
            dht_node_seen=lambda host, port: self.plugins.call(
                "btd_dht_node_seen", host=host, port=port
            ),
            has_spare=lambda: len(self.spare_slots) > 0,
            encryption=lambda: self.config.session.encryption,
        )
        self.udp = UdpSockets(reactor)  # uTP and the DHT share the peer port (core/net/udp.py)
        self.magnets = MagnetManager(self._magnet_env())
        # which torrents run (max_active_*), and when seeding ends (the seeding goals)
        self.queue = TorrentQueue(self.scheduler, lambda: self.config.session, self.save_options)
        self.seeding_goals = SeedingGoals(
            self.scheduler, lambda: self.config.session, self._goal_reached
        )
        self._store: Any = None
        self._saver: ResumeSaver | None = None
        self.heap = HeapFreezer()  # the daemon enables it (core/heap.py)
        self.status_log = StatusLog()  # whose list rows changed (core/rpc/list_rows.py)

    # -- the resume store ------------------------------------------------------------------
    @property
    def store(self) -> Any:
        """The ResumeStore, opened on first use (``start`` uses it first in the daemon).

        The ``btd_resume_store`` hook is called directly, not through the isolating
        ``PluginHost.first``: a store that cannot be opened (not ours, a newer schema) must
        stop the daemon (ResumeStoreError, exit 78), never be replaced by an empty one.
        """
        if self._store is None:
            try:
                store = self.plugins.hook.btd_resume_store(config=self.config)
            except ConfigError:
                raise
            except Exception as exc:
                raise ResumeStoreError(
                    f"the resume store cannot be opened: {type(exc).__name__}: {exc}"
                ) from exc
            self._store = store if store is not None else TorrentStore(self.state_dir)
        return self._store

    @store.setter
    def store(self, store: Any) -> None:
        self._store, self._saver = store, None

    @property
    def saver(self) -> ResumeSaver:
        if self._saver is None:
            self._saver = ResumeSaver(
                self.store,
                lambda fn, *args: self.run_blocking(fn, *args),  # late-bound: tests replace it
                self.clock,
                lambda t: self.torrents.get(t.info_hash) is t,
            )
            for torrent in self.torrents.values():  # changes before it existed were not marked
                self._saver.mark(torrent)
        return self._saver

    def save_progress(self, torrent: Torrent) -> defer.Deferred[None]:
        """Record the torrent's progress now (after flushing its files); never fails."""
        return self.saver.save_progress(torrent)

    # -- events -------------------------------------------------------------------------
    def add_event_listener(self, listener: Callable[[TorrentEvent], None]) -> None:
        """The control server registers here to push events to subscribers."""
        self._event_listeners.append(listener)

    def emit(self, event: TorrentEvent) -> None:
        """Tell plugins and subscribed clients; a failing listener never stops the others."""
        self.plugins.call("btd_torrent_event", event=event)
        for listener in list(self._event_listeners):
            try:
                listener(event)
            except Exception:
                _log.failure("event listener failed for {kind}", kind=event.kind)

    def _torrent_event(self, torrent: Torrent, kind: str, data: dict[str, Any]) -> None:
        if kind == "error":
            data = {**data, "state": torrent.state}
        self.emit(
            TorrentEvent(kind, torrent.hex, torrent.name, str(torrent.options.save_path), data)
        )
        if kind in ("paused", "completed", "moved") or (
            kind == "started" and torrent.options != torrent.stored_options
        ):
            self.save_options(torrent)
        elif (  # the device its data is on (core/storage_guard.py); not for an empty one
            kind == "verified"
            and torrent.book.have.count
            and torrent.storage.root_dev != torrent.stored_root_dev
        ):
            self._save_options_soon(torrent)  # thousands at once after a batch add
        if kind in ("paused", "completed") and torrent.info_hash in self.torrents:
            self.save_progress(torrent)

    # -- daemon-wide facts ---------------------------------------------------------------
    @property
    def uptime(self) -> float:
        return max(0.0, self.clock.seconds() - self._started)

    def shutdown(self) -> None:
        """Ask the daemon to stop gracefully (the reply goes out first)."""
        if not self.stopping:
            self.stopping = True
            self.clock.callLater(0, self._request_shutdown)

    def apply_config(self, new: Config) -> None:
        """Take the live-changeable settings of a reloaded configuration."""
        old = self.config.session
        self.config = new
        if new.session.alt_schedule != old.alt_schedule:
            self.alt_speed.set_schedule(new.session.alt_schedule)  # its state from now on
        if new.session.alt_enabled != old.alt_enabled:  # the manual toggle: until the next edge
            self.alt_speed.toggle(new.session.alt_enabled)
        self._apply_limits()
        self.disk_space.wake()  # min_free_space may have changed
        self.queue.changed()  # its limits may have changed
        self.seeding_goals.changed()

    def _alt_flipped(self, on: bool) -> None:
        _log.info("alternative speed limits {state}", state="on" if on else "off")
        self._apply_limits()

    def _apply_limits(self) -> None:
        """The global limits in force; ``alt_enabled`` in the config tells the truth."""
        s = self.config.session
        on = self.alt_speed.on
        if s.alt_enabled != on:
            s = replace(s, alt_enabled=on)
            self.config = replace(self.config, session=s)
        if on:
            self.bandwidth.set_global(s.alt_download_limit, s.alt_upload_limit)
        else:
            self.bandwidth.set_global(s.download_limit, s.upload_limit)

    def _goal_reached(
        self, torrent: Torrent, goal: str, limit: float, value: float, action: str
    ) -> None:
        """A seeding goal was reached (core/seeding_goals.py): tell, then pause or remove."""
        _log.info(
            "{label} reached its seeding goal ({goal} {value:.2f} >= {limit}): {action}",
            label=torrent.label, goal=goal, value=value, limit=limit, action=action,
        )  # fmt: skip
        self._torrent_event(
            torrent,
            "seeding_goal_reached",
            {"goal": goal, "limit": limit, "value": round(value, 4), "action": action},
        )
        if self.torrents.get(torrent.info_hash) is not torrent:
            return
        if action == "pause":
            torrent.pause()
        else:
            d = self.remove(torrent, delete_data=action == "remove_data")
            d.addErrback(lambda f: _log.failure("removing {n} failed", f, n=torrent.name))

    @property
    def state_dir(self) -> Path:
        return Path(self.config.daemon.state_dir)

    def run_blocking(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """Run file or database work off the reactor thread."""
        if self.threadpool is None:
            return defer.maybeDeferred(fn, *args)
        return deferToThreadPool(self.reactor, self.threadpool, fn, *args)

    # -- what torrents and magnets are given ----------------------------------------------
    def _env(self) -> TorrentEnv:
        """The services every torrent is given: ONE object shared by all of them (its
        callables read live values); the verifier is refreshed in case it was replaced."""
        env = self._shared_env
        if env is None:
            env = self._shared_env = self._make_env()
        env.verifier = self.verifier
        return env

    def _make_env(self) -> TorrentEnv:
        cfg = lambda: self.config.session  # noqa: E731 - read live values after a reload
        return TorrentEnv(
            clock=self.clock,
            verifier=self.verifier,
            peer_id=self.peer_id,
            listen_port=lambda: self.listen_port,
            picker_for=lambda name, view: self.plugins.first(
                "btd_piece_picker", name=name, view=view
            ),
            tracker_client_for=self._tracker_client_for,
            connect=self.connector.connect,
            can_connect=self.connector.can_connect,
            emit=self._torrent_event,
            max_peers=lambda: cfg().max_connections_per_torrent,
            upload_slots=lambda: cfg().upload_slots,
            shutdown_timeout=self.config.daemon.shutdown_timeout,
            client_name=f"btd {__version__}",
            extensions=self.extensions,
            dht_port=self.connector.dht_port,
            dht_node_seen=self.connector.dht_node_seen,
            disconnects=self.disconnects,
            rng=self._rng,
            scheduler=self.scheduler,
            announce_delay=self._announce_pacer.delay,
            state_changed=self._state_changed,
            progress_changed=self._progress_changed,
            row_changed=self._row_changed,
            tracker_health=self.tracker_health,
            slot_policy=lambda: SlotPolicy(
                float(cfg().peer_inactivity_timeout), float(cfg().peer_replace_grace)
            ),
            spare_slots=self.spare_slots,
            storage_guard=self.storage_guard,
            bandwidth=self.bandwidth,
            incomplete_dir=lambda: cfg().incomplete_dir,
            queue=self.queue,
            seeding_goals=self.seeding_goals,
            check_gate=self.check_gate,
        )

    def _progress_changed(self, torrent: Torrent) -> None:
        """The next periodic save looks at this torrent (core/resume_saver.py)."""
        if self._saver is not None and self.torrents.get(torrent.info_hash) is torrent:
            self._saver.mark(torrent)
        self.seeding_goals.touch(torrent)  # seeding ones only; a dict lookup

    def _row_changed(self, torrent: Torrent) -> None:
        if self.torrents.get(torrent.info_hash) is torrent:  # not one being built or gone
            self.status_log.touch(torrent)

    def _state_changed(self, torrent: Torrent, old: str, new: str) -> None:
        self._progress_changed(torrent)
        if self.torrents.get(torrent.info_hash) is torrent:
            self.state_counts[old] -= 1
            self.state_counts[new] += 1
            self.disk_space.state_changed(torrent, old, new)
            self.queue.state_changed(torrent, old, new)
            self.seeding_goals.state_changed(torrent, old, new)
            if (
                new == TorrentState.SEEDING
                and torrent.storage.save_path != torrent.options.save_path
            ):
                self.clock.callLater(0, self._move_home, torrent)

    def _move_home(self, torrent: Torrent) -> None:
        """A complete torrent whose files are in the incomplete_dir moves them to its save
        path (core/mover.py); it seeds from wherever each file is meanwhile."""
        if (
            self.torrents.get(torrent.info_hash) is not torrent
            or torrent.state != TorrentState.SEEDING
            or torrent.storage.save_path == torrent.options.save_path
            or torrent.move_task is not None
        ):
            return
        d = defer.maybeDeferred(self.mover.move, torrent, torrent.options.save_path)
        d.addErrback(
            lambda f: (
                torrent.fail(f"move to {torrent.options.save_path} refused: {f.getErrorMessage()}")
                if torrent.state in (TorrentState.SEEDING, TorrentState.PAUSED)
                else None
            )
        )

    def _hold(self, torrent: Torrent) -> None:
        """``torrent`` joins ``torrents`` (and the per-state counts); a hybrid is found by
        its truncated v2 hash too (``swarm``)."""
        self.torrents[torrent.info_hash] = torrent
        for swarm_id in torrent.swarm_ids:
            if swarm_id != torrent.info_hash:
                self._other_ids[swarm_id] = torrent
            self.connector.know(swarm_id)
        self.state_counts[torrent.state] += 1
        self.queue.join(torrent)

    def _release(self, info_hash: bytes) -> Torrent | None:
        torrent = self.torrents.pop(info_hash, None)
        if torrent is not None:
            for swarm_id in torrent.swarm_ids:
                if self._other_ids.get(swarm_id) is torrent:
                    del self._other_ids[swarm_id]
                self.connector.forget(swarm_id)
            self.state_counts[torrent.state] -= 1
            self.queue.leave(torrent)
            self.seeding_goals.forget(torrent)
            self.status_log.forget(torrent)
        return torrent

    def _magnet_env(self) -> MagnetEnv:
        return MagnetEnv(
            state_dir=self.state_dir,
            clock=self.clock,
            peer_id=self.peer_id,
            listen_port=lambda: self.listen_port,
            tracker_client_for=self._tracker_client_for,
            connect=self.connector.connect,
            can_connect=self.connector.can_connect,
            know=self.connector.know,
            max_peers=lambda: self.config.session.max_connections_per_torrent,
            dht_running=lambda: self.connector.dht_port() is not None,
            extensions=self.extensions,
            client_name=f"btd {__version__}",
            options_for=self.options_for,
            # The picker hook is probed without a view: a magnet has no pieces yet.
            has_strategy=lambda name: (
                self.plugins.first("btd_piece_picker", name=name, view=None) is not None
            ),
            torrent=lambda info_hash: self.torrents.get(info_hash) or self._adding.get(info_hash),
            add_torrent=self.add,
            emit=self.emit,
            torrent_event=self._torrent_event,
            run_blocking=lambda fn, *args: self.run_blocking(fn, *args),  # late-bound: tests
            stopping=lambda: self.stopping,
            scheduler=self.scheduler,
            shutdown_timeout=lambda: self.config.daemon.shutdown_timeout,
            disconnects=self.disconnects,
        )

    def _tracker_client_for(self, url: str) -> Any:
        return self.plugins.first("btd_tracker_client", url=url)

    def options_for(self, raw: dict[str, Any], *, stored: bool = False) -> TorrentOptions:
        """A torrent's options from ``torrent.add`` parameters, where a setting not given
        takes its labels' default (core/labels.py), else the session's; or (``stored``) from
        its resume record, which holds the outcome: labels are not applied again (a changed
        ``labels:`` section or ``torrent.set labels`` leaves an added torrent as it is). A new
        one (or one stored without) takes the bottom of the queue."""
        given = raw if stored else label_defaults(raw, self.config.labels)
        options = options_from(given, self.config.session)
        if options.queue_position is None:
            options = replace(options, queue_position=self.queue.next_key())
        return options

    def _options_json(self, t: Torrent) -> dict[str, Any]:
        return {
            **options_json(t.options),
            "added_at": t.added_at,
            **t.seed_clock.as_json(self.clock.seconds()),  # seeding and idle time
            # where its files are (the incomplete_dir while downloading), and their device
            "storage_root": str(t.storage.save_path),
            **storage_root_fields(t.storage.save_path, t.storage.root_dev),
        }

    def _save_options_soon(self, t: Torrent) -> None:
        """``save_options`` for many torrents at once (the checks after a batch add or a
        start): collected for one reactor turn, then one store write for all of them."""
        if not self._options_soon:
            self.clock.callLater(0, self._save_options_now)
        self._options_soon[t.info_hash] = t

    def _save_options_now(self) -> None:
        pending, self._options_soon = self._options_soon, {}
        ts = [t for h, t in pending.items() if self.torrents.get(h) is t]
        if not ts:
            return
        for t in ts:
            t.stored_options = t.options
            t.stored_root_dev = t.storage.root_dev
        items = [(t.hex, self._options_json(t)) for t in ts]
        d = self.saver.job_many([t.info_hash for t in ts], save_options_batch, self.store, items)

        def logged(outcome: list[Exception | None]) -> None:
            for t, exc in zip(ts, outcome, strict=True):
                if exc is not None:
                    _log.error("saving {n} failed: {e}", n=t.name, e=exc)

        d.addCallbacks(logged, lambda f: _log.error("saving options failed: {e}", e=f.value))

    def save_options(self, t: Torrent) -> None:
        """Store the torrent's options now (after ``set``, pause, resume, completion)."""
        if t.info_hash in self.torrents:
            t.stored_options = t.options
            t.stored_root_dev = t.storage.root_dev
            d = self.saver.job(t.info_hash, self.store.save_options, t.hex, self._options_json(t))
            d.addErrback(
                lambda f: _log.error("saving {n} failed: {e}", n=t.name, e=f.getErrorMessage())
            )

    def add(
        self,
        data: bytes,
        *,
        meta: Metainfo | None = None,
        **given: Any,
    ) -> defer.Deferred[dict[str, Any]]:
        """Add a .torrent with ``given`` options (the add-time settings of
        core/torrent_settings.py; SettingError if one is bad); durable (in the resume store)
        before the Deferred fires. ``meta``: ``data`` already parsed (off the reactor: a big
        .torrent takes seconds to parse).

        Already there: ``added`` is false and ``save_path`` says where it stays. A save
        path that cannot be created or written fails the Deferred (SavePathError).
        """
        if meta is None:
            meta = parse_metainfo(data)  # MetainfoError: nothing is added
        if not self.loader.read:  # start-up has not read the store yet: add once it has
            return self.loader.when_read().addCallback(lambda _: self.add(data, meta=meta, **given))
        existing = self._known(meta.info_hash)
        if existing is not None:
            return defer.succeed(
                {
                    "info_hash": meta.hex,
                    "name": meta.name,
                    "added": False,
                    "save_path": str(existing.options.save_path),
                }
            )
        options = self.options_for(check_add(given))
        torrent = Torrent(meta, options, self._env())  # ValueError: unknown strategy
        self.heap.built()
        self._adding[meta.info_hash] = torrent

        def saved(_: object) -> dict[str, Any]:
            del self._adding[meta.info_hash]
            self._admit(torrent)
            return {"info_hash": meta.hex, "name": meta.name, "added": True}

        def failed(failure: Any) -> Any:
            self._adding.pop(meta.info_hash, None)
            return failure

        def store(_: object) -> defer.Deferred[Any]:
            self.saver.forget(meta.info_hash)
            options_json = self._options_json(torrent)
            return self.saver.job(
                meta.info_hash, self.store.save_torrent, meta.hex, data, options_json
            )

        d = self.run_blocking(check_save_path, options.save_path)
        return d.addCallback(store).addCallbacks(saved, failed)

    def add_many(self, items: list[BatchItem]) -> defer.Deferred[list[dict[str, Any] | Exception]]:
        """Add parsed torrents at once, durable in ONE store write first (core/batch_add.py)."""
        if not self.loader.read:  # start-up has not read the store yet: add once it has
            return self.loader.when_read().addCallback(lambda _: self.add_many(items))
        env = self._env()
        batch = BatchEnv(
            self.clock,
            lambda fn, *args: self.run_blocking(fn, *args),
            known=self._known,
            make=lambda meta, raw: self._built(Torrent(meta, self.options_for(raw), env)),
            adding=self._adding,
            options_json=self._options_json,
            saver=self.saver,
            store=self.store,
            admit=self._admit,
        )
        return add_batch(batch, items).addBoth(self._frozen)

    def _built(self, torrent: Torrent) -> Torrent:
        self.heap.built()
        return torrent

    def _frozen(self, passed: Any) -> Any:
        self.heap.freeze()  # the batch's torrents are built (core/heap.py)
        return passed

    def _known(self, info_hash: bytes) -> Torrent | None:
        """The torrent loaded or being added with this hash (a stored one comes up now)."""
        self.loader.take(info_hash)  # stored but not up yet: up now, not added twice
        return self.torrents.get(info_hash) or self._adding.get(info_hash)

    def _admit(self, torrent: Torrent) -> None:
        """A newly added torrent, now durable in the store, joins the session and starts."""
        torrent.stored_options = torrent.options
        self._hold(torrent)
        self.magnets.superseded(torrent)  # a magnet waiting for this metadata is done
        paused = " (paused)" if torrent.options.paused else ""
        _log.info("added {label}{paused}", label=torrent.label, paused=paused)
        self._torrent_event(torrent, "added", {})
        self._start(torrent)

    def _start(self, torrent: Torrent, resume: ResumeProgress | None = None) -> None:
        # a raising start must not undo a durable add
        if resume is None:
            d = defer.maybeDeferred(torrent.start)
        else:
            d = defer.maybeDeferred(torrent.start, resume)

            def loaded(_: object) -> None:
                same = (torrent.book.have.to_bytes(), torrent.uploaded, torrent.downloaded)
                if torrent.checked and same == (resume.have, resume.uploaded, resume.downloaded):
                    self.saver.mark_clean(torrent)  # nothing new to save until it changes

            d.addCallback(loaded)
        d.addErrback(lambda f: _log.failure("starting {n} failed", f, n=torrent.name))

    def swarms(self) -> list[Swarm]:
        """Every torrent, and every magnet still waiting for its metadata."""
        magnets = self.magnets
        return [*self.torrents.values(), *magnets.fetches.values(), *magnets.handing_over.values()]

    def swarm(self, info_hash: bytes) -> Swarm | None:
        """The torrent (or magnet waiting for metadata) with this info hash; a hybrid
        torrent or magnet by either of its ids (BEP 52: v1, or the v2 hash's first 20 bytes)."""
        return (
            self.torrents.get(info_hash)
            or self._other_ids.get(info_hash)
            or self.magnets.find(info_hash)
        )

    def add_magnet(self, uri: str, **given: Any) -> defer.Deferred[dict[str, Any]]:
        """Add a magnet link with ``given`` options (as ``add``); durable before the Deferred
        fires (MetainfoError if the link is bad)."""
        return self.magnets.add(uri, check_add(given))

    def find(self, prefix: str) -> Swarm:
        """The one torrent (or waiting magnet) whose info hash starts with ``prefix``
        (TorrentNotFound: none, or several). During start-up a stored torrent is brought up
        when asked for; before the store has been read nothing can be found yet."""
        if not self.loader.read:
            raise TorrentNotFound(
                f"no torrent matches {prefix!r} yet: btd is still reading its stored torrents"
            )
        self.loader.take_matching(prefix)
        return find_swarm(prefix, self.swarm, self.swarms)

    def remove(self, torrent: Torrent, delete_data: bool = False) -> defer.Deferred[dict[str, Any]]:
        self._release(torrent.info_hash)
        self.heap.removed_one()
        torrent.limits.close()  # its limit no longer counts (core/bandwidth.py)
        self.saver.forget(torrent.info_hash)
        self.disk_space.forget(torrent)
        # Forget the stored copy first: a crash while stopping must not bring it back, and a
        # re-add during the (tracker-bounded) stop must not have its fresh copy deleted.
        forgotten = self.saver.job(torrent.info_hash, self.store.delete, torrent.hex)
        moved = self.mover.cancel(torrent)  # a move is undone first: files in one place
        d = moved.addCallback(lambda _: torrent.stop(close_storage=not delete_data))
        d.addCallback(lambda _: forgotten)  # its StorageError, if any, once stopped

        def cleanup(_: object) -> Any:
            if delete_data:
                torrent.storage.delete_files()

        def done(_: object) -> dict[str, Any]:
            _log.info(
                "removed {label}{deleted}",
                label=torrent.label,
                deleted=" (data deleted)" if delete_data else "",
            )
            self._torrent_event(torrent, "removed", {"deleted_data": delete_data})
            return {"info_hash": torrent.hex, "removed": True, "deleted_data": delete_data}

        d.addCallback(lambda _: self.run_blocking(cleanup, None))
        return d.addCallback(done)

    def start(self) -> None:
        """Bring back the torrents added before the last stop, with their progress.

        Opens the resume store at once (a peek: a store that is not ours raises
        ResumeStoreError, nothing is loaded). Checking it, recovering a damaged one (its
        report is said loudly: ``_store_reported``), reading and parsing run on the thread pool; the torrents then come up
        LOAD_SLICE per reactor turn, so the control socket answers meanwhile and
        ``torrent.list`` shows them as they come. Saved progress is trusted without
        hashing where the files still have their recorded sizes (core/resume.py). See
        core/torrent_loader.py.
        """
        store = self.store
        self.saver.start()
        self.queue.holding = True  # the queue decides once all are loaded, in its order
        self.loader.start(store)

    def _store_reported(self, report: StoreReport) -> None:
        """Damage, loss or a rebuild of the resume store: said loudly (the log at critical,
        a ``resume_store`` event, ``session.info``), never taken for "no torrents"."""
        self.store_report = report
        if report.serious:
            _log.critical("{message}", message=report.message)
        else:
            _log.warn("{message}", message=report.message)
        self.emit(TorrentEvent("resume_store", "", "", "", report.as_dict()))

    def _loaded(self) -> None:
        self.heap.freeze()  # the stored torrents are built (core/heap.py)
        self.queue.release()
        if self.torrents:
            _log.info("loaded {n} torrent(s)", n=len(self.torrents))
        self.magnets.start()

    def _bring_up(self, item: StoredTorrent, meta: Any) -> None:
        try:
            torrent = Torrent(meta, self.options_for(item.options, stored=True), self._env())
        except ValueError as exc:  # an unknown strategy
            _log.error("stored torrent {h} is unusable: {e}", h=item.info_hash, e=str(exc))
            return
        self.heap.built()
        torrent.stored_options = torrent.options
        root = item.options.get("storage_root")  # where its files were (incomplete_dir?)
        if isinstance(root, str) and root.startswith("/") and "\0" not in root:
            torrent.storage.set_root(Path(root))
        else:  # stored before incomplete_dir existed: in its save path
            torrent.storage.set_root(torrent.options.save_path)
        # the device its data was on: a start on another (empty) disk is storage missing
        dev = stored_storage_dev(item.options, torrent.storage.save_path)
        torrent.storage.root_dev = torrent.stored_root_dev = dev
        if isinstance(item.options.get("added_at"), (int, float)):
            torrent.added_at = item.options["added_at"]
        torrent.seed_clock = SeedClock.from_json(item.options)
        self._hold(torrent)
        self._start(torrent, item.progress)

    def stop(self) -> defer.Deferred[Any]:
        """Stop every torrent (announce ``stopped``, close peers), save progress, close the store.

        Progress is snapshotted right after the torrents' local stop (peers closed), not
        after the trackers answered, so a slow tracker cannot eat the shutdown timeout that
        bounds this whole Deferred. Only torrents that changed since their last save are
        written; each torrent's files are closed after its save.
        """
        magnets = self.magnets.stop()
        moves = self.mover.stop()  # undone: the stored save path stays where the files are
        self.queue.stop()
        self.seeding_goals.stop()
        if self._store is None:  # never opened (a failed start): nothing to save
            return defer.DeferredList(
                [magnets, *(t.stop() for t in self.torrents.values())], consumeErrors=True
            )
        saver = self.saver
        saver.stop_timer()
        stops, changed, seeding = [], [], []
        for t in list(self.torrents.values()):
            if t.state is TorrentState.SEEDING:
                seeding.append(t)  # its seeding time is kept (core/seeding_goals.py)
            stops.append(t.stop(close_storage=False))
            if saver.dirty(t):
                changed.append(t)
            else:
                t.storage.close()
        if seeding:
            items = [(t.hex, self._options_json(t)) for t in seeding]
            store = self.store
            d = saver.job_many([t.info_hash for t in seeding], save_options_batch, store, items)
            d.addErrback(lambda f: _log.error("saving seeding times failed: {e}", e=f.value))
        saved = saver.save_batch(changed, close_storage=True)  # one store write
        saved.addCallback(lambda _: saver.close())
        return defer.DeferredList([magnets, moves, *stops, saved], consumeErrors=True)
