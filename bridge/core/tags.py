"""Tenant and tags from Twilio ``customParameters``, with PHI ids pseudonymized.

Ids that may identify a patient or a person (``patient_id``, ``lead_id``, any key in the
configured PHI set) are replaced by a keyed HMAC-SHA256 (RFC 2104) of the value before they are
stored, reported or logged; the clear value never leaves this module.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

TENANT_KEY = "tenant"
UNTAGGED = "unknown"  # how a call without a tenant is named in queries, analytics and metrics
DEFAULT_PHI_KEYS = frozenset({"patient_id", "lead_id", "caller_id", "customer_id", "member_id", "mrn"})


_PSEUDONYM = re.compile(r"ps_[0-9a-f]{24}")


def pseudonymize(value: str, key: bytes) -> str:
    """A stable, keyed pseudonym: equal values map to equal tokens, unrecoverable without the key.

    Idempotent: a value that already is a pseudonym (a capture replayed) is kept as it is.
    """
    if _PSEUDONYM.fullmatch(value):
        return value
    digest = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
    return "ps_" + digest[:24]


@dataclass(frozen=True)
class CallTags:
    tenant: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


def call_tags(params: Mapping[str, str], key: bytes, phi_keys: frozenset[str] = DEFAULT_PHI_KEYS) -> CallTags:
    """Split ``customParameters`` into the tenant and the (pseudonymized where PHI) tags."""
    tags: dict[str, str] = {}
    for name, value in params.items():
        if name == TENANT_KEY:
            continue
        tags[name] = pseudonymize(value, key) if name.lower() in phi_keys else value
    return CallTags(tenant=params.get(TENANT_KEY) or None, tags=tags)
