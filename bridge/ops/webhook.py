"""JSON webhooks: one POST with a few retries, from a background thread (never the audio path).

Used for call reports (``MOSBRIDGE_REPORT_WEBHOOK_URL``) and alerts (``MOSBRIDGE_ALERT_WEBHOOK_URL``).
A 2xx answer is success; anything else, a refused connection or a timeout is retried with
exponential backoff, each failure logged with what was being sent.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("mosbridge.webhook")

ATTEMPTS = 3  # one POST and at most two retries
TIMEOUT_S = 5.0
BACKOFF_S = 0.1  # before retry n: BACKOFF_S * 2 ** (n - 1)


def post_json(url: str, doc: Mapping[str, Any], what: str, *, attempts: int = ATTEMPTS, timeout_s: float = TIMEOUT_S,
              backoff_s: float = BACKOFF_S, sleep: Callable[[float], None] = time.sleep,
              logger: logging.Logger = log) -> bool:
    """POST ``doc`` as JSON to ``url``; True once a 2xx answer came back. ``what`` names the
    payload in log lines (``"report for call_sid=CA…"``)."""
    body = json.dumps(doc).encode("utf-8")
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "mosbridge"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
            return True
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            logger.error("webhook POST of %s to %s failed (attempt %d/%d): %s", what, url, attempt, attempts, e)
            if attempt < attempts:
                sleep(backoff_s * 2 ** (attempt - 1))
    return False
