"""BEP 6 allowed-fast set, against the BEP's published example."""

from __future__ import annotations

import pytest

from btd.core.wire.fast import allowed_fast_set

IH = b"\xaa" * 20


def test_bep6_example_k7() -> None:
    assert allowed_fast_set(IH, "80.4.4.200", 1313, k=7) == [1059, 431, 808, 1217, 287, 376, 1188]


def test_bep6_example_k9() -> None:
    assert allowed_fast_set(IH, "80.4.4.200", 1313, k=9) == [
        1059,
        431,
        808,
        1217,
        287,
        376,
        1188,
        353,
        508,
    ]


def test_same_slash24_same_set_other_network_differs() -> None:
    base = allowed_fast_set(IH, "80.4.4.200", 1313)
    assert allowed_fast_set(IH, "80.4.4.1", 1313) == base
    assert allowed_fast_set(IH, "::ffff:80.4.4.7", 1313) == base
    assert allowed_fast_set(IH, "80.4.5.200", 1313) != base
    assert len(base) == len(set(base)) == 10


def test_ipv6_uses_the_slash48() -> None:
    a = allowed_fast_set(IH, "2001:db8:1::1", 5000)
    assert a == allowed_fast_set(IH, "2001:db8:1:ffff::9", 5000)
    assert a != allowed_fast_set(IH, "2001:db8:2::1", 5000)


def test_k_capped_at_piece_count_and_empty_torrent() -> None:
    assert sorted(allowed_fast_set(IH, "10.0.0.1", 5, k=10)) == [0, 1, 2, 3, 4]
    assert allowed_fast_set(IH, "10.0.0.1", 0) == []
    assert allowed_fast_set(IH, "10.0.0.1", 100, k=0) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        allowed_fast_set(IH, "not-an-ip", 10)
    with pytest.raises(ValueError):
        allowed_fast_set(b"short", "10.0.0.1", 10)
