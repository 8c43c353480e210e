"""The ``mosbridge`` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge import __version__
from bridge.cli import (
    ab,
    demo,
    fake_realtime,
    loadtest,
    mos,
    replay,
    report,
    serve,
    simulate,
    tenants,
    transcode,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mosbridge",
        description="Twilio Media Streams <-> OpenAI Realtime bridge that measures every frame "
        "and reports an ITU-T E-model MOS per call.",
    )
    parser.add_argument("--version", action="version", version=f"mosbridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.add_parser(sub)
    serve.add_parser(sub)
    report.add_parsers(sub)
    tenants.add_parsers(sub)
    replay.add_parser(sub)
    loadtest.add_parser(sub)
    simulate.add_parser(sub)
    mos.add_parser(sub)
    transcode.add_parser(sub)
    fake_realtime.add_parser(sub)
    ab.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
