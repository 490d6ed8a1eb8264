"""Every limit btd keeps against what strangers send or make it hold: one table.

Each value names its anchor (what libtorrent, Transmission or a spec does) so a change is
a decision, not a guess; docs/SECURITY.md lists the same values by threat class. Modules
import the names they enforce; nothing here imports anything.
"""

from __future__ import annotations

# -- class 1: idle and useless peers (docs/SECURITY.md, "Idle peers") ------------------------------
CONNECT_TIMEOUT = 15.0  # a dial that has not connected: libtorrent peer_connect_timeout 15 s
HANDSHAKE_TIMEOUT = (
    10.0  # connected, no handshake yet (either way): libtorrent handshake_timeout 10 s
)
PEER_SILENCE_TIMEOUT = 120.0  # not one byte heard, keep-alives count: libtorrent peer_timeout 120 s
PEER_INACTIVITY_TIMEOUT = 600.0
"""No piece traffic either way and no request-able interest for this long, while the slot is
wanted (torrent or session full): disconnected as ``inactive``. Keep-alives, HAVEs and other
chatter do not count. libtorrent inactivity_timeout 600 s (its timed_out_no_interest);
config ``session.peer_inactivity_timeout``."""
PEER_REPLACE_GRACE = 60.0
"""A newcomer may take the slot of a peer that has moved no piece data (and had no
request-able interest) for this long: libtorrent min_reconnect_time 60 s, btd's own
RECONNECT_AFTER; config ``session.peer_replace_grace``."""
INBOUND_OVERFLOW = 10
"""Inbound connections accepted beyond ``session.max_connections`` while they handshake, and
only while some connected peer could give its slot away: libtorrent connections_slack 10
(incoming connections over the limit, to replace worse ones)."""
CLOSE_TIMEOUT = 30.0  # a polite close that has not flushed by then is aborted (btd's own)
MAX_INCOMING_REQUESTS = 2000  # a peer's queued requests: libtorrent and Transmission reqq 2000

# --- class 2: storage missing at start (core/storage_guard.py) --------------------------------
STORAGE_RETRY_INTERVAL = 30.0
"""Seconds between probes of the save paths of torrents in ``storage missing``: one stat
(and one directory entry) per distinct missing root per interval, whatever the number of
torrents on it. Anchor: libtorrent and Transmission do not retry at all (the torrent stays
in error, Transmission's "No data found! Ensure your drives are connected", until the user
resumes it). 30 s is the resume-save interval (core/resume.py DEFAULT_SAVE_INTERVAL): a remounted
disk is back in use within one save round. ``btctl resume``/``verify`` retry at once."""

# -- class 3: one fragile resume file (core/resume_recovery.py, plugins/resume_sqlite.py) ------
# Anchor: none of the reference clients salvages a damaged store (libtorrent keeps one
# .fastresume per torrent, Transmission one .resume per torrent); the values bound the
# work a damaged file can make the start-up thread do.
RESUME_SALVAGE_SECONDS = 60.0  # wall time spent reading rows out of a damaged store
RESUME_INTEGRITY_ERRORS = 5  # integrity_check lines kept in the report (the rest counted)

# -- class 4: requests to local services (core/outbound.py) -------------------------------------
# No number: the rule is libtorrent's ssrf_mitigation (a tracker on a local address must have
# "/announce" in its path), widened from loopback to every non-public address; see
# docs/SECURITY.md section 4. Redirects followed by the HTTP tracker client, each judged anew:
TRACKER_REDIRECTS = 5  # libtorrent follows at most 5 redirects for a tracker request

# -- class 6: limits the anchors enforce (metainfo, magnet, trackers, PEX, ut_metadata, RPC) ----
MAX_PATH_DEPTH = 100  # folders in one file's path: libtorrent refuses deeper ones (100)
MAX_DUPLICATE_NAMES = 500
"""Files renamed because their path collides with another's (" (1)", " (2)"...): more and
the torrent is refused. libtorrent refuses more than 500 collisions; renaming is linear
(core/metainfo.py dedupe_paths), the cap keeps a crafted torrent from making thousands of
look-alike files."""
MAX_MAGNET_NAME = 1024
"""Characters of a magnet's ``dn`` (display name): more is refused. btd's own: a name is
at most 255 bytes per path element once the metadata arrives; 1024 leaves room for any
real one. Control characters (``%00``...) are stripped; a malformed %-escape is refused."""
TRACKER_MESSAGE_MAX = 512
"""Characters kept of a tracker's ``failure reason``/``warning message`` (and of any
tracker error text) after control characters and terminal escapes are removed: it goes
to the log as one line and to ``torrent.trackers``. btd's own (a line of a wide terminal);
Transmission and libtorrent keep the whole text."""
PEX_INTERVAL = 60.0  # BEP 11: one ut_pex message per minute per peer, either way
PEX_EARLY_FRACTION = 0.75  # a message sooner than 3/4 of the interval is ignored (counted)
PEX_FLOOD_MESSAGES = 10  # more than this many in one interval drops the peer (libtorrent)
UT_METADATA_RATE = 8.0
"""ut_metadata requests per second served to one peer (a 16 KiB piece each), after a burst
of ``UT_METADATA_BURST``; beyond, BEP 9 ``reject``. libtorrent answers a few requests per
second and rejects the rest; a 1 MiB info dictionary (64 pieces) is served at once."""
UT_METADATA_BURST = 64
RPC_DUPLICATE_KEYS = "refused"
"""A JSON object with the same key twice in an RPC request is Invalid Request (-32600):
``{"method": "session.info", "method": "session.shutdown"}`` must not mean the last one.
RFC 8259 leaves duplicate names undefined; jsonrpcserver took the last."""

# -- class 5: freezes of the reactor thread (core/rpc/dispatch.py, core/rpc/replies.py) --------
RPC_MAX_BATCH_CALLS = 100
"""Requests in one JSON-RPC batch line; more: one INVALID_REQUEST for the line, nothing run.
Anchor: none in JSON-RPC 2.0; Transmission's RPC has no batches at all, Deluge's none either;
100 keeps one batch's work (its members run one per reactor turn) and memory small."""
RPC_REPLY_BUDGET = 16 * 1024 * 1024 - 64 * 1024
"""Bytes of results in one reply line (a batch shares it; the members that do not fit get
REPLY_TOO_LARGE): what btctl reads in one line (the 16 MiB frame cap of
core/rpc/framing.py) less 64 KiB kept for the error objects of a full batch."""
RPC_MAX_JSON_CONTAINERS = 50_000
"""JSON objects and arrays in one request line (counted as ``{`` and ``[`` bytes before
parsing: over-counts brackets inside strings): json.loads costs ~0.5 us each, in C, on the
reactor. 50,000 is ~25 ms and passes a 10,000-item ``torrent.add`` batch. btd's own."""
TORRENT_FILE_MAX = 10_000_000
"""Bytes of a .torrent read by ``path`` or given as ``metainfo``: libtorrent
load_torrent_limits max_buffer_size 10 MB. It bounds the files of a torrent too: an entry
takes at least 24 bytes, so at most ~420,000 files (libtorrent's max_decode_tokens 3,000,000
bounds it at ~430,000); such a torrent is parsed on the thread pool, never the reactor."""

# -- issue 12: HTTP front door (plugins/http/) ---------------------------------------------------
HTTP_MAX_BODY = 10 * 1024 * 1024 + TORRENT_FILE_MAX * 4 // 3
"""Bytes of one HTTP request body (``/rpc``, ``/transmission/rpc``): 10 MiB for JSON plus a
base64 .torrent of TORRENT_FILE_MAX. Refused with 413 as soon as Content-Length says more
(never read), or as soon as a chunked body passes it. Transmission: no cap of its own."""
HTTP_SCRYPT_N = 1 << 14
HTTP_SCRYPT_R = 8
HTTP_SCRYPT_P = 1
"""scrypt cost of new password hashes (RFC 7914's interactive-login figures: ~50 ms and
16 MiB per check); verified on the disk thread pool, never on the reactor."""
HTTP_LOGIN_BURST = 5
HTTP_LOGIN_RATE = 0.1
"""Failed logins per client address: 5 at once, then one per 10 s (token bucket); beyond,
429 without checking the password. Transmission bans an address after 100 failures."""
HTTP_LOGIN_CLIENTS = 4096  # client addresses whose failed logins are remembered
HTTP_AUTH_CACHE = 64
"""Credentials remembered as good (a SHA-256 of them) so each request of a logged-in
client does not pay the slow hash again."""
HTTP_IDLE_TIMEOUT = 60.0
"""Seconds an HTTP connection may sit idle between requests (or dribble a request's headers
and body) before it is closed: slowloris. Not counted while a request is being answered, so
an /events stream lives on. twisted.web's own default is 12 hours. Header lines are capped by
twisted.web itself (500 headers, 16 KiB in all: 400 beyond)."""
HTTP_EVENTS_CLIENTS = 64  # /events streams open at once; more get 503
HTTP_EVENTS_BACKLOG = 1024 * 1024
"""Bytes of events queued for one /events client that stopped reading: past it, dropped."""
HTTP_RPC_IDS = "never reused"
"""Transmission RPC torrent ids: small integers in the order torrents were added, kept in
``<state_dir>/http/transmission-ids.json``; a removed torrent's id is never given again."""
HTTP_UI_SESSIONS = 256
"""Web UI logins (session cookies) held at once, in memory; one more logs out the one used
longest ago. btd's own: a household's browsers many times over; a stranger cannot make
more without the password (and its failed tries are rate-limited)."""
HTTP_UI_IDLE = 3600.0
"""Seconds a web UI session may go unused before its cookie stops working: qBittorrent's
WebUI session timeout (3600 s). The open page polls every 2 s while visible, so only a
closed or hidden page ages."""
HTTP_UI_MAX_AGE = 7 * 24 * 3600.0
"""Seconds a web UI session lasts however much it is used (the cookie's Max-Age too): then
the password is asked again. btd's own (Django's default cookie age is 2 weeks)."""
HTTP_LOGIN_BODY = 4096  # bytes of a POST /login body (a user name and a password): more is 413
FETCH_REDIRECTS = 5
"""Redirects followed when fetching a .torrent URL (``torrent.add_url``, Transmission's
``torrent-add`` of an http(s) ``filename``), each judged again by the fetch policy; a
``magnet:`` Location ends the chain as the magnet. The tracker client's figure
(TRACKER_REDIRECTS, libtorrent's 5); curl, which Transmission uses, defaults to 50."""
FETCH_TIMEOUT = 30.0
"""Seconds for one whole URL fetch (connect, redirects, body); then it fails and its
connection is closed. The tracker client's figure; Transmission gives a web task 120 s."""
FETCH_MAX_RUNNING = 8
"""URL fetches at once per daemon (each may hold TORRENT_FILE_MAX bytes); more are refused
with a retry message. btd's own: Sonarr adds one release at a time."""


# -- issue 14: encrypted connections (core/wire/mse.py) -------------------------------------------
MSE_MAX_PAD = 512
"""Bytes of each MSE padding (PadA..PadD) and of each sync window beyond the 96-byte key:
the spec's own bound; a peer that does not sync within it is dropped."""
MSE_MAX_INITIAL_PAYLOAD = 4096
"""Bytes of the initial payload (IA) a responder accepts inside the MSE handshake: a
BitTorrent handshake is 68 (libtorrent sends it and nothing more)."""


# -- issue 14: web seeds (BEP 19 ``url-list``, plugins/web_seed/) ---------------------------------
WEB_SEEDS_PER_TORRENT = 8
"""Web seed URLs used per torrent (the rest of a longer ``url-list`` is ignored, logged).
btd's own: each is a connection slot and an HTTP pool; libtorrent has no cap."""
WEB_SEED_IN_FLIGHT = 2
"""HTTP range requests open at once per web seed (each on its own kept-alive connection).
libtorrent pipelines its requests on one connection per web seed."""
WEB_SEED_MAX_RANGE = 4 * 1024 * 1024
"""Bytes asked in one job: the contiguous blocks the picker queued, merged, up to this
(split into one Range request per file the job crosses). libtorrent's
urlseed_max_request_bytes is 16 MiB."""
WEB_SEED_QUEUE = 500
"""Block requests queued at a web seed (the peer pipeline's MAX_PIPELINE); beyond, they are
rejected (BEP 6), never buffered."""
WEB_SEED_TIMEOUT = 30.0
"""Seconds without a byte from a web seed request (connecting, headers or body) before it
fails: libtorrent's urlseed_timeout 20 s; the peer request timeout is 60 s."""
WEB_SEED_REDIRECTS = 5
"""Redirects followed per range request, each judged again by the web seed policy
(core/outbound.py): the tracker client's TRACKER_REDIRECTS."""
WEB_SEED_RETRY_BASE = 5.0
"""Seconds of the first back-off after a failed request; doubles per failure in a row
(libtorrent's urlseed_wait_retry is 30 s flat)."""
WEB_SEED_RETRY_MAX = 300.0
"""Longest back-off, and the cap on an HTTP 503/429 ``Retry-After`` a server asks for."""
WEB_SEED_MAX_FAILURES = 5
"""Failed requests in a row before a web seed is given up for this run of the torrent
(until it is paused and resumed); a 4xx answer other than 408/429, a server that ignores
Range, or a wrong Content-Range give it up at once."""
WEB_SEED_REATTACH = 60.0
"""Seconds before a web seed closed for another reason (its slot was wanted, the torrent
was full) is attached again while the torrent still downloads."""
# -- issue 14: uTP (plugins/utp/) ------------------------------------------------------------------
UTP_MAX_EXTENSIONS = 16
"""Extensions chained in one uTP datagram; more is a ProtocolError. btd's own: libtorrent
sends at most two (selective ack, close reason); the chain is otherwise bounded only by the
datagram's size."""
UTP_REORDER_PACKETS = 511
"""Out-of-order packets held per connection while a hole is filled; a packet further ahead
is dropped (the sender resends it). libutp REORDER_BUFFER_MAX_SIZE 511."""
UTP_RECV_WINDOW = 1024 * 1024
"""Bytes a uTP connection holds for its reader (in order but not yet read, plus out of
order), advertised as ``wnd_size``; a packet that would pass it is dropped. btd's own (the
figure libtorrent's default receive buffer settles at)."""
UTP_SEND_BUFFER = 1024 * 1024
"""Bytes queued to send on one uTP connection (unsent plus unacked) before its producer is
paused, as a TCP transport's write buffer pauses it. btd's own."""
UTP_SYN_RESENDS = 2  # SYNs resent before a dial fails: libtorrent utp_syn_resends 2
UTP_FIN_RESENDS = 2  # FINs resent before the close is given up: libtorrent utp_fin_resends 2
UTP_DATA_RESENDS = 3
"""Times one data packet is resent on timeout before the connection is dropped as timed
out: libtorrent utp_num_resends 3 (each timeout doubles, from 1 s: about 15 s in all)."""
UTP_TRANSPORT_HINTS = 4096
"""Peer addresses for which the ``utp`` plugin remembers which transport to dial first
(least recently noted forgotten first). btd's own; libtorrent keeps the same bit in each
of its torrent_peer entries."""
# -- issue 14: BitTorrent v2 hash messages (core/wire/codec.py, core/hash_serve.py) -------------
HASH_REQUEST_MAX_LENGTH = 8192
"""Hashes one BEP 52 ``hash request`` may ask for (and a ``hashes`` reply may carry, plus
its uncle hashes): libtorrent's validate_hash_request refuses more than 8192 (a 128 MiB
piece's blocks). A longer request is answered ``hash reject``; a longer reply drops the peer."""
HASH_PROOF_MAX = 32
"""Uncle hashes a request may want: a tree over 2**32 blocks (64 TiB) is never that tall.
btd's own; libtorrent's bound is the file's tree height, which btd checks as well."""
HASH_REQUEST_RATE = 16.0
"""``hash request`` messages answered per second for one peer, after a burst of
``HASH_REQUEST_BURST``; beyond, ``hash reject``. libtorrent asks for a file's piece layer
in requests of 512 hashes and keeps one outstanding per bucket; 16 a second serves 8192
pieces a second to each peer, and bounds the hashing a peer can make us do."""
HASH_REQUEST_BURST = 64
