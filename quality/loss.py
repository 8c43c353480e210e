"""Loss percentage, loss runs and the Gilbert (two-state Markov) burst model.

The E-model's BurstR (ITU-T G.107 §7.5) is the ratio of the mean observed loss-burst length to
the mean burst length under random loss; for a two-state Markov model with p = P(loss | previous
received) and q = P(received | previous lost) it equals 1 / (p + q) (G.107 §7.5, note).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LossStats:
    """Summary of a received/lost pattern; ``runs`` maps loss-run length to how often it occurred."""

    packets: int
    lost: int
    loss_pct: float
    runs: dict[int, int] = field(default_factory=dict)
    max_run: int = 0
    p: float = 0.0
    q: float = 1.0
    burst_r: float = 1.0

    @property
    def mean_run(self) -> float:
        n = sum(self.runs.values())
        return sum(k * v for k, v in self.runs.items()) / n if n else 0.0


class LossCounter:
    """Accumulates a packet-by-packet received/lost pattern in media order."""

    __slots__ = ("_lost", "_n", "_n_lost_to_any", "_n_lost_to_recv", "_n_recv_to_any",
                 "_n_recv_to_lost", "_prev_lost", "_run", "_runs")

    def __init__(self) -> None:
        self._n = 0
        self._lost = 0
        self._prev_lost: bool | None = None
        self._n_recv_to_any = 0
        self._n_recv_to_lost = 0
        self._n_lost_to_any = 0
        self._n_lost_to_recv = 0
        self._run = 0
        self._runs: dict[int, int] = {}

    def update(self, lost: bool) -> None:
        """Feed the fate of the next packet in sequence order."""
        if not lost and self._prev_lost is False:  # the common case, received after received
            self._n += 1
            self._n_recv_to_any += 1
            return
        self.update_many(lost, 1)

    def update_many(self, lost: bool, n: int) -> None:
        """Feed ``n`` consecutive packets sharing one fate, in O(1)."""
        if n <= 0:
            return
        self._n += n
        prev = self._prev_lost
        if prev is not None:
            if prev:
                self._n_lost_to_any += 1
                if not lost:
                    self._n_lost_to_recv += 1
            else:
                self._n_recv_to_any += 1
                if lost:
                    self._n_recv_to_lost += 1
        # The n - 1 transitions inside the block all stay in the same state.
        if lost:
            self._n_lost_to_any += n - 1
            self._lost += n
            self._run += n
        else:
            self._n_recv_to_any += n - 1
            if self._run:
                self._close_run()
        self._prev_lost = lost

    def copy(self) -> LossCounter:
        new = LossCounter()
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(new, name, dict(value) if isinstance(value, dict) else value)
        return new

    def _close_run(self) -> None:
        self._runs[self._run] = self._runs.get(self._run, 0) + 1
        self._run = 0

    def stats(self) -> LossStats:
        """Snapshot; an open loss run at the end counts as a run."""
        runs = dict(self._runs)
        if self._run:
            runs[self._run] = runs.get(self._run, 0) + 1
        p, q, burst_r = gilbert(
            self._n_recv_to_lost, self._n_recv_to_any, self._n_lost_to_recv, self._n_lost_to_any
        )
        return LossStats(
            packets=self._n,
            lost=self._lost,
            loss_pct=100.0 * self._lost / self._n if self._n else 0.0,
            runs=runs,
            max_run=max(runs, default=0),
            p=p,
            q=q,
            burst_r=burst_r,
        )


def gilbert(
    recv_to_lost: int, recv_to_any: int, lost_to_recv: int, lost_to_any: int
) -> tuple[float, float, float]:
    """Return (p, q, BurstR) from transition counts of a two-state Markov chain.

    With no loss observed BurstR is 1 by definition. A loss run still open at the end (no
    lost->received transition seen) gives q from the single run: 1 / run length.
    """
    p = recv_to_lost / recv_to_any if recv_to_any else 0.0
    if lost_to_any == 0 and recv_to_lost == 0:
        return p, 1.0, 1.0
    q = lost_to_recv / lost_to_any if lost_to_any else 1.0
    if q == 0.0:
        q = 1.0 / (lost_to_any + 1)
    return p, q, 1.0 / (p + q)
