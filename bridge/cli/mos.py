"""``mosbridge mos``: the E-model calculator, with the same semantics as other E-model tools.

``--delay-ms D`` is the one-way mouth-to-ear delay and sets T = Ta = D, Tr = 2 D (a four-wire
packet path); ``--loss-pct`` is Ppl and ``--burst-ratio`` BurstR; ``--codec`` sets Ie and Bpl;
every other G.107 parameter keeps its default. For the E-models, jitter enters through the
bridge's own playout rule (``quality.playout.buffer_for_jitter``): a buffer holding the 99th
percentile of the delay variation, taken as exponential with mean J, adds J ln 100 (at least
one 20 ms frame) to the delay and lets 1 % of frames arrive late, concealed like lost ones
(added to Ppl).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bridge.cli.arg_types import non_negative, percent
from quality.emodel import EModelParams
from quality.impairments import CODECS, CodecChain
from quality.playout import QUANTILE, buffer_for_jitter
from quality.report import Assessment, Model, QualityInput, assess


def _burst_ratio(text: str) -> float:
    value = non_negative(text)
    if not 1.0 <= value <= 8.0:
        raise argparse.ArgumentTypeError(f"BurstR must be within 1..8 (G.107 range), got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "mos",
        help="compute R and MOS (ITU-T G.107 E-model) for a delay, jitter, loss and codec",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--delay-ms", type=non_negative, default=0.0,
                   help="one-way mouth-to-ear delay in ms; sets T = Ta = D and Tr = 2 D (default 0)")
    p.add_argument("--jitter-ms", type=non_negative, default=0.0,
                   help="RFC 3550 interarrival jitter in ms; g107 models add the bridge's playout buffer: "
                        f"its {QUANTILE:.0%} quantile (J ln 100 for exponential delay, at least one frame) to "
                        "the delay and the frames later than that to the loss (default 0)")
    p.add_argument("--loss-pct", type=percent, default=0.0, help="packet loss Ppl in percent (default 0)")
    p.add_argument("--burst-ratio", type=_burst_ratio, default=1.0,
                   help="BurstR: 1 = random loss, > 1 bursty (default 1)")
    p.add_argument("--codec", default="g711", help="codec name, see --list-codecs (default g711)")
    p.add_argument("--model", choices=[m.value for m in Model], default=Model.G107.value,
                   help="g107 (narrowband E-model), g107.1 (wideband), simplified (VoIP-monitor formula)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--list-codecs", action="store_true", help="list codec names with Ie, Bpl and sources")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    if args.list_codecs:
        print(_codec_table(args.json))
        return 0
    if args.codec not in CODECS:
        args.parser.error(f"unknown codec {args.codec!r}; known: {', '.join(sorted(CODECS))}")
    model = Model(args.model)
    chain = CodecChain.of(args.codec)
    if model is Model.G107_1 and chain.ie_wb is None:
        wb = sorted(n for n, c in CODECS.items() if c.ie_wb is not None)
        args.parser.error(f"codec {args.codec!r} has no wideband (G.107.1) figures; "
                          f"use one of: {', '.join(wb)}")
    buffer_ms, late_pct = (0.0, 0.0) if model is Model.SIMPLIFIED else buffer_for_jitter(args.jitter_ms)
    q = QualityInput(delay_ms=args.delay_ms, chain=chain, loss_pct=args.loss_pct, burst_r=args.burst_ratio,
                     buffer_delay_ms=buffer_ms, late_pct=late_pct, jitter_ms=args.jitter_ms)
    result = assess(q, model, EModelParams())
    assumptions = _assumptions(model, args.jitter_ms, buffer_ms, late_pct)
    if args.json:
        out = result.to_dict()
        out["inputs"] = {"delay_ms": args.delay_ms, "jitter_ms": args.jitter_ms, "loss_pct": args.loss_pct,
                         "burst_ratio": args.burst_ratio, "codec": args.codec}
        out["assumptions"] = assumptions
        print(json.dumps(out, sort_keys=True))
    else:
        print(_human(result, args, assumptions))
    return 0


def _assumptions(model: Model, jitter_ms: float, buffer_ms: float, late_pct: float) -> list[str]:
    if model is Model.SIMPLIFIED:
        return ["effective latency = delay + 2 x jitter + 10 ms; loss costs 2.5 R per %"]
    out = ["T = Ta = delay, Tr = 2 x delay; other G.107 parameters at their defaults"]
    if jitter_ms:
        out.append(f"playout buffer at the {QUANTILE:.0%} quantile of exponential delay variation with mean "
                   f"J, at least one frame: {buffer_ms:.1f} ms added to the delay, {late_pct:.2g} % of frames "
                   "late and concealed (added to Ppl)")
    return out


def _human(a: Assessment, args: argparse.Namespace, assumptions: list[str]) -> str:
    lines = [
        f"model      {a.model.value}",
        f"R          {a.r:.1f}",
        f"MOS        {a.mos:.2f}  ({a.band.value})",
        f"dominant   {a.dominant.value}",
        "breakdown  " + "  ".join(f"{k}={v:.2f}" for k, v in a.impairments.items()),
        "cost in R  " + "  ".join(f"{k}={v:.1f}" for k, v in a.contributions.items()),
    ]
    lines += [f"assumes    {s}" for s in assumptions]
    return "\n".join(lines)


def _codec_table(as_json: bool) -> str:
    rows: list[dict[str, Any]] = [
        {"name": c.name, "ie": c.ie, "bpl": c.bpl, "ie_wb": c.ie_wb, "bpl_wb": c.bpl_wb,
         "delay_ms": c.delay_ms, "standard": c.standard, "description": c.description, "source": c.source}
        for c in CODECS.values()
    ]
    if as_json:
        return json.dumps(rows)
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"
    head = f"{'codec':<10} {'Ie':>5} {'Bpl':>5} {'Ie,wb':>6} {'Bpl,wb':>6}  source"
    body = [f"{r['name']:<10} {fmt(r['ie']):>5} {fmt(r['bpl']):>5} {fmt(r['ie_wb']):>6} "
            f"{fmt(r['bpl_wb']):>6}  {r['source']}" for r in rows]
    return "\n".join([head, *body])
