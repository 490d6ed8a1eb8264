"""Announcer: BEP 12 tiers, intervals, events, back-off, stop; driven by a Clock."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from btd.core.errors import TrackerError
from btd.core.tracker.announcer import Announcer
from btd.core.tracker.codec import AnnounceRequest, AnnounceResponse
from btd.core.tracker.health import TrackerHealth
from btd.core.types import PeerAddress

A, B, C = "http://a/announce", "http://b/announce", "http://c/announce"


class NoShuffle(random.Random):
    """Keeps tier order so tests can name the first tracker; jitter stays seeded."""

    def shuffle(self, x: Any) -> None:  # type: ignore[override]
        pass


class FakeClient:
    """Records announces; each returns a Deferred the test fires by hand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, AnnounceRequest, Deferred[AnnounceResponse]]] = []

    def announce(self, url: str, req: AnnounceRequest) -> Deferred[AnnounceResponse]:
        d: Deferred[AnnounceResponse] = Deferred()
        self.calls.append((url, req, d))
        return d

    def pending(self) -> list[tuple[str, str]]:
        return [(u, r.event) for u, r, d in self.calls if not d.called]

    def last(self) -> tuple[str, AnnounceRequest, Deferred[AnnounceResponse]]:
        return self.calls[-1]

    def answer(self, resp: AnnounceResponse | None = None, **kw: Any) -> None:
        url, req, d = self.calls[-1]
        assert not d.called
        d.callback(resp or response(**kw))

    def fail(self, message: str = "boom") -> None:
        self.calls[-1][2].errback(TrackerError(message))


def response(
    interval: int = 1800,
    min_interval: int | None = None,
    peers: Sequence[PeerAddress] = (("10.0.0.1", 1),),
    tracker_id: bytes | None = None,
    warning: str | None = None,
) -> AnnounceResponse:
    return AnnounceResponse(
        interval=interval,
        min_interval=min_interval,
        tracker_id=tracker_id,
        complete=3,
        incomplete=4,
        peers=tuple(peers),
        warning=warning,
    )


def make_request(event: str) -> AnnounceRequest:
    return AnnounceRequest(
        info_hash=b"i" * 20,
        peer_id=b"p" * 20,
        port=1,
        uploaded=0,
        downloaded=0,
        left=0,
        event=event,
    )


class Harness:
    def __init__(
        self, tiers: Sequence[Sequence[str]], rng: random.Random | None = None, **kw: Any
    ) -> None:
        self.clock = Clock()
        self.client = FakeClient()
        self.peers: list[Sequence[PeerAddress]] = []
        self.announcer = Announcer(
            self.clock,
            tiers,
            lambda url: self.client if url.startswith("http") else None,
            make_request,
            self.peers.append,
            rng=rng or NoShuffle(7),
            **kw,
        )

    def status(self, url: str) -> dict[str, Any]:
        return next(s for s in self.announcer.status() if s["url"] == url)


def test_start_sends_started_and_reannounces_after_interval() -> None:
    h = Harness([[A]])
    h.announcer.start()
    assert h.client.pending() == [(A, "started")]
    assert h.status(A)["status"] == "updating"
    h.client.answer(interval=900, peers=[("10.0.0.9", 5)])
    assert h.peers == [(("10.0.0.9", 5),)]
    st = h.status(A)
    assert st["status"] == "working"
    assert (st["seeders"], st["leechers"], st["peers_last"], st["next_announce"]) == (3, 4, 1, 900)
    h.clock.advance(899)
    assert h.client.pending() == []
    h.clock.advance(1)
    assert h.client.pending() == [(A, "")]


def test_min_interval_wins_when_larger_and_interval_clamped_to_60() -> None:
    h = Harness([[A]])
    h.announcer.start()
    h.client.answer(interval=100, min_interval=500)
    h.clock.advance(499)
    assert h.client.pending() == []
    h.clock.advance(1)
    assert h.client.pending() == [(A, "")]
    h.client.answer(interval=10)  # a client that does not clamp: the announcer does
    h.clock.advance(59)
    assert h.client.pending() == []
    h.clock.advance(1)
    assert h.client.pending() == [(A, "")]


def test_tier_fallback_and_promotion() -> None:
    h = Harness([[A, B], [C]])
    h.announcer.start()
    assert h.client.pending() == [(A, "started")]
    h.client.fail("A is down")
    assert h.client.pending() == [(B, "started")]
    h.client.fail("B is down")
    assert h.client.pending() == [(C, "started")]
    h.client.answer(interval=3600)
    assert [s["url"] for s in h.announcer.status()] == [A, B, C]
    assert h.status(A)["status"] == "error" and h.status(A)["last_error"] == "A is down"
    assert h.status(C)["status"] == "working"

    # Next cycle: A's back-off has long ended; B answers and moves to the front of tier 0.
    h.clock.advance(3600)
    assert h.client.pending() == [(A, "started")]
    h.client.fail()
    assert h.client.pending() == [(B, "started")]
    h.client.answer()
    assert [s["url"] for s in h.announcer.status()] == [B, A, C]
    h.clock.advance(1800)
    assert h.client.pending() == [(B, "")]


def test_tiers_are_shuffled_once() -> None:
    urls = [f"http://t{i}/announce" for i in range(8)]
    h = Harness([urls], rng=random.Random(3))
    order = [s["url"] for s in h.announcer.status()]
    assert sorted(order) == sorted(urls) and order != urls
    h.announcer.start()
    assert h.client.pending() == [(order[0], "started")]


def test_backoff_grows_and_resets() -> None:
    h = Harness([[A]], backoff_base=60, backoff_max=1000)
    h.announcer.start()
    waits = []
    for _ in range(6):
        h.client.fail()
        wait = h.status(A)["next_announce"]
        waits.append(wait)
        h.clock.advance(wait - 0.001)
        assert h.client.pending() == []
        h.clock.advance(0.001)
        assert h.client.pending() == [(A, "started")]
    assert 45 <= waits[0] <= 60
    assert all(later > earlier for earlier, later in zip(waits[:4], waits[1:4]))
    assert max(waits) <= 1000 and waits[-1] >= 750  # capped (with jitter)
    h.client.answer(interval=120)
    assert h.status(A)["last_error"] is None
    h.clock.advance(120)
    h.client.fail()
    assert 45 <= h.status(A)["next_announce"] <= 60  # back to the base after a success


def test_completed_sent_once_to_working_tracker() -> None:
    h = Harness([[A, B]])
    h.announcer.start()
    h.client.fail()
    h.client.answer()  # B works now
    h.announcer.completed()
    # A is backing off, so the working tracker B gets it.
    assert h.client.pending() == [(B, "completed")]
    h.client.answer()
    h.announcer.completed()
    assert h.client.pending() == []
    h.clock.advance(1800)
    assert h.client.pending()[-1][1] != "completed"
    assert all(r.event != "completed" for _, r, _d in h.client.calls[3:])


def test_completed_during_inflight_announce_follows_it() -> None:
    h = Harness([[A]])
    h.announcer.start()
    h.announcer.completed()
    assert h.client.pending() == [(A, "started")]
    h.client.answer()
    assert h.client.pending() == [(A, "completed")]
    h.client.answer()
    assert [r.event for _, r, _d in h.client.calls] == ["started", "completed"]


def test_stopped_only_to_started_trackers() -> None:
    h = Harness([[A], [B], [C]])
    h.announcer.start()
    h.client.fail()  # A refused our started: it does not know us
    h.client.answer()  # B got started
    d = h.announcer.stop(10)
    assert h.client.pending() == [(B, "stopped")]
    fired: list[object] = []
    d.addBoth(fired.append)
    assert fired == []
    h.client.answer()
    assert fired == [None]
    h.clock.advance(10_000)
    assert h.client.pending() == []  # timers cancelled
    assert all(s["next_announce"] is None for s in h.announcer.status())


def test_stop_is_bounded_by_timeout_when_tracker_never_answers() -> None:
    h = Harness([[A, B]])
    h.announcer.start()
    h.client.answer()
    h.clock.advance(1800)
    h.client.answer()  # A now started and working
    d = h.announcer.stop(5)
    stopped = h.client.last()[2]
    fired: list[object] = []
    d.addBoth(fired.append)
    h.clock.advance(4.9)
    assert fired == []
    h.clock.advance(0.1)
    assert fired == [None]
    assert stopped.called  # the hanging request was cancelled, not leaked


def test_stop_sends_stopped_to_tracker_with_started_in_flight() -> None:
    h = Harness([[A]])
    h.announcer.start()
    started = h.client.last()[2]
    d = h.announcer.stop(5)
    assert started.called  # cancelled
    assert h.client.pending() == [(A, "stopped")]
    h.client.fail()  # a failing stopped never errbacks stop()
    fired: list[object] = []
    d.addBoth(fired.append)
    assert fired == [None]


def test_stop_without_started_trackers_fires_at_once_and_restart_works() -> None:
    h = Harness([[A]])
    fired: list[object] = []
    h.announcer.stop(5).addBoth(fired.append)
    assert fired == [None]
    h.announcer.start()
    h.client.fail()
    h.announcer.stop(5).addBoth(fired.append)
    assert fired == [None, None]
    h.announcer.start()
    assert h.client.pending() == [(A, "started")]


def test_garbage_answer_is_error_on_that_tracker_only() -> None:
    h = Harness([[A, B]])
    h.announcer.start()
    h.client.fail("tracker announce answer is not valid bencode: junk")
    h.client.answer(peers=[("10.1.1.1", 1000)])
    assert h.peers == [(("10.1.1.1", 1000),)]
    assert h.status(A)["status"] == "error"
    assert "bencode" in h.status(A)["last_error"]
    assert h.status(B)["status"] == "working" and h.status(B)["last_error"] is None


def test_non_tracker_exceptions_are_errors_too() -> None:
    class Raising:
        def announce(self, url: str, req: AnnounceRequest) -> Deferred[AnnounceResponse]:
            raise RuntimeError("plugin bug")

    clock = Clock()
    got: list[Sequence[PeerAddress]] = []
    client = FakeClient()
    ann = Announcer(
        clock,
        [[A, B]],
        lambda u: Raising() if u == A else client,
        make_request,
        got.append,
        rng=NoShuffle(),
    )
    ann.start()
    assert "plugin bug" in ann.status()[0]["last_error"]
    client.answer()
    assert len(got) == 1


def test_disabled_scheme() -> None:
    h = Harness([["udp://tr.example:6969/announce", A]])
    st = h.status("udp://tr.example:6969/announce")
    assert st["status"] == "disabled"
    assert st["last_error"] == "no client for udp:// (enable the udp_tracker plugin)"
    h.announcer.start()
    assert h.client.pending() == [(A, "started")]
    h.client.fail()
    h.clock.advance(10_000)
    assert h.status("udp://tr.example:6969/announce")["status"] == "disabled"


def test_only_disabled_trackers_does_nothing() -> None:
    h = Harness([["udp://x/announce"]])
    h.announcer.start()
    h.clock.advance(10_000)
    assert h.client.calls == []


def test_tracker_id_and_warning_are_kept() -> None:
    h = Harness([[A]])
    h.announcer.start()
    assert h.client.last()[1].tracker_id is None
    h.client.answer(tracker_id=b"T1", warning="slow down")
    assert h.status(A)["last_warning"] == "slow down"
    assert h.status(A)["status"] == "working"
    h.clock.advance(1800)
    assert h.client.last()[1].tracker_id == b"T1"


def test_force_honours_min_interval() -> None:
    h = Harness([[A]])
    h.announcer.start()
    h.client.answer(interval=1800, min_interval=300)
    h.clock.advance(100)
    h.announcer.force()
    assert h.client.pending() == []
    h.clock.advance(199)
    assert h.client.pending() == []
    h.clock.advance(1)
    assert h.client.pending() == [(A, "")]
    h.client.answer(interval=1800)  # no min interval: force is immediate
    h.announcer.force()
    assert h.client.pending() == [(A, "")]


def test_force_retries_trackers_in_backoff() -> None:
    h = Harness([[A]])
    h.announcer.start()
    h.client.fail()
    h.announcer.force()
    assert h.client.pending() == [(A, "started")]


def test_on_peers_exception_does_not_break_announcer() -> None:
    clock, client = Clock(), FakeClient()

    def bad(_: Sequence[PeerAddress]) -> None:
        raise ValueError("bug")

    ann = Announcer(clock, [[A]], lambda u: client, make_request, bad, rng=NoShuffle())
    ann.start()
    client.answer(interval=100)
    assert ann.status()[0]["status"] == "working"
    clock.advance(100)
    assert client.pending() == [(A, "")]


@pytest.mark.parametrize("tiers", [[], [[]], [[A, A], [A]]])
def test_odd_tier_lists(tiers: list[list[str]]) -> None:
    h = Harness(tiers)
    assert len(h.announcer.status()) == (1 if any(tiers) else 0)
    h.announcer.start()
    h.clock.advance(10)


# -- reannounce (torrent.reannounce) ---------------------------------------------------------------
def test_reannounce_now_when_outside_min_interval() -> None:
    h = Harness([[A]])
    assert h.announcer.reannounce() is None  # not running: nothing to announce
    h.announcer.start()
    assert h.announcer.reannounce() == 0.0  # "started" is under way: nothing more to do
    h.client.answer(interval=1800)
    h.clock.advance(10)
    assert h.announcer.reannounce() == 0.0
    assert h.client.pending() == [(A, "")]
    h.client.answer(interval=1800)
    assert h.status(A)["next_announce"] == 1800  # the regular schedule goes on from there


def test_reannounce_inside_min_interval_is_scheduled_for_its_end() -> None:
    h = Harness([[A]])
    h.announcer.start()
    h.client.answer(interval=1800, min_interval=300)
    h.clock.advance(100)
    assert h.announcer.reannounce() == 200.0
    assert h.client.pending() == []
    h.clock.advance(199)
    assert h.client.pending() == []
    h.clock.advance(1)
    assert h.client.pending() == [(A, "")]


def test_reannounce_ignores_failure_backoff() -> None:
    h = Harness([[A], [B]])
    h.announcer.start()
    h.client.fail()
    h.client.fail()
    assert h.client.pending() == []
    assert h.announcer.reannounce() == 0.0
    assert h.client.pending() == [(A, "started")]


def test_reannounce_without_usable_trackers() -> None:
    h = Harness([["udp://x/announce"]])
    h.announcer.start()
    assert h.announcer.reannounce() is None


def test_a_dead_tracker_is_probed_not_asked_by_every_torrent() -> None:
    clock, client = Clock(), FakeClient()
    health = TrackerHealth(down_after=3, base=60)
    announcers = [
        Announcer(
            clock,
            [[A]],
            lambda url: client,
            make_request,
            lambda p: None,
            rng=random.Random(n),
            health=health,
        )  # fmt: skip
        for n in range(10)
    ]
    for a in announcers[:3]:
        a.start()
        client.fail("tracker unreachable: refused")
    for a in announcers[3:]:
        a.start()
    assert len(client.calls) == 3  # the other seven did not ask a tracker that is down
    status = announcers[5].status()[0]
    assert status["status"] == "error" and "refused" in status["last_error"]
    assert 60 <= status["next_announce"] <= 90  # back when it is up again, spread
    clock.advance(59)
    assert len(client.calls) == 3
    clock.advance(100)
    # after the down period one torrent probes; the others wait for its answer
    assert len(client.pending()) == 1
    client.answer()
    clock.advance(200)
    assert len(client.calls) > 4  # it answered: everyone announces again


def test_an_answer_resets_a_trackers_health() -> None:
    health = TrackerHealth(down_after=2, base=60)
    health.failed(A, 0, "x")
    health.ok(A)
    health.failed(A, 0, "x")
    assert health.down_until(A, 1) is None  # one failure since the answer: not down
    health.failed(A, 1, "x")
    assert health.down_until(A, 2) == 61


# -- the outbound policy (issue 13 class 4) -----------------------------------------------------
LOCAL_RPC = "http://127.0.0.1:9091/transmission/rpc"


def test_a_local_url_without_a_tracker_path_is_refused_and_never_asked() -> None:
    h = Harness([[LOCAL_RPC], [A]])
    assert h.status(LOCAL_RPC)["status"] == "refused"
    assert "SSRF" in h.status(LOCAL_RPC)["last_error"]
    h.announcer.start()
    assert h.client.pending() == [(A, "started")]  # the refused one is skipped
    h.client.fail()
    h.clock.advance(4000)
    assert all(url == A for url, _req, _d in h.client.calls)
    assert h.status(LOCAL_RPC)["status"] == "refused"


def test_the_torrent_option_lets_a_local_url_be_asked() -> None:
    allow = [False]
    h = Harness([[LOCAL_RPC]], allow_local=lambda: allow[0])
    h.announcer.start()
    assert h.client.calls == []
    assert h.announcer.reannounce() is None  # nothing usable
    allow[0] = True
    h.announcer.refresh_policy()
    assert h.status(LOCAL_RPC)["status"] == "not contacted"
    assert h.announcer.reannounce() == 0.0
    url, req, _d = h.client.last()
    assert url == LOCAL_RPC and req.allow_local  # the client checks resolved addresses by it
    allow[0] = False
    h.announcer.refresh_policy()
    assert h.status(LOCAL_RPC)["status"] == "refused"


def test_a_tracker_path_or_a_public_host_is_asked() -> None:
    urls = ["http://127.0.0.1:6969/announce", "http://10.1.2.3/x/announce.php", "http://a/ann"]
    h = Harness([urls])
    assert [h.status(u)["status"] for u in urls] == ["not contacted"] * 3
    h.announcer.start()
    _url, req, _d = h.client.last()
    assert not req.allow_local


# -- tracker failure text (issue 13 class 6) ----------------------------------------------------
def test_a_hostile_failure_text_is_one_bounded_clean_line_logged_once() -> None:
    from twisted.logger import formatEvent, globalLogPublisher

    from btd.core.limits import TRACKER_MESSAGE_MAX

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        h = Harness([[A]])
        h.announcer.start()
        hostile = "\x1b[2J\x1b]0;pwned\x07bad\r\nline\n" * 40_000  # ~1 MB, 80,000 lines
        for _ in range(5):
            h.client.fail(hostile)
            h.clock.advance(4000)
    finally:
        globalLogPublisher.removeObserver(events.append)
    error = h.status(A)["last_error"]
    assert len(error) <= TRACKER_MESSAGE_MAX and error.startswith("bad line bad line")
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in error)
    lines = [formatEvent(e) for e in events if "failed (" in e.get("log_format", "")]
    assert len(lines) == 1 and "\n" not in lines[0] and "\x1b" not in lines[0]


# -- a hybrid torrent (BEP 52): one announce under each of its info hashes --------------------
V2_ID = b"v" * 20


class HybridHarness(Harness):
    """Peers are recorded with the id they were found under (None: the first)."""

    def __init__(self, tiers: Sequence[Sequence[str]]) -> None:
        super().__init__(tiers)
        self.tagged: list[tuple[tuple[PeerAddress, ...], bytes | None]] = []
        self.announcer = Announcer(
            self.clock,
            tiers,
            lambda url: self.client,
            make_request,
            self.found,
            extra_ids=[V2_ID],
            rng=NoShuffle(7),
        )

    def found(self, peers: Sequence[PeerAddress], swarm_id: bytes | None = None) -> None:
        if peers:
            self.tagged.append((tuple(peers), swarm_id))

    def answer_both(self, v1: Any, v2: Any) -> None:
        """Fire the two pending announces (v1 first); an Exception fails one."""
        (_, req1, d1), (_, req2, d2) = self.client.calls[-2:]
        assert (req1.info_hash, req2.info_hash) == (b"i" * 20, V2_ID)
        for d, what in ((d1, v1), (d2, v2)):
            d.errback(what) if isinstance(what, Exception) else d.callback(what)


def test_a_hybrid_announces_under_both_ids_and_tags_the_peers() -> None:
    h = HybridHarness([[A]])
    h.announcer.start()
    assert h.client.pending() == [(A, "started"), (A, "started")]
    _, first, _ = h.client.calls[0]
    _, second, _ = h.client.calls[1]
    assert first.peer_id == second.peer_id and first.port == second.port  # one client
    h.answer_both(response(peers=[("10.0.0.1", 1)]), response(peers=[("10.0.0.2", 2)]))
    assert sorted(h.tagged, key=repr) == sorted(
        [((("10.0.0.1", 1),), None), ((("10.0.0.2", 2),), V2_ID)], key=repr
    )
    assert h.status(A)["status"] == "working"
    h.clock.advance(1800)  # one re-announce: both ids again, on the announcer's one timer
    assert h.client.pending() == [(A, ""), (A, "")]


def test_a_hybrid_announce_succeeds_when_only_the_v2_id_is_answered() -> None:
    """A tracker that knows only the v2 swarm (opentracker's whitelist): the tracker works,
    and its peers arrive tagged v2 (none untagged)."""
    h = HybridHarness([[A]])
    h.announcer.start()
    h.answer_both(TrackerError("not whitelisted"), response(peers=[("10.0.0.2", 2)]))
    assert h.tagged == [((("10.0.0.2", 2),), V2_ID)]
    assert h.status(A)["status"] == "working"


def test_a_hybrid_announce_fails_when_both_ids_fail() -> None:
    h = HybridHarness([[A]])
    h.announcer.start()
    h.answer_both(TrackerError("first"), TrackerError("second"))
    assert h.tagged == []
    assert (h.status(A)["status"], h.status(A)["last_error"]) == ("error", "first")


def test_a_hybrid_stop_tells_both_swarms() -> None:
    h = HybridHarness([[A]])
    h.announcer.start()
    h.answer_both(response(), response())
    h.announcer.stop(5)
    assert h.client.pending() == [(A, "stopped"), (A, "stopped")]
    assert [r.info_hash for _, r, _ in h.client.calls[-2:]] == [b"i" * 20, V2_ID]
