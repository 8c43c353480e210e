"""p50, p99, max and mean of a list of figures, as every part of the load test reports them."""

from __future__ import annotations


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles (index ``int(q * n)``); an empty dict for no values."""
    if not values:
        return {}
    v = sorted(values)

    def pick(q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))]

    return {"p50": pick(0.50), "p99": pick(0.99), "max": v[-1], "mean": sum(v) / len(v)}
