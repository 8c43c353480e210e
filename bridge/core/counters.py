"""Every counter a call report can carry (``counters``), with what it means: one vocabulary for
the core, the report, ``/metrics`` (``mosbridge_problems_total{kind}``) and the README's operator
reference (a test keeps the README's table equal to :data:`MEANINGS`)."""

from __future__ import annotations

import enum


class Count(enum.StrEnum):
    # bad input from Twilio
    OVERSIZE = "oversize"
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    BAD_BASE64 = "bad_base64"
    BAD_FRAME = "bad_frame"
    MEDIA_BEFORE_START = "media_before_start"
    WRONG_TRACK = "wrong_track"
    UNKNOWN_TWILIO_EVENT = "unknown_twilio_event"
    DUPLICATE_START = "duplicate_start"
    MEDIA_FORMAT = "media_format"
    DUPLICATE_FRAMES = "duplicate_frames"
    TOO_LATE_FRAMES = "too_late_frames"
    REORDERED_FRAMES = "reordered_frames"
    TIMESTAMP_JUMP = "timestamp_jump"
    TIMESTAMP_BACKWARDS = "timestamp_backwards"
    RATE_LIMITED = "rate_limited"
    NO_START = "no_start"
    TWILIO_ERROR = "twilio_error"
    TWILIO_UNRESPONSIVE = "twilio_unresponsive"
    # the caller's audio toward the AI
    CONCEALED_FRAMES = "concealed_frames"
    FRAMES_HELD_FOR_AI = "frames_held_for_ai"
    FRAMES_WHILE_AI_DOWN = "frames_while_ai_down"
    DTMF_DIGITS = "dtmf_digits"
    # the AI side
    AI_BAD_EVENT = "ai_bad_event"
    AI_BAD_BASE64 = "ai_bad_base64"
    AI_BAD_AUDIO = "ai_bad_audio"
    AI_ERRORS = "ai_errors"
    AI_DISCONNECTS = "ai_disconnects"
    AI_RECONNECTS = "ai_reconnects"
    AI_CONNECT_TIMEOUTS = "ai_connect_timeouts"
    AI_FORMAT_MISMATCH = "ai_format_mismatch"
    AI_STALLS = "ai_stalls"
    AI_PACKETS = "ai_packets"
    AI_PACKETS_MISSING = "ai_packets_missing"
    AI_PACKETS_FILLED = "ai_packets_filled"
    AI_PACKETS_LATE = "ai_packets_late"
    AI_PACKETS_DUPLICATE = "ai_packets_duplicate"
    AI_PACKETS_TOO_LATE = "ai_packets_too_late"
    AI_SEQ_RESTARTS = "ai_seq_restarts"
    IDLE_TRACK_FRAMES = "idle_track_frames"
    LATE_TRACK_FRAMES_DROPPED = "late_track_frames_dropped"
    # responses, barge-in and playback
    RESPONSES = "responses"
    RESPONSES_CANCELLED = "responses_cancelled"
    LATE_DELTAS_DROPPED = "late_deltas_dropped"
    BARGE_INS = "barge_ins"
    MARKS_SENT = "marks_sent"
    MARKS_PLAYED = "marks_played"
    MARKS_CLEARED = "marks_cleared"
    MARKS_UNKNOWN = "marks_unknown"
    # the bridge itself
    INTERNAL_ERRORS = "internal_errors"
    REPORT_ERRORS = "report_errors"


MEANINGS: dict[Count, str] = {
    Count.OVERSIZE: "a Twilio message over MOSBRIDGE_MAX_MESSAGE_BYTES, skipped",
    Count.BAD_JSON: "a Twilio message that is not JSON",
    Count.BAD_MESSAGE: "a Twilio message of the wrong shape (a missing or mistyped field, a number over 15 digits)",
    Count.BAD_BASE64: "a media payload that is not base64",
    Count.BAD_FRAME: "a media payload the transcoder refused (e.g. a wrong frame size)",
    Count.MEDIA_BEFORE_START: "media before the start message, dropped",
    Count.WRONG_TRACK: "media on a track other than inbound, dropped",
    Count.UNKNOWN_TWILIO_EVENT: "a Twilio event the bridge does not know",
    Count.DUPLICATE_START: "a second start message on one stream",
    Count.MEDIA_FORMAT: "a start whose mediaFormat is not audio/x-mulaw, 8000 Hz, mono",
    Count.DUPLICATE_FRAMES: "a media message seen before (same chunk or media slot), dropped",
    Count.TOO_LATE_FRAMES: "a media message older than the 32-frame reorder window, dropped",
    Count.REORDERED_FRAMES: "a media message that arrived after a later one (Twilio never does this)",
    Count.TIMESTAMP_JUMP: "a media timestamp more than 10 s from the last: the media clock re-anchored, not loss",
    Count.TIMESTAMP_BACKWARDS: "a media timestamp behind the stream while the chunk is in order: not metered",
    Count.RATE_LIMITED: "media beyond the connection's burst and rate (MOSBRIDGE_MAX_MESSAGES_PER_S), dropped",
    Count.NO_START: "the socket sent no start within MOSBRIDGE_START_TIMEOUT_S and was closed",
    Count.TWILIO_ERROR: "the Twilio socket failed (e.g. a message over the transport cap): the call ended",
    Count.TWILIO_UNRESPONSIVE: "the Twilio peer left MOSBRIDGE_TWILIO_MISSED_PONGS pings unanswered: ended",
    Count.CONCEALED_FRAMES: "missing caller frames filled in toward the AI (timestamp gaps up to 1 s)",
    Count.FRAMES_HELD_FOR_AI: "caller frames held while the AI leg connected, sent once it was up",
    Count.FRAMES_WHILE_AI_DOWN: "caller frames dropped: the AI leg was down longer than MOSBRIDGE_HOLD_AUDIO_S",
    Count.DTMF_DIGITS: "DTMF digits passed to the AI",
    Count.AI_BAD_EVENT: "a Realtime event that is not JSON or of the wrong shape",
    Count.AI_BAD_BASE64: "an audio delta that is not base64",
    Count.AI_BAD_AUDIO: "AI audio the transcoder refused",
    Count.AI_ERRORS: "Realtime error events",
    Count.AI_DISCONNECTS: "Realtime sessions that closed or failed to open",
    Count.AI_RECONNECTS: "Realtime sessions reopened after one closed",
    Count.AI_CONNECT_TIMEOUTS: "Realtime connection attempts with no handshake in MOSBRIDGE_AI_CONNECT_TIMEOUT_S",
    Count.AI_FORMAT_MISMATCH: "session.updated echoed audio formats other than those asked for",
    Count.AI_STALLS: "responses that sent no audio for MOSBRIDGE_AI_STALL_S",
    Count.AI_PACKETS: "RTP packets of AI audio decoded (WebRTC leg)",
    Count.AI_PACKETS_MISSING: "RTP packets of AI audio that never arrived (WebRTC leg)",
    Count.AI_PACKETS_FILLED: "missing AI packets filled by Opus PLC/FEC (holes up to 3 packets)",
    Count.AI_PACKETS_LATE: "AI packets older than one already decoded, dropped",
    Count.AI_PACKETS_DUPLICATE: "AI packets seen before, dropped",
    Count.AI_PACKETS_TOO_LATE: "AI packets older than the reorder window, dropped",
    Count.AI_SEQ_RESTARTS: "AI RTP sequence jumps of thousands: the sender started over (RFC 3550 A.1)",
    Count.IDLE_TRACK_FRAMES: "silence on the AI track between answers, not played",
    Count.LATE_TRACK_FRAMES_DROPPED: "AI track audio after a barge-in, dropped",
    Count.RESPONSES: "AI responses finished (response.done)",
    Count.RESPONSES_CANCELLED: "AI responses cancelled",
    Count.LATE_DELTAS_DROPPED: "audio deltas of a cancelled response, dropped",
    Count.BARGE_INS: "the caller spoke over the AI: clear and truncate",
    Count.MARKS_SENT: "marks sent to Twilio after AI audio",
    Count.MARKS_PLAYED: "marks Twilio echoed as played",
    Count.MARKS_CLEARED: "marks Twilio echoed because of a clear (not played)",
    Count.MARKS_UNKNOWN: "marks Twilio echoed that the bridge did not send",
    Count.INTERNAL_ERRORS: "a bug met by one input: counted, the call went on",
    Count.REPORT_ERRORS: "the full report could not be built: this is a fallback report",
}
