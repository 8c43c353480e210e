"""Synthetic captures of a caller-only call with known network impairments, and their ground truth.

:func:`simulate` writes what the live bridge would have recorded (``bridge/protocols/capture.py``, version 1)
for a caller who speaks ``seconds`` of 20 ms mu-law frames over an impaired path, and returns the
figures the impairments produced, counted from the generator's own schedule (never by the
``quality/`` code the figures are meant to check). Pure: the randomness is an injected, seeded
``random.Random``; there is no clock and no I/O.

The model is Twilio's, on the one TCP connection it streams over (Twilio Media Streams docs):
- Frame k (from 1) is 20 ms of the caller's audio with ``timestamp`` (k - 1) * 20 ms, due to be
  sent at (k - 1) * 20 ms.
- Loss happens before Twilio (the carrier's RTP leg): a lost frame is never sent, so it shows
  only as a ``timestamp`` step of more than 20 ms. ``sequenceNumber`` and ``chunk`` count the
  messages Twilio does send and never skip. Loss is Bernoulli (``loss_pct``), a Gilbert chain
  (``gilbert`` = (p, q): p = P(lost | previous sent), q = P(sent | previous lost)) and/or an
  explicit ``drop`` set of frame numbers. The first and last frames are always delivered: the
  media clock spans the first to the last frame it sees, so a lost edge frame is invisible.
- Delay: ``delay_ms`` plus an extra delay per frame, exponential with mean ``jitter_ms``
  (``jitter_dist="exponential"``) or Pareto of shape ``pareto_alpha`` shifted to start at 0
  (Lomax: scale * (X - 1), X ~ Pareto(alpha), scale = (alpha - 1) * ``jitter_ms``, same mean).
- A stall from ``stall_at_s`` for ``stall_ms``: nothing arrives, and every frame due in the window
  arrives at its end, at once.
- TCP keeps order: arrival_k = max(arrival_{k-1}, send_k + delay_k).
Two anomalies Twilio does not produce, to test how the bridge takes a misbehaving peer (the
message, chunk and timestamp travel together; default off):
- Reordering: each adjacent pair of delivered messages (never the first) is swapped with
  probability ``reorder_pct``: the earlier one is held back and arrives right after the later
  one, at the same time. Swaps do not overlap.
- Duplicates: each delivered message is sent again with probability ``duplicate_pct``; the copy
  arrives right after it, at the same time.

Ground-truth jitter is RFC 3550 §6.4.1's J over the schedule in arrival order, first copies only
(a receiver drops a duplicate before metering it), with transit = arrival - media timestamp,
summarised as Wireshark does: the mean and maximum of J over every frame after the first.
BurstR is 1 / (p + q) of the loss pattern's own transition counts (G.107 §7.5), and the buffer
and late share are the documented playout rule (:func:`playout_truth`) over the delivered
frames' transits. Arrival
times are rounded to the microsecond before anything is computed from them, so the truth and a
replay of the written capture see the same floats.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

from bridge import __version__
from bridge.core.call import CallCore
from bridge.core.config import CallConfig
from bridge.core.inputs import AiConnected, Input, Timer, TwilioIn, apply
from bridge.protocols import compact_json
from bridge.protocols.capture import event_line, header_line, message_line
from bridge.replay.run import MetricsOnlyTranscoder
from bridge.stand_ins.twilio_caller import CONNECTED, media_message, start_message, stop_message
from quality.emodel import EModelParams, r_factor
from quality.impairments import CodecChain
from quality.playout import MIN_DEPTH_S, QUANTILE

FRAME_S: Final = 0.020
FRAME_BYTES: Final = 160
SILENCE: Final = b"\xff" * FRAME_BYTES  # mu-law zero
TALK_S: Final = 1.0  # --speech: talk and silence alternate, starting with talk
PAUSE_S: Final = 0.6
CALL_SID: Final = "CA" + "0" * 31 + "1"
STREAM_SID: Final = "MZ" + "0" * 31 + "1"
STARTED_AT: Final = "2026-01-01T00:00:00+00:00"
_RAW_ABOVE: Final = 1 << 20  # every message is small: store it parsed (``msg``)


@dataclass(frozen=True)
class SimParams:
    """What to generate; see the module docstring for the model. Percentages are 0..100."""

    seconds: float = 10.0
    loss_pct: float = 0.0
    gilbert: tuple[float, float] | None = None
    drop: frozenset[int] = frozenset()
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_dist: str = "exponential"  # exponential | pareto
    pareto_alpha: float = 2.5
    reorder_pct: float = 0.0
    duplicate_pct: float = 0.0
    stall_at_s: float | None = None
    stall_ms: float = 0.0
    speech: bool = False
    tenant: str = "sim"
    timers: bool = True  # write the core's interval timer lines, as the live driver does

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds >= 2 * FRAME_S):
            raise ValueError(f"seconds must be at least {2 * FRAME_S:g} (two frames), got {self.seconds!r}")
        for name in ("loss_pct", "reorder_pct", "duplicate_pct"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0.0 <= v <= 100.0):
                raise ValueError(f"{name} must be a percentage 0..100, got {v!r}")
        for name in ("delay_ms", "jitter_ms", "stall_ms"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.gilbert is not None:
            p, q = self.gilbert
            if not (0.0 <= p <= 1.0 and 0.0 < q <= 1.0):
                raise ValueError(f"Gilbert p must be within 0..1 and q within (0, 1], got p={p!r}, q={q!r}")
        if self.jitter_dist not in ("exponential", "pareto"):
            raise ValueError(f"jitter_dist must be exponential or pareto, got {self.jitter_dist!r}")
        if not (math.isfinite(self.pareto_alpha) and self.pareto_alpha > 1.0):
            raise ValueError(f"pareto_alpha must be > 1 (a finite mean), got {self.pareto_alpha!r}")
        if self.stall_at_s is not None and not (math.isfinite(self.stall_at_s) and self.stall_at_s >= 0.0):
            raise ValueError(f"stall_at_s must be a finite number >= 0, got {self.stall_at_s!r}")

    @property
    def frames(self) -> int:
        return round(self.seconds / FRAME_S)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["drop"] = sorted(self.drop)
        d["gilbert"] = list(self.gilbert) if self.gilbert is not None else None
        return d


@dataclass(frozen=True)
class GroundTruth:
    """The impairments as injected, from the generator's bookkeeping.

    ``lost``/``loss_pct``/``loss_runs``/``max_loss_run``/``burst_r`` are over frames 1..N in media
    order; ``reordered`` counts messages that arrived after a later one; the extra-delay figures
    are over the delivered frames' injected draws (p95 by nearest rank); the jitter figures
    (mean, max and last J) and the playout figures are None for a plain log (no arrival times).
    """

    frames_generated: int
    frames_delivered: int
    messages_sent: int  # media messages on the wire: delivered frames plus duplicates
    lost: int
    loss_pct: float
    loss_runs: int
    max_loss_run: int
    burst_r: float
    duplicates: int
    reordered: int
    extra_delay_mean_ms: float
    extra_delay_p95_ms: float
    jitter_ms: float | None
    jitter_max_ms: float | None
    jitter_last_ms: float | None
    buffer_ms: float | None  # ``playout_truth``: the documented buffer over the injected transits
    late_pct: float | None
    duration_s: float  # arrival time of ``stop``
    lost_frames: tuple[int, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lost_frames"] = list(self.lost_frames)
        return d


@dataclass(frozen=True)
class Simulation:
    lines: tuple[str, ...]
    truth: GroundTruth

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


@dataclass(frozen=True)
class _Arrival:
    frame: int  # media frame number, from 1: timestamp (frame - 1) * 20 ms
    chunk: int  # Twilio's message counter: consecutive over the frames sent
    t: float
    copy: bool = False


def simulate(params: SimParams, rng: random.Random, *, plain: bool = False, started_at: str = STARTED_AT,
             bridge_version: str = f"{__version__}+simulate") -> Simulation:
    """Generate one call. ``plain=True`` writes a plain Twilio log instead of a capture: the
    messages alone, one per line, in arrival order (no header, no times, no events)."""
    n = params.frames
    lost = _lost_frames(params, n, rng)
    delivered = [k for k in range(1, n + 1) if k not in lost]
    extra = _extra_delays(params, len(delivered), rng)
    arrivals = _schedule(params, delivered, extra)
    arrivals = _reorder(params, arrivals, rng)
    arrivals = _duplicate(params, arrivals, rng)
    stop_t = round(max(arrivals[-1].t, n * FRAME_S + params.delay_ms / 1000.0), 6)
    jitter = None if plain else _rfc3550_jitter_ms(arrivals)
    playout = None if plain else playout_truth(_transits(arrivals))
    truth = GroundTruth(
        frames_generated=n,
        frames_delivered=len(delivered),
        messages_sent=len(arrivals),
        lost=len(lost),
        loss_pct=100.0 * len(lost) / n,
        loss_runs=len(_runs(lost)),
        max_loss_run=max(_runs(lost), default=0),
        burst_r=burst_r(lost, n),
        duplicates=sum(a.copy for a in arrivals),
        reordered=_reordered(arrivals),
        extra_delay_mean_ms=1000.0 * math.fsum(extra) / len(extra),  # fsum: the same bits on every Python
        extra_delay_p95_ms=1000.0 * sorted(extra)[math.ceil(0.95 * len(extra)) - 1],
        jitter_ms=None if jitter is None else jitter[0],
        jitter_max_ms=None if jitter is None else jitter[1],
        jitter_last_ms=None if jitter is None else jitter[2],
        buffer_ms=None if playout is None else playout[0],
        late_pct=None if playout is None else playout[1],
        duration_s=stop_t,
        lost_frames=tuple(sorted(lost)),
    )
    payloads = _payloads(n, params.speech)
    messages = _messages(params, arrivals, payloads, n, stop_t)
    if plain:
        lines = tuple(compact_json.dumps(json.loads(text)) for _, text in messages)
        return Simulation(lines, truth)
    return Simulation(_capture_lines(messages, stop_t, started_at, bridge_version, params.timers), truth)


def truth_document(params: SimParams, seed: int | None, truth: GroundTruth) -> str:
    """The ``.truth.json`` written next to a simulated capture (stable key order, one trailing newline)."""
    return json.dumps({"generator": "mosbridge simulate", "seed": seed, "params": params.to_dict(),
                       "truth": truth.to_dict()}, indent=2, sort_keys=True) + "\n"


# ------------------------------------------------------------------------------- impairments


def _lost_frames(params: SimParams, n: int, rng: random.Random) -> frozenset[int]:
    lost = {k for k in params.drop if 1 < k < n}
    if params.loss_pct > 0.0:
        lost |= {k for k in range(2, n) if rng.random() < params.loss_pct / 100.0}
    if params.gilbert is not None:
        p, q = params.gilbert
        bad = False
        for k in range(2, n):
            bad = rng.random() < ((1.0 - q) if bad else p)
            if bad:
                lost.add(k)
    return frozenset(lost)


def _extra_delays(params: SimParams, count: int, rng: random.Random) -> list[float]:
    """Seconds of extra delay per delivered frame, exponential or Lomax, mean ``jitter_ms``."""
    if params.jitter_ms <= 0.0:
        return [0.0] * count
    if params.jitter_dist == "exponential":
        return [rng.expovariate(1000.0 / params.jitter_ms) for _ in range(count)]
    scale = (params.pareto_alpha - 1.0) * params.jitter_ms / 1000.0
    return [scale * (rng.paretovariate(params.pareto_alpha) - 1.0) for _ in range(count)]


def _schedule(params: SimParams, delivered: list[int], extra: list[float]) -> list[_Arrival]:
    base = params.delay_ms / 1000.0
    stall = None
    if params.stall_at_s is not None and params.stall_ms > 0.0:
        stall = (params.stall_at_s, params.stall_at_s + params.stall_ms / 1000.0)
    out: list[_Arrival] = []
    last = 0.0
    for chunk, (frame, x) in enumerate(zip(delivered, extra, strict=True), start=1):
        raw = (frame - 1) * FRAME_S + base + x
        if stall is not None and stall[0] <= raw < stall[1]:
            raw = stall[1]
        last = max(last, round(raw, 6))
        out.append(_Arrival(frame, chunk, last))
    return out


def _reorder(params: SimParams, arrivals: list[_Arrival], rng: random.Random) -> list[_Arrival]:
    if params.reorder_pct <= 0.0:
        return arrivals
    out = list(arrivals)
    i = 1  # never the first frame: the core would take the later chunk as the stream's first
    while i + 1 < len(out):
        if rng.random() < params.reorder_pct / 100.0:
            early, later = out[i], out[i + 1]
            out[i], out[i + 1] = later, _Arrival(early.frame, early.chunk, later.t)
            i += 2
        else:
            i += 1
    return out


def _duplicate(params: SimParams, arrivals: list[_Arrival], rng: random.Random) -> list[_Arrival]:
    if params.duplicate_pct <= 0.0:
        return arrivals
    out: list[_Arrival] = []
    for a in arrivals:
        out.append(a)
        if rng.random() < params.duplicate_pct / 100.0:
            out.append(_Arrival(a.frame, a.chunk, a.t, copy=True))
    return out


# ------------------------------------------------------------------------------- bookkeeping


def _runs(lost: frozenset[int]) -> list[int]:
    runs: list[int] = []
    prev = None
    for k in sorted(lost):
        if prev is not None and k == prev + 1:
            runs[-1] += 1
        else:
            runs.append(1)
        prev = k
    return runs


def _reordered(arrivals: list[_Arrival]) -> int:
    highest, count = 0, 0
    for a in arrivals:
        if not a.copy:
            count += a.chunk < highest
            highest = max(highest, a.chunk)
    return count


def burst_r(lost: Collection[int], n: int) -> float:
    """1 / (p + q) from the transitions of frames 1..N (G.107 §7.5); 1 with no loss."""
    if not lost:
        return 1.0
    fates = [k in lost for k in range(1, n + 1)]
    pairs = list(itertools.pairwise(fates))
    from_recv = [b for a, b in pairs if not a]
    from_lost = [b for a, b in pairs if a]
    p = sum(from_recv) / len(from_recv)
    q = (len(from_lost) - sum(from_lost)) / len(from_lost)
    return 1.0 / (p + q)


def _transits(arrivals: list[_Arrival]) -> list[float]:
    return [a.t - (a.frame - 1) * 20 / 1000.0 for a in arrivals if not a.copy]  # media ts: ms on the wire


def _rfc3550_jitter_ms(arrivals: list[_Arrival]) -> tuple[float, float, float]:
    """(mean, max, last) of J in ms, J over every frame after the first."""
    j = 0.0
    seen: list[float] = []
    for prev, cur in itertools.pairwise(_transits(arrivals)):
        j += (abs(cur - prev) - j) / 16.0
        seen.append(j)
    if not seen:
        return 0.0, 0.0, 0.0
    return 1000.0 * math.fsum(seen) / len(seen), 1000.0 * max(seen), 1000.0 * j


def playout_truth(transits_s: Sequence[float]) -> tuple[float, float]:
    """(buffer ms, late %) of the bridge's documented playout rule applied to the whole call's
    injected transits at once: a buffer at the 99th percentile (nearest rank) of the transit
    above the fastest, at least one frame, and the share of frames later than that."""
    v = sorted(transits_s)
    buffer_s = max(MIN_DEPTH_S, v[math.ceil(QUANTILE * len(v)) - 1] - v[0])
    late = sum(1 for t in v if t - v[0] > buffer_s + 1e-9)
    return 1000.0 * buffer_s, 100.0 * late / len(v)


def truth_mos(*, loss_pct: float, burst_r: float, buffer_ms: float, late_pct: float, chain: CodecChain,
              base_delay_ms: float) -> float:
    """The call MOS its ground truth should get, straight from G.107 (§7.1, §7.5): Ppl = the
    injected loss plus the late frames, BurstR of the loss pattern, Ie and Bpl of ``chain``,
    T = ``base_delay_ms`` + the buffer. Fed from the generator's bookkeeping (``GroundTruth``,
    :func:`playout_truth`), never from the bridge's meters, so a wrong meter shows as a
    difference."""
    params = replace(EModelParams().with_delay(base_delay_ms + buffer_ms), ie=chain.ie, bpl=chain.bpl,
                     ppl=min(100.0, loss_pct + late_pct), burst_r=min(8.0, burst_r))
    return r_factor(params).mos


# ------------------------------------------------------------------------------- messages


def _payloads(n: int, speech: bool) -> list[bytes]:
    if not speech:
        return [SILENCE] * n
    from bridge.codecs.g711 import ulaw_encode
    from bridge.stand_ins.realtime_ws import speech_like

    audio = ulaw_encode(speech_like(n * 20, 8000))
    cycle = round((TALK_S + PAUSE_S) / FRAME_S)
    talk = round(TALK_S / FRAME_S)
    return [audio[i * FRAME_BYTES:(i + 1) * FRAME_BYTES] if i % cycle < talk else SILENCE for i in range(n)]


def _messages(params: SimParams, arrivals: list[_Arrival], payloads: list[bytes], n: int,
              stop_t: float) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = [
        (0.0, CONNECTED),
        (0.0, start_message(STREAM_SID, CALL_SID, {"tenant": params.tenant})),
    ]
    for a in arrivals:
        b64 = base64.b64encode(payloads[a.frame - 1]).decode("ascii")
        out.append((a.t, media_message(STREAM_SID, a.chunk + 1, a.chunk, (a.frame - 1) * 20, b64)))
    sent = max((a.chunk for a in arrivals), default=0)
    out.append((stop_t, stop_message(STREAM_SID, CALL_SID, sent + 2)))
    return out


def _capture_lines(messages: list[tuple[float, str]], stop_t: float, started_at: str, bridge_version: str,
                   timers: bool) -> tuple[str, ...]:
    """The capture the live driver would write: its inputs, in order, with a timer line wherever
    the core's own timer comes due (a call core runs alongside, as the live driver's does)."""
    config = CallConfig()
    core = CallCore(config, now=0.0, transcoder=MetricsOnlyTranscoder())
    lines = [header_line(started_at, bridge_version, config)]
    inputs: list[tuple[float, Input]] = [(0.0, AiConnected()), *((t, TwilioIn(text)) for t, text in messages)]
    for t, inp in inputs:
        while timers and (due := core.get_timer()) is not None and due <= t and due < stop_t:
            lines.append(event_line(due, Timer.DIR))
            apply(core, Timer(), due)
        if isinstance(inp, TwilioIn):
            lines.append(message_line(t, inp.DIR, inp.text, raw_above=_RAW_ABOVE))
        else:
            lines.append(event_line(t, inp.DIR))
        apply(core, inp, t)
    return tuple(lines)
