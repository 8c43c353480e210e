"""The Node.js load rig (``benchmarks/node_rig/rig.js``) driven from Python: the same planned calls and
the same caller view as ``bridge/loadtest/run.py``'s, sent by a rig light enough to keep time.

Python plans the calls (``plan_calls``: tagged pcmu frames, the texts ``SimulatedCaller`` sends),
the Node process sends them and plays Twilio's side and the Realtime stand-in's, and its stamps come
back to ``bridge.loadtest.caller_view``. Why: at 200 calls the Python rig uses 85-90 % of its CPU
and delivers the calls' frames in bursts of the whole call set, so the callers' view measures the
rig as much as the peer (benchmarks/README.md, "fifth session"). Node's one-time setup is
``npm ci --prefix benchmarks/node_rig`` (``scripts/bootstrap.sh --dev`` runs it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bridge.codecs.g711 import ulaw_decode, ulaw_encode
from bridge.loadtest.caller_view import CallerView, TaggedCallerTap, caller_view
from bridge.loadtest.percentiles import percentiles
from bridge.loadtest.run import CallPlan, LoadOptions, LoadResult, _cpu_s, mos_from_reports, plan_calls, run_nonce
from bridge.stand_ins.audio_tags import find_caller_tags
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, speech_like
from bridge.stand_ins.twilio_caller import CONNECTED, FRAME_S, media_message, start_message, stop_message

HERE = Path(__file__).resolve().parent / "node_rig"
RIG_JS = HERE / "rig.js"
RUN_GRACE_S = 60.0  # past the planned end, how long a run may take before the rig is taken for stuck
STARTUP_S = 60.0  # how long rig.js may take to read a plan


def available() -> str | None:
    """Why the Node rig cannot run here (None: it can)."""
    if shutil.which("node") is None:
        return "no node on PATH (Debian's nodejs)"
    if not (HERE / "node_modules" / "ws").is_dir():
        return "no benchmarks/node_rig/node_modules: run npm ci --prefix benchmarks/node_rig"
    return None


def config_for(stand_in: FakeRealtimeConfig) -> dict[str, Any]:
    """What rig.js reads: the Python stand-in's settings, its answer audio and the mu-law decoding
    table, so both stand-ins answer and listen alike."""
    return {"response_audio_b64": base64.b64encode(ulaw_encode(speech_like(stand_in.response_ms, 8000))).decode(),
            "ulaw_table": [int(x) for x in ulaw_decode(bytes(range(256)))],
            "threshold_dbfs": stand_in.threshold_dbfs, "speed": stand_in.speed,
            "min_chunk_ms": stand_in.min_chunk_ms, "max_chunk_ms": stand_in.max_chunk_ms, "seed": stand_in.seed,
            "transcript": stand_in.transcript, "voice": stand_in.voice, "model": stand_in.model,
            "instructions": stand_in.instructions}


def plan_lines(opts: LoadOptions, run_id: str, leg: int = 0) -> tuple[list[bytes], list[CallPlan]]:
    """One JSON line per call for rig.js (its target, start, when it hangs up, and every text it
    sends, as ``SimulatedCaller`` writes them), and the run's plans."""
    lines: list[bytes] = []
    plans = plan_calls(opts, run_id)
    for p in plans:
        sid = p.stream_sid
        frames = []
        for i, f in enumerate(p.frames):
            # sequenceNumber counts every message from start (1); chunk the media messages before it
            frames.append((f.media_ms // 20, f.send_at, media_message(sid, i + 2, i, f.media_ms, f.payload_b64)))
        lines.append(orjson.dumps({
            "leg": leg, "index": p.index, "target": opts.target, "stream_sid": sid, "start_at": p.start_at,
            "hangup_after": p.hangup_after(p.hangup_s),
            "open": [CONNECTED, start_message(sid, p.call_sid, {"tenant": opts.tenant})], "frames": frames,
            "stop": stop_message(sid, p.call_sid, len(p.frames) + 2)}))
    return lines, plans


class _Clock:
    """The recorded stamps, handed to a ``TaggedCallerTap`` one at a time."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def view(result: dict[str, Any], nonce: int, steady: tuple[float, float] | None) -> CallerView:
    """rig.js's stamps read by ``caller_view``, as ``run_load`` reads its own callers' taps and the
    Python stand-in's records."""
    taps: dict[int, TaggedCallerTap] = {}
    for call in result["calls"]:
        clock = _Clock()
        tap = taps[int(call["index"])] = TaggedCallerTap(clock)
        for frame, t, _ in call["sent"]:
            clock.t = t
            tap.sent(int(frame) * 20)
        hangup = call["hangup_at"]
        for t, payload in call["received"]:
            if hangup is not None and t > hangup and tap.hangup_at is None:
                clock.t = hangup
                tap.hung_up()
            clock.t = t
            tap.received(base64.b64decode(payload))
        if hangup is not None and tap.hangup_at is None:
            clock.t = hangup
            tap.hung_up()
    records = [{"session": s["session"], "events_in": s["events_in"], "events_out": s["events_out"],
                "outputs": s["outputs"], "inputs": list(_tagged_inputs(s["inputs"]))} for s in result["sessions"]]
    return caller_view(taps, nonce, records, steady)


def _tagged_inputs(inputs: Iterable[list[Any]]) -> Iterable[tuple[int, int, int, float]]:
    for t, audio in inputs:
        for tag in find_caller_tags(base64.b64decode(audio)):
            yield tag.nonce, tag.call, tag.frame, float(t)


@dataclass(frozen=True)
class NodeRig:
    """A running rig.js: its process and the stand-in's URL."""

    proc: asyncio.subprocess.Process
    realtime_url: str
    workdir: Path

    async def run(self, opts: LoadOptions,
                  on_start: Callable[[float], None] | None = None) -> tuple[LoadResult, float]:
        """``opts``' calls (count mode, ``opts.target``), with what ``bench_peers.row`` reads (failures,
        call-seconds, messages, caller view, and with ``opts.database_url`` the reports' MOS against
        the plans'); and when the run started, on the monotonic clock, also given to ``on_start``
        as soon as it is known."""
        results, t0 = await self.run_legs([opts], on_start)
        return results[0], t0

    async def run_legs(self, legs: list[LoadOptions],
                       on_start: Callable[[float], None] | None = None) -> tuple[list[LoadResult], float]:
        """Several loads at once, from one start (``bench_paired``: one leg per peer)."""
        assert all(o.target is not None and o.rate is None for o in legs)
        base = int(time.time())
        run_ids = [f"{(base + k) % 100000:05d}{o.seed % 100:02d}" for k, o in enumerate(legs)]
        lines: list[bytes] = []
        plans: list[list[CallPlan]] = []
        for k, (opts, run_id) in enumerate(zip(legs, run_ids, strict=True)):
            mine, leg_plans = plan_lines(opts, run_id, k)
            lines += mine
            plans.append(leg_plans)
        plan, out = self.workdir / "plan.jsonl", self.workdir / "result.json"
        plan.write_bytes(b"\n".join(lines) + b"\n")
        out.unlink(missing_ok=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"run": str(plan), "out": str(out)}).encode() + b"\n")
        await self.proc.stdin.drain()
        started = await self._line(STARTUP_S)
        if on_start is not None:
            on_start(float(started["started"]))
        t0 = float((await self._line(max(o.run_s for o in legs) + RUN_GRACE_S))["t0"])
        result = orjson.loads(out.read_bytes())
        return [self._result(opts, {"calls": [c for c in result["calls"] if c["leg"] == k],
                                    "sessions": result["sessions"], "gc": result["gc"]}, run_id, leg_plans, t0)
                for k, (opts, run_id, leg_plans) in enumerate(zip(legs, run_ids, plans, strict=True))], t0

    async def _line(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError("rig.js exited during a run (its stderr is in the work directory)")
        out: dict[str, Any] = json.loads(line)
        return out

    @staticmethod
    def _result(opts: LoadOptions, result: dict[str, Any], run_id: str, plans: list[CallPlan],
                t0: float) -> LoadResult:
        steady = (t0 + opts.ramp_s + 1.0, t0 + opts.duration_s - 1.0)
        v = view(result, run_nonce(run_id), steady if steady[1] - steady[0] >= 2.0 else None)
        calls = result["calls"]
        r = LoadResult(options={k: v for k, v in asdict(opts).items() if k != "progress"})
        r.calls = {"started": len(calls), "completed": sum(c["failed"] is None and not c["refused"] for c in calls),
                   "failed": sum(c["failed"] is not None for c in calls)}
        r.refused = sum(bool(c["refused"]) for c in calls)
        r.call_seconds = sum(len(p.frames) and (p.frames[-1].send_at + FRAME_S) for p in plans)
        # how late the rig sent the callers' frames: a rig that falls behind sends in bursts
        late = [1000.0 * (t - due) for c in calls for _, t, due in c["sent"]]
        r.caller_view = {**v.to_dict(), "rig_send_late_ms": percentiles(late) or None, "rig_gc": result["gc"]}
        r.messages = {"caller_sent": sum(c["messages_sent"] for c in calls),
                      "caller_received": sum(c["messages_received"] for c in calls),
                      **{k: v.counts[k] for k in ("ai_received", "ai_sent") if k in v.counts}}
        r.frames = {"caller_sent": sum(c["frames_sent"] for c in calls)}
        if opts.database_url:
            answered = {plans[int(c["index"])].call_sid for c in calls if c["failed"] is None and not c["refused"]}
            r.mos, r.calls["completed"] = mos_from_reports(plans, opts, opts.database_url, answered)
        return r

    def cpu_s(self) -> float:
        return _cpu_s(self.proc.pid)


@contextlib.asynccontextmanager
async def node_rig(workdir: Path, cpus: set[int], stand_in: FakeRealtimeConfig | None = None) -> AsyncIterator[NodeRig]:
    """rig.js started on ``cpus`` with the stand-in's settings (default: bench_peers' Python stand-in's),
    stopped on exit."""
    why = available()
    if why is not None:
        raise SystemExit(f"the Node rig cannot run: {why}")
    conf = workdir / "node-rig.json"
    conf.write_text(json.dumps(config_for(stand_in or FakeRealtimeConfig(speed=4.0, response_ms=1500))))
    proc = await asyncio.create_subprocess_exec(
        "node", str(RIG_JS), str(conf), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=(workdir / "node-rig.stderr").open("wb"), limit=1 << 20)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(proc.pid, cpus)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30.0)
        if not line:
            raise RuntimeError(f"rig.js did not start: {(workdir / 'node-rig.stderr').read_text()[-2000:]}")
        port = int(json.loads(line)["realtime_port"])
        yield NodeRig(proc, f"ws://127.0.0.1:{port}/v1/realtime", workdir)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
