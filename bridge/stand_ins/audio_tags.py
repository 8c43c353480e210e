"""Identity tags written into mu-law audio, so a load run can tell which frame arrived where.

pcmu is pass-through (G.711 bytes reach the other side unchanged), so a few bytes of each 20 ms
carry who sent them and where they sit in the stream. The tag is made of quiet mu-law codes only
(segment 0: |x| <= 120 of 32767, about -49 dBFS peak), 5 bits a byte, so a silent frame stays
silent for a VAD. A magic prefix finds it; a checksum rejects speech that happens to look alike.
Caller tags: (run nonce, call index, frame index); AI tags: (stand-in session, stream offset).
"""

from __future__ import annotations

from dataclasses import dataclass

SYMBOL_BITS = 5
_CALLER_MAGIC = bytes((0x75, 0xFA, 0x79))  # symbols 5, 26, 9
_AI_MAGIC = bytes((0xF6, 0x7B, 0xF3))  # symbols 22, 11, 19
_CALLER_WIDTHS = (3, 4, 4)  # symbols: nonce (15 bits), call (20 bits), frame (20 bits)
_AI_WIDTHS = (4, 6)  # symbols: session (20 bits), offset (30 bits)
_CHECK_SYMBOLS = 2
CALLER_TAG_LEN = len(_CALLER_MAGIC) + sum(_CALLER_WIDTHS) + _CHECK_SYMBOLS
AI_TAG_LEN = len(_AI_MAGIC) + sum(_AI_WIDTHS) + _CHECK_SYMBOLS
AI_TAG_SPACING = 160  # one AI tag every 20 ms of 8 kHz mu-law
NONCE_LIMIT = 1 << (SYMBOL_BITS * _CALLER_WIDTHS[0])


@dataclass(frozen=True, slots=True)
class CallerTag:
    nonce: int
    call: int
    frame: int


@dataclass(frozen=True, slots=True)
class AiTag:
    session: int
    offset: int  # of the tag's first byte in the session's output stream (bytes sent as deltas)


def _symbol(v: int) -> int:
    return 0x70 | ((v & 0x10) << 3) | (v & 0x0F)


def _value(b: int) -> int | None:
    return ((b >> 3) & 0x10) | (b & 0x0F) if b & 0x70 == 0x70 else None


def _checksum(values: tuple[int, ...]) -> int:
    acc = 0
    for v in values:
        acc = (acc * 31 + v + 7) % (1 << (SYMBOL_BITS * _CHECK_SYMBOLS))
    return acc


def _digits(value: int, width: int) -> list[int]:
    if not 0 <= value < 1 << (SYMBOL_BITS * width):
        raise ValueError(f"{value} does not fit in {width * SYMBOL_BITS} bits")
    return [(value >> (SYMBOL_BITS * (width - 1 - i))) & 0x1F for i in range(width)]


def _encode(magic: bytes, widths: tuple[int, ...], values: tuple[int, ...]) -> bytes:
    symbols = [d for v, w in zip(values, widths, strict=True) for d in _digits(v, w)]
    symbols += _digits(_checksum(values), _CHECK_SYMBOLS)
    return magic + bytes(_symbol(s) for s in symbols)


_NOT_A_SYMBOL = 0xFF
# byte -> its symbol (_value), or _NOT_A_SYMBOL: one translate decodes a tag (the stand-in reads
# one per caller frame of every call in a load run)
_SYMBOLS = bytes(_NOT_A_SYMBOL if (v := _value(b)) is None else v for b in range(256))


def _decode(data: bytes, pos: int, magic: bytes, widths: tuple[int, ...]) -> tuple[int, ...] | None:
    start = pos + len(magic)
    n = sum(widths) + _CHECK_SYMBOLS
    symbols = data[start:start + n].translate(_SYMBOLS)
    if len(symbols) < n or _NOT_A_SYMBOL in symbols:
        return None
    values: list[int] = []
    i = 0
    for w in (*widths, _CHECK_SYMBOLS):
        acc = 0
        for sym in symbols[i:i + w]:
            acc = (acc << SYMBOL_BITS) | sym
        values.append(acc)
        i += w
    fields = tuple(values[:-1])
    return fields if _checksum(fields) == values[-1] else None


def caller_tag(tag: CallerTag) -> bytes:
    return _encode(_CALLER_MAGIC, _CALLER_WIDTHS, (tag.nonce, tag.call, tag.frame))


def tag_caller_frame(frame: bytes, tag: CallerTag) -> bytes:
    """The frame with its last bytes replaced by the tag (same length)."""
    return frame[: len(frame) - CALLER_TAG_LEN] + caller_tag(tag)


def find_caller_tags(data: bytes) -> list[CallerTag]:
    out: list[CallerTag] = []
    pos = data.find(_CALLER_MAGIC)
    while pos >= 0:
        fields = _decode(data, pos, _CALLER_MAGIC, _CALLER_WIDTHS)
        if fields is not None:
            out.append(CallerTag(*fields))
        pos = data.find(_CALLER_MAGIC, pos + 1)
    return out


def tag_ai_audio(audio: bytes, session: int, base_offset: int) -> bytes:
    """A response's mu-law audio with an AI tag every ``AI_TAG_SPACING`` bytes; ``base_offset``
    is where the response starts in the session's output stream."""
    out = bytearray(audio)
    for pos in range(0, len(out) - AI_TAG_LEN + 1, AI_TAG_SPACING):
        out[pos:pos + AI_TAG_LEN] = _encode(_AI_MAGIC, _AI_WIDTHS, (session, base_offset + pos))
    return bytes(out)


def find_ai_tags(data: bytes) -> list[tuple[int, AiTag]]:
    """(position in ``data``, tag) of every whole AI tag in ``data``."""
    out: list[tuple[int, AiTag]] = []
    pos = data.find(_AI_MAGIC)
    while pos >= 0:
        fields = _decode(data, pos, _AI_MAGIC, _AI_WIDTHS)
        if fields is not None:
            out.append((pos, AiTag(*fields)))
        pos = data.find(_AI_MAGIC, pos + 1)
    return out
