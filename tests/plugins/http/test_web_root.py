"""``web_root`` served at /transmission/web/ over a real socket: only files inside the
folder, no listings, no dotfiles, no ``..`` in any spelling, GET and HEAD only.

Requests go through twisted.web's Agent with the URL bytes as written (a browser or curl
would normalize ``..`` away before sending it; an attacker's client does not)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from btdtest import wait_fired as wait
from twisted.internet import reactor
from twisted.web.client import Agent, readBody
from twisted.web.server import Site

from btd.plugins.http.events import EventHub
from btd.plugins.http.rpc_resource import RpcResource
from btd.plugins.http.site import build_root
from btd.plugins.http.web_root import WebRoot, resolve

SECRET = b"secret outside the root"


@pytest.fixture(scope="module", autouse=True)
def _threads(reactor_threads: None) -> None:
    """The Agent resolves 127.0.0.1 on the reactor's thread pool (tests/conftest.py)."""


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "javascript").mkdir(parents=True)
    (root / "style").mkdir()
    (root / "empty").mkdir()
    (root / "index.html").write_bytes(b"<html>index</html>")
    (root / "javascript" / "main.js").write_bytes(b"var x = 1;")
    (root / "style" / "a b.css").write_bytes(b"body {}")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]")
    (root / ".htpasswd").write_bytes(b"user:hash")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(tmp_path, root / "up")
    os.symlink(root / "javascript" / "main.js", root / "inside.js")
    os.symlink(root / ".htpasswd", root / "hidden.txt")
    return root


@pytest.fixture()
def server(tree: Path) -> Iterator[str]:
    root = build_root(RpcResource(dict, reactor), EventHub(), None, WebRoot(tree))  # type: ignore[arg-type]
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
    yield f"http://127.0.0.1:{port.getHost().port}"
    wait(port.stopListening())


def get(url: str, method: bytes = b"GET") -> tuple[int, dict[bytes, list[bytes]], bytes]:
    response: Any = wait(Agent(reactor).request(method, url.encode()))
    assert not hasattr(response, "getTraceback"), response
    body = wait(readBody(response))
    headers = {k.lower(): v for k, v in response.headers.getAllRawHeaders()}
    return response.code, headers, body


def test_files_are_served_with_their_types(server: str, tree: Path) -> None:
    code, headers, body = get(f"{server}/transmission/web/")
    assert (code, body) == (200, b"<html>index</html>")
    assert headers[b"content-type"] == [b"text/html; charset=utf-8"]
    code, headers, body = get(f"{server}/transmission/web/javascript/main.js")
    assert (code, body) == (200, b"var x = 1;")
    assert headers[b"content-type"][0].startswith(b"text/javascript")
    assert headers[b"x-content-type-options"] == [b"nosniff"]
    assert get(f"{server}/transmission/web/style/a%20b.css")[2] == b"body {}"
    assert get(f"{server}/transmission/web/inside.js")[2] == b"var x = 1;"  # symlink inside
    code, headers, body = get(f"{server}/transmission/web/big.bin")
    assert code == 200 and body == (tree / "big.bin").read_bytes()
    code, headers, body = get(f"{server}/transmission/web/big.bin", b"HEAD")
    assert (code, body) == (200, b"") and headers[b"content-length"] == [b"%d" % (3 << 20)]


@pytest.mark.parametrize(
    "path",
    [
        "/transmission/web/../web/index.html",
        "/transmission/web/%2e%2e/%2e%2e/secret.txt",
        "/transmission/web/..%2fsecret.txt",
        "/transmission/web/javascript/..%2f..%2f..%2fsecret.txt",
        "/transmission/web/%2fetc%2fpasswd",
        "/transmission/web//etc/passwd",
        "/transmission/web/escape.txt",  # symlink out of the root
        "/transmission/web/up/secret.txt",  # symlinked folder out of the root
        "/transmission/web/hidden.txt",  # symlink to a dotfile inside
        "/transmission/web/.htpasswd",
        "/transmission/web/.git/config",
        "/transmission/web/%2egit/config",
        "/transmission/web/empty/",  # a folder without index.html: no listing
        "/transmission/web/javascript/",
        "/transmission/web/index.html/",
        "/transmission/web/nothing.js",
        "/transmission/web/main.js%00.html",
        "/transmission/web/%ff",
    ],
)
def test_nothing_outside_or_hidden_is_served(server: str, path: str) -> None:
    code, _, body = get(server + path)
    assert code == 404, (path, body)
    assert SECRET not in body and b"user:hash" not in body and b"[core]" not in body


def test_redirects(server: str) -> None:
    for path in ("/transmission/web", "/transmission", "/transmission/"):
        code, headers, _ = get(server + path)
        assert code == 301 and headers[b"location"] == [b"/transmission/web/"], path
    code, headers, _ = get(f"{server}/transmission/web/javascript")
    assert code == 301 and headers[b"location"] == [b"/transmission/web/javascript/"]


def test_only_get_and_head(server: str) -> None:
    code, headers, _ = get(f"{server}/transmission/web/index.html", b"POST")
    assert code == 405 and headers[b"allow"] == [b"GET, HEAD"]
    assert get(f"{server}/transmission/web/index.html", b"DELETE")[0] == 405


def test_without_web_root_nothing_is_there() -> None:
    root = build_root(RpcResource(dict, reactor), EventHub(), None)  # type: ignore[arg-type]
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        base = f"http://127.0.0.1:{port.getHost().port}"
        for path in ("/transmission", "/transmission/", "/transmission/web/"):
            assert get(base + path)[0] == 404, path
    finally:
        wait(port.stopListening())


def test_resolve_is_the_containment_rule(tree: Path) -> None:
    root = os.path.realpath(tree)
    assert resolve(root, ["javascript", "main.js"]) == os.path.join(root, "javascript", "main.js")
    assert resolve(root, []) == root
    for bad in (["..", "secret.txt"], ["a/../.."], ["/etc"], ["."], [""], ["a\\b"], ["x\0"]):
        assert resolve(root, bad) is None, bad
    assert resolve(root, ["escape.txt"]) is None
