"""RFC 3550 interarrival jitter (§6.4.1, reference code in Appendix A.8)."""

from __future__ import annotations


class InterarrivalJitter:
    """Running estimate J of the mean deviation of packet transit time, in seconds.

    For packets i-1, i with transit S = arrival - media timestamp,
    D = S_i - S_{i-1} and J += (|D| - J) / 16 (RFC 3550 §6.4.1). Packets are taken in
    arrival order, as the RFC prescribes, even when they arrive reordered.
    """

    __slots__ = ("_jitter", "_prev_transit", "samples")

    def __init__(self) -> None:
        self._prev_transit: float | None = None
        self._jitter = 0.0
        self.samples = 0

    def update(self, arrival_s: float, media_ts_s: float) -> float:
        """Feed one packet's arrival time and media timestamp (both seconds); return J."""
        transit = arrival_s - media_ts_s
        prev = self._prev_transit
        if prev is not None:
            self._jitter += (abs(transit - prev) - self._jitter) / 16.0
            self.samples += 1
        self._prev_transit = transit
        return self._jitter

    @property
    def jitter_s(self) -> float:
        return self._jitter

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000.0
