"""The open-file limit: every live call holds two sockets (Twilio and the AI), more with a capture
file, so the 1024 a Debian shell hands out by default runs out near 500 calls. The soft limit is
raised to the hard one at start-up, as Go's runtime and nginx's ``worker_rlimit_nofile`` do."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("mosbridge")

# What to ask for when the hard limit is unlimited: Linux's default fs.nr_open ceiling.
UNLIMITED_TARGET = 1 << 20


def raise_open_file_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-file limit stays at %d (could not raise it to %d: %s): about %d calls at most",
                        soft, target, exc, soft // 2)
            return soft
        log.info("open-file limit raised from %d to %d", soft, target)
        return target
    return soft
