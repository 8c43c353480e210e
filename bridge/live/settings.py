"""Settings of ``mosbridge serve``: environment variables, each with a ``--flag`` too.

Read with pydantic-settings; the environment names are a contract operators and harnesses
rely on (see README "Configuration"). ``serve --help`` lists every one, generated from here.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.core.config import AiFormat, CallConfig, EdgeCodec, JitterBuffer
from bridge.live.logs import LogFormat

_CALL = CallConfig()  # the per-call defaults, written once there
# CallConfig fields that are settings under another name, or converted from one
CALL_CONFIG_RENAMED = {"model": "openai_model"}
CALL_CONFIG_CONVERTED = frozenset({"pseudonym_key", "phi_keys"})


OVERLOAD_TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Sorry, all our lines are busy. '
                  'Please call again in a few minutes.</Say><Hangup/></Response>')


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOSBRIDGE_", populate_by_name=True, frozen=True,
                                      extra="ignore")

    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="one public port: TwiML webhook and /media WebSocket")
    workers: int = Field(
        default_factory=usable_cpus, ge=1,
        description="server processes sharing the port, each with its own event loop and calls (1: one process, "
        "no supervisor). Default: the CPUs this process may use")
    public_url: str | None = Field(
        None, description="the https base URL Twilio sees (behind a TLS proxy); used for the Stream URL "
        "and for signature checks. Default: derived from each request")
    twilio_auth_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("twilio_auth_token", "TWILIO_AUTH_TOKEN"),
        description="Twilio auth token for X-Twilio-Signature checks")
    validate_twilio_signature: bool = Field(
        True, description="check X-Twilio-Signature on /twiml and the /media upgrade; 0 turns it off for local use")
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("openai_api_key", "OPENAI_API_KEY"),
        description="OpenAI API key")
    openai_url: str = Field("wss://api.openai.com/v1/realtime", description="Realtime WebSocket base URL")
    openai_model: str = Field("gpt-realtime", description="Realtime model name")
    openai_calls_url: str = Field("https://api.openai.com/v1/realtime/calls",
                                  description="Realtime WebRTC calls endpoint (SDP offer/answer), for opus16k")
    webrtc_stun_url: str | None = Field(None, description="STUN server for the WebRTC leg (e.g. "
                                        "stun:stun.example.com:3478); unset: host candidates only")
    webrtc_ice_addresses: str = Field("", description="comma-separated local addresses the WebRTC leg gathers "
                                      "ICE candidates on; empty: every interface")
    ai_format: AiFormat = Field(
        _CALL.ai_format,
        description="AI-side audio: pcmu (pass-through) or pcm24k over the Realtime WebSocket; opus16k "
        "(Opus at 16 kHz) over the WebRTC leg")
    database_url: str = Field(
        "sqlite:///mosbridge.db", description="report store: sqlite:///file.db (embedded default) or "
        "postgresql://user@host:5432/db (many bridges, one database)")
    spool_path: str | None = Field(
        None, description="local file where reports wait while the database is unreachable (written later, "
        "kept across restarts). Default: <db file>.spill.jsonl for SQLite, mosbridge-spool.jsonl for PostgreSQL")
    voice: str = Field("alloy", description="Realtime voice")
    instructions: str = Field("You are a helpful phone agent. Keep answers short.",
                              description="Realtime session instructions")
    opus_bitrate: int = Field(_CALL.opus_bitrate, ge=6000, le=510000,
                              description="Opus bitrate toward the AI on the WebRTC leg (opus16k), bit/s")
    pstn_delay_ms: float = Field(_CALL.pstn_delay_ms, ge=0,
                                 description="assumed one-way delay of the unmeasured PSTN leg, ms")
    jitter_buffer: JitterBuffer = Field(
        _CALL.jitter_buffer,
        description="playout model for jitter: adaptive (99th percentile of the last 10 s of delay "
        "variation, at least 20 ms) or fixed")
    fixed_buffer_ms: float = Field(_CALL.fixed_buffer_ms, ge=0, description="with jitter_buffer fixed: its depth "
                                   "after the first frame, ms")
    edge_codec: EdgeCodec = Field(
        _CALL.edge_codec, description="the caller's edge in the E-model: g711-plc (carriers and handsets conceal "
        "loss, G.711 App. I) or g711 (no loss concealment: only for an edge known to have none)")
    interval_s: float = Field(_CALL.interval_s, gt=0, description="per-interval MOS granularity, s")
    max_conceal_frames: int = Field(_CALL.max_conceal_frames, ge=0, description="a gap in the caller's audio up "
                                    "to this many 20 ms frames is concealed toward the AI; a longer one is not")
    ai_stall_s: float = Field(_CALL.ai_stall_s, gt=0, description="a response that sends no audio for this long "
                              "counts as stalled (ai_stalls), s")
    ai_healthy_s: float = Field(_CALL.ai_healthy_s, gt=0, description="a Realtime session that lived this long "
                                "renews the reconnect budget, s")
    phi_keys: str = Field(",".join(sorted(_CALL.phi_keys)), description="comma-separated customParameters keys "
                          "whose values are pseudonymized (PHI)")
    drain_timeout_s: float = Field(30.0, ge=0, description="on SIGTERM, how long live calls may finish, s")
    max_calls: int = Field(0, ge=0, description="live calls this process takes at most; above it /readyz answers "
                           "503, /twiml the overload TwiML, /media 503 (0 = no limit)")
    overload_loop_lag_ms: float = Field(25.0, ge=0, description="refuse new calls (as max_calls does) while the "
                                        "process has calls and the median of the event loop's last 21 lag "
                                        "samples is above this, ms (0 = off)")
    overload_twiml: str = Field(OVERLOAD_TWIML, description="TwiML /twiml answers while the process is full (a "
                                "<Redirect> to another pool, or a polite <Say> and <Hangup>)")
    start_timeout_s: float = Field(_CALL.start_timeout_s, gt=0,
                                   description="a Media Streams socket that sends no start message within this is "
                                   "closed (its report says no_start), s")
    twilio_missed_pongs: int = Field(3, ge=1, description="end a call whose Twilio socket left this many pings in a "
                                     "row unanswered (end_reason twilio_unresponsive)")
    max_messages_per_s: float = Field(_CALL.max_messages_per_s, gt=0,
                                      description="Twilio media messages a call may send per second beyond its "
                                      "burst (Twilio sends 50); the excess is dropped and counted")
    max_message_burst: int = Field(_CALL.max_message_burst, ge=1,
                                   description="Twilio media messages a call may send at once (a stalled "
                                   "network's backlog) before max_messages_per_s applies")
    hold_audio_s: float = Field(_CALL.hold_audio_s, ge=0,
                                description="caller audio held while the AI leg connects or reconnects and sent "
                                "once it is up; beyond this it is dropped and counted, s")
    ai_connect_timeout_s: float = Field(5.0, gt=0, description="give up on a Realtime connection attempt after "
                                        "this, count it and reconnect, s")
    max_ai_reconnects: int = Field(_CALL.max_ai_reconnects, ge=0,
                                   description="Realtime reconnects in a row before the call ends (a session that "
                                   "lived ai_healthy_s renews the budget)")
    ai_reconnect_backoff_s: float = Field(0.25, ge=0, description="first wait before a Realtime reconnect; it "
                                          "doubles each attempt in a row up to 4 s, less up to half at random")
    ping_interval_s: float = Field(5.0, gt=0, description="WebSocket ping period for RTT, s")
    outbound_chunk_ms: int = Field(_CALL.outbound_chunk_ms, ge=0, multiple_of=20, description="AI audio goes to "
                                   "Twilio in media messages of up to this much audio, a mark after each (barge-in "
                                   "knows what was played to within one message); 0 = one message per 20 ms frame "
                                   "and a mark per AI delta, ms")
    max_message_bytes: int = Field(_CALL.max_message_bytes, ge=1024,
                                   description="largest accepted WebSocket message, bytes")
    pseudonym_key: SecretStr | None = Field(
        None, description="HMAC key for pseudonymizing PHI ids (patient_id, lead_id...); set it for stable "
        "pseudonyms (an ephemeral key is used otherwise)")
    report_webhook_url: str | None = Field(None, description="POST each call report here as JSON")
    capture_dir: str = Field("captures", description="where call captures (JSON Lines, for replay) are written")
    capture_tenants: str = Field("", description="comma-separated tenants whose calls are captured; * for all; "
                                 "empty: none (capture is off by default)")
    capture_per_call: bool = Field(True, description="capture a call whose TwiML passes the parameter capture=1")
    capture_max_file_bytes: int = Field(50 * 1024 * 1024, ge=4096, description="cap per capture file, bytes")
    capture_max_total_bytes: int = Field(2 * 1024**3, ge=4096,
                                         description="cap on the capture directory; the oldest files go first")
    admin_token: SecretStr | None = Field(
        None, description="bearer token for the JSON API and the dashboard; unset: they answer loopback "
        "clients only")
    metrics_token: SecretStr | None = Field(
        None, description="bearer token /metrics and /stats require (they name tenants); unset: they are open "
        "to whoever reaches the port")
    default_plan: Literal["starter", "growth", "scale"] = Field(
        "scale", description="report granularity of tenants without a plan of their own: starter (labels only), "
        "growth (weekly aggregate) or scale (per-call detail)")
    metrics_max_tenants: int = Field(
        200, ge=1, description="tenants with their own label in /metrics; later ones are counted as tenant=\"other\"")
    alerts: bool = Field(True, description="evaluate the tenant MOS alert in this process (on PostgreSQL one "
                         "instance of a fleet evaluates, by advisory lock)")
    alert_mos_threshold: float = Field(4.0, gt=1, lt=5, description="alert when a tenant's rolling mean MOS is "
                                       "below this")
    alert_window_s: float = Field(300.0, gt=0, description="the rolling window of the mean MOS, s")
    alert_for_s: float = Field(300.0, ge=0, description="how long the mean must stay below the threshold "
                               "before the alert fires, s")
    alert_hysteresis: float = Field(0.1, ge=0, lt=1, description="a firing alert resolves once the mean is back "
                                    "at or above threshold + this")
    alert_min_calls: int = Field(3, ge=1, description="calls a window needs before its mean counts")
    alert_eval_interval_s: float = Field(15.0, gt=0, description="how often alerts are evaluated, s")
    alert_webhook_url: str | None = Field(None, description="POST each alert (firing and resolved) here as JSON")
    log_level: str = Field("INFO", description="logging level")
    log_format: LogFormat = Field(
        "text", description="log lines: text (human-readable, peer-supplied values escaped) or json (one JSON "
        "object a line: time, level, logger, message, call_sid, stream_sid, tenant; the report as an object)")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="event loop: uvloop (faster sockets) or the standard asyncio loop")

    def call_config(self) -> CallConfig:
        """The per-call settings, from the settings of the same name: one source for both."""
        key = self.pseudonym_key.get_secret_value().encode() if self.pseudonym_key else os.urandom(32)
        phi = frozenset(k.strip().lower() for k in self.phi_keys.split(",") if k.strip())
        kwargs = {f.name: getattr(self, CALL_CONFIG_RENAMED.get(f.name, f.name)) for f in fields(CallConfig)
                  if f.name not in CALL_CONFIG_CONVERTED}
        return CallConfig(**kwargs, pseudonym_key=key, phi_keys=phi)

    @field_validator("openai_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        if not v.startswith(("ws://", "wss://")):
            raise ValueError("must be a ws:// or wss:// URL")
        return v.rstrip("/")

    @field_validator("openai_calls_url")
    @classmethod
    def _calls_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/") if v else v


def env_name(field: str) -> str:
    """The environment variable that sets a field."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1])
    return "MOSBRIDGE_" + field.upper()
