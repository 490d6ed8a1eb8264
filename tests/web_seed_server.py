"""A web seed for tests: twisted.web on 127.0.0.1 serving a folder, in a child process.

    python web_seed_server.py ROOT MODE LOG

Prints the port it listens on, then serves until killed. Every request's method, path and
Range header is appended to LOG (one line each), so a test can tell what was asked.
MODE: ``files`` (static.File: Range -> 206), ``no-range`` (the whole file, 200, whatever
the Range), ``short`` (a 206 that promises the range and closes after half of it),
``busy`` (503 with ``Retry-After: 1``), ``slow`` (``files``, each answer 0.2 s late).
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.web import resource, server, static


def main() -> None:
    root, mode, log_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    log = log_path.open("a", buffering=1)

    class Logged(resource.Resource):
        isLeaf = True

        def render(self, request):  # noqa: N802 (twisted's name)
            rng = request.getHeader(b"range") or b"-"
            log.write(f"{request.method.decode()} {request.path.decode()} {rng.decode()}\n")
            inner = static.File(str(root))
            path = root.joinpath(*[p.decode() for p in request.postpath if p])
            if mode == "files" or not path.is_file():
                return resource.getChildForRequest(inner, request).render(request)
            if mode == "slow":  # each answer 0.2 s late (a distant mirror)

                def later() -> None:
                    body = resource.getChildForRequest(inner, request).render(request)
                    if body is not server.NOT_DONE_YET:
                        request.write(body)
                        request.finish()

                reactor.callLater(0.2, later)
                return server.NOT_DONE_YET
            data = path.read_bytes()
            if mode == "busy":
                request.setResponseCode(503)
                request.setHeader(b"retry-after", b"1")
                return b"busy"
            if mode == "no-range":
                request.setHeader(b"content-length", str(len(data)).encode())
                return data
            if mode == "short":
                first, _, last = rng.decode().removeprefix("bytes=").partition("-")
                a, b = int(first), int(last)
                request.setResponseCode(206)
                request.setHeader(b"content-range", f"bytes {a}-{b}/{len(data)}".encode())
                request.setHeader(b"content-length", str(b - a + 1).encode())
                request.write(data[a : a + (b - a + 1) // 2])
                request.channel.transport.loseConnection()
                return server.NOT_DONE_YET
            raise SystemExit(f"unknown mode {mode}")

    # postpath is the whole path: the leaf resource sees every segment.
    site = server.Site(Logged())
    site.displayTracebacks = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
