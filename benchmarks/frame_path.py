"""The functions of bridge/ and quality/ one caller media frame passes, from the Twilio socket to
the AI socket, counted with ``sys.setprofile`` on a live in-process bridge (issue 15's measure).

Run: ``.venv/bin/python benchmarks/frame_path.py``. The stand-ins and the loop-lag watcher, which run
in the same loop, are left out; the count is what one 20 ms frame costs in calls and files.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.stand_ins.twilio_caller import CONNECTED, media_message, start_message  # noqa: E402
from tests.bridge.live_rig import live_bridge  # noqa: E402

LEFT_OUT = ("/stand_ins/", "loop_lag", "observe_lag", "observe_loop_lag")


async def trace() -> dict[tuple[str, str], int]:
    roots = (str(ROOT / "bridge"), str(ROOT / "quality"))
    seen: dict[tuple[str, str], int] = {}

    def prof(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        f = frame.f_code.co_filename
        key = (str(Path(f).relative_to(ROOT)) if f.startswith(roots) else "", frame.f_code.co_qualname)
        if key[0] and not any(x in key[0] or x in key[1] for x in LEFT_OUT):
            seen[key] = seen.get(key, 0) + 1

    payload = base64.b64encode(b"\xff" * 160).decode()
    with tempfile.TemporaryDirectory() as d:
        async with live_bridge(Path(d), validate_twilio_signature=False, interval_s=30.0, ping_interval_s=30.0) \
                as live, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(live.media_url)
            await ws.send_str(CONNECTED)
            await ws.send_str(start_message("MZp", "CA-path", {"tenant": "t"}))
            await asyncio.sleep(0.5)
            for i in range(5):  # the AI leg is up and the first frames are through
                await ws.send_str(media_message("MZp", i + 2, i + 1, i * 20, payload))
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            sys.setprofile(prof)
            await ws.send_str(media_message("MZp", 7, 6, 100, payload))
            await asyncio.sleep(0.05)
            sys.setprofile(None)
            await ws.close()
    return seen


def main() -> None:
    seen = asyncio.run(trace())
    for (f, q), n in sorted(seen.items()):
        print(f"{f}:{q} x{n}")
    files = {f for f, _ in seen}
    live = sum(1 for f, _ in seen if f.startswith("bridge/live/"))
    print(f"{len(seen)} functions in {len(files)} files ({live} in bridge/live/)")


if __name__ == "__main__":
    main()
