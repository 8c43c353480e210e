"""A capture's caller stream as an RTP pcap, for Wireshark's RTP stream analysis and player.

Each Twilio ``media`` frame the bridge received becomes one RTP packet (RFC 3550, payload type 0
= PCMU, RFC 3551) in a UDP/IPv4/Ethernet frame of a classic libpcap file, stamped with its
arrival time (the capture's ``started_at`` + ``t``; a plain Twilio log has no arrival times, so
its media time stands in). Sequence number and RTP timestamp come from the media clock the
bridge counts loss on: sequence = ``timestamp`` / 20 ms and RTP timestamp = ``timestamp`` x 8, so
audio Twilio never sent is a missing RTP sequence number, as it was on the carrier's leg, and
Wireshark's "Lost", "Mean Jitter" and "Max Jitter" read what the report's ``lost``,
``jitter_ms`` and ``jitter_max_ms`` say. Addresses are RFC 5737 documentation ones.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Final

from bridge.protocols import twilio as tw
from bridge.protocols.capture import Capture

SRC: Final = bytes((192, 0, 2, 1))  # TEST-NET-1: "Twilio"
DST: Final = bytes((192, 0, 2, 2))  # "the bridge"
SRC_PORT, DST_PORT = 40000, 40002  # decode with: tshark -d udp.port==40002,rtp
SSRC: Final = 0x4D425247  # "MBRG"
_PCAP_HEADER: Final = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET


def caller_rtp_pcap(capture: Capture) -> bytes:
    """The caller's inbound media of ``capture`` as a pcap file's bytes."""
    started = capture.header.get("started_at")
    epoch = datetime.fromisoformat(started).timestamp() if isinstance(started, str) else 0.0
    out = [_PCAP_HEADER]
    for rec in capture.records:
        if rec.dir != "twilio_in" or rec.text is None:
            continue
        try:
            msg = tw.parse_twilio(rec.text)
            if not isinstance(msg, tw.MediaMessage) or msg.track != "inbound":
                continue
            payload = msg.audio()
        except tw.TwilioProtocolError:
            continue  # not a frame the bridge metered either
        arrival = epoch + (rec.t if rec.t is not None else msg.timestamp / 1000.0)
        out.append(_packet(arrival, round(msg.timestamp / 20) & 0xFFFF, (msg.timestamp * 8) & 0xFFFFFFFF, payload))
    return b"".join(out)


def _packet(arrival_s: float, seq: int, rtp_ts: int, payload: bytes) -> bytes:
    rtp = struct.pack("!BBHII", 0x80, 0, seq, rtp_ts, SSRC) + payload
    udp = struct.pack("!HHHH", SRC_PORT, DST_PORT, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, SRC, DST) + udp
    frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip  # local MACs, IPv4
    us = round(arrival_s * 1e6)
    return struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(frame), len(frame)) + frame
