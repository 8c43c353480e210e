"""``mosbridge serve``: run the live bridge. Every setting is an environment variable and a flag."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from pydantic import ValidationError

from bridge.live.logs import configure_logging
from bridge.live.settings import Settings, env_name


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the bridge: Twilio Media Streams <-> OpenAI Realtime, a quality report per call",
        description="Run the live bridge. Each flag overrides its environment variable; "
        "boolean settings take 1/0 or true/false.",
    )
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "unset" if default is None else repr(default)
        if info.default_factory is not None:
            shown = "computed at start-up (see the meaning)"
        if name in ("twilio_auth_token", "openai_api_key", "pseudonym_key", "admin_token", "metrics_token"):
            shown = "unset (secret: prefer the environment)"
        p.add_argument(_flag(name), dest=name, default=None, metavar="VALUE",
                       help=f"{info.description} [env {env_name(name)}; default {shown}]")
    p.set_defaults(run=run, parser=p)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {n: getattr(args, n) for n in Settings.model_fields if getattr(args, n) is not None}
    return Settings(**overrides)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        args.parser.error(problems)
    if settings.validate_twilio_signature and settings.twilio_auth_token is None:
        args.parser.error("TWILIO_AUTH_TOKEN is required to validate Twilio signatures "
                          "(set MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE=0 for local use)")
    configure_logging(settings.log_level, settings.log_format)
    if settings.pseudonym_key is None:
        logging.getLogger("mosbridge").warning(
            "MOSBRIDGE_PSEUDONYM_KEY is not set: PHI ids get an ephemeral key, so pseudonyms change on restart")
    if settings.workers > 1:
        from bridge.live.supervisor import supervise

        return supervise(settings)
    from bridge.live.process import run_server
    from bridge.live.server import serve

    return run_server(settings, serve(settings))
