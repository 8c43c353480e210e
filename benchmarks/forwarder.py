"""The smallest honest Twilio <-> Realtime pass-through on mosbridge's own stack, measuring nothing:
the floor that ``bench_peers.py`` sets mosbridge beside, so the cost of measuring is a ratio.

aiohttp server and client WebSockets, uvloop, orjson, pcmu both ways (as mosbridge runs them).
Per call: connect to Realtime, ``session.update`` (pcmu in and out, server VAD); each Twilio
``media`` payload goes on as it came in an ``input_audio_buffer.append``; each
``response.output_audio.delta`` goes back whole as one Twilio ``media`` message (no re-framing);
``speech_started`` sends Twilio ``clear`` (barge-in); ``stop`` or either side closing ends the call.
Run: ``.venv/bin/python benchmarks/forwarder.py --port 8090 --realtime-url ws://127.0.0.1:8765/v1/realtime``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

import aiohttp
import orjson
import uvloop
from aiohttp import web

SESSION_UPDATE = json.dumps({"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": {"type": "server_vad"}},
              "output": {"format": {"type": "audio/pcmu"}}}}})
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)
TARGET: web.AppKey[tuple[str, str]] = web.AppKey("target", tuple)


async def media(request: web.Request) -> web.WebSocketResponse:
    twilio = web.WebSocketResponse(autoping=False)
    await twilio.prepare(request)
    url, key = request.app[TARGET]
    async with request.app[HTTP].ws_connect(url, headers={"Authorization": f"Bearer {key}"}, autoping=False) as ai:
        await ai.send_str(SESSION_UPDATE)
        stream_sid = ""

        async def from_ai() -> None:
            async for msg in ai:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                event = orjson.loads(msg.data)
                kind = event.get("type")
                if kind == "response.output_audio.delta":
                    await twilio.send_str(f'{{"event":"media","streamSid":"{stream_sid}",'
                                          f'"media":{{"payload":"{event["delta"]}"}}}}')
                elif kind == "input_audio_buffer.speech_started":
                    await twilio.send_str(f'{{"event":"clear","streamSid":"{stream_sid}"}}')

        back = asyncio.create_task(from_ai())
        try:
            async for msg in twilio:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data = orjson.loads(msg.data)
                kind = data.get("event")
                if kind == "media":
                    await ai.send_str(f'{{"type":"input_audio_buffer.append","audio":"{data["media"]["payload"]}"}}')
                elif kind == "start":
                    stream_sid = data["start"]["streamSid"]
                elif kind == "stop":
                    break
        finally:
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await back
    await twilio.close()
    return twilio


async def serve(port: int, url: str, key: str) -> None:
    app = web.Application()
    app[TARGET] = (url, key)
    app.router.add_get("/media", media)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        app[HTTP] = http
        runner = web.AppRunner(app, handle_signals=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"forwarder on ws://127.0.0.1:{port}/media -> {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--realtime-url", default="ws://127.0.0.1:8765/v1/realtime")
    ap.add_argument("--api-key", default="forwarder")
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.port, args.realtime_url, args.api_key))


if __name__ == "__main__":
    main()
