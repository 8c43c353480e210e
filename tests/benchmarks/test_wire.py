"""The wire reading of what a peer adds: pairing checked against a generator's known delays, and the
tshark reading against a pcap written here, frame by frame, with those delays in its stamps."""

from __future__ import annotations

import base64
import itertools
import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from benchmarks.wire import Message, inbound_ms, messages, outbound_ms, wire_latency

CALLER, AI = 1, 2
EVERYTHING = (0.0, float("inf"))


def _b64(audio: bytes) -> str:
    return base64.b64encode(audio).decode()


def _media_in(t: float, chunk: int, audio: bytes) -> Message:
    return Message(t, CALLER, {"event": "media", "sequenceNumber": str(chunk + 1), "streamSid": "MZ1",
                               "media": {"track": "inbound", "chunk": str(chunk), "timestamp": str(20 * chunk),
                                         "payload": _b64(audio)}})


def _caller_frames(rng: random.Random, n: int) -> list[bytes]:
    """Speech-like frames with runs of identical silence (0xFF) between, as callers send."""
    return [b"\xff" * 160 if (i // 10) % 3 == 0 else rng.randbytes(160) for i in range(n)]


def test_each_append_is_paired_with_its_own_frame_even_through_silence() -> None:
    rng = random.Random(7)
    frames = _caller_frames(rng, 300)
    delays = [rng.uniform(0.1, 30.0) for _ in frames]
    media = [_media_in(0.02 * i, i + 1, a) for i, a in enumerate(frames)]
    appends = [Message(0.02 * i + d / 1000.0, AI, {"type": "input_audio_buffer.append", "audio": _b64(a)})
               for i, (a, d) in enumerate(zip(frames, delays, strict=True))]
    # a concealment frame the peer made up for a gap: nothing to pair it with, and no shift after it
    appends.insert(150, Message(3.0, AI, {"type": "input_audio_buffer.append", "audio": _b64(rng.randbytes(160))}))
    got = inbound_ms(media, appends, EVERYTHING)
    assert [ms for _, ms in got] == pytest.approx(delays, abs=1e-6)
    # the window counts appends by when they were written
    window = (1.0, 2.0)
    inside = [d for i, d in enumerate(delays) if 1.0 <= 0.02 * i + d / 1000.0 <= 2.0]
    assert [ms for _, ms in inbound_ms(media, appends, window)] == pytest.approx(inside, abs=1e-6)


def test_a_message_counts_from_the_delta_that_completed_it() -> None:
    rng = random.Random(11)
    audio = rng.randbytes(12_000)
    cuts = [0]
    while cuts[-1] < len(audio):
        cuts.append(min(len(audio), cuts[-1] + rng.randrange(800, 1700)))  # 100-200 ms deltas
    deltas = [Message(0.1 * j, AI, {"type": "response.output_audio.delta", "delta": _b64(audio[a:b])})
              for j, (a, b) in enumerate(itertools.pairwise(cuts))]
    sent: list[Message] = []
    truth: list[float] = []
    for start in range(0, len(audio), 800):  # re-framed into 100 ms messages that straddle deltas
        end = min(len(audio), start + 800)
        last = next(j for j, b in enumerate(cuts[1:]) if b >= end)
        wait = rng.uniform(0.05, 20.0)
        truth.append(wait)
        sent.append(Message(deltas[last].t + wait / 1000.0, CALLER,
                            {"event": "media", "streamSid": "MZ1", "media": {"payload": _b64(audio[start:end])}}))
    assert [ms for _, ms in outbound_ms(deltas, sent, EVERYTHING)] == pytest.approx(truth, abs=1e-6)


# --------------------------------------------------------------------------- a pcap, through tshark

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return int(~s & 0xFFFF)


class _Pcap:
    """A classic libpcap file of IPv4/TCP over Ethernet, one TCP connection per (client port, server port)."""

    def __init__(self) -> None:
        self.out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
        self.seq: dict[tuple[int, int], int] = {}

    def packet(self, t: float, src: int, dst: int, payload: bytes, flags: int = 0x18) -> None:
        seq = self.seq.get((src, dst), 1000)
        self.seq[(src, dst)] = seq + len(payload) + (1 if flags & 0x02 else 0)
        ack = self.seq.get((dst, src), 1000)
        tcp = struct.pack("!HHIIBBHHH", src, dst, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, bytes([127, 0, 0, 1]),
                         bytes([127, 0, 0, 1]))
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        pseudo = bytes([127, 0, 0, 1]) * 2 + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
        frame = b"\0" * 12 + b"\x08\x00" + ip + tcp
        sec = int(t)
        self.out.append(struct.pack("<IIII", sec, round((t - sec) * 1e6), len(frame), len(frame)) + frame)

    def websocket(self, t: float, client: int, server: int) -> None:
        self.packet(t, client, server, b"", 0x02)
        self.packet(t, server, client, b"", 0x12)
        self.packet(t, client, server, b"", 0x10)
        self.packet(t, client, server, b"GET /media HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.packet(t, server, client, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def _frame(obj: dict[str, object], masked: bool) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    n = len(data)
    head = bytes([0x81]) + (bytes([n | (0x80 if masked else 0)]) if n < 126 else
                            bytes([126 | (0x80 if masked else 0)]) + struct.pack("!H", n))
    if not masked:
        return head + data
    key = bytes([0x12, 0x34, 0x56, 0x78])
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def test_tshark_reads_the_delays_written_into_a_capture(tmp_path: Path) -> None:
    """Caller 40000 -> peer 8000 (masked, client frames); peer 40001 -> stand-in 9000 (masked too);
    several messages in one packet, as the peer batches them; one frame split over two packets."""
    rng = random.Random(3)
    pcap = _Pcap()
    t0 = 1_800_000_000.0
    pcap.websocket(t0, 40000, 8000)
    pcap.websocket(t0, 40001, 9000)
    frames = _caller_frames(rng, 40)
    delays = [rng.uniform(0.1, 15.0) for _ in frames]
    for i, (audio, d) in enumerate(zip(frames, delays, strict=True)):
        t = t0 + 0.1 + 0.02 * i
        wire = _frame(_media_in(0.0, i + 1, audio).data, masked=True)
        if i == 5:  # a frame in two segments: tshark reassembles it, stamped when the last arrives
            pcap.packet(t - 0.001, 40000, 8000, wire[:50])
            pcap.packet(t, 40000, 8000, wire[50:])
        else:
            pcap.packet(t, 40000, 8000, wire)
        pcap.packet(t + d / 1000.0, 40001, 9000,
                    _frame({"type": "input_audio_buffer.append", "audio": _b64(audio)}, masked=True))
    answer = rng.randbytes(2400)
    t_delta = t0 + 1.0
    pcap.packet(t_delta, 9000, 40001, _frame({"type": "response.output_audio.delta", "delta": _b64(answer)},
                                              masked=False))
    batch = b"".join(_frame({"event": "media", "streamSid": "MZ1", "media": {"payload": _b64(answer[i:i + 800])}},
                            masked=False) + _frame({"event": "mark", "streamSid": "MZ1", "mark": {"name": str(i)}},
                                                   masked=False)
                     for i in range(0, 2400, 800))
    pcap.packet(t_delta + 0.004, 8000, 40000, batch)  # three chunks and their marks in one write
    path = tmp_path / "wire.pcap"
    path.write_bytes(b"".join(pcap.out))

    msgs = messages(path)
    media = [m for m in msgs if m.data.get("event") == "media" and "sequenceNumber" in m.data]
    appends = [m for m in msgs if m.data.get("type") == "input_audio_buffer.append"]
    assert len(media) == len(appends) == len(frames) and len({m.conn for m in media + appends}) == 2
    # pcap stamps are whole microseconds; the split frame counts from its last segment
    assert [ms for _, ms in inbound_ms(media, appends, EVERYTHING)] == pytest.approx(delays, abs=2e-3)
    got = wire_latency(path, EVERYTHING)
    assert got["calls_paired"] == 1
    to_ai = got["to_ai_ms"]
    assert isinstance(to_ai, dict)  # each half of the run's appends by time: the first 20 and the last 20
    assert to_ai["p50_first_half"] == pytest.approx(float(np.median(delays[:20])), abs=2e-3)
    assert to_ai["p50_second_half"] == pytest.approx(float(np.median(delays[20:])), abs=2e-3)
    # one caller, a frame every 20 ms: never two in one 5 ms bin, and 20 ms between each
    assert got["arrivals"] == {"per_5ms_mean": pytest.approx(0.25, abs=0.01), "per_5ms_p99": 1.0,
                               "per_5ms_max": 1.0, "max_gap_ms": pytest.approx(20.0, abs=2e-3)}
    to_caller = got["to_caller_ms"]
    assert isinstance(to_caller, dict) and to_caller["n"] == 3 and to_caller["max"] == pytest.approx(4.0, abs=2e-3)
