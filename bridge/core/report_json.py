"""The stored shape of a call's report: the JSON that reaches the log, the store, the webhook and the API.

``Report.to_json`` (``bridge/core/report.py``) is the one writer. Keys a report may lack are
``NotRequired``: what only a full report has, only a fallback report has, only a live call has
(wall-clock stamps), and ``report_version``, absent from reports stored before version 2. Readers
of stored reports still use ``.get``: the store also hands back reports older code wrote.
"""

# No ``from __future__ import annotations``: Python 3.11 sees NotRequired only in evaluated
# annotations, and the tests check ``__required_keys__``/``__optional_keys__`` at run time.
from typing import Any, NotRequired, TypedDict


class LatencyMs(TypedDict):
    p50: float
    p95: float
    p99: float
    max: float


class CodecChains(TypedDict):
    inbound: str
    outbound: str


class PlaybackJson(TypedDict):
    frames: int
    underruns: int
    underrun_ms: float
    mark_echo_ms: LatencyMs | None


class RttJson(TypedDict):
    twilio: LatencyMs | None
    openai: LatencyMs | None


class AiTurnJson(TypedDict):
    to_first_audio_sent: LatencyMs | None
    to_first_audio_played: LatencyMs | None


class BridgeHostJson(TypedDict):
    loop_lag: dict[str, float | int | bool]  # quality.lag.LagFigures.to_dict()


class AiLegJson(TypedDict):
    transport: str
    rtp: dict[str, float | int | None]
    loss_pct: float


class StoredReport(TypedDict):
    """One call's report as JSON (``report_version`` 2). ``mos``, ``r``, ``band`` and
    ``dominant_impairment`` are None, and ``inbound``/``outbound`` empty, in a fallback report."""

    report_version: NotRequired[int]
    call_sid: str
    stream_sid: str | None
    tenant: str | None
    mos: float | None
    r: float | None
    band: str | None
    dominant_impairment: str | None
    duration_s: float
    inbound: dict[str, Any]  # quality.report.DirectionReport.to_dict() plus deadline_misses
    outbound: dict[str, Any]
    intervals: list[dict[str, Any]]  # quality.report.IntervalScore as a dict
    tags: dict[str, str]
    assumptions: dict[str, float | str]
    counters: dict[str, int]
    end_reason: str
    ai_format: str
    # a full report only
    codec_chain: NotRequired[CodecChains]
    playback: NotRequired[PlaybackJson]
    rtt_ms: NotRequired[RttJson]
    ai_turn_ms: NotRequired[AiTurnJson]
    bridge_host: NotRequired[BridgeHostJson]  # when the driver measured its event loop's lag
    ai_leg: NotRequired[AiLegJson]  # the WebRTC AI leg only
    # a fallback report only
    error: NotRequired[str]
    # a live call only (ISO-8601 UTC)
    started_at: NotRequired[str]
    ended_at: NotRequired[str]
