"""Wall-clock instants as the reports and the store write them: ISO-8601 UTC with milliseconds and
a ``Z`` (``2026-11-27T13:40:00.123Z``), which sorts as text in the order of time."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(epoch_s: float) -> str:
    """``epoch_s`` (Unix seconds) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return to_iso(datetime.fromtimestamp(epoch_s, UTC))


def to_iso(dt: datetime) -> str:
    """An aware datetime as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (a naive one is taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """An ISO-8601 instant as an aware UTC datetime; ``ValueError`` if it is not one."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def epoch_of(text: str) -> float:
    return parse_iso(text).timestamp()
