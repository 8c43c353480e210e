"""``mosbridge replay``: a recorded call (or a plain Twilio log) to its quality report."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import aiohttp

from bridge.cli.report import format_report
from bridge.protocols.capture import Capture, CaptureError, read_capture
from bridge.protocols.pcap import caller_rtp_pcap
from bridge.replay.run import replay
from bridge.stand_ins.twilio_caller import CallerResult, ScheduledFrame, SimulatedCaller


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="replay a capture (or a plain Twilio Media Streams log) and print the call's report",
        description="Replay a capture through the call core on its recorded clock (no sleeping) and "
        "print the report; with --realtime, act as Twilio against a running bridge instead.",
    )
    p.add_argument("file", metavar="FILE", help="a capture (.jsonl) or a Twilio log, one message per line")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--metrics-only", action="store_true",
                   help="measure the caller's stream only: no transcoding, AI side skipped (fast)")
    p.add_argument("--realtime", metavar="URL",
                   help="send the capture's caller messages to a bridge's /media WebSocket, paced by t")
    p.add_argument("--call-sid", help="with --realtime: the CallSid to use (default: the recorded one + -replay)")
    p.add_argument("--pcap", metavar="OUT",
                   help="also write the caller's stream as an RTP pcap (sequence and timestamp from the media "
                        "clock) for Wireshark's RTP stream analysis: tshark -d udp.port==40002,rtp -z rtp,streams")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    try:
        capture = read_capture(args.file)
    except OSError as exc:
        args.parser.error(f"cannot read {args.file}: {exc.strerror or exc}")
    except CaptureError as exc:
        args.parser.error(f"{args.file}: {exc}")
    for warning in capture.warnings:
        print(f"mosbridge replay: note: {warning}", file=sys.stderr)
    if args.pcap:
        try:
            Path(args.pcap).write_bytes(caller_rtp_pcap(capture))
        except OSError as exc:
            args.parser.error(f"cannot write {args.pcap}: {exc.strerror or exc}")
    if args.realtime:
        result = asyncio.run(_realtime(capture, args.realtime, args.call_sid))
        summary = {"frames_sent": result.frames_sent, "frames_received": sum(
            1 for m in result.received if m.get("event") == "media"), "marks_echoed": len(result.marks_echoed),
            "clears": result.clears}
        print(json.dumps(summary) if args.json else "\n".join(f"{k:<16}{v}" for k, v in summary.items()))
        return 0
    result_ = replay(capture, metrics_only=args.metrics_only)
    for warning in result_.warnings[len(capture.warnings):]:
        print(f"mosbridge replay: note: {warning}", file=sys.stderr)
    report = result_.report.to_json()
    print(json.dumps(report, sort_keys=True) if args.json else format_report(report))
    return 0


def caller_plan(capture: Capture) -> tuple[dict[str, str], str, str, list[ScheduledFrame], float]:
    """(customParameters, stream sid, call sid, frames, duration) of the caller's side of a capture.

    Only what Twilio itself sends is replayed: media and dtmf. Mark echoes are not, because the
    live bridge names its marks afresh; the simulated caller echoes those as Twilio would.
    """
    params: dict[str, str] = {}
    stream_sid, call_sid = "MZreplay", "CAreplay"
    frames: list[ScheduledFrame] = []
    t = 0.0
    for rec in capture.records:
        if rec.dir != "twilio_in" or rec.text is None:
            continue
        try:
            msg = json.loads(rec.text)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        event = msg.get("event")
        media = msg.get("media") if event == "media" else None
        t = rec.t if rec.t is not None else (int(media["timestamp"]) / 1000.0 if isinstance(media, dict) else t)
        if event == "start":
            start = msg.get("start", {})
            params = dict(start.get("customParameters", {}))
            stream_sid = str(msg.get("streamSid", stream_sid))
            call_sid = str(start.get("callSid", call_sid))
        elif isinstance(media, dict):
            frames.append(ScheduledFrame(int(media["timestamp"]), t, str(media["payload"])))
        elif event == "dtmf":
            frames.append(ScheduledFrame(0, t, "", text=rec.text))
    return params, stream_sid, call_sid, frames, t


async def _realtime(capture: Capture, url: str, call_sid: str | None) -> CallerResult:
    params, stream_sid, recorded_sid, frames, duration = caller_plan(capture)
    t0 = frames[0].send_at if frames else 0.0
    frames = [ScheduledFrame(f.media_ms, f.send_at - t0, f.payload_b64, f.text) for f in frames]
    caller = SimulatedCaller(url, stream_sid=stream_sid, call_sid=call_sid or f"{recorded_sid}-replay", params=params)
    async with aiohttp.ClientSession() as http:
        return await caller.run(frames, hangup_after_s=duration - t0 + 0.5, session=http)
