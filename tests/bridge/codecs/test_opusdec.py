"""Independent check of our Opus packets: mux them into Ogg Opus (RFC 7845) and decode with opusdec."""

from __future__ import annotations

import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from bridge.codecs import make_transcoder
from bridge.codecs.offline import caller_frames


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


CRC_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    """CRC-32 of RFC 3533 §6: polynomial 0x04C11DB7, zero init, no reflection, no final xor."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def ogg_page(payload: bytes, granule: int, seq: int, flags: int, serial: int = 0x4D4F5342) -> bytes:
    lacing = [255] * (len(payload) // 255) + [len(payload) % 255]
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lacing))
    page = header + bytes(lacing) + payload
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def ogg_opus(packets: list[bytes], pre_skip: int, input_rate: int) -> bytes:
    """RFC 7845 §5: OpusHead and OpusTags pages, then one audio packet per page (48 kHz granules)."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, input_rate, 0, 0)
    vendor = b"mosbridge-test"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    pages = [ogg_page(head, 0, 0, 0x02), ogg_page(tags, 0, 1, 0)]
    for i, packet in enumerate(packets):
        flags = 0x04 if i == len(packets) - 1 else 0
        pages.append(ogg_page(packet, pre_skip + 960 * (i + 1), i + 2, flags))
    return b"".join(pages)


def test_crc_matches_known_ogg_value() -> None:
    assert ogg_crc(b"") == 0
    assert ogg_crc(b"123456789") == 0x89A1897F


@pytest.mark.skipif(shutil.which("opusdec") is None, reason="opusdec (opus-tools) not installed")
def test_opusdec_decodes_our_packets(tmp_path: Path) -> None:
    t = np.arange(16000) / 8000
    voiced = sum(np.sin(2 * np.pi * 180 * k * t + k) / k for k in range(1, 18))
    ref = np.round(6000 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.int16)
    tc = make_transcoder("opus16k", bitrate=32000)
    packets = [p for f in caller_frames(ref) for p in tc.to_ai(f)]
    lookahead_48k = round(tc.delay_to_ai.codec_ms * 48)
    (tmp_path / "a.opus").write_bytes(ogg_opus(packets, lookahead_48k, 16000))
    subprocess.run(
        ["opusdec", "--quiet", "--rate", "8000", str(tmp_path / "a.opus"), str(tmp_path / "a.wav")],
        check=True,
        capture_output=True,
    )
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert w.getframerate() == 8000
        out = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    assert abs(out.size - ref.size) <= 160
    x = ref.astype(np.float64)
    best = max(
        float(np.dot(out[lag : lag + 12000], x[:12000]))
        / float(np.linalg.norm(out[lag : lag + 12000]) * np.linalg.norm(x[:12000]))
        for lag in range(0, 40)
    )
    assert best > 0.9
