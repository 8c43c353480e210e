"""What a peer adds to each direction's audio, read off the loopback wire by dumpcap and tshark.

The callers' own latency figures include how late the rig's event loop read what came back; on
this 2-core machine the rig runs at 80-90 % of its core at 200 calls, so those figures are as
noisy as the result. The kernel stamps each packet as its sender writes it, before any reader
runs, so the time from a caller's ``media`` frame on the wire to the peer's ``append`` of that
audio on the wire is what the peer added, its socket's receive queue included; and the same for
the AI's ``response.output_audio.delta`` to the Twilio ``media`` messages that carry it on.
Pairing is by content (pcmu both ways, so the audio bytes are the same on both legs), in order.

Run by ``bench_peers.py --wire`` and ``bench_overload.py --wire``; ``python benchmarks/wire.py PCAP``
reads a capture.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

SEP = "\x1e"  # between several WebSocket messages in one packet (JSON text never holds it unescaped)
LOOKAHEAD = 64  # caller frames searched ahead for an append's own (frames the peer dropped or held)


@dataclass(frozen=True)
class Message:
    t: float  # kernel capture time of the packet that completed it, epoch s
    conn: int  # tshark's tcp.stream
    data: dict[str, object]


@contextlib.contextmanager
def capture(path: Path, ports: list[int], cpus: set[int]) -> Iterator[None]:
    """dumpcap on loopback, TCP to or from ``ports``, into ``path``; pinned to ``cpus`` (the rig's).
    It blocks while dumpcap starts and stops: between runs, when the rig's loop holds no call."""
    dumpcap = shutil.which("dumpcap")
    if dumpcap is None:
        raise SystemExit("--wire needs dumpcap and tshark: scripts/bootstrap.sh --dev installs Debian's tshark")
    bpf = " or ".join(f"tcp port {p}" for p in ports)
    log = path.with_suffix(".log")
    with log.open("wb") as err:
        proc = subprocess.Popen([dumpcap, "-q", "-i", "lo", "-B", "256", "-f", bpf, "-w", str(path)],
                                stdout=subprocess.DEVNULL, stderr=err, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        deadline = time.monotonic() + 10.0
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the filter is compiled and the ring up before the first call
        try:
            yield
        finally:
            proc.terminate()
            proc.wait(30)
    counts = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+)", log.read_text(errors="replace"))
    if counts is None or int(counts[2]):
        print(f"dumpcap: {log.read_text(errors='replace').strip()}", file=sys.stderr)


def around(on: bool, path: Path, peer_port: int, realtime_url: str, cpus: set[int]) -> AbstractContextManager[None]:
    """``capture`` of the peer's and the stand-in's sockets when ``on``, else nothing."""
    return capture(path, [peer_port, urlsplit(realtime_url).port or 0], cpus) if on else contextlib.nullcontext()


async def read(path: Path, window: tuple[float, float]) -> dict[str, object]:
    """``wire_latency`` of a capture, off the rig's loop; the capture is removed once read."""
    try:
        return await asyncio.to_thread(wire_latency, path, window)
    finally:
        path.unlink(missing_ok=True)


def steady_window(t0: float, ramp_s: float, duration_s: float) -> tuple[float, float]:
    """The load test's steady window (every call up, none hung up; ``bridge/loadtest/run.py``) of a
    count-mode run that began at monotonic ``t0``, on the wire's clock (epoch s)."""
    epoch = time.time() - time.monotonic()
    return epoch + t0 + ramp_s + 1.0, epoch + t0 + duration_s - 1.0


def messages(pcap: Path) -> list[Message]:
    """Every WebSocket text message in ``pcap``, unmasked and reassembled by tshark, in capture order."""
    tshark = shutil.which("tshark")
    if tshark is None:
        raise SystemExit("--wire needs tshark: scripts/bootstrap.sh --dev installs it")
    cmd = [tshark, "-r", str(pcap), "-d", "tcp.port==1024-65535,http", "-Y", "websocket.payload.text",
           "-T", "fields", "-E", "occurrence=a", "-E", f"aggregator={SEP}",
           "-e", "frame.time_epoch", "-e", "tcp.stream", "-e", "websocket.payload.text"]
    out: list[Message] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            t, conn, texts = line.rstrip("\n").split("\t", 2)
            for text in texts.split(SEP):
                with contextlib.suppress(ValueError):
                    data = json.loads(text)
                    if isinstance(data, dict):
                        out.append(Message(float(t), int(conn), data))
    if proc.returncode:
        raise RuntimeError(f"tshark exited {proc.returncode} reading {pcap}")
    return out


def _by_conn(msgs: list[Message], key: str, value: str) -> dict[int, list[Message]]:
    out: dict[int, list[Message]] = defaultdict(list)
    for m in msgs:
        if m.data.get(key) == value:
            out[m.conn].append(m)
    return out


def _payload(m: Message) -> str:
    media = m.data.get("media")
    return str(media.get("payload", "")) if isinstance(media, dict) else ""


def _pairs(caller_media: dict[int, list[Message]], appends: dict[int, list[Message]]) -> dict[int, int]:
    """AI connection -> caller connection, by the audio they share (silence, which every caller
    sends alike, does not vote)."""
    owner: dict[str, int] = {}
    for conn, ms in caller_media.items():
        for m in ms:
            p = _payload(m)
            if len(set(p)) > 2:
                owner[p] = conn
    out: dict[int, int] = {}
    for ai, ms in appends.items():
        votes = Counter(owner[a] for m in ms[:500] if (a := str(m.data.get("audio"))) in owner)
        if votes:
            out[ai] = votes.most_common(1)[0][0]
    return out


Sample = tuple[float, float]  # (written at, epoch s; ms it waited in the peer)


def inbound_ms(caller_media: list[Message], appends: list[Message], window: tuple[float, float]) -> list[Sample]:
    """Caller frame on the wire -> its append on the wire, for appends written inside ``window``."""
    out: list[Sample] = []
    j = 0
    for a in appends:
        audio = a.data.get("audio")
        for k in range(j, min(j + LOOKAHEAD, len(caller_media))):
            if _payload(caller_media[k]) == audio:
                if window[0] <= a.t <= window[1]:
                    out.append((a.t, (a.t - caller_media[k].t) * 1000.0))
                j = k + 1
                break
    return out


def outbound_ms(deltas: list[Message], twilio_media: list[Message], window: tuple[float, float]) -> list[Sample]:
    """The AI's delta on the wire -> the Twilio media message carrying its audio on the wire; a
    message that ends in a later delta counts from that delta, when the peer first had it all."""
    stream = bytearray()
    ends: list[int] = []  # byte offset in ``stream`` where each delta ends
    for d in deltas:
        stream += base64.b64decode(str(d.data.get("delta", "")))
        ends.append(len(stream))
    ends_arr = np.asarray(ends)
    out: list[Sample] = []
    pos = 0
    for m in twilio_media:
        audio = base64.b64decode(_payload(m))
        if not audio:
            continue
        at = stream.find(audio, pos)
        if at < 0:
            continue
        pos = at + len(audio)
        last = int(np.searchsorted(ends_arr, pos))  # the delta that holds the message's last byte
        if window[0] <= m.t <= window[1] and last < len(deltas):
            out.append((m.t, (m.t - deltas[last].t) * 1000.0))
    return out


def wire_latency(pcap: Path, window: tuple[float, float]) -> dict[str, object]:
    """Per direction, p50/p99/max ms and the count of what was paired, over ``window`` (epoch s).
    The capture holds only the peer's sockets, so the message kinds name the legs."""
    msgs = messages(pcap)
    media = _by_conn(msgs, "event", "media")  # Twilio's carry a sequenceNumber; what the peer sends back does not
    caller_media = {c: [m for m in ms if "sequenceNumber" in m.data] for c, ms in media.items()}
    to_twilio = {c: [m for m in ms if "sequenceNumber" not in m.data] for c, ms in media.items()}
    appends = _by_conn(msgs, "type", "input_audio_buffer.append")
    deltas = _by_conn(msgs, "type", "response.output_audio.delta")
    pairs = _pairs({c: ms for c, ms in caller_media.items() if ms}, appends)
    inbound: list[Sample] = []
    outbound: list[Sample] = []
    for ai, caller in pairs.items():
        inbound += inbound_ms(caller_media[caller], appends[ai], window)
        outbound += outbound_ms(deltas.get(ai, []), to_twilio.get(caller, []), window)

    def figures(samples: list[Sample]) -> dict[str, float] | None:
        """Percentiles, and the p50 of each half of the window: a backlog that grows shows as a
        second half slower than the first."""
        if not samples:
            return None
        t = np.asarray([at for at, _ in samples])
        ms = np.asarray([x for _, x in samples])
        first = ms[t <= np.median(t)]
        second = ms[t > np.median(t)]
        return {"n": float(len(ms)), "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
                "max": float(ms.max()), "min": float(ms.min()),
                "p50_first_half": float(np.percentile(first, 50)),
                "p50_second_half": float(np.percentile(second, 50)) if len(second) else float("nan")}

    return {"calls_paired": len(pairs), "to_ai_ms": figures(inbound), "to_caller_ms": figures(outbound),
            "arrivals": arrivals([m.t for ms in caller_media.values() for m in ms], window)}


def arrivals(times: list[float], window: tuple[float, float]) -> dict[str, float] | None:
    """How the callers' frames reached the peer, all calls together: frames per 5 ms (a peer works
    through a burst one frame after another, so the last of B frames waits B frames' work) and the
    longest silence between two. Real-time callers at N calls average N/4 frames per 5 ms."""
    t = np.sort(np.asarray([x for x in times if window[0] <= x <= window[1]]))
    if t.size < 2:
        return None
    per = np.bincount(((t - t[0]) / 0.005).astype(np.int64))
    return {"per_5ms_mean": float(per.mean()), "per_5ms_p99": float(np.percentile(per, 99)),
            "per_5ms_max": float(per.max()), "max_gap_ms": float(np.diff(t).max() * 1000.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap", type=Path)
    args = ap.parse_args()
    print(json.dumps(wire_latency(args.pcap, (0.0, float("inf"))), indent=2))


if __name__ == "__main__":
    main()
