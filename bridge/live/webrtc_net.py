"""Which local addresses aiortc's ICE agent (aioice) offers as host candidates.

aioice gathers host candidates from every interface address the machine has
(`aioice.ice.get_host_addresses`, enumerated with `ifaddr`) and deliberately skips 127.0.0.1.
That is wrong for two places mosbridge runs WebRTC:

* tests and the local Realtime stand-in, where both peers live on one machine and must talk over
  loopback only (this workplace forbids traffic to any non-loopback address, and a loopback-only
  pair connects in about 1.4 s instead of waiting on unreachable pairs);
* deployments that must pin the media to one interface (a pod's address, a VPN, a NIC facing the
  provider) rather than offering every address the host happens to have.

aiortc exposes no per-connection setting for this (RTCConfiguration only takes ICE servers), and
`Connection.gather_candidates` looks the function up as a module global at call time, so replacing
`aioice.ice.get_host_addresses` is the narrowest effective hook. It is process-wide: every
RTCPeerConnection gathered afterwards uses the given addresses. Server-reflexive and relayed
candidates (STUN/TURN) are unaffected; with no ICE servers configured there are none.
"""

from __future__ import annotations

import ipaddress

import aioice.ice


def restrict_ice_to(addresses: list[str]) -> None:
    """Make every later ICE gathering offer exactly `addresses` (IPv4 or IPv6 literals) as host
    candidates, in this order, filtered by the agent's own use_ipv4/use_ipv6 flags.

    Idempotent: calling it again replaces the previous restriction (it never wraps a wrapper).
    Raises ValueError on an empty list or a string that is not an IP address.
    """
    if not addresses:
        raise ValueError("restrict_ice_to needs at least one address")
    parsed = [ipaddress.ip_address(a) for a in addresses]
    fixed = [str(a) for a in parsed]

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [text for text, ip in zip(fixed, parsed, strict=True)
                if (ip.version == 4 and use_ipv4) or (ip.version == 6 and use_ipv6)]

    aioice.ice.get_host_addresses = get_host_addresses
