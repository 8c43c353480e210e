"""RFC 3550 interarrival jitter (§6.4.1, reference code in Appendix A.8), summarised as Wireshark does."""

from __future__ import annotations

from collections.abc import Sequence


class InterarrivalJitter:
    """Running estimate J of the mean deviation of packet transit time, in seconds, and its
    mean and maximum over the stream.

    For packets i-1, i with transit S = arrival - media timestamp,
    D = S_i - S_{i-1} and J += (|D| - J) / 16 (RFC 3550 §6.4.1). Packets are taken in
    arrival order, as the RFC prescribes, even when they arrive reordered.

    J forgets in about 16 packets (0.3 s of 20 ms frames), so its last value says nothing of the
    call. ``mean_ms`` and ``max_ms`` are what Wireshark's RTP stream analysis reports as
    "Mean Jitter" and "Max Jitter": the mean and maximum of J over every packet after the first
    (``ui/tap-rtp-analysis.c``; checked against tshark in ``tests/quality/test_tshark.py``).
    """

    __slots__ = ("_jitter", "_max", "_prev_transit", "_sum", "samples")

    def __init__(self) -> None:
        self._prev_transit: float | None = None
        self._jitter = 0.0
        self._sum = 0.0
        self._max = 0.0
        self.samples = 0

    def update(self, arrival_s: float, media_ts_s: float) -> float:
        """Feed one packet's arrival time and media timestamp (both seconds); return J."""
        transit = arrival_s - media_ts_s
        prev = self._prev_transit
        if prev is not None:
            j = self._jitter + (abs(transit - prev) - self._jitter) / 16.0
            self._jitter = j
            self._sum += j
            if j > self._max:
                self._max = j
            self.samples += 1
        self._prev_transit = transit
        return self._jitter

    def update_run(self, times: Sequence[float], offset: float) -> None:
        """Feed packets given as (media timestamp, arrival) pairs laid end to end in ``times``,
        ``offset`` added to each timestamp: what :meth:`update` per packet does, in one loop."""
        prev, j, total, top, n = self._prev_transit, self._jitter, self._sum, self._max, 0
        for i in range(0, len(times), 2):
            transit = times[i + 1] - (times[i] + offset)
            if prev is not None:
                j = j + (abs(transit - prev) - j) / 16.0
                total += j
                if j > top:
                    top = j
                n += 1
            prev = transit
        self._prev_transit, self._jitter, self._sum, self._max = prev, j, total, top
        self.samples += n

    def restart(self) -> None:
        """Forget the last transit: the media clock was re-anchored, so no D spans the jump."""
        self._prev_transit = None

    @property
    def jitter_s(self) -> float:
        """The last J."""
        return self._jitter

    @property
    def last_ms(self) -> float:
        return self._jitter * 1000.0

    @property
    def sum_ms(self) -> float:
        """Sum of J over the samples so far (an interval's mean is the difference of two sums)."""
        return self._sum * 1000.0

    @property
    def mean_ms(self) -> float:
        return 1000.0 * self._sum / self.samples if self.samples else 0.0

    @property
    def max_ms(self) -> float:
        return self._max * 1000.0
