from __future__ import annotations

from pathlib import Path

import pytest

from btd.core.lock import AlreadyRunning, StateLock


def test_second_holder_refused(tmp_path: Path) -> None:
    with StateLock(tmp_path / "state") as first:
        with pytest.raises(AlreadyRunning, match="another btd"):
            StateLock(tmp_path / "state").acquire()
        assert first.path.read_text().strip().isdigit()
    StateLock(tmp_path / "state").acquire()  # released: free again
