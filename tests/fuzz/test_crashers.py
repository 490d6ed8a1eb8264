"""Every input a fuzzer once broke a parser with, replayed against its target for ever.

A crasher lives in ``tests/fuzz/crashers/<target>/<name>`` (raw bytes); the directory name
is the target in tests/fuzz/targets.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .targets import TARGETS
from .test_fuzz import check

CRASHERS = Path(__file__).parent / "crashers"
FILES = sorted(p for p in CRASHERS.glob("*/*") if p.is_file())

pytestmark = pytest.mark.fuzz


def test_crasher_folders_name_targets() -> None:
    assert {p.parent.name for p in FILES} <= set(TARGETS)


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_crasher(path: Path) -> None:
    check(path.parent.name, path.read_bytes())
