"""Wireshark's RTP stream analysis, run as tshark: the independent reading of jitter and loss."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from bridge.protocols.pcap import DST_PORT

# one stream row: ... Payload  Pkts  Lost (x%)  MinDelta MeanDelta MaxDelta  MinJitter MeanJitter MaxJitter
ROW = re.compile(r"g711U\s+(\d+)\s+(-?\d+) \(\S+%\)\s+(?:[\d.]+\s+){3}[\d.]+\s+([\d.]+)\s+([\d.]+)")


def tshark_streams(pcap: Path) -> dict[str, float]:
    """Packets, lost, mean and max jitter (ms) of the one RTP stream in ``pcap``."""
    tshark = shutil.which("tshark")
    assert tshark, "tshark is a test tool: scripts/bootstrap.sh --dev installs Debian's tshark"
    out = subprocess.run([tshark, "-r", str(pcap), "-d", f"udp.port=={DST_PORT},rtp", "-q", "-z", "rtp,streams"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    [row] = ROW.findall(out)
    return {"packets": int(row[0]), "lost": int(row[1]), "mean_jitter_ms": float(row[2]),
            "max_jitter_ms": float(row[3])}
