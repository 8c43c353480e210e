"""Re-framing of an AI-side byte stream into exact 20 ms mu-law frames for Twilio Media Streams."""

from __future__ import annotations

from bridge.codecs.g711 import FRAME_BYTES, SILENCE_BYTE


class UlawFramer:
    """Carries a remainder so only whole 160-byte frames leave mid-stream."""

    def __init__(self) -> None:
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def push(self, ulaw: bytes) -> list[bytes]:
        self._pending += ulaw
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        out = [bytes(self._pending[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES)]
        del self._pending[:whole]
        return out

    def take(self) -> bytes:
        """The remainder as it is (less than a frame), cleared: for a peer that plays any length."""
        tail = bytes(self._pending)
        self._pending.clear()
        return tail

    def flush(self) -> list[bytes]:
        """Pads a non-empty remainder with mu-law silence (0xFF) to one frame; [] if none."""
        if not self._pending:
            return []
        frame = bytes(self._pending) + bytes([SILENCE_BYTE]) * (FRAME_BYTES - len(self._pending))
        self._pending.clear()
        return [frame]
