"""A RE-IMPLEMENTATION of the hot path of Twilio's sample bridge, not the sample itself:
twilio-samples/speech-assistant-openai-realtime-api-python, main.py (GA Realtime version),
rewritten here so ``bench_peers.py`` can set mosbridge beside what most deployments start from.

Kept as the sample does it, per message: FastAPI's WebSocket route ``/media-stream`` under plain
uvicorn; ``websockets.connect`` to Realtime; ``json.loads`` of every message both ways; each
Twilio ``media`` becomes ``input_audio_buffer.append`` (``json.dumps``) with the payload as
received; each ``response.output_audio.delta`` (or beta ``response.audio.delta``) is base64
decoded and re-encoded, sent with ``send_json`` as a Twilio ``media`` message followed by a
``mark``; ``speech_started`` with marks pending sends ``conversation.item.truncate`` and
``clear``; the sample's prints of its LOG_EVENT_TYPES stay (to stdout, which the bench discards).
Left out: the TwiML route and dotenv. Changed: the Realtime URL comes from OPENAI_REALTIME_URL.
Run with the venv ``benchmarks/twilio_sample.py`` sets up: OPENAI_API_KEY=... PORT=... python this.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import uvicorn
import websockets
from fastapi import FastAPI, WebSocket
from fastapi.websockets import WebSocketDisconnect

API_KEY = os.environ.get("OPENAI_API_KEY", "")
PORT = int(os.environ.get("PORT", "5050"))
REALTIME_URL = os.environ.get("OPENAI_REALTIME_URL",
                              "wss://api.openai.com/v1/realtime?model=gpt-realtime&temperature=0.8&voice=alloy")
INSTRUCTIONS = "You are a helpful and bubbly AI assistant."
LOGGED = frozenset({"error", "response.content.done", "rate_limits.updated", "response.done",
                    "input_audio_buffer.committed", "input_audio_buffer.speech_stopped",
                    "input_audio_buffer.speech_started", "session.created", "session.updated"})
DELTAS = ("response.output_audio.delta", "response.audio.delta")

app = FastAPI()


class Bridge:
    """One call's state, as the sample keeps it in its handler's closure."""

    def __init__(self, twilio: WebSocket, ai: Any) -> None:
        self.twilio = twilio
        self.ai = ai
        self.stream_sid: str | None = None
        self.media_ts = 0  # the last caller media timestamp, ms
        self.item: str | None = None  # the assistant item being played
        self.item_start_ts: int | None = None
        self.marks: list[str] = []

    async def from_twilio(self) -> None:
        try:
            async for text in self.twilio.iter_text():
                msg = json.loads(text)
                kind = msg["event"]
                if kind == "media" and self.ai.state.name == "OPEN":
                    self.media_ts = int(msg["media"]["timestamp"])
                    await self.ai.send(json.dumps({"type": "input_audio_buffer.append",
                                                   "audio": msg["media"]["payload"]}))
                elif kind == "start":
                    self.stream_sid = msg["start"]["streamSid"]
                    print(f"Incoming stream has started {self.stream_sid}")
                    self.item_start_ts, self.media_ts, self.item = None, 0, None
                elif kind == "mark" and self.marks:
                    self.marks.pop(0)
        except WebSocketDisconnect:
            print("Client disconnected.")
            if self.ai.state.name == "OPEN":
                await self.ai.close()

    async def to_twilio(self) -> None:
        try:
            async for text in self.ai:
                event = json.loads(text)
                kind = event["type"]
                if kind in LOGGED:
                    print(f"Received event: {kind}", event)
                if kind in DELTAS and "delta" in event:
                    payload = base64.b64encode(base64.b64decode(event["delta"])).decode("utf-8")
                    await self.twilio.send_json({"event": "media", "streamSid": self.stream_sid,
                                                 "media": {"payload": payload}})
                    if event.get("item_id") and event["item_id"] != self.item:
                        self.item_start_ts = self.media_ts
                        self.item = event["item_id"]
                    await self.mark()
                if kind == "input_audio_buffer.speech_started":
                    print("Speech started detected.")
                    if self.item:
                        print(f"Interrupting response with id: {self.item}")
                        await self.interrupt()
        except Exception as exc:  # as the sample: log and let the call end
            print(f"Error in send_to_twilio: {exc}")

    async def interrupt(self) -> None:
        print("Handling speech started event.")
        if self.marks and self.item_start_ts is not None:
            elapsed = self.media_ts - self.item_start_ts
            if self.item:
                await self.ai.send(json.dumps({"type": "conversation.item.truncate", "item_id": self.item,
                                               "content_index": 0, "audio_end_ms": elapsed}))
            await self.twilio.send_json({"event": "clear", "streamSid": self.stream_sid})
            self.marks.clear()
            self.item = None
            self.item_start_ts = None

    async def mark(self) -> None:
        if self.stream_sid:
            await self.twilio.send_json({"event": "mark", "streamSid": self.stream_sid,
                                         "mark": {"name": "responsePart"}})
            self.marks.append("responsePart")


async def start_session(ai: Any) -> None:
    update = {"type": "session.update", "session": {
        "type": "realtime", "model": "gpt-realtime", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": {"type": "server_vad"}},
                  "output": {"format": {"type": "audio/pcmu"}}},
        "instructions": INSTRUCTIONS}}
    print("Sending session update:", json.dumps(update))
    await ai.send(json.dumps(update))


@app.websocket("/media-stream")
async def media_stream(twilio: WebSocket) -> None:
    print("Client connected")
    await twilio.accept()
    async with websockets.connect(REALTIME_URL, additional_headers={"Authorization": f"Bearer {API_KEY}"}) as ai:
        await start_session(ai)
        bridge = Bridge(twilio, ai)
        await asyncio.gather(bridge.from_twilio(), bridge.to_twilio())


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT)
