"""The AI leg's state and its reconnect budget, as an explicit table.

The AI leg (a Realtime WebSocket, or WebRTC for ``opus16k``) is CONNECTING until its first
session is up, UP while one is, RECONNECTING after a close the budget allows another attempt for,
and FAILED once it does not (the call then ends). Caller audio is sent only while UP.

The budget: at most ``max_reconnects`` closes in a row are followed by another attempt; a
session that was up for ``healthy_s`` (e.g. the Realtime 60-minute cap) renews it, so a long call is
not ended by its hourly session expiry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AiState(enum.Enum):
    CONNECTING = "connecting"  # no session yet: caller audio is held
    UP = "up"
    RECONNECTING = "reconnecting"  # a session closed; another attempt is under way: audio held
    FAILED = "failed"  # the budget is spent: the call ends


class AiInput(enum.Enum):
    CONNECTED = "connected"  # realtime_connected: a session is up
    CLOSED = "closed"  # realtime_closed: the session closed, or an attempt failed


# (state, input) -> the states it may lead to; CLOSED's pick between the two is the budget's.
TRANSITIONS: dict[tuple[AiState, AiInput], frozenset[AiState]] = {
    (AiState.CONNECTING, AiInput.CONNECTED): frozenset({AiState.UP}),
    (AiState.CONNECTING, AiInput.CLOSED): frozenset({AiState.RECONNECTING, AiState.FAILED}),
    (AiState.UP, AiInput.CLOSED): frozenset({AiState.RECONNECTING, AiState.FAILED}),
    (AiState.RECONNECTING, AiInput.CONNECTED): frozenset({AiState.UP}),
    (AiState.RECONNECTING, AiInput.CLOSED): frozenset({AiState.RECONNECTING, AiState.FAILED}),
}


class AiTransitionError(RuntimeError):
    """An input the table has no row for (a second ``connected`` without a close, anything
    after FAILED): a driver bug, which the core's guard counts as ``internal_errors``."""


@dataclass(frozen=True, slots=True)
class Closed:
    """What a close means: ``attempt`` of ``budget`` reconnects in a row, or None (give up)."""

    attempt: int | None
    budget: int

    @property
    def reconnect(self) -> bool:
        return self.attempt is not None


class AiLeg:
    def __init__(self, max_reconnects: int, healthy_s: float, now: float) -> None:
        self.state = AiState.CONNECTING
        self.max_reconnects = max_reconnects
        self.healthy_s = healthy_s
        self.attempts = 0  # reconnects in a row, since the budget was last renewed
        self.since = now  # when the current session (or the call) began

    @property
    def up(self) -> bool:
        return self.state is AiState.UP

    def connected(self, now: float) -> None:
        self._move(AiInput.CONNECTED, AiState.UP)
        self.since = now

    def closed(self, now: float) -> Closed:
        """Spend one reconnect of the budget, renewed first if a session that was up lived
        ``healthy_s`` (a failed attempt renews nothing, however long after the last session)."""
        self._check(AiInput.CLOSED)
        if self.state is AiState.UP and now - self.since >= self.healthy_s:
            self.attempts = 0
        if self.attempts < self.max_reconnects:
            self.attempts += 1
            self._move(AiInput.CLOSED, AiState.RECONNECTING)
            return Closed(self.attempts, self.max_reconnects)
        self._move(AiInput.CLOSED, AiState.FAILED)
        return Closed(None, self.max_reconnects)

    def _check(self, inp: AiInput) -> frozenset[AiState]:
        allowed = TRANSITIONS.get((self.state, inp))
        if allowed is None:
            raise AiTransitionError(f"AI leg {self.state.value}: {inp.value} is not allowed")
        return allowed

    def _move(self, inp: AiInput, to: AiState) -> None:
        if to not in self._check(inp):
            raise AiTransitionError(f"AI leg {self.state.value}: {inp.value} cannot lead to {to.value}")
        self.state = to
