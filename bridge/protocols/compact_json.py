"""One compact JSON encoder (no spaces, UTF-8 kept) for every message the bridge writes.

Built once: ``json.dumps`` with non-default options builds a new encoder on every call.
"""

from __future__ import annotations

import json
from typing import Final

dumps: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
