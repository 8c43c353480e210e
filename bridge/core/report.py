"""Turn a call's measurements into its quality report (pure: no clock, no I/O).

Rules, also written into every report's ``assumptions``:
- Mouth-to-ear delay per direction = the PSTN leg (assumed, configurable) + half the measured
  WebSocket ping RTT to Twilio and to OpenAI (0 until measured) + G.711 packetization (20 ms)
  + the bridge's own median processing latency + the transcoder's algorithmic delay.
- The Twilio leg is one network path: the loss, burstiness, jitter and jitter-buffer figures
  measured on the caller's inbound stream stand for both directions (symmetric path). Loss is
  counted on Twilio's media clock; jitter is the mean of RFC 3550's J.
- The outbound direction adds its own underruns: AI audio that arrived slower than it plays.
- The call's MOS is the caller's listening direction (outbound, AI -> caller).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from bridge.codecs import Transcoder
from bridge.core.config import CallConfig
from bridge.core.events import Direction, Peer
from bridge.core.playback import Playback
from bridge.core.report_json import LatencyMs, StoredReport
from bridge.core.tags import CallTags
from quality.impairments import CodecChain
from quality.lag import SATURATED_P99_MS, LagFigures
from quality.latency import LatencyHistogram, LatencySummary
from quality.meter import DirectionFigures
from quality.playout import QUANTILE, WINDOW_FRAMES
from quality.report import (
    REPORT_VERSION,
    DirectionReport,
    IntervalScore,
    QualityInput,
    assess,
    direction_input,
)

G711_PACKETIZATION_MS = 20.0
_BUFFERS = {
    "adaptive": f"adaptive: holds the {QUANTILE:.0%} quantile of the last {WINDOW_FRAMES} frames' delay variation "
                "(Moon, Kurose and Towsley 1998); late frames are concealed and count as loss",
    "fixed": "fixed: {ms:g} ms after the first frame; late frames are concealed and count as loss",
}


@dataclass(frozen=True)
class Measurements:
    inbound: DirectionFigures
    playback: Playback
    latency: Mapping[Direction, LatencyHistogram]
    deadline_misses: Mapping[Direction, int]
    rtt: Mapping[Peer, LatencyHistogram]
    turn_to_sent: LatencyHistogram
    turn_to_played: LatencyHistogram


def ai_codec_name(fmt: str, opus_bitrate: int) -> str:
    """The ``quality.impairments`` row for an AI-side format."""
    if fmt == "opus16k":
        return {16000: "opus16k-16", 32000: "opus16k-32"}.get(opus_bitrate, "opus16k")
    return fmt


def chains(fmt: str, opus_bitrate: int, edge: str) -> tuple[CodecChain, CodecChain]:
    """(inbound, outbound) codec chains. G.711 at Twilio's edge is always in the path; ``edge``
    says whether the caller's side conceals loss (``g711-plc``, the default) or not (``g711``)."""
    if fmt == "pcmu":
        return CodecChain.of(edge), CodecChain.of(edge)
    ai = ai_codec_name(fmt, opus_bitrate)
    return CodecChain.of(edge, ai), CodecChain.of(ai, edge)


def _half_rtt_ms(h: LatencyHistogram) -> float:
    return h.summary().p50_ms / 2.0 if h.summary().count else 0.0


def _summary(h: LatencyHistogram) -> LatencySummary | None:
    return h.summary() if h.summary().count else None


def _ms(s: LatencySummary | None) -> LatencyMs | None:
    return None if s is None else {"p50": s.p50_ms, "p95": s.p95_ms, "p99": s.p99_ms, "max": s.max_ms}


def ai_leg_loss_pct(ai_lost: float, ai_expected: float) -> float:
    """RTP packets of the AI's audio that never reached the bridge (WebRTC leg), in %."""
    return 100.0 * ai_lost / ai_expected if ai_expected else 0.0


def outbound_figures(inbound: DirectionFigures, pb: Playback) -> DirectionFigures:
    """The caller's listening direction: frames we sent, underruns as lost slots, and the
    network figures of the (symmetric) Twilio leg measured inbound."""
    expected = pb.frames + pb.underrun_frames
    underrun_pct = 100.0 * pb.underrun_frames / expected if expected else 0.0
    return replace(
        inbound,
        frames=pb.frames,
        expected=expected,
        lost=pb.underrun_frames,
        loss_pct=min(100.0, inbound.loss_pct + underrun_pct),
        gaps=pb.underruns,
        duplicates=0,
        reordered=0,
        too_late=0,
        max_loss_run=0,
        timestamp_gaps=pb.underruns,
        missing_ms=pb.underrun_s * 1000.0,
    )


@dataclass(frozen=True)
class AiLeg:
    """The WebRTC AI leg: its RTP figures, and the share of the AI's packets that never arrived."""

    rtp: Mapping[str, float | int | None]
    loss_pct: float


@dataclass(frozen=True)
class Scored:
    """What only a full report holds: both directions scored and the bridge's own figures."""

    inbound: DirectionReport
    outbound: DirectionReport
    inbound_deadline_misses: int
    outbound_deadline_misses: int
    playback_frames: int
    playback_underruns: int
    underrun_ms: float
    mark_echo: LatencySummary | None
    rtt_twilio: LatencySummary | None
    rtt_openai: LatencySummary | None
    turn_to_first_sent: LatencySummary | None
    turn_to_first_played: LatencySummary | None
    loop_lag: LagFigures | None = None
    ai_leg: AiLeg | None = None


@dataclass(frozen=True)
class Report:
    """One call's report, full (``scored`` set) or fallback (``error`` set, no MOS rather than a
    wrong one). Typed inside the bridge; :meth:`to_json` is its one way out (log, store, webhook, API)."""

    call_sid: str
    stream_sid: str | None
    tenant: str | None
    duration_s: float
    end_reason: str
    ai_format: str
    tags: Mapping[str, str]
    counters: Mapping[str, int]
    assumptions: Mapping[str, float | str]
    intervals: tuple[IntervalScore, ...] = ()
    scored: Scored | None = None
    error: str | None = None
    started_at: str | None = None  # wall clock (ISO-8601 UTC), set by the live driver only
    ended_at: str | None = None

    def stamped(self, started_at: str, ended_at: str) -> Report:
        """This report with the call's wall-clock start and end, which the pure core cannot know."""
        return replace(self, started_at=started_at, ended_at=ended_at)

    def with_assumption(self, key: str, value: float | str) -> Report:
        """This report with one more (or a changed) entry in ``assumptions``."""
        return replace(self, assumptions={**self.assumptions, key: value})

    def to_json(self) -> StoredReport:
        """The report as stored (``report_version`` 2); the keys come in the order they always have."""
        s = self.scored
        if s is None:
            out: StoredReport = {
                "report_version": REPORT_VERSION, "call_sid": self.call_sid, "stream_sid": self.stream_sid,
                "tenant": self.tenant, "mos": None, "r": None, "band": None, "dominant_impairment": None,
                "duration_s": self.duration_s, "inbound": {}, "outbound": {},
                "intervals": [asdict(i) for i in self.intervals], "tags": dict(self.tags),
                "counters": dict(self.counters), "assumptions": dict(self.assumptions),
                "end_reason": self.end_reason, "ai_format": self.ai_format,
            }
            if self.error is not None:
                out["error"] = self.error
        else:
            caller = s.outbound.assessment  # the call's MOS is the caller's listening direction
            out = {
                "report_version": REPORT_VERSION, "call_sid": self.call_sid, "tenant": self.tenant,
                "mos": caller.mos, "r": caller.r, "band": caller.band.value,
                "dominant_impairment": caller.dominant.value, "duration_s": self.duration_s,
                "inbound": {**s.inbound.to_dict(), "deadline_misses": s.inbound_deadline_misses},
                "outbound": {**s.outbound.to_dict(), "deadline_misses": s.outbound_deadline_misses},
                "intervals": [asdict(i) for i in self.intervals], "tags": dict(self.tags),
                "assumptions": dict(self.assumptions), "counters": dict(self.counters),
                "stream_sid": self.stream_sid, "end_reason": self.end_reason, "ai_format": self.ai_format,
                "codec_chain": {"inbound": s.inbound.codec_chain, "outbound": s.outbound.codec_chain},
                "playback": {"frames": s.playback_frames, "underruns": s.playback_underruns,
                             "underrun_ms": s.underrun_ms, "mark_echo_ms": _ms(s.mark_echo)},
                "rtt_ms": {"twilio": _ms(s.rtt_twilio), "openai": _ms(s.rtt_openai)},
                "ai_turn_ms": {"to_first_audio_sent": _ms(s.turn_to_first_sent),
                               "to_first_audio_played": _ms(s.turn_to_first_played)},
            }
            if s.loop_lag is not None:
                out["bridge_host"] = {"loop_lag": s.loop_lag.to_dict()}
            if s.ai_leg is not None:
                out["ai_leg"] = {"transport": "webrtc", "rtp": dict(s.ai_leg.rtp), "loss_pct": s.ai_leg.loss_pct}
        if self.started_at is not None:
            out["started_at"] = self.started_at
        if self.ended_at is not None:
            out["ended_at"] = self.ended_at
        return out


def build_report(
    *,
    call_sid: str,
    stream_sid: str,
    tags: CallTags,
    config: CallConfig,
    transcoder: Transcoder,
    m: Measurements,
    intervals: list[tuple[float, float, dict[str, float]]],
    duration_s: float,
    end_reason: str,
    counters: dict[str, int],
    rtp: dict[str, float | int | None] | None = None,
    loop_lag: LagFigures | None = None,
) -> Report:
    in_chain, out_chain = chains(config.ai_format, config.opus_bitrate, config.edge_codec)
    twilio_leg = _half_rtt_ms(m.rtt[Peer.TWILIO])
    ai_leg = _half_rtt_ms(m.rtt[Peer.REALTIME])
    common = config.pstn_delay_ms + twilio_leg + G711_PACKETIZATION_MS + ai_leg
    in_lat, out_lat = m.latency[Direction.INBOUND], m.latency[Direction.OUTBOUND]
    in_delay = common + in_lat.summary().p50_ms + transcoder.delay_to_ai.total_ms
    out_delay = common + out_lat.summary().p50_ms + transcoder.delay_to_caller.total_ms

    in_q = direction_input(m.inbound, in_delay, in_chain)
    ai_missing = counters.get("ai_packets_missing", 0)
    ai_loss = ai_leg_loss_pct(ai_missing, counters.get("ai_packets", 0) + ai_missing)
    out_fig = outbound_figures(m.inbound, m.playback)
    out_q = replace(in_q, delay_ms=out_delay, chain=out_chain, loss_pct=out_fig.loss_pct, upstream_loss_pct=ai_loss)
    inbound = DirectionReport("inbound", m.inbound, in_delay, in_chain.name, assess(in_q), _summary(in_lat))
    outbound = DirectionReport("outbound", out_fig, out_delay, out_chain.name, assess(out_q), _summary(out_lat))

    scores = tuple(_interval_score(start, end, d, out_q) for start, end, d in intervals)
    origin = intervals[0][0] if intervals else 0.0
    scores = tuple(replace(s, start_s=s.start_s - origin, end_s=s.end_s - origin) for s in scores)
    assumptions: dict[str, float | str] = {
        "pstn_delay_ms": config.pstn_delay_ms,
        "twilio_leg_ms": twilio_leg if m.rtt[Peer.TWILIO].summary().count else "not measured (0)",
        "ai_leg_ms": ai_leg if m.rtt[Peer.REALTIME].summary().count else "not measured (0)",
        "jitter_buffer": _BUFFERS[config.jitter_buffer].format(ms=config.fixed_buffer_ms),
        "loss": "media clock: a media.timestamp step of k x 20 ms is k - 1 lost frames (Twilio's chunk and "
                "sequenceNumber count its messages and never skip)",
        "network_path": "symmetric: inbound loss/jitter stand for both directions"
        + ("; outbound adds the AI leg's measured RTP loss, concealed by Opus" if rtp is not None else ""),
        "call_mos": "outbound (the caller's listening direction)",
    }
    if loop_lag is not None and loop_lag.saturated:
        assumptions["measurement"] = (
            f"the bridge's event loop lagged (p99 {loop_lag.p99_ms:.1f} ms > {SATURATED_P99_MS:.0f} ms): frames "
            "waited unread, so jitter, late discards and bridge latency include the bridge's own delay")
    pb = m.playback
    scored = Scored(
        inbound=inbound,
        outbound=outbound,
        inbound_deadline_misses=m.deadline_misses[Direction.INBOUND],
        outbound_deadline_misses=m.deadline_misses[Direction.OUTBOUND],
        playback_frames=pb.frames,
        playback_underruns=pb.underruns,
        underrun_ms=pb.underrun_s * 1000.0,
        mark_echo=_summary(pb.mark_delay),
        rtt_twilio=_summary(m.rtt[Peer.TWILIO]),
        rtt_openai=_summary(m.rtt[Peer.REALTIME]),
        turn_to_first_sent=_summary(m.turn_to_sent),
        turn_to_first_played=_summary(m.turn_to_played),
        loop_lag=loop_lag,
        ai_leg=None if rtp is None else AiLeg(dict(rtp), ai_loss),
    )
    report = Report(
        call_sid=call_sid,
        stream_sid=stream_sid or None,
        tenant=tags.tenant,
        duration_s=duration_s,
        end_reason=end_reason,
        ai_format=config.ai_format,
        tags=dict(tags.tags),
        counters=dict(sorted(counters.items())),
        assumptions=assumptions,
        intervals=scores,
        scored=scored,
    )
    # The JSON is made at the boundary, outside the core's guard: a report that cannot become
    # JSON must fail here, where the core replaces it with a fallback report.
    report.to_json()
    return report


def fallback_report(*, call_sid: str, stream_sid: str, tags: CallTags, config: CallConfig, duration_s: float,
                    end_reason: str, counters: dict[str, int], error: str) -> Report:
    """The report of a call whose full report could not be built (a bug met on the way): who it
    was, how it ended, its counters and the error, with no MOS rather than a wrong one. Every
    ended call gets a report; this is the one that cannot fail."""
    return Report(call_sid=call_sid, stream_sid=stream_sid or None, tenant=tags.tenant, duration_s=duration_s,
                  end_reason=end_reason, ai_format=config.ai_format, tags=dict(tags.tags),
                  counters=dict(sorted(counters.items())), assumptions={}, error=error)


def _interval_score(start: float, end: float, d: dict[str, float], out_q: QualityInput) -> IntervalScore:
    net = 100.0 * d["lost"] / d["expected"] if d["expected"] else 0.0
    slots = d["frames_out"] + d["underrun"]
    under = 100.0 * d["underrun"] / slots if slots else 0.0
    loss = min(100.0, net + under)
    a = assess(replace(out_q, loss_pct=loss, jitter_ms=d["jitter_ms"],
                       upstream_loss_pct=ai_leg_loss_pct(d["ai_lost"], d["ai_expected"])))
    return IntervalScore(start_s=start, end_s=end, mos=a.mos, r=a.r, loss_pct=loss, jitter_ms=d["jitter_ms"],
                         dominant_impairment=a.dominant.value)
