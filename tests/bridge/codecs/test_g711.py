"""G.711 mu-law against ITU-T G.711 Table 2a (decoder outputs), 14-bit values scaled by 4."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.codecs.g711 import SILENCE_FRAME, alaw_decode, alaw_encode, is_quiet, ulaw_decode, ulaw_encode

SEGMENT_FIRST_OUTPUT = (0, 33, 99, 231, 495, 1023, 2079, 4191)
SEGMENT_LAST_OUTPUT = (30, 93, 219, 471, 975, 1983, 3999, 8031)
SEGMENT_STEP = (2, 4, 8, 16, 32, 64, 128, 256)


def table_2a(code: int) -> int:
    inverted = ~code & 0xFF
    segment = (inverted >> 4) & 0x7
    magnitude = SEGMENT_FIRST_OUTPUT[segment] + SEGMENT_STEP[segment] * (inverted & 0xF)
    return 4 * (-magnitude if inverted & 0x80 else magnitude)


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xEF, 132), (0x3F, -1980), (0x70, -120)],
)
def test_known_code_points(code: int, value: int) -> None:
    assert int(ulaw_decode(bytes([code]))[0]) == value


def test_segment_endpoints_match_table_2a() -> None:
    for seg in range(8):
        first = 0xFF - (seg << 4)
        last = 0xFF - (seg << 4 | 0xF)
        assert int(ulaw_decode(bytes([first]))[0]) == 4 * SEGMENT_FIRST_OUTPUT[seg]
        assert int(ulaw_decode(bytes([last]))[0]) == 4 * SEGMENT_LAST_OUTPUT[seg]
        assert int(ulaw_decode(bytes([first & 0x7F]))[0]) == -4 * SEGMENT_FIRST_OUTPUT[seg]


def test_all_256_codes_match_table_2a() -> None:
    decoded = ulaw_decode(bytes(range(256)))
    assert [int(v) for v in decoded] == [table_2a(c) for c in range(256)]


def test_every_code_except_negative_zero_reencodes_to_itself() -> None:
    codes = [c for c in range(256) if c != 0x7F]
    assert ulaw_encode(ulaw_decode(bytes(codes))) == bytes(codes)
    assert ulaw_encode(ulaw_decode(b"\x7f")) == b"\xff"


def test_round_trip_error_bound() -> None:
    """Half a Table 2a interval (2^(s+1) in a segment whose outputs are >= 33·2^s - 33, so
    <= |x|/32) plus two 14-bit LSBs (x>>2 truncation, ones'-complement of negatives), times 4;
    beyond the top decision level 8159·4 the encoder clips to 32124."""
    x = np.arange(-32768, 32768, dtype=np.int64)
    y = ulaw_decode(ulaw_encode(x.astype(np.int16))).astype(np.int64)
    err = np.abs(y - x)
    in_range = np.abs(x) < 4 * 8159
    assert np.all(err[in_range] <= np.abs(x[in_range]) / 32 + 8)
    assert np.all(np.abs(y[~in_range]) == 32124)
    assert np.all(np.sign(y[np.abs(x) > 8]) == np.sign(x[np.abs(x) > 8]))


def test_quiet_means_no_sample_above_minus_60_dbov() -> None:
    assert is_quiet(SILENCE_FRAME)
    samples = np.zeros(160, dtype=np.int16)
    samples[80] = -32  # mu-law keeps 32 exactly (segment 0 steps by 8): -60 dBov
    assert is_quiet(ulaw_encode(samples))
    samples[80] = 40  # 1 in 800 of full scale, about -58 dBov
    assert not is_quiet(ulaw_encode(samples))


def table_1a(code: int) -> int:
    """G.711 Table 1a A-law decoder output (12-bit magnitude, even bits inverted on the line),
    scaled by 8 to 16 bits."""
    c = code ^ 0x55
    segment, step = (c >> 4) & 0x7, c & 0xF
    magnitude = 2 * step + 1 if segment == 0 else (2 * step + 33) << (segment - 1)
    return 8 * (magnitude if c & 0x80 else -magnitude)


def test_alaw_matches_table_1a_and_reencodes() -> None:
    decoded = alaw_decode(bytes(range(256)))
    assert [int(v) for v in decoded] == [table_1a(c) for c in range(256)]
    assert alaw_encode(decoded) == bytes(range(256))
    assert alaw_encode(np.zeros(1, dtype=np.int16)) == b"\xd5"  # the smallest positive level
