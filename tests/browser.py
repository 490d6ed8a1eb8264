"""A real Chromium for the web tests: Debian's ``chromium`` driven by playwright.

playwright's own browser download cannot be reached here, so the Debian build is launched
by path (root needs ``--no-sandbox``). Missing either one skips, or fails under
``BTD_REQUIRE_INTEROP=1``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

from btdtest import missing

CHROMIUM = "/usr/bin/chromium"


@contextlib.contextmanager
def chromium_page(**context_options: Any) -> Iterator[Any]:
    """One page in a fresh browser context; ``context_options`` go to ``new_context``
    (e.g. ``http_credentials``, ``viewport``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright (pip install playwright)")
    if shutil.which(CHROMIUM) is None:
        missing("chromium (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(**context_options)
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()
