"""The simulated Twilio side: when marks are echoed (Twilio's documented playout), and the pacer
that sends many callers' frames from one timer."""

from __future__ import annotations

import asyncio

import pytest

from bridge.protocols import twilio as tw
from bridge.stand_ins.frame_pacer import FramePacer, PacedStream
from bridge.stand_ins.twilio_caller import TwilioPlayout


def media(n_bytes: int) -> str:
    return tw.OutboundMedia.from_audio("MZ1", bytes(n_bytes)).serialize()


def mark(name: str) -> str:
    return tw.OutboundMark("MZ1", name).serialize()


def test_a_mark_is_due_when_the_audio_before_it_has_played() -> None:
    """Twilio: a mark comes back once the media sent before it has played, 8000 bytes a second;
    audio that arrives after the queue ran dry starts when it arrives."""
    p = TwilioPlayout("MZ1")
    assert p.next_echo_due() is None
    p.receive(media(800), 0.0)  # 100 ms
    assert p.next_echo_due() is None  # nothing to echo yet, whatever plays
    p.receive(mark("a"), 0.0)
    assert p.next_echo_due() == pytest.approx(0.100)
    p.receive(media(1600), 0.05)  # 200 ms more, queued behind the first
    p.receive(mark("b"), 0.05)
    assert p.advance(0.099) == [] and p.marks_echoed == []
    assert len(p.advance(0.100)) == 1 and p.marks_echoed == ["a"]
    assert p.next_echo_due() == pytest.approx(0.300)
    p.advance(0.300)
    assert p.marks_echoed == ["a", "b"] and p.next_echo_due() is None
    p.receive(media(160), 1.0)  # the queue ran dry at 0.3 s: this plays from 1.0 s
    p.receive(mark("c"), 1.0)
    assert p.next_echo_due() == pytest.approx(1.020)


def test_an_empty_queue_echoes_a_mark_at_once_and_clear_echoes_all() -> None:
    p = TwilioPlayout("MZ1")
    assert len(p.receive(mark("now"), 2.0)) == 1
    p.receive(media(8000), 2.0)
    p.receive(mark("x"), 2.0)
    p.receive(mark("y"), 2.0)
    echoed = p.receive(tw.ClearMessage("MZ1").serialize(), 2.5)
    assert len(echoed) == 2 and p.marks_echoed == ["now", "x", "y"] and p.next_echo_due() is None


class Wire:
    """A writer that records what was written and when, and can refuse (flow control)."""

    def __init__(self, refuse: int = 0) -> None:
        self.written: list[tuple[float, str]] = []
        self.refuse = refuse

    def ready(self) -> bool:
        if self.refuse:
            self.refuse -= 1
            return False
        return True

    def write(self, text: str) -> None:
        self.written.append((asyncio.get_running_loop().time(), text))


async def test_the_pacer_sends_every_stream_in_order_never_early_from_one_timer() -> None:
    loop = asyncio.get_running_loop()
    pacer = FramePacer(slack_s=0.0005)
    t0 = loop.time() + 0.02
    wires, streams = [], []
    for k in range(20):
        # phases 1 ms apart: 20 streams, 10 frames each, 20 ms per frame
        due = [t0 + k * 0.001 + i * 0.02 for i in range(10)]
        wire = Wire()
        stamps: list[float] = []

        def text(i: int, k: int = k) -> str:
            return f"{k}:{i}"

        def stamp(i: int, stamps: list[float] = stamps) -> None:
            stamps.append(loop.time())

        stream = PacedStream(wire, due, text, stamp, lambda: False)
        pacer.add(stream)
        wires.append((wire, due, stamps))
        streams.append(stream)
    assert await asyncio.wait_for(asyncio.gather(*(s.done for s in streams)), 5) == [10] * 20
    for k, (wire, due, stamps) in enumerate(wires):
        assert [t for _, t in wire.written] == [f"{k}:{i}" for i in range(10)]
        assert all(at >= d - pacer.slack_s for (at, _), d in zip(wire.written, due, strict=True))
        # stamped just before it is written
        assert all(0 <= at - st < 0.001 for st, (at, _) in zip(stamps, wire.written, strict=True))
    # one wake serves every frame due within the slack: 200 frames, at most 20 phases x 10 frames
    assert pacer.wakes <= 200 and pacer.wakes < sum(len(w.written) for w, _, _ in wires) + 1


async def test_a_stream_that_is_not_ready_is_late_not_lost_and_a_closed_one_stops() -> None:
    loop = asyncio.get_running_loop()
    pacer = FramePacer(retry_s=0.002)
    t0 = loop.time()
    slow = Wire(refuse=3)
    late = PacedStream(slow, [t0, t0 + 0.001], str, lambda i: None, lambda: False)
    closed = {"now": False}
    gone = Wire()

    def text(i: int) -> str:
        closed["now"] = i == 1  # the socket closes after the second frame
        return str(i)

    ended = PacedStream(gone, [t0 + 0.001 * i for i in range(5)], text, lambda i: None, lambda: closed["now"])
    pacer.add(late)
    pacer.add(ended)
    assert await asyncio.wait_for(late.done, 2) == 2
    assert [t for _, t in slow.written] == ["0", "1"]
    assert slow.written[0][0] >= t0 + 3 * pacer.retry_s - 0.001  # three refusals, retried each time
    assert await asyncio.wait_for(ended.done, 2) == 2 and [t for _, t in gone.written] == ["0", "1"]
