"""The front door's DNS (exposure 'ingress'): the published URLs and the one record the facilitator
makes, checked against what the name resolves to now."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse

from infra.document import PlatformDocument


def front_door(outputs: dict) -> list[str]:
    """The published services' URLs and the DNS record they need (exposure 'ingress'): printed by `up`
    and `status`, since the record is the one step the kit leaves to the facilitator."""
    door = outputs.get("ingress")
    if not door or not outputs.get("platform"):
        return []
    document = PlatformDocument.from_json(outputs["platform"])
    published = [s for s in document.services if s.public_url]
    lines = [f"  • {s.name:<14} {s.public_url}" for s in published]
    address, domain = door.get("address"), door.get("domain")
    if not address:
        where = document.ingress
        look = f"kubectl -n {where.namespace} get svc {where.controller_service}" if where else "kubectl get svc -A"
        return lines + [f"  DNS: *.{domain} must point at the ingress controller, which has no address yet ({look})"]
    kind = "A" if is_ip(address) else "CNAME"
    record = f"*.{domain} {kind} {address}"
    # What the published hosts resolve to now: after a `recreate` the load balancer, and so the
    # address, is a new one, and yesterday's record points at nothing.
    public_host = urlparse(published[0].public_url or "").hostname if published else None
    now, wanted = addresses(public_host) if public_host else set(), addresses(address)
    if now and now & wanted:
        return lines + [f"  DNS: ✓ *.{domain} points at the ingress controller ({address})"]
    if now:
        return lines + [f"  DNS: *.{domain} points at {', '.join(sorted(now))}, not the ingress controller: "
                        f"update the record to {record}; certificates are issued once it resolves"]
    return lines + [f"  DNS: create the record {record} (the kit does not manage DNS); "
                    "certificates are issued once it resolves"]


def is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def addresses(host: str) -> set[str]:
    """The IP addresses a name resolves to here; none if it does not resolve."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        return set()
