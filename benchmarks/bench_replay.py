"""Replay speed: minutes of call per CPU second, metrics-only and with transcoding.

A synthetic call is written in the capture format: the caller's 20 ms frames for the whole call
and, every 6 s, a 3 s AI response streamed as odd-sized deltas in the session's format. It is
replayed through the call core (the same code the live bridge runs) and timed with the process
CPU clock. Goals: >= 1000x real time metrics-only, >= 100x with transcoding.
Run: ``.venv/bin/python benchmarks/bench_replay.py [--minutes M]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import random
import time

import numpy as np

from bridge.codecs.g711 import ulaw_encode
from bridge.codecs.opus import OpusEncoder
from bridge.core.config import AiFormat, CallConfig
from bridge.protocols.capture import event_line, header_line, message_line, parse_capture
from bridge.replay.run import replay
from bridge.stand_ins.realtime_ws import speech_like
from bridge.stand_ins.twilio_caller import media_message, start_message


def synthetic_capture(minutes: float, ai_format: AiFormat) -> list[str]:
    rng = random.Random(1)
    config = CallConfig(ai_format=ai_format)
    lines = [header_line("2026-01-01T00:00:00.000Z", "bench", config), event_line(0.0, "ai_connected"),
             message_line(0.001, "twilio_in", start_message("MZb", "CAb", {"tenant": "bench"}), raw_above=1 << 20)]
    voice = ulaw_encode(speech_like(1000, 8000))
    frames = int(minutes * 60 / 0.02)
    chunks = reply_chunks(ai_format, rng)
    n_resp = 0
    for i in range(frames):
        t = 0.02 + i * 0.02 + rng.uniform(0, 0.004)
        payload = base64.b64encode(voice[(i % 50) * 160:(i % 50) * 160 + 160]).decode()
        media = media_message("MZb", i + 2, i + 1, i * 20, payload)
        lines.append(message_line(t, "twilio_in", media, raw_above=1 << 20))
        if i % 300 == 150:  # every 6 s the AI answers for 3 s, streamed 4x faster than real time
            n_resp += 1
            rid, item = f"resp_{n_resp}", f"item_{n_resp}"
            lines.append(message_line(t, "ai_in", json.dumps({"type": "response.created", "event_id": "e",
                                                              "response": {"id": rid, "status": "in_progress"}}),
                                      raw_above=1 << 20))
            dt = 0.0
            for chunk, ms in chunks:
                dt += ms / 1000 / 4
                ev = {"type": "response.output_audio.delta", "event_id": "e", "response_id": rid, "item_id": item,
                      "output_index": 0, "content_index": 0, "delta": base64.b64encode(chunk).decode()}
                lines.append(message_line(t + dt, "ai_in", json.dumps(ev), raw_above=1 << 20))
            done = {"type": "response.output_audio.done", "event_id": "e", "response_id": rid, "item_id": item,
                    "output_index": 0, "content_index": 0}
            lines.append(message_line(t + dt, "ai_in", json.dumps(done), raw_above=1 << 20))
    lines.append(message_line(frames * 0.02 + 0.05, "twilio_in", json.dumps(
        {"event": "stop", "sequenceNumber": "9", "streamSid": "MZb", "stop": {"accountSid": "AC", "callSid": "CAb"}}),
        raw_above=1 << 20))
    return lines


def reply_chunks(ai_format: str, rng: random.Random) -> list[tuple[bytes, int]]:
    """A 3 s reply as (payload, ms) deltas: odd-sized PCM or mu-law slices, or one Opus packet each."""
    if ai_format == "opus16k":
        enc = OpusEncoder(24000)
        pcm = speech_like(3000, 16000)
        return [(enc.encode(pcm[i:i + 320]), 20) for i in range(0, pcm.size, 320)]
    rate = 24000 if ai_format == "pcm24k" else 8000
    reply = speech_like(3000, rate)
    data = reply.astype("<i2").tobytes() if ai_format == "pcm24k" else ulaw_encode(reply)
    per_ms = len(data) // 3000
    out, pos = [], 0
    while pos < len(data):
        ms = rng.randint(60, 330)
        out.append((data[pos:pos + ms * per_ms], ms))
        pos += ms * per_ms
    return out


def timed(minutes: float, ai_format: AiFormat, metrics_only: bool) -> tuple[float, float]:
    capture = parse_capture(line + "\n" for line in synthetic_capture(minutes, ai_format))
    t0 = time.process_time()
    result = replay(capture, metrics_only=metrics_only)
    cpu = time.process_time() - t0
    assert result.report.to_json()["inbound"]["frames"] == int(minutes * 60 / 0.02)
    assert not result.report.to_json()["counters"].get("ai_bad_audio"), result.report.to_json()["counters"]
    assert metrics_only or result.report.to_json()["outbound"]["frames"] > 0
    return cpu, minutes * 60 / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=5.0)
    m = ap.parse_args().minutes
    print(f"python {platform.python_version()} on {platform.machine()}, numpy {np.__version__}, {m:g} min of call")
    print("| mode | format | CPU s | x real time | minutes of call per CPU second |")
    print("|---|---|---|---|---|")
    runs: tuple[tuple[AiFormat, bool], ...] = (("pcmu", True), ("pcmu", False), ("pcm24k", False), ("opus16k", False))
    for fmt, metrics_only in runs:
        cpu, x = timed(m, fmt, metrics_only)
        mode = "metrics-only" if metrics_only else "full (transcoding)"
        print(f"| {mode} | {fmt} | {cpu:.2f} | {x:.0f}x | {x / 60:.1f} |")


if __name__ == "__main__":
    main()
