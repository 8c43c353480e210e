"""mosbridge ab: a measured A/B of the AI-side formats on loopback (the logic: bridge/stand_ins/ab.py).

    mosbridge ab INPUT [--formats pcmu,pcm24k,opus16k] [--json] [--seed N] [--max-seconds S]
                       [--keep-dir DIR]

INPUT is a capture (the caller's media) or a 16-bit mono WAV at any rate. Each format runs one
real-time call through an in-process bridge against the echo stand-in, so the run takes about
twice the utterance + 3 s per format. Bad input: one error line, exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge.cli.arg_types import positive
from bridge.stand_ins.ab import (
    DEFAULT_MAX_SECONDS,
    FORMATS,
    NOTE,
    AbError,
    Interrupted,
    format_table,
    load_input,
    run_ab,
    to_json,
)


def formats_arg(text: str) -> list[str]:
    """A comma-separated list of distinct AI-side formats, in the order given."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in FORMATS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"formats must be a comma-separated subset of {','.join(FORMATS)}, "
                                         f"got {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a format is listed twice in {text!r}")
    return names


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ab",
        help="A/B the AI-side formats on loopback: E-model MOS, PESQ of the echo, round trip",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="a capture (.jsonl) or a 16-bit mono WAV (any rate)")
    p.add_argument("--formats", type=formats_arg, default=list(FORMATS),
                   help=f"comma-separated AI-side formats to compare (default {','.join(FORMATS)})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--seed", type=int, default=0, help="seed of the stand-in (its audio delta sizes; default 0)")
    p.add_argument("--max-seconds", type=positive, default=DEFAULT_MAX_SECONDS,
                   help=f"longest utterance played, s (default {DEFAULT_MAX_SECONDS:g})")
    p.add_argument("--keep-dir", type=Path, metavar="DIR",
                   help="keep each format's call report in DIR/<format>.db (read it with "
                   "mosbridge report CALL_SID --database-url sqlite:///DIR/<format>.db)")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    try:
        utt = load_input(args.input, args.max_seconds)
        results = asyncio.run(run_ab(utt, args.formats, seed=args.seed, workdir=args.keep_dir))
    except AbError as exc:
        print(f"mosbridge ab: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"mosbridge ab: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("mosbridge ab: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(to_json(args.input, utt, results), sort_keys=True))
        return 0
    changes = [f"{utt.pauses_shortened} pause(s) shortened"] if utt.pauses_shortened else []
    changes += ["cut to --max-seconds"] if utt.truncated else []
    print(f"input      {args.input} ({utt.source}); utterance {utt.seconds:.2f} s"
          + (f" ({', '.join(changes)})" if changes else ""))
    print(format_table(results))
    if args.keep_dir is not None:
        print(f"reports    {', '.join(f'{args.keep_dir}/{r.format}.db: {r.call_sid}' for r in results)}")
    for r in results:
        for note in r.notes:
            print(f"warning: {r.format}: {note}")
    print(f"note: {NOTE}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run as ``python -m bridge.cli.ab`` (the same as ``mosbridge ab``)."""
    parser = argparse.ArgumentParser(prog="mosbridge")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ab", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
