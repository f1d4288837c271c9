# -*- test-case-name: nutshim.test.test_shim -*-
"""
Client addresses as the shims see them: who may connect (C{--allow}) and
how an address is written in the log.

On Linux a C{tcp6} listener on C{::} also accepts IPv4 clients, which then
appear as IPv4-mapped IPv6 addresses (C{::ffff:192.0.2.7}); both the access
check and the log treat those as the IPv4 addresses they are, so that
C{--allow 192.0.2.0/24} means what it says whichever listener a client came
in on.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Optional, Sequence

from twisted.internet.interfaces import IAddress

__all__ = ["Network", "allowed", "describe_address"]

Network = Any  # ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(address: Optional[IAddress]) -> Optional[ipaddress._BaseAddress]:
    host = getattr(address, "host", None)
    if not host:
        return None
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def allowed(address: Optional[IAddress], networks: Sequence[Network]) -> bool:
    """
    Whether a peer may connect: always without C{--allow}, else when its IP
    (an IPv4-mapped IPv6 address counts as IPv4) is in one of C{networks}.
    """
    if not networks:
        return True
    ip = _ip(address)
    return ip is not None and any(ip in net for net in networks if ip.version == net.version)


def describe_address(address: Optional[IAddress]) -> str:
    """
    C{1.2.3.4:5678} or C{[2001:db8::1]:5678}, IPv4-mapped addresses as IPv4.
    """
    ip = _ip(address)
    port = getattr(address, "port", None)
    if ip is None:
        return str(address)
    text = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{text}:{port}" if port is not None else text
