"""Newline framing for the control socket: bytes in, complete lines out.

Pure (no Twisted). The size cap is enforced while buffering: a line that would
grow past ``max_frame`` bytes is refused before it is stored, so a client can
never make the daemon hold more than ``max_frame`` bytes of one unfinished line.
"""

from __future__ import annotations

DEFAULT_MAX_FRAME = 16 * 1024 * 1024


class LineFramer:
    """Split a byte stream into ``\\n``-terminated frames of at most ``max_frame`` bytes.

    ``max_frame`` counts the frame's bytes without its newline. Once a frame is
    too large, ``too_large`` becomes true, the partial line is dropped and every
    later ``feed`` returns nothing: the caller answers once and closes.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._too_large = False

    @property
    def too_large(self) -> bool:
        """True once a frame exceeded the cap; the stream is then dead."""
        return self._too_large

    @property
    def buffered(self) -> int:
        """Bytes of the current unfinished line held in memory."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the frames they complete, in order.

        Frames completed before an oversized one are still returned.
        Each byte is scanned once, so many tiny writes cost linear time.
        """
        if self._too_large:
            return []
        frames: list[bytes] = []
        buf = self._buf
        start = 0
        end = len(data)
        while start < end:
            nl = data.find(b"\n", start)
            if nl < 0:
                if len(buf) + (end - start) > self.max_frame:
                    self._fail()
                else:
                    buf += data[start:]
                return frames
            if len(buf) + (nl - start) > self.max_frame:
                self._fail()
                return frames
            if buf:
                buf += data[start:nl]
                frames.append(bytes(buf))
                buf.clear()
            else:
                frames.append(bytes(data[start:nl]))
            start = nl + 1
        return frames

    def _fail(self) -> None:
        self._too_large = True
        self._buf = bytearray()
