# -*- test-case-name: nutshim.test.test_shim -*-
"""
The command-line options both shims share, spelt the same way in both, and
their checks.

Everything that can be wrong with the options -- an unreadable or expired
certificate, a bad pin, a malformed address or network -- is found while
the options are parsed, so twistd stops with one line naming the option
(C{nut-server-shim: FILE: ...}, exit status 1: no usage text, no traceback)
instead of every client failing later.  The private key is read here too,
before twistd binds port 401 and drops privileges (C{--uid}/C{--gid}), so
the key file can stay readable by root only.

The files the options name -- certificates, keys, CA files, the client
shim's C{--config}, C{--allow-file} -- are read again on SIGHUP by the same
code (L{nutshim.shim.service.ShimService}); an error then is logged in the
same words and the running settings stay.
"""

from __future__ import annotations

import ipaddress
import resource
from typing import Any, List, NoReturn, Optional, Sequence, Tuple

from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.python import usage

__all__ = [
    "ShimExit",
    "ShimOptions",
    "allow_list",
    "default_max_pending_tls",
    "shim_parameters",
    "upstream_endpoint",
    "parse_hostport",
    "parse_network",
    "parse_seconds",
    "with_backlog",
    "BACKLOG",
]

#: Listen backlog added to tcp/tcp6 endpoints that do not give one: the
#: default 50 makes a burst of clients wait for SYN retries.
BACKLOG = 1024


def parse_hostport(text: str, default_port: int) -> Tuple[str, int]:
    """
    C{HOST}, C{HOST:PORT}, C{[V6]:PORT} or a bare IPv6 address.

    @raise usage.UsageError: for an empty host or a bad port.
    """
    host, port = text.strip(), str(default_port)
    if host.startswith("["):
        inner, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise usage.UsageError(f"{text!r}: expected [IPv6]:PORT")
        host, port = inner, rest[1:] or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    if not host:
        raise usage.UsageError(f"{text!r}: no host")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise usage.UsageError(f"{text!r}: bad port {port!r}")
    return host, number


def format_hostport(host: str, port: int) -> str:
    """The inverse of L{parse_hostport}."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def upstream_endpoint(reactor: Any, host: str, port: int, timeout: float) -> Any:
    """
    The client endpoint for an upstream: an address is connected to
    directly; a name is resolved on every connection (a changed DNS record
    is followed without a restart) with L{HostnameEndpoint}, which tries
    IPv6 and IPv4 addresses in parallel.
    """
    seconds = max(1, int(timeout))
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return HostnameEndpoint(reactor, host, port, timeout=seconds)
    if ip.version == 6:
        return TCP6ClientEndpoint(reactor, host, port, timeout=seconds)
    return TCP4ClientEndpoint(reactor, host, port, timeout=seconds)


def parse_network(text: str) -> Any:
    """
    A network (C{192.0.2.0/24}, C{2001:db8::/32}) or one address.

    @raise usage.UsageError: naming the value.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as e:
        raise usage.UsageError(f"--allow {text!r}: {e}") from None


def read_allow_file(path: str) -> List[Any]:
    """
    The networks of an C{--allow-file}: one network (CIDR) or address per
    line; blank lines and C{#} comments are skipped.

    @raise usage.UsageError: C{FILE: ...} or C{FILE:LINE: ...}.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise usage.UsageError(f"{path}: --allow-file: cannot read: {e.strerror or e}") from None
    networks = []
    for number, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as e:
            raise usage.UsageError(f"{path}:{number}: --allow-file: {e}") from None
    return networks


def allow_list(options: Any) -> List[Any]:
    """
    Who may connect: the C{--allow} networks and those of C{--allow-file}
    (read now).  Empty: everyone.
    """
    networks = list(options["allow"])
    if options["allow-file"]:
        networks += read_allow_file(options["allow-file"])
    return networks


def default_max_pending_tls() -> int:
    """
    1024 connections without TLS yet, or half the open-file limit if that
    is lower (the rest is for relayed sessions and their upsd connections).
    """
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return 1024
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 1024
    return max(16, min(1024, soft // 2))


def parse_seconds(text: str) -> float:
    """
    A non-negative number of seconds.
    """
    value = float(text)
    if value < 0:
        raise ValueError("negative")
    return value


def with_backlog(endpoint: str) -> str:
    """
    C{endpoint} with C{backlog=BACKLOG} added if it is a tcp/tcp6 server
    endpoint without one.
    """
    kind = endpoint.split(":", 1)[0]
    if kind in ("tcp", "tcp6") and "backlog=" not in endpoint:
        return f"{endpoint}:backlog={BACKLOG}"
    return endpoint


def _min_tls(text: str) -> str:
    if text not in ("1.2", "1.3"):
        raise ValueError("must be 1.2 or 1.3")
    return text


def shim_parameters(upstream: str, certfile: str, cafile: str) -> List[Any]:
    """
    The C{optParameters} both shims have, with help in each one's terms.
    """
    return [
        ["upstream", None, None, upstream],
        ["certfile", None, None, certfile],
        ["cafile", None, None, cafile],
        ["min-tls", None, "1.3", "Oldest TLS version accepted: 1.2 or 1.3.", _min_tls],
        ["idle-timeout", None, 300.0,
         "Seconds without a request or a reply before a client is dropped (0: never).",
         parse_seconds],
        ["handshake-timeout", None, 10.0,
         "Seconds a new connection has to get a working TLS session.", parse_seconds],
        ["allow-file", None, None,
         "File of networks/addresses to accept (one a line, # comments), added to --allow;"
         " re-read on SIGHUP."],
    ]


class ShimExit(SystemExit):
    """
    A configuration error at start: twistd exits with status 1 and this one
    line (C{nut-server-shim: FILE: message}), without its usage text.
    """

    def __init__(self, daemon: str, message: str) -> None:
        self.message = message
        super().__init__(f"{daemon}: {message}")


class ShimOptions(usage.Options):
    """
    The options of both shims.  Subclasses set C{optParameters} (from
    L{shim_parameters}), C{default_listen} and C{default_upstream}.
    """

    default_listen: Sequence[str] = ()
    default_upstream = "127.0.0.1:3493"
    #: The twistd plugin name, first word of every error line.
    daemon = "nutshim shim"

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["allow"] = []

    def parseOptions(self, options: Optional[Sequence[str]] = None) -> None:
        """
        Parse, and turn every error into one line and exit status 1.

        Errors of the shim's own checks (a file, a value) are that line
        alone; errors of the option syntax point at C{--help}.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            raise ShimExit(self.daemon, f"{e} (twistd {self.daemon} --help lists the options)") from None

    def postOptions(self) -> None:
        try:
            self.check()
        except usage.UsageError as e:
            raise ShimExit(self.daemon, str(e)) from None

    def check(self) -> None:
        """
        Check the options and read the files they name; subclasses extend.

        @raise usage.UsageError: naming the option or the file.
        """
        self.check_common()

    def fail(self, message: str) -> NoReturn:
        """Stop with one line."""
        raise ShimExit(self.daemon, message)

    def opt_listen(self, endpoint: str) -> None:
        """Listen on this endpoint instead of the defaults (repeatable), e.g. tcp:401:interface=192.0.2.10, tcp6:3493:interface=\\:\\:1, systemd:domain=INET6:index=0."""  # noqa: E501
        self["listen"].append(endpoint)

    def opt_allow(self, network: str) -> None:
        """Accept clients from this network (CIDR) or address only (repeatable); default: everyone."""
        try:
            self["allow"].append(parse_network(network))
        except usage.UsageError as e:
            self.fail(str(e))

    def check_common(self) -> None:
        """
        Fill in the defaults: the listeners (with C{explicit_listen} saying
        whether they were given) and the upstream address.
        """
        self["explicit_listen"] = bool(self["listen"])
        if not self["listen"]:
            self["listen"] = list(self.default_listen)
        self["listen"] = [with_backlog(e) for e in self["listen"]]
        if self["handshake-timeout"] <= 0:
            raise usage.UsageError("--handshake-timeout must be more than 0")
        self["allowed"] = allow_list(self)
