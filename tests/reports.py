"""Typing shims for tests that read or hand-build report JSON (``bridge.core.report_json.StoredReport``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from bridge.core.report_json import StoredReport


def loose(report: StoredReport | None) -> dict[str, Any]:
    """A report's JSON as a test reads it: any key, values unnarrowed (``mos`` is a float here)."""
    assert report is not None
    return cast(dict[str, Any], report)


def stored(doc: Mapping[str, Any]) -> StoredReport:
    """A hand-built dict, possibly partial or malformed on purpose, passed where a stored report goes."""
    return cast(StoredReport, doc)
