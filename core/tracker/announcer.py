"""Announcer: when and to which tracker a torrent announces (BEP 3, BEP 12 tiers).

One announce cycle at a time walks the tiers in order and stops at the first tracker
that answers; that tracker moves to the front of its tier. A tracker that fails backs
off exponentially on its own, so one broken tracker never silences the others. A URL the
outbound policy refuses (core/outbound.py: a local address without a tracker path) is
listed as ``refused`` with the reason and never asked; ``refresh_policy`` judges again after
the torrent's ``allow_local_trackers`` changed.

Size: about 510 lines, because the tier walk, the back-off, ``stop`` and each tracker's
status (policy verdict included) are one state machine over one list of trackers (a
hybrid's announce under two info hashes is one step of it).

A hybrid torrent (BEP 52) is in two swarms: given ``extra_ids`` (its truncated v2 hash),
each announce to a tracker is sent once per info hash, as libtorrent does (same peer id,
port and counters), in parallel and as one announce: it succeeds when any of them does
(the first id's answer leads: interval, counts), and each answer's peers reach ``on_peers``
tagged with the id they were found under (``swarm_id``, None for the first).

Its timers are entries in the session's Scheduler (core/scheduler.py): an announcer
waiting for its next announce holds one heap entry and no reactor call of its own.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.errors import TrackerError
from btd.core.outbound import check_url
from btd.core.scheduler import Scheduler, Timer
from btd.core.tracker.codec import (
    MIN_INTERVAL,
    AnnounceRequest,
    AnnounceResponse,
    clean_message,
)
from btd.core.tracker.health import TrackerHealth

log = Logger()


class TrackerClient(Protocol):
    """Talks to trackers of one URL scheme (http(s) built in, udp by plugin)."""

    def announce(self, url: str, req: AnnounceRequest) -> Deferred[AnnounceResponse]:
        """Fire with the answer, or errback (ideally with TrackerError)."""
        ...


@dataclasses.dataclass(eq=False)
class _Tracker:
    url: str
    tier: int
    client: TrackerClient | None
    tracker_id: bytes | None = None
    failures: int = 0
    status: str = "not contacted"
    last_error: str | None = None
    last_warning: str | None = None
    seeders: int | None = None
    leechers: int | None = None
    peers_last: int | None = None
    refused: bool = False  # by the outbound policy (reason in last_error)
    started: bool = False  # got (or, in flight, may get) our "started": owes a "stopped"
    last_ok: float | None = None
    min_interval: float = 0.0
    next_at: float | None = None  # regular re-announce (after success) or back-off end


def _error_text(failure: Failure) -> str:
    """One line, bounded and without terminal escapes, whatever a client or tracker said."""
    text = clean_message(str(failure.value))
    if failure.check(TrackerError) and text:
        return text
    return f"{type(failure.value).__name__}: {text}" if text else type(failure.value).__name__


class Announcer:
    """Schedules announces for one torrent over its tiers of trackers."""

    def __init__(
        self,
        clock: IReactorTime,
        tiers: Sequence[Sequence[str]],
        client_for: Callable[[str], TrackerClient | None],
        request_for: Callable[[str], AnnounceRequest],
        on_peers: Callable[..., None],
        *,
        extra_ids: Sequence[bytes] = (),
        rng: random.Random | None = None,
        backoff_base: float = 60,
        backoff_max: float = 3600,
        scheduler: Scheduler | None = None,
        health: TrackerHealth | None = None,
        allow_local: Callable[[], bool] = lambda: False,
    ) -> None:
        self._clock = clock
        self._allow_local = allow_local  # the torrent's allow_local_trackers, read live
        self._health = health
        self._scheduler = scheduler if scheduler is not None else Scheduler(clock)
        self._request_for = request_for
        self._on_peers = on_peers  # (peers) or (peers, swarm_id=an extra id)
        self._extra_ids = tuple(extra_ids)
        self._rng = rng if rng is not None else random.Random()
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._tiers: list[list[_Tracker]] = []
        seen: set[str] = set()
        for tier_urls in tiers:
            tier = []
            for url in tier_urls:
                if url in seen:
                    continue
                seen.add(url)
                tier.append(self._make_tracker(url, len(self._tiers), client_for))
            if tier:
                self._rng.shuffle(tier)  # BEP 12: shuffle each tier once
                self._tiers.append(tier)
        self._running = False
        self._generation = 0  # bumped by start/stop; late answers of old runs are ignored
        self._timer: Timer | None = None
        self._inflight: Deferred[Any] | None = None
        self._rerun = False
        self._completed_pending = False
        self._completed_sent = False
        self.refresh_policy()

    def refresh_policy(self) -> None:
        """Judge every URL by the outbound policy again (the torrent's option changed)."""
        allow_local = self._allow_local()
        for tracker in self._trackers():
            if tracker.client is None:
                continue
            verdict = check_url(tracker.url, allow_local=allow_local)
            if verdict.refused is not None:
                if not tracker.refused:
                    log.info("tracker {url} {why}", url=tracker.url, why=verdict.refused)
                tracker.refused = True
                tracker.status, tracker.last_error = "refused", verdict.refused
            elif tracker.refused:
                tracker.refused = False
                tracker.status, tracker.last_error = "not contacted", None
                tracker.failures, tracker.next_at = 0, None

    def _usable(self, tracker: _Tracker) -> bool:
        return tracker.client is not None and not tracker.refused

    @staticmethod
    def _make_tracker(
        url: str, tier: int, client_for: Callable[[str], TrackerClient | None]
    ) -> _Tracker:
        scheme = urlsplit(url).scheme.lower() if "://" in url else ""
        try:
            client = client_for(url)
        except Exception as exc:  # a plugin bug disables one tracker, not the torrent
            client, reason = None, f"no client for {url!r}: {exc!r}"
        else:
            reason = f"no client for {scheme or url}://"
            if scheme == "udp":
                reason += " (enable the udp_tracker plugin)"
        tracker = _Tracker(url=url, tier=tier, client=client)
        if client is None:
            tracker.status, tracker.last_error = "disabled", reason
        return tracker

    # -- public API ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def start(self, delay: float = 0.0) -> None:
        """Begin announcing: sends ``started`` now (or after ``delay`` seconds, which spreads
        the first announces of many torrents), then re-announces on schedule."""
        if self._running:
            return
        self._running = True
        self._generation += 1
        for tracker in self._trackers():
            tracker.started = False
            tracker.failures = 0
            tracker.next_at = None
        if delay > 0:
            self._schedule(self._clock.seconds() + delay)
        else:
            self._run_cycle()

    def completed(self) -> None:
        """The download finished: tell the working tracker ``completed`` (once)."""
        if self._completed_sent or self._completed_pending:
            return
        self._completed_pending = True
        if self._running:
            self._announce_now(ignore_backoff=False)

    def force(self) -> None:
        """Re-announce now, but not before the last tracker's ``min interval`` has passed."""
        if not self._running or self._inflight is not None:
            return  # an announce is already under way
        last = max(
            (t for t in self._trackers() if t.last_ok is not None),
            key=lambda t: t.last_ok or 0.0,
            default=None,
        )
        if last is not None and last.last_ok is not None:
            earliest = last.last_ok + last.min_interval
            if earliest > self._clock.seconds():
                self._schedule(earliest, ignore_backoff=True)
                return
        self._announce_now(ignore_backoff=True)

    def reannounce(self) -> float | None:
        """Announce now (``torrent.reannounce``): failure back-off is ignored, a tracker's
        ``min interval`` is not: inside one, the announce is scheduled for when the last
        of them ends. Returns the seconds until it happens (0.0: now, or one is under way),
        or None when nothing can be announced (not running, no usable tracker)."""
        if not self._running or not any(self._usable(t) for t in self._trackers()):
            return None
        if self._inflight is not None:
            return 0.0
        now = self._clock.seconds()
        earliest = max(
            (
                t.last_ok + t.min_interval
                for t in self._trackers()
                if self._usable(t) and t.last_ok is not None
            ),
            default=now,
        )
        if earliest > now:
            self._schedule(earliest, ignore_backoff=True)
            return earliest - now
        self._announce_now(ignore_backoff=True)
        return 0.0

    def stop(self, timeout: float) -> Deferred[None]:
        """Send ``stopped`` to every tracker that got ``started``; never errbacks.

        Fires when all have answered or after ``timeout`` seconds, whichever is first.
        """
        result: Deferred[None] = Deferred()
        if not self._running:
            result.callback(None)
            return result
        self._running = False
        self._generation += 1
        self._cancel_timer()
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            inflight.cancel()
        pending: list[Deferred[Any]] = []
        for tracker in self._trackers():
            tracker.next_at = None
            if tracker.status == "updating" and not tracker.refused:
                tracker.status = "working" if tracker.last_ok is not None else "not contacted"
            if not tracker.started or tracker.client is None:
                continue
            tracker.started = False
            d = self._send(tracker, "stopped")
            d.addErrback(self._log_stop_failure, tracker.url)
            pending.append(d)
        if not pending:
            result.callback(None)
            return result
        timer = self._clock.callLater(timeout, self._stop_timed_out, pending)

        def done(_: object) -> None:
            if timer.active():
                timer.cancel()
            if not result.called:
                result.callback(None)

        DeferredList(pending, consumeErrors=True).addBoth(done)
        return result

    def status(self) -> list[dict[str, Any]]:
        """One dict per tracker, in tier order, for RPC and btctl."""
        now = self._clock.seconds()
        out = []
        for tracker in self._trackers():
            nxt = None
            if self._running and tracker.next_at is not None:
                nxt = max(0.0, tracker.next_at - now)
            out.append(
                {
                    "url": tracker.url,
                    "tier": tracker.tier,
                    "status": tracker.status,
                    "last_error": tracker.last_error,
                    "last_warning": tracker.last_warning,
                    "next_announce": nxt,
                    "seeders": tracker.seeders,
                    "leechers": tracker.leechers,
                    "peers_last": tracker.peers_last,
                }
            )
        return out

    # -- the announce cycle -------------------------------------------------------

    def _trackers(self) -> list[_Tracker]:
        return [t for tier in self._tiers for t in tier]

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None

    def _schedule(self, at: float, *, ignore_backoff: bool = False) -> None:
        self._cancel_timer()
        at = max(at, self._clock.seconds())
        self._timer = self._scheduler.call_at(at, self._run_cycle, ignore_backoff)

    def _announce_now(self, *, ignore_backoff: bool) -> None:
        if self._inflight is not None:
            self._rerun = True
            return
        self._cancel_timer()
        self._run_cycle(ignore_backoff)

    def _event_for(self, tracker: _Tracker) -> str:
        if self._completed_pending:
            return "completed"
        return "" if tracker.started else "started"

    def _run_cycle(self, ignore_backoff: bool = False) -> None:
        """Try trackers in tier order until one answers."""
        self._timer = None
        if not self._running or self._inflight is not None:
            return
        self._rerun = False
        now = self._clock.seconds()
        candidates = [
            t
            for t in self._trackers()
            if self._usable(t)
            and (ignore_backoff or t.failures == 0 or t.next_at is None or t.next_at <= now)
            and not self._down(t, now)
        ]
        self._try(candidates, 0, self._generation)

    def _down(self, tracker: _Tracker, now: float) -> bool:
        """Down for other torrents too (TrackerHealth): wait until its probe is due."""
        if self._health is None:
            return False
        until = self._health.down_until(tracker.url, now)
        if until is None:
            return False
        tracker.status = "error"
        error = self._health.last_error.get(tracker.url, "")
        tracker.last_error = f"not asked: failing for other torrents too ({error})"
        tracker.failures = max(tracker.failures, 1)
        spread = max(1.0, (until - now) * 0.5)  # the torrents come back one by one
        tracker.next_at = until + spread * self._rng.random()
        return True

    def _try(self, candidates: list[_Tracker], index: int, gen: int) -> None:
        if index >= len(candidates):
            self._cycle_failed()
            return
        tracker = candidates[index]
        event = self._event_for(tracker)
        tracker.status = "updating"
        if event == "started":
            tracker.started = True  # the request may reach it even if we never hear back
        d = self._send(tracker, event)
        self._inflight = d

        def ok(resp: AnnounceResponse) -> None:
            if gen != self._generation:
                return
            self._inflight = None
            self._succeeded(tracker, event, resp)

        def fail(failure: Failure) -> None:
            if gen != self._generation:
                return
            self._inflight = None
            self._failed(tracker, event, failure)
            self._try(candidates, index + 1, gen)

        d.addCallbacks(ok, fail)
        d.addErrback(lambda f: log.failure("announcer bug", f))

    def _send(self, tracker: _Tracker, event: str) -> Deferred[AnnounceResponse]:
        """Announce ``event`` to one tracker, under each of the torrent's info hashes."""
        if not self._extra_ids:
            return self._send_one(tracker, event, None)
        sent = [self._send_one(tracker, event, None)]
        sent += [self._send_one(tracker, event, extra) for extra in self._extra_ids]
        gen = self._generation
        merged = DeferredList(sent, consumeErrors=True)
        return merged.addCallback(self._merge, event, gen)  # type: ignore[return-value]

    def _merge(
        self, results: list[tuple[bool, Any]], event: str, gen: int
    ) -> AnnounceResponse | Failure:
        """One announce from its answers per info hash: the extra ids' peers go out
        tagged; the first id's answer leads (interval, counts), else the next that came;
        all failed: the first id's failure."""
        lead: AnnounceResponse | None = None
        for (ok, value), swarm_id in zip(results, (None, *self._extra_ids), strict=True):
            if not ok:
                continue
            lead = lead or value
            if swarm_id is not None and event != "stopped" and gen == self._generation:
                try:
                    self._on_peers(value.peers, swarm_id=swarm_id)
                except Exception:
                    log.failure("on_peers callback failed")
        if lead is None:
            return results[0][1]  # type: ignore[no-any-return]
        if results[0][0]:
            return lead
        return dataclasses.replace(lead, peers=())  # its peers went out tagged already

    def _send_one(
        self, tracker: _Tracker, event: str, info_hash: bytes | None
    ) -> Deferred[AnnounceResponse]:
        """Announce ``event`` to one tracker under ``info_hash`` (None: the request's own);
        synchronous errors become a failed Deferred."""
        assert tracker.client is not None
        try:
            req = self._request_for(event)
            if info_hash is not None:
                req = dataclasses.replace(req, info_hash=info_hash)
            if tracker.tracker_id is not None:
                req = dataclasses.replace(req, tracker_id=tracker.tracker_id)
            if self._allow_local():
                req = dataclasses.replace(req, allow_local=True)
            d = tracker.client.announce(tracker.url, req)
            if not isinstance(d, Deferred):
                raise TypeError(f"tracker client returned {type(d).__name__}, not a Deferred")
        except Exception:
            failed: Deferred[AnnounceResponse] = Deferred()
            failed.errback(Failure())
            return failed
        return d

    def _succeeded(self, tracker: _Tracker, event: str, resp: AnnounceResponse) -> None:
        now = self._clock.seconds()
        tier = self._tiers[tracker.tier]
        tier.remove(tracker)
        tier.insert(0, tracker)  # BEP 12: the one that answered goes first
        tracker.status, tracker.last_error, tracker.failures = "working", None, 0
        if self._health is not None:
            self._health.ok(tracker.url)
        tracker.last_warning = None if resp.warning is None else clean_message(resp.warning)
        tracker.seeders, tracker.leechers = resp.complete, resp.incomplete
        tracker.peers_last = len(resp.peers)
        tracker.started = True
        if resp.tracker_id is not None:
            tracker.tracker_id = resp.tracker_id
        if event == "completed":
            self._completed_pending, self._completed_sent = False, True
        tracker.min_interval = float(resp.min_interval or 0)
        interval = max(resp.interval, resp.min_interval or 0, MIN_INTERVAL)
        tracker.last_ok = now
        tracker.next_at = now + interval
        try:
            self._on_peers(resp.peers)
        except Exception:
            log.failure("on_peers callback failed for {url}", url=tracker.url)
        if self._rerun:  # completed() arrived while this announce was in flight
            self._run_cycle()
            return
        self._schedule(tracker.next_at)

    def _failed(self, tracker: _Tracker, event: str, failure: Failure) -> None:
        tracker.status = "error"
        previous, tracker.last_error = tracker.last_error, _error_text(failure)
        if event == "started":
            tracker.started = False  # it did not register us: it owes no "stopped"
        tracker.failures += 1
        delay = min(self._backoff_max, self._backoff_base * 2 ** (tracker.failures - 1))
        delay *= 1.0 - 0.25 * self._rng.random()  # jitter: spread retries of many torrents
        tracker.next_at = self._clock.seconds() + delay
        if self._health is not None:
            self._health.failed(tracker.url, self._clock.seconds(), tracker.last_error)
        if tracker.last_error != previous:  # one line per distinct failure, not per retry
            log.info(
                "tracker {url} failed ({n} in a row): {error}",
                url=tracker.url,
                n=tracker.failures,
                error=tracker.last_error,
            )

    def _cycle_failed(self) -> None:
        """No tracker answered: retry when the first back-off ends."""
        waits = [t.next_at for t in self._trackers() if self._usable(t) and t.next_at]
        if waits and self._running:
            self._schedule(min(waits))

    def _stop_timed_out(self, pending: list[Deferred[Any]]) -> None:
        for d in pending:
            if not d.called:
                d.cancel()

    @staticmethod
    def _log_stop_failure(failure: Failure, url: str) -> None:
        log.info("stopped announce to {url} failed: {error}", url=url, error=_error_text(failure))
