"""Twilio messages handled as aiohttp parses them (``HandoffWebSocket``, ``CallDriver._take_now``):
what the read callback takes never reaches ``receive``, what it declines arrives there in order, and
a live call counts every frame whichever way each message went. (That a captured call, handled the
same way, replays to the live report is ``tests/bridge/replay/test_replay_live.py``.)"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMessage, WSMsgType, web

from bridge.live import aiohttp_internals
from bridge.live.aiohttp_internals import HandoffWebSocket, TextWriter
from bridge.live.driver import CallDriver
from bridge.live.logs import JsonFormatter
from bridge.ops.store import open_store
from bridge.stand_ins.twilio_caller import SimulatedCaller, media_message, start_message, stop_message
from tests.bridge.live_rig import Live, live_bridge, schedule, silence_frames


@contextlib.asynccontextmanager
async def _server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_taken_messages_skip_receive_and_the_rest_arrive_in_order() -> None:
    offered: list[str] = []
    received: list[str] = []
    installed: list[bool] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = HandoffWebSocket()
        await ws.prepare(request)
        installed.append(ws.handoff is not None)
        if ws.handoff is not None:
            def take(msg: Any) -> bool:
                if msg.type is not WSMsgType.TEXT:
                    return False  # the close
                offered.append(msg.data)
                return bool(msg.data.startswith("take"))
            ws.handoff.take = take
        async for msg in ws:
            received.append(msg.data)
        return ws

    async with _server(handler) as port, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws")
        # one write, so one read: the second message is queued, and the third behind it unasked
        TextWriter(ws).write_all(["take 1", "keep 1", "take 2"])
        await asyncio.sleep(0.2)
        TextWriter(ws).write_all(["take 3"])  # the queue is empty again: offered, and taken
        await asyncio.sleep(0.2)
        await ws.close()
    assert installed == [True], f"aiohttp {aiohttp.__version__}: the handoff queue was not installed"
    assert offered == ["take 1", "keep 1", "take 3"]
    assert received == ["keep 1", "take 2"]


async def test_hand_over_wakes_receive_with_the_marker() -> None:
    marker = WSMessage(WSMsgType.TEXT, "", "marker")
    got: list[object] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = HandoffWebSocket()
        await ws.prepare(request)
        queue = ws.handoff
        assert queue is not None

        def take(msg: Any) -> bool:
            queue.hand_over(marker)
            return True
        queue.take = take
        got.append(await ws.receive())
        return ws

    async with _server(handler) as port, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws")
        await ws.send_str("anything")
        await asyncio.sleep(0.2)
        await ws.close()
    assert len(got) == 1 and got[0] is marker


def _first_message() -> tuple[list[object], list[str], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A handler that keeps each socket's ``handoff`` and the first message ``receive`` returns."""
    handoff: list[object] = []
    received: list[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = HandoffWebSocket()
        await ws.prepare(request)
        handoff.append(ws.handoff)
        received.append((await ws.receive()).data)
        return ws
    return handoff, received, handler


async def test_an_upgrade_that_brought_a_message_with_it_keeps_aiohttps_queue() -> None:
    """Bytes that came in the upgrade's own read were parsed by aiohttp's reader before the bridge
    could give it another queue: that socket keeps aiohttp's, and loses nothing."""
    handoff, received, handler = _first_message()
    async with _server(handler) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        payload = b"early"
        frame = bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # masked with a zero key
        writer.write(upgrade + frame)
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        await asyncio.sleep(0.2)
        writer.close()
    assert handoff == [None]
    assert received == ["early"]


def _count_takes(driver: CallDriver) -> list[bool]:
    """What the driver's read callback answers for each text message it is offered from now on
    (pings' answers and the close always go to the task)."""
    queue = driver._handoff
    assert queue is not None and queue.take is not None
    take, answers = queue.take, []

    def counted(msg: Any) -> bool:
        taken = take(msg)
        if msg.type is WSMsgType.TEXT:
            answers.append(taken)
        return taken
    queue.take = counted
    return answers


async def _driver(live: Live) -> CallDriver:
    """The one call's driver, once its AI leg is up."""
    async with asyncio.timeout(5):
        while not live.bridge.calls or next(iter(live.bridge.calls)).leg is None:
            await asyncio.sleep(0.01)
    return next(iter(live.bridge.calls))


async def test_a_live_calls_frames_are_handled_in_the_read_callback_and_all_counted(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:
        frames = silence_frames(1.6)
        caller = SimulatedCaller(live.media_url, stream_sid="MZh", call_sid="CA-handoff", params={})
        call = asyncio.create_task(caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.2,
                                              session=http))
        answers = _count_takes(await _driver(live))
        await call
        await asyncio.sleep(0.3)
    report = open_store(live.settings.database_url).get("CA-handoff")
    assert report is not None and report["end_reason"] == "stop"  # the stop, taken, ended the call
    assert report["inbound"]["frames"] == len(frames)
    assert report["counters"].get("internal_errors", 0) == 0
    # frames sent once the AI leg was up, each 20 ms after the last, and the stop: taken as read
    # (one could miss its turn on a busy test machine)
    assert len(answers) >= 0.8 * len(frames) and answers.count(False) <= 2


async def test_a_chunk_read_longer_ago_than_a_turn_goes_to_the_reader_task(tmp_path: Path) -> None:
    """Messages still being handled from one read past the reader's turn (a burst) are declined,
    so the task takes them by turns; nothing is lost either way."""
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:
        frames = silence_frames(1.0)
        caller = SimulatedCaller(live.media_url, stream_sid="MZt", call_sid="CA-turns", params={})
        call = asyncio.create_task(caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.2,
                                              session=http))
        driver = await _driver(live)
        protocol = driver.twilio._req.protocol  # type: ignore[union-attr]
        hook = protocol._data_received_cb
        assert hook is not None

        def read_long_ago() -> None:
            hook()
            assert driver._arrival.last is not None
            driver._arrival.last -= 0.010
        protocol._data_received_cb = read_long_ago
        answers = _count_takes(driver)
        await call
        await asyncio.sleep(0.3)
    report = open_store(live.settings.database_url).get("CA-turns")
    assert report is not None and report["end_reason"] == "stop"
    assert answers and not any(answers)
    assert report["inbound"]["frames"] == len(frames)


async def test_a_flush_that_must_wait_is_finished_by_the_reader_task(tmp_path: Path) -> None:
    """With Twilio's socket pushing back, a message that is not a plain frame is applied in the
    read callback and handed over: the task flushes it, and the call goes on."""
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(live.media_url)
        await ws.send_str(start_message("MZw", "CA-wait", {"tenant": "t"}))
        driver = await _driver(live)
        queue = driver._handoff
        assert queue is not None
        hand_overs: list[object] = []
        hand_over = queue.hand_over

        def counted(marker: WSMessage) -> None:
            hand_overs.append(marker)
            hand_over(marker)
        queue.hand_over = counted  # type: ignore[method-assign]
        writer = driver.twilio._writer
        assert writer is not None
        writer.protocol.pause_writing()
        await ws.send_str("{broken json")
        await asyncio.sleep(0.1)
        writer.protocol.resume_writing()
        payload = base64.b64encode(b"\xff" * 160).decode()
        for i in range(5):
            await ws.send_str(media_message("MZw", i + 2, i + 1, i * 20, payload))
            await asyncio.sleep(0.02)
        await ws.send_str(stop_message("MZw", "CA-wait", 8))
        await asyncio.sleep(0.3)
        await ws.close()
    report = open_store(live.settings.database_url).get("CA-wait")
    assert report is not None
    assert len(hand_overs) == 2  # the broken message, and the stop that ended the call
    assert report["counters"]["bad_json"] == 1
    assert report["inbound"]["frames"] == 5 and report["end_reason"] == "stop"


async def test_an_error_in_the_read_callback_ends_the_call_as_the_reader_would(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(live.media_url)
        await ws.send_str(start_message("MZe", "CA-error", {"tenant": "t"}))
        driver = await _driver(live)

        def broken(append: str, arrived: float) -> None:
            raise RuntimeError("broken on purpose")
        driver._frame_to_ai = broken  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR, logger="mosbridge"):
            payload = base64.b64encode(b"\xff" * 160).decode()
            for i in range(3):  # the first frame after start goes the general way: the next one is a plain frame
                await ws.send_str(media_message("MZe", i + 2, i + 1, i * 20, payload))
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
        closed = ws.closed or (await ws.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        await ws.close()
    report = open_store(live.settings.database_url).get("CA-error")
    assert report is not None and closed
    assert report["counters"]["internal_errors"] == 1
    assert report["end_reason"] == "twilio_closed"  # as when the reader itself fails
    assert "the Twilio reader failed" in caplog.text and "broken on purpose" in caplog.text


async def test_lines_logged_in_the_read_callback_name_the_call(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())  # formats as the line is logged: in the callback's context
    logger = logging.getLogger("mosbridge")
    logger.addHandler(handler)
    try:
        async with live_bridge(tmp_path, validate_twilio_signature=False) as live, \
                aiohttp.ClientSession() as http:
            ws = await http.ws_connect(live.media_url)
            await ws.send_str(start_message("MZlog", "CA-log", {"tenant": "t"}))
            answers = _count_takes(await _driver(live))
            await asyncio.sleep(0.05)
            await ws.send_str("{broken json")  # a bad_json problem, logged as it is handled
            await asyncio.sleep(0.2)
            await ws.close()
    finally:
        logger.removeHandler(handler)
    assert answers[:1] == [True]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [bad] = [line for line in lines if "not valid JSON" in line["message"]]
    assert (bad.get("call_sid"), bad.get("stream_sid"), bad.get("tenant")) == ("CA-log", "MZlog", "t")


async def test_an_aiohttp_laid_out_otherwise_keeps_its_own_queue_and_says_so(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """If the reader cannot be built as this aiohttp builds it (here: its signature changed), the
    socket keeps aiohttp's queue, messages reach ``receive`` as before, and a warning says why."""
    def changed_reader(*args: Any, **kwargs: Any) -> None:
        raise TypeError("WebSocketReader() got an unexpected keyword argument 'decode_text'")
    monkeypatch.setattr(aiohttp_internals, "_Reader", changed_reader)
    monkeypatch.setattr(HandoffWebSocket, "_warned", False)
    handoff, received, handler = _first_message()
    with caplog.at_level(logging.WARNING, logger="mosbridge"):
        async with _server(handler) as port, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws")
            await ws.send_str("as before")
            await asyncio.sleep(0.2)
            await ws.close()
    assert handoff == [None] and received == ["as before"]
    assert "aiohttp's WebSocket reader has changed" in caplog.text and "decode_text" in caplog.text
