"""``mosbridge simulate``: write a synthetic capture of an impaired caller-only call, with its ground truth.

Loss is Twilio's: audio lost before Twilio is never sent, so ``media.timestamp`` steps over it
while ``chunk`` and ``sequenceNumber`` count on without a hole.
The capture replays like a recorded call (``mosbridge replay OUT.jsonl``); the ground truth (what
was injected, counted by the generator, see ``bridge/stand_ins/simulate.py``) is printed as JSON and, with
``--truth``, written to a file. The same ``--seed`` and options always give the same bytes.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from bridge.cli.arg_types import non_negative, percent
from bridge.stand_ins.simulate import SimParams, simulate, truth_document


def _gilbert(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected P,Q (two probabilities), got {text!r}")
    p, q = (non_negative(x.strip()) for x in parts)
    if p > 1 or not 0 < q <= 1:
        raise argparse.ArgumentTypeError(f"need 0 <= P <= 1 and 0 < Q <= 1, got {text!r}")
    return p, q


def _frames(text: str) -> frozenset[int]:
    try:
        out = frozenset(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frame numbers like 20,21,75, got {text!r}") from None
    if any(c < 1 for c in out):
        raise argparse.ArgumentTypeError(f"frame numbers start at 1, got {text!r}")
    return out


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="write a synthetic capture with known loss, jitter, reordering, duplicates and stalls",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", metavar="OUT.jsonl", type=Path, help="the capture to write")
    p.add_argument("--seconds", type=non_negative, default=10.0, help="call length in seconds (default 10)")
    loss = p.add_mutually_exclusive_group()
    loss.add_argument("--loss-pct", type=percent, default=0.0, help="random (Bernoulli) loss in percent")
    loss.add_argument("--gilbert", type=_gilbert, metavar="P,Q",
                      help="bursty loss: P = P(lost | previous sent), Q = P(sent | previous lost)")
    p.add_argument("--drop", type=_frames, default=frozenset(), metavar="FRAMES",
                   help="also lose these frames (numbered from 1 in media time), e.g. 20,21,75 "
                        "(never the first or last)")
    p.add_argument("--delay-ms", type=non_negative, default=0.0, help="constant one-way delay in ms")
    p.add_argument("--jitter-ms", type=non_negative, default=0.0,
                   help="mean of the extra delay per frame, in ms (kept in TCP order)")
    p.add_argument("--jitter-dist", choices=["exponential", "pareto"], default="exponential",
                   help="distribution of the extra delay (default exponential)")
    p.add_argument("--pareto-alpha", type=non_negative, default=2.5,
                   help="with --jitter-dist pareto: its shape, > 1 (default 2.5; smaller = heavier tail)")
    p.add_argument("--reorder-pct", type=percent, default=0.0,
                   help="not something Twilio does: share of adjacent messages that arrive swapped, in percent")
    p.add_argument("--duplicate-pct", type=percent, default=0.0,
                   help="not something Twilio does: share of messages sent twice, in percent")
    p.add_argument("--stall-at", type=non_negative, metavar="S", help="start of a stall, seconds into the call")
    p.add_argument("--stall-ms", type=non_negative, metavar="M",
                   help="stall length: nothing arrives, then the backlog arrives at once")
    p.add_argument("--speech", action="store_true", help="speech-like audio alternating with silence "
                   "(default: silence)")
    p.add_argument("--plain", action="store_true", help="write a plain Twilio log (messages only, no times)")
    p.add_argument("--tenant", default="sim", help="customParameters tenant (default sim)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--truth", type=Path, metavar="OUT.truth.json", help="also write the ground truth here")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    if (args.stall_at is None) != (args.stall_ms is None):
        args.parser.error("--stall-at and --stall-ms go together")
    try:
        params = SimParams(
            seconds=args.seconds, loss_pct=args.loss_pct, gilbert=args.gilbert, drop=args.drop,
            delay_ms=args.delay_ms, jitter_ms=args.jitter_ms, jitter_dist=args.jitter_dist,
            pareto_alpha=args.pareto_alpha,
            reorder_pct=args.reorder_pct, duplicate_pct=args.duplicate_pct, stall_at_s=args.stall_at,
            stall_ms=args.stall_ms or 0.0, speech=args.speech, tenant=args.tenant,
        )
    except ValueError as exc:
        args.parser.error(str(exc))
    sim = simulate(params, random.Random(args.seed), plain=args.plain)
    doc = truth_document(params, args.seed, sim.truth)
    args.out.write_text(sim.text(), encoding="utf-8")
    if args.truth is not None:
        args.truth.write_text(doc, encoding="utf-8")
    print(doc, end="")
    return 0
