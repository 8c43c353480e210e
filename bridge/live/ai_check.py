"""Whether the AI side can be used at all, checked at start-up: one clear line instead of every call
failing in silence. A missing API key is a configuration error (``/readyz`` answers 503); an
unreachable AI host is reported (in ``/readyz``'s body and the log) but leaves the pod ready, so an
OpenAI outage does not empty a whole Service of its endpoints.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

NO_KEY = "no API key: set OPENAI_API_KEY (or run `mosbridge demo` to try the bridge without one)"
RECHECK_S = 10.0


async def reach(url: str, timeout_s: float) -> str | None:
    """None if a TCP connection to ``url``'s host and port opens within ``timeout_s``; else why not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return f"unreachable: {host}:{port} did not answer within {timeout_s:g} s"
    except OSError as exc:
        return f"unreachable: {host}:{port}: {exc.strerror or exc}"
    writer.close()
    return None
