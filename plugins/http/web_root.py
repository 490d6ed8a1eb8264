"""``/transmission/web/``: one configured folder (``web_root``), served read-only.

Made for Transmission's web client (Debian's ``/usr/share/transmission/web``). The rules
are the whole point of this module: a URL names a file only when every segment is a plain
name (no ``..``, no dotfile, no ``/`` or NUL smuggled in by ``%2f``/``%00``; twisted.web has
already turned ``%2e%2e`` into ``..``), and the real path of the result (symlinks resolved)
is inside the real path of the root; anything else is 404. A folder serves its
``index.html`` or 404, never a listing. GET and HEAD only. Files are streamed by
twisted.web's ``static.File`` producer (Range, HEAD, content types), never read whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from twisted.web import resource, server, static

INDEX = "index.html"
METHODS = (b"GET", b"HEAD")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}


def _segment_ok(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


def resolve(root: str, segments: list[str]) -> str | None:
    """The real path ``segments`` name under ``root`` (itself a real path), or None when
    the URL may not name anything (a bad segment, or a path that ends up outside)."""
    if not all(_segment_ok(s) for s in segments):
        return None
    real = os.path.realpath(os.path.join(root, *segments))
    if real != root and os.path.commonpath([root, real]) != root:
        return None
    rel = os.path.relpath(real, root)
    if rel != "." and any(part.startswith(".") for part in rel.split(os.sep)):
        return None  # a symlink inside the root that points at a dotfile
    return real


class WebRoot(resource.Resource):
    """The folder at ``root``; ``isLeaf``, so the whole rest of the URL is judged here."""

    isLeaf = True

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = os.path.realpath(root)

    def render(self, request: server.Request) -> Any:
        if request.method not in METHODS:
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            return b"GET or HEAD only\n"
        try:
            segments = [s.decode("utf-8") for s in request.postpath]
        except UnicodeDecodeError:
            return _not_found(request)
        if not segments:  # /transmission/web: the page's relative URLs need the slash
            return _redirect(request, b"/".join(request.prepath) + b"/")
        trailing = segments[-1] == ""
        if trailing:
            segments = segments[:-1]
        path = resolve(self.root, segments)
        if path is None:
            return _not_found(request)
        if os.path.isdir(path):
            if not trailing:
                return _redirect(request, b"/".join(request.prepath + request.postpath) + b"/")
            path = resolve(self.root, [*segments, INDEX]) or ""  # judged like any file
        elif trailing:
            return _not_found(request)
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            return _not_found(request)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-cache")
        leaf = static.File(path, defaultType="application/octet-stream")
        leaf.contentTypes = CONTENT_TYPES
        leaf.contentEncodings = {}  # a .gz is served as what it is, not as gzip encoding
        return leaf.render(request)


def _not_found(request: server.Request) -> bytes:
    request.setResponseCode(404)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"not found\n"


def _redirect(request: server.Request, path: bytes) -> bytes:
    request.setResponseCode(301)
    request.setHeader(b"location", b"/" + quote(path.lstrip(b"/"), safe="/").encode("ascii"))
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"moved\n"
