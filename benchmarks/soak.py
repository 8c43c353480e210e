"""Memory over a long run: RSS of the bridge under steady load, first minute vs last minute.

Goal: RSS growth < 5 % over 10 minutes. Run: ``.venv/bin/python benchmarks/soak.py [--minutes 10]
[--calls 30] [--format pcmu|pcm24k|opus16k]`` (it takes the minutes it says).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform

from bridge.loadtest.run import LoadOptions, run_load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--format", choices=["pcmu", "pcm24k", "opus16k"], default="pcmu")
    args = ap.parse_args()
    r = asyncio.run(run_load(LoadOptions(calls=args.calls, ramp_s=5.0, duration_s=args.minutes * 60.0,
                                         ai_format=args.format)))
    samples = r.rss_samples
    first = [mb for t, mb in samples if 30.0 <= t < 90.0]
    last = [mb for t, mb in samples if t >= samples[-1][0] - 60.0]
    a, b = sum(first) / len(first), sum(last) / len(last)
    print(f"python {platform.python_version()}; {args.calls} {args.format} calls for {args.minutes:g} min "
          f"({r.calls['completed']} completed, {r.calls['failed']} failed)")
    print(f"bridge RSS: idle {r.rss_mb['idle'] if r.rss_mb else 0:.1f} MB, minute 1 {a:.1f} MB, "
          f"last minute {b:.1f} MB, growth {100 * (b - a) / a:+.2f} % (goal < 5 %)")
    print(json.dumps({"minute_1_mb": a, "last_minute_mb": b, "growth_pct": 100 * (b - a) / a,
                      "cpu_ms_per_call_second": r.bridge_cpu_ms_per_call_second,
                      "deadline_misses": r.deadline_misses}))


if __name__ == "__main__":
    main()
