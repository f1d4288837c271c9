# -*- test-case-name: nutshim.test.test_upsname -*-
"""
UPS names as clients write them: C{[<group>:]<ups>[@<hostname>[:<port>]]}
(RFC 9271, section 4.2, with the experimental group of its note).

A group (C{HB:heartbeat1@example.com:3493}) is a label of the client side
only: it names the UPS in logs and notifications (nut-upsmon passes it to
C{NOTIFYCMD} as C{$UPSGROUP}) and never goes on the wire, where the UPS is
C{<ups>} as its Attachment Daemon's C{ups.conf} names it.  Everything
before the C{@} is therefore split at its colon: a group must be what the
RFC's grammar allows (C{group = 1*ALPHA *62upschar}: a letter, then up to
62 letters, digits, C{-}, C{_} or C{.}), and a UPS name with a colon of
its own cannot be written, since RFC 9271's C{<ups>} has none.  The
host and port follow NUT's C{upscli_splitname}: host C{localhost} and port
3493 by default, an IPv6 literal in brackets (C{ups@[::1]:3493}), a port
read as C{atoi} reads it from its leading digits, between 1 and 65535.

Pure: no I/O, no Twisted (the configuration readers use it too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ["UPSName", "UPSNameError", "parse_upsname", "split_group", "DEFAULT_HOST",
           "DEFAULT_PORT"]

DEFAULT_HOST = "localhost"
#: NUT's IANA port.
DEFAULT_PORT = 3493

_GROUP = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,62}\Z")


class UPSNameError(ValueError):
    """
    A UPS name that cannot be split; the message says what is wrong.
    """


@dataclass(frozen=True)
class UPSName:
    """
    A parsed UPS name.

    @ivar ups: the name on the server (what goes on the wire).
    @ivar host: the server (C{localhost} when not given).
    @ivar port: its port (3493 when not given).
    @ivar group: the client-side label, or L{None}.
    """

    ups: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    group: Optional[str] = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        group = f"{self.group}:" if self.group is not None else ""
        return f"{group}{self.ups}@{host}:{self.port}"


def split_group(text: str) -> Tuple[Optional[str], str]:
    """
    Take the group off a UPS name: C{HB:hb@host} is C{("HB", "hb@host")},
    C{hb@host} is C{(None, "hb@host")}.

    @raise UPSNameError: an empty or malformed group, or a second colon
        before the C{@}.
    """
    head, at, tail = text.partition("@")
    if ":" not in head:
        return None, text
    group, _, ups = head.partition(":")
    if not group:
        raise UPSNameError("nothing before the ':' (write GROUP:UPS, or leave the group out)")
    if not _GROUP.match(group):
        raise UPSNameError(
            f"invalid group {group!r}: a group is a letter followed by at most 62 letters, "
            "digits, '-', '_' or '.' (RFC 9271, section 4.2)")
    if ":" in ups:
        raise UPSNameError("more than one ':' before the '@' (the form is GROUP:UPS@HOST:PORT)")
    if not ups:
        raise UPSNameError(f"no UPS name after the group {group!r}")
    return group, ups + at + tail


def _port(text: str) -> int:
    match = re.match(r"[0-9]+", text)
    if match is None:
        raise UPSNameError(f"the port must be a number, not {text!r}")
    port = int(match.group())
    if not 1 <= port <= 65535:
        raise UPSNameError(f"the port must be between 1 and 65535, not {port}")
    return port


def parse_upsname(text: str) -> UPSName:
    """
    Split C{[group:]ups[@host[:port]]}.

    @raise UPSNameError: with what is wrong (no UPS, a bad group, an empty
        host, an unclosed C{[}, a bad port).
    """
    group, rest = split_group(text)
    ups, at, address = rest.partition("@")
    if not ups:
        raise UPSNameError("no UPS name before the '@'")
    if not at:
        return UPSName(ups, group=group)
    if address.startswith("["):
        host, bracket, tail = address[1:].partition("]")
        if not bracket:
            raise UPSNameError("missing closing bracket in [IPv6 address]")
        if not tail:
            port = DEFAULT_PORT
        elif tail.startswith(":"):
            port = _port(tail[1:])
        else:
            raise UPSNameError(f"unexpected {tail!r} after the ']'")
    else:
        host, colon, port_text = address.partition(":")
        port = _port(port_text) if colon else DEFAULT_PORT
    if not host:
        raise UPSNameError("no host name after the '@'")
    return UPSName(ups, host, port, group)
