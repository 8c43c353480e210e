"""Per-call settings of the call core: what it asks the AI for and what it assumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from bridge.core.tags import DEFAULT_PHI_KEYS

AiFormat = Literal["pcmu", "pcm24k", "opus16k"]  # the AI side's audio (see bridge/codecs)
EdgeCodec = Literal["g711-plc", "g711"]
JitterBuffer = Literal["adaptive", "fixed"]
AI_FORMATS: tuple[AiFormat, ...] = get_args(AiFormat)


@dataclass(frozen=True)
class CallConfig:
    """Every field is a ``mosbridge serve`` setting of the same name (``Settings.call_config``),
    but ``model`` (``openai_model``), ``pseudonym_key`` and ``phi_keys`` (converted there)."""

    ai_format: AiFormat = "pcmu"
    opus_bitrate: int = 24000
    model: str | None = None
    voice: str | None = "alloy"
    instructions: str | None = None
    # The PSTN leg between the caller's handset and Twilio's media edge cannot be measured from
    # here; this one-way figure (ms) is added to the mouth-to-ear delay and reported as assumed.
    pstn_delay_ms: float = 60.0
    # The caller's edge: "g711-plc" (Bpl 25.1: carriers and handsets run G.711 with packet-loss
    # concealment, G.711 App. I / G.113 App. I) or "g711" (Bpl 4.3) for an edge known to have none.
    edge_codec: EdgeCodec = "g711-plc"
    jitter_buffer: JitterBuffer = "adaptive"  # the playout model of the caller-side buffer
    fixed_buffer_ms: float = 60.0
    interval_s: float = 5.0  # per-interval MOS granularity
    max_message_bytes: int = 64 * 1024
    max_conceal_frames: int = 50  # longer gaps are not filled in (1 s): the AI hears a jump
    ai_stall_s: float = 5.0  # a response with no audio for this long counts as stalled
    max_ai_reconnects: int = 5  # in a row; a session that lived ai_healthy_s renews the budget
    ai_healthy_s: float = 60.0
    # Caller audio while the AI leg connects or reconnects is held (up to this long) and sent once
    # the session is up, so nothing the caller says is lost to our own start-up; beyond it, dropped.
    hold_audio_s: float = 5.0
    start_timeout_s: float = 5.0  # a socket that sends no ``start`` within this is closed
    # Twilio sends 50 media messages a second; a connection may burst (a network stall's backlog)
    # up to max_message_burst, and beyond that refills at max_messages_per_s: the excess is dropped.
    max_messages_per_s: float = 100.0
    # AI audio goes to Twilio in media messages of up to this much audio, each followed by a mark
    # (so barge-in knows what was played to within one message); 0 = one message per 20 ms frame
    # and one mark per AI delta, as bridges before 0.2 (and their captures) did.
    outbound_chunk_ms: int = 100
    max_message_burst: int = 500
    pseudonym_key: bytes = b"mosbridge-dev-key"
    phi_keys: frozenset[str] = field(default=DEFAULT_PHI_KEYS)
