"""The ``mosbridge`` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge import (
    __version__,
    ab_cmd,
    fake_realtime_cmd,
    loadtest_cmd,
    mos_cmd,
    replay_cmd,
    report_cmd,
    serve_cmd,
    simulate_cmd,
    tenants_cmd,
    transcode_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mosbridge",
        description="Twilio Media Streams <-> OpenAI Realtime bridge that measures every frame "
        "and reports an ITU-T E-model MOS per call.",
    )
    parser.add_argument("--version", action="version", version=f"mosbridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve_cmd.add_parser(sub)
    report_cmd.add_parsers(sub)
    tenants_cmd.add_parsers(sub)
    replay_cmd.add_parser(sub)
    loadtest_cmd.add_parser(sub)
    simulate_cmd.add_parser(sub)
    mos_cmd.add_parser(sub)
    transcode_cmd.add_parser(sub)
    fake_realtime_cmd.add_parser(sub)
    ab_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
