"""MOS bands used for alerting: >= 4.3 excellent, 4.0-4.3 good, 3.6-4.0 fair, < 3.6 poor.

The thresholds are the product's (see ``shared/seed``): below 4.0 sustained is an incident,
below 3.6 conversations break. G.107 Annex B's user-satisfaction table uses R 90/80/70/60
(MOS 4.34/4.03/3.60/3.10), which these bands follow at 4.3, 4.0 and 3.6.
"""

from __future__ import annotations

import enum


class Band(enum.Enum):
    EXCELLENT = "excellent"
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"


EXCELLENT_MIN = 4.3
GOOD_MIN = 4.0
FAIR_MIN = 3.6


def band(mos: float) -> Band:
    if mos >= EXCELLENT_MIN:
        return Band.EXCELLENT
    if mos >= GOOD_MIN:
        return Band.GOOD
    if mos >= FAIR_MIN:
        return Band.FAIR
    return Band.POOR


class Label(enum.Enum):
    """The three session labels a tenant on the article's entry plan sees: good / fair / poor."""

    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"


def label(mos: float) -> Label:
    """Good at 4.0 and above (excellent folds into good), fair from 3.6, poor below."""
    if mos >= GOOD_MIN:
        return Label.GOOD
    if mos >= FAIR_MIN:
        return Label.FAIR
    return Label.POOR
