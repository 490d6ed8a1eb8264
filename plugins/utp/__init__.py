"""uTP (BEP 29), the UDP transport of libtorrent and uTorrent, built bottom-up.

Not a registered plugin yet: ``packet`` (datagrams, pure) and ``connection`` (one
connection's state machine, sans-I/O) are done; the Twisted adapter (one UDP socket on the
peer port) and the ``utp`` plugin with its ``prefer: tcp|utp`` setting come next
(docs/PLUGINS.md, "utp").
"""
