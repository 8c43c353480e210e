"""Twilio frames (and AI messages) are dated by when aiohttp read them off the socket, not by when their call's task
got its turn on a busy loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop

from bridge.live.aiohttp_internals import ArrivalClock, TextWriter, client_protocol
from bridge.stand_ins.twilio_caller import start_message
from tests.bridge.live_rig import live_bridge


@contextlib.asynccontextmanager
async def _ws_server(handler: Callable[[aiohttp.web.Request], Awaitable[aiohttp.web.WebSocketResponse]]
                     ) -> AsyncIterator[str]:
    """An aiohttp server on loopback with ``handler`` at /ws; yields its URL."""
    app = aiohttp.web.Application()
    app.router.add_get("/ws", handler)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/ws"
    finally:
        await runner.cleanup()


class _Protocol:
    def __init__(self, cb: object) -> None:
        self._data_received_cb = cb


def test_the_hook_stamps_each_chunk_and_keeps_the_one_it_replaced() -> None:
    now = [10.0]
    heartbeats: list[float] = []
    proto = _Protocol(lambda: heartbeats.append(now[0]))
    clock = ArrivalClock(proto, clock=lambda: now[0])
    assert clock.hooked and clock.stamp() == 10.0  # nothing read yet: now
    proto._data_received_cb()  # type: ignore[operator]
    assert heartbeats == [10.0]  # aiohttp's own callback still runs
    now[0] = 10.05  # the call's task runs 50 ms later
    assert clock.stamp() == 10.0


def test_without_the_hook_frames_are_stamped_when_read(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mosbridge"):
        clock = ArrivalClock(object(), clock=lambda: 3.0)
    assert not clock.hooked and clock.stamp() == 3.0
    assert "stamped when read" in caplog.text


async def test_a_frame_is_dated_before_the_loop_made_its_task_wait(tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    async with live_bridge(tmp_path, validate_twilio_signature=False, capture_dir=str(captures),
                           capture_tenants="t") as live, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(live.media_url)
        await ws.send_str(start_message("MZa", "CA-arrival", {"tenant": "t"}))
        await asyncio.sleep(0.3)
        [driver] = live.bridge.calls
        protocol = driver.twilio._req.protocol  # type: ignore[union-attr]
        bridge_hook = protocol._data_received_cb
        assert bridge_hook is not None  # the bridge hooked it
        blocked_at: list[float] = []

        def busy_loop() -> None:  # other calls' work, queued after the read and before this call's task
            blocked_at.append(time.monotonic() - driver.t0)
            time.sleep(0.06)

        def hook() -> None:
            bridge_hook()
            if not blocked_at:
                asyncio.get_running_loop().call_soon(busy_loop)

        protocol._data_received_cb = hook
        media = {"event": "media", "sequenceNumber": "2", "streamSid": "MZa",
                 "media": {"track": "inbound", "chunk": "1", "timestamp": "0",
                           "payload": base64.b64encode(b"\xff" * 160).decode()}}
        await ws.send_str(json.dumps(media))
        await asyncio.sleep(0.3)
        await ws.close()
        await asyncio.sleep(0.3)
    [capture] = list(captures.glob("*.jsonl"))
    lines = [json.loads(line) for line in capture.read_text().splitlines()[1:]]
    [frame] = [x for x in lines if x["dir"] == "twilio_in" and x.get("msg", {}).get("event") == "media"]
    assert blocked_at, "the busy callback never ran"
    # read before the loop was held 60 ms: stamped before it, not after
    assert frame["t"] <= blocked_at[0] < frame["t"] + 0.02


async def test_the_aiohttp_internals_the_bridge_uses_are_there() -> None:
    """Fails loudly on an aiohttp upgrade that moves the arrival hook (bridge/live/aiohttp_internals.py):
    without it the bridge still runs, but stamps frames when its task reads them, not when they came."""
    hooked: list[bool] = []

    async def handler(request: aiohttp.web.Request) -> aiohttp.web.WebSocketResponse:
        hooked.append(ArrivalClock(request.protocol).hooked)
        ws = aiohttp.web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data)
        return ws

    async with _ws_server(handler) as url, aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        client_clock = ArrivalClock(client_protocol(ws))
        assert client_clock.hooked, f"aiohttp {aiohttp.__version__}: no _data_received_cb on the client protocol"
        before = time.monotonic()
        await ws.send_str("x")
        assert (await ws.receive_str()) == "x"  # the echo
        assert client_clock.last is not None and before <= client_clock.last <= time.monotonic()
        await ws.close()
    assert hooked == [True], f"aiohttp {aiohttp.__version__}: no _data_received_cb on the server protocol"


async def test_the_text_writer_sends_what_send_str_sends_both_ways_and_steps_aside_when_it_would_wait() -> None:
    """TextWriter frames messages as aiohttp does, masked from a client and plain from a server (the
    peer's own aiohttp parser reads them back), and is not ready while the transport is paused."""
    server_writers: list[TextWriter] = []

    async def handler(request: aiohttp.web.Request) -> aiohttp.web.WebSocketResponse:
        ws = aiohttp.web.WebSocketResponse()
        await ws.prepare(request)
        writer = TextWriter(ws)
        server_writers.append(writer)
        async for msg in ws:
            assert writer.ready(), f"aiohttp {aiohttp.__version__}: the server's WebSocketWriter has changed"
            writer.write("echo: " + msg.data)
        return ws

    async with _ws_server(handler) as url, aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        writer = TextWriter(ws)
        assert writer.ready(), f"aiohttp {aiohttp.__version__}: the client's WebSocketWriter has changed"
        for text in ("x", "é" * 200, '{"a": "\\u0000"}', "y" * 70_000):  # the three header lengths
            writer.write(text)
            assert (await ws.receive_str()) == "echo: " + text
        protocol = client_protocol(ws)
        protocol.pause_writing()  # type: ignore[attr-defined]
        assert not writer.ready() and not writer.write_if_ready("held")
        protocol.resume_writing()  # type: ignore[attr-defined]
        assert writer.ready() and writer.write_if_ready("now")
        assert (await ws.receive_str()) == "echo: now"  # "held" was never written
        await ws.close()
    assert server_writers


class _CountingTransport:
    """The real transport, with its writes counted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = {"write": 0, "writelines": 0}

    def write(self, data: bytes) -> None:
        self.calls["write"] += 1
        self.inner.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.calls["writelines"] += 1
        self.inner.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _write_all_both_ways() -> tuple[list[str], dict[str, int]]:
    """A client writes three messages at once; the server answers each with two at once."""
    async def handler(request: aiohttp.web.Request) -> aiohttp.web.WebSocketResponse:
        ws = aiohttp.web.WebSocketResponse()
        await ws.prepare(request)
        writer = TextWriter(ws)
        async for msg in ws:
            writer.write_all([f"media {msg.data}", f"mark {msg.data}"])
        return ws

    texts = ["x", "é" * 200, "y" * 70_000]  # the three header lengths, masked from the client
    async with _ws_server(handler) as url, aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        writer = TextWriter(ws)
        counting = _CountingTransport(ws._writer.transport)
        ws._writer.transport = counting  # type: ignore[assignment]
        writer.write_all(texts)
        got = [await ws.receive_str() for _ in range(2 * len(texts))]
        writes = dict(counting.calls)
        await ws.close()
    return got, writes


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_messages_written_together_arrive_whole_and_in_order_from_one_write(run: Callable[..., Any]) -> None:
    """``write_all`` frames with aiohttp's own framing (a client's masking too), so the peer's parser reads
    every message back, in order, and the transport is written once for all of them."""
    got, writes = run(_write_all_both_ways())
    assert got == [f"{kind} {t}" for t in ("x", "é" * 200, "y" * 70_000) for kind in ("media", "mark")]
    assert writes == {"write": 0, "writelines": 1}


async def test_messages_written_together_to_a_closing_socket_raise_as_send_str_does() -> None:
    """A call's flush treats ConnectionError as "closing, drop it"; ``write_all`` must raise it (and
    leave the writer on its real transport) rather than hand a dead transport its frames."""
    async def handler(request: aiohttp.web.Request) -> aiohttp.web.WebSocketResponse:
        ws = aiohttp.web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    async with _ws_server(handler) as url, aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        writer = TextWriter(ws)
        transport = ws._writer.transport
        transport.close()
        with pytest.raises(ConnectionError):
            writer.write_all(["media", "mark"])
        assert ws._writer.transport is transport


def test_a_text_writer_on_a_changed_aiohttp_warns_and_is_never_ready(caplog: pytest.LogCaptureFixture) -> None:
    class _Ws:
        _writer = object()

    with caplog.at_level(logging.WARNING, logger="mosbridge"):
        writer = TextWriter(_Ws())
    assert not writer.ready() and not writer.write_if_ready("x") and "send_str" in caplog.text
