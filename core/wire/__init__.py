"""Peer wire protocol: pure codecs (BEP 3, 6, 10, 9)."""
