# -*- test-case-name: nutshim.test.test_upsd_listeners -*-
"""
nut-upsd's listeners: what to listen on, with which TLS policy, and what a
failure to listen means.

Why a plan decided before anything listens: a C{LISTEN} host that does not
resolve, or a TLS-only listener without a certificate, must stop the
daemon with one line naming the file and line while twistd checks its
options, not with a traceback from C{startService}; and a reload must know
everything it will open before it changes anything.  So the C{LISTEN} and
C{LISTEN_TLS} lines (or C{--listen}/C{--listen-tls}) become
L{PlannedListener}s first: one Twisted endpoint each, its policy, where it
came from and, when known, the address it binds.

Each listener tags the connections it accepts (L{ListenerFactory}), so
that the daemon's TLS requirement (RFC 9271 section 6.2) is decided per
listener: on a TLS-only listener every client, loopback included, must
STARTTLS first.  A plaintext listener on a network address without a TLS
requirement is logged as a warning at start and on every reload: RFC 9271
section 6.2 says such traffic must be encrypted, and an administrator
should not learn from a packet capture that passwords cross the network
in clear.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Callable, Collection, Dict, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from nutshim.config import ConfigError, UpsdConf
from nutshim.config.upsdconf import Listen

__all__ = [
    "BACKLOG",
    "ListenerFactory",
    "ListenerSet",
    "PlannedListener",
    "StartupError",
    "describe_error",
    "endpoint_host",
    "is_loopback_host",
    "listen_endpoints",
    "plan_listeners",
    "plaintext_warning",
    "tolerated",
]

log = Logger()

#: The kernel caps this at net.core.somaxconn; NUT's 16 makes bursts of
#: connects wait for SYN retries.
BACKLOG = 1024

#: Why a loopback listener may fail without stopping the daemon: the
#: address does not exist on this host (C{::1} without IPv6).  A port in
#: use is never such a reason.
_ABSENT = frozenset([errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT])

Resolver = Callable[..., List[Tuple[Any, ...]]]


class StartupError(SystemExit):
    """
    What stops nut-upsd before it serves: one line, exit status 1.

    A C{SystemExit}, so that twistd stops with this line on standard error
    instead of a usage text or a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"nut-upsd: {message}")


@dataclass(frozen=True)
class PlannedListener:
    """
    One listener to open.

    @ivar endpoint: the Twisted server endpoint description.
    @ivar tls_only: every client must STARTTLS first (C{LISTEN_TLS},
        C{--listen-tls}).
    @ivar origin: where it was asked for, for messages (C{FILE:LINE:
        LISTEN addr port}, C{--listen ENDPOINT}, or NUT's default).
    @ivar host: the address it binds (C{""}: every address; C{"unix"}: a
        Unix socket), or L{None} when only the bound port can tell
        (systemd sockets).
    """

    endpoint: str
    tls_only: bool
    origin: str
    host: Optional[str]

    @property
    def policy(self) -> str:
        return "TLS only" if self.tls_only else "plaintext or STARTTLS"


def _escape(address: str) -> str:
    return address.replace(":", "\\:")


def _split(description: str) -> List[str]:
    """
    An endpoint description's colon-separated parts, unescaped.
    """
    parts: List[str] = []
    current: List[str] = []
    chars = iter(description)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def endpoint_host(description: str) -> Optional[str]:
    """
    The address a server endpoint description binds: its C{interface}
    (C{""}: every address), C{"unix"} for a Unix socket, L{None} when the
    description does not say (C{systemd:} and others).
    """
    parts = _split(description)
    kind = parts[0].lower()
    if kind == "unix":
        return "unix"
    if kind not in ("tcp", "tcp6", "ssl"):
        return None
    positional = [p for p in parts[1:] if "=" not in p]
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key == "interface":
            return value
    # tcp:PORT:INTERFACE
    return positional[1] if len(positional) > 1 else ""


def is_loopback_host(host: str) -> bool:
    """
    Whether a listener on C{host} serves only this machine.
    """
    if host in ("unix", "localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _resolve(listen: Listen, path: str, resolver: Resolver) -> List[Tuple[str, str]]:
    """
    The endpoint descriptions and addresses of one LISTEN line: every
    address of the name, as NUT binds them.

    @raise ConfigError: naming the line, when the name does not resolve.
    """
    port = listen.port
    if listen.address == "*":
        return [(f"tcp6:{port}:interface=\\:\\::backlog={BACKLOG}", "::")]
    try:
        infos = resolver(listen.address, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise ConfigError(
            path, listen.lineno or None, f"{listen.directive}: cannot resolve {listen.address}: {why}"
        ) from None
    out: List[Tuple[str, str]] = []
    for family, _, _, _, sockaddr in infos:
        host = str(sockaddr[0])
        if family == socket.AF_INET6:
            endpoint = f"tcp6:{port}:interface={_escape(host)}:backlog={BACKLOG}"
        else:
            endpoint = f"tcp:{port}:interface={host}:backlog={BACKLOG}"
        if (endpoint, host) not in out:
            out.append((endpoint, host))
    return out


def listen_endpoints(
    listen: Sequence[Tuple[str, int]], resolver: Resolver = socket.getaddrinfo
) -> List[str]:
    """
    Endpoint descriptions for C{(address, port)} pairs of LISTEN lines (the
    loopback default when empty), every address of a name.
    """
    lines = [Listen(a, p) for a, p in listen] or [Listen("127.0.0.1"), Listen("::1")]
    return [e for line in lines for e, _ in _resolve(line, "upsd.conf", resolver)]


def plan_listeners(
    upsd: UpsdConf,
    upsd_path: str,
    listen: Sequence[str] = (),
    listen_tls: Sequence[str] = (),
    resolver: Resolver = socket.getaddrinfo,
) -> Tuple[PlannedListener, ...]:
    """
    The listeners nut-upsd opens: C{--listen} and C{--listen-tls} when any
    is given (they replace the C{LISTEN} and C{LISTEN_TLS} lines), else
    the file's lines or NUT's loopback default.

    @raise ConfigError: a host that does not resolve (naming its line), a
        TLS-only listener without C{CERTFILE}, or one endpoint with both
        policies.
    """
    planned: List[PlannedListener] = []
    if listen or listen_tls:
        for endpoints, tls_only, option in ((listen, False, "--listen"),
                                            (listen_tls, True, "--listen-tls")):
            for endpoint in endpoints:
                planned.append(PlannedListener(
                    endpoint, tls_only, f"{option} {endpoint}", endpoint_host(endpoint)))
        if listen_tls and upsd.certfile is None:
            raise ConfigError(
                upsd_path, None,
                "--listen-tls needs CERTFILE in this file: a TLS-only listener cannot serve"
                " anybody without a certificate (make one with: nutshim-pki server NAME)",
            )
    else:
        for line in upsd.listeners():
            origin = (f"{upsd_path}:{line.lineno}: {line.directive}" if line.lineno
                      else f"default {line.directive}")
            for endpoint, host in _resolve(line, upsd_path, resolver):
                planned.append(PlannedListener(endpoint, line.tls_only, origin, host))
    out: List[PlannedListener] = []
    for item in planned:
        same = [p for p in out if p.endpoint == item.endpoint]
        if any(p.tls_only != item.tls_only for p in same):
            raise ConfigError(
                upsd_path, None,
                f"{item.origin} and {same[0].origin} name the same address and port"
                " with different TLS policies",
            )
        if not same:
            out.append(item)
    return tuple(out)


def tolerated(item: PlannedListener, error: BaseException) -> bool:
    """
    Whether failing to open C{item} may leave the daemon running without
    it (ALLOW_NOT_ALL_LISTENERS aside): only a loopback address this host
    does not have.
    """
    socket_error = getattr(error, "socketError", error)
    code = getattr(socket_error, "errno", None)
    return item.host is not None and is_loopback_host(item.host) and code in _ABSENT


def describe_error(error: BaseException) -> str:
    """
    A listen failure in a few words (C{Address already in use}).
    """
    socket_error = getattr(error, "socketError", None)
    if isinstance(socket_error, OSError) and socket_error.strerror:
        return socket_error.strerror
    return str(error)


def plaintext_warning(item: PlannedListener, bound_host: Optional[str], tls_mode: str) -> Optional[str]:
    """
    The warning for a listener that takes plaintext from the network, or
    L{None}.

    @param bound_host: the address the open port reports (used when the
        plan does not know it).
    @param tls_mode: the daemon's TLS_REQUIRED for its plaintext listeners.
    """
    if item.tls_only or tls_mode != "off":
        return None
    host = item.host if item.host is not None else bound_host
    if host is None or is_loopback_host(host):
        return None
    where = "every address" if host in ("", "::", "0.0.0.0") else host
    return (
        f"{item.origin} ({item.endpoint}): plaintext on {where}: passwords and commands"
        " from other machines cross the network in clear (RFC 9271 section 6.2);"
        " set CERTFILE (TLS is then required from non-loopback clients), or listen"
        " on the network with LISTEN_TLS and keep LISTEN for 127.0.0.1"
    )


class ListenerFactory(Factory):
    """
    The factory of one listening port: the daemon's factory builds the
    protocol, and this tags it with the listener it came in on, which
    decides its TLS requirement.
    """

    noisy = False

    def __init__(self, main: Any, endpoint: str) -> None:
        self.main = main
        self.endpoint = endpoint

    def logPrefix(self) -> str:
        return str(self.main.logPrefix())

    def buildProtocol(self, addr: Any) -> Optional[Protocol]:
        proto = self.main.buildProtocol(addr)
        if proto is not None and hasattr(proto, "listener"):
            proto.listener = self.endpoint
        return proto  # type: ignore[no-any-return]


class ListenerSet:
    """
    The daemon's open listening ports, by endpoint description.

    @ivar factory: the daemon's factory; each port gets a
        L{ListenerFactory} in front of it.
    """

    def __init__(self, reactor: Any, factory: Any) -> None:
        self.reactor = reactor
        self.factory = factory
        self.ports: Dict[str, IListeningPort] = {}

    def open(self, plan: Sequence[PlannedListener]) -> List[Tuple[PlannedListener, BaseException]]:
        """
        Listen on the planned listeners not open yet.

        @return: the ones that failed, with why.
        """
        failed: List[Tuple[PlannedListener, BaseException]] = []
        for item in plan:
            if item.endpoint not in self.ports:
                error = self._listen(item)
                if error is not None:
                    failed.append((item, error))
        return failed

    def _listen(self, item: PlannedListener) -> Optional[BaseException]:
        result: List[Any] = []
        try:
            d = serverFromString(self.reactor, item.endpoint).listen(
                ListenerFactory(self.factory, item.endpoint))
        except Exception as e:
            return e
        d.addBoth(result.append)
        if not result:
            return RuntimeError("listening did not finish at once")
        if not IListeningPort.providedBy(result[0]):
            return result[0].value  # type: ignore[no-any-return]
        self.ports[item.endpoint] = result[0]
        log.info("Listening on {endpoint} ({policy}; {origin})",
                 endpoint=item.endpoint, policy=item.policy, origin=item.origin)
        return None

    def fatal(
        self, failed: Sequence[Tuple[PlannedListener, BaseException]], upsd: UpsdConf
    ) -> Optional[str]:
        """
        What in C{failed} stops the daemon (or a reload), as one line, or
        L{None}.  As NUT: no listener at all is fatal, and so is a failed
        one, unless upsd.conf says ALLOW_NOT_ALL_LISTENERS or it is a
        loopback address this host does not have (C{::1} without IPv6),
        which is logged and skipped.
        """
        serious = []
        for item, error in failed:
            text = f"{item.origin}: cannot listen on {item.endpoint}: {describe_error(error)}"
            if tolerated(item, error) or upsd.allow_not_all_listeners:
                log.warn("{problem}: skipped", problem=text)
            else:
                serious.append(text)
        if not self.ports:
            return "; ".join(serious or ["no listener configured"]) + ": giving up"
        if serious:
            return "; ".join(serious) + " (set ALLOW_NOT_ALL_LISTENERS in upsd.conf to start anyway)"
        return None

    def close_except(self, keep: Collection[str]) -> None:
        """
        Stop listening on every endpoint not in C{keep}.
        """
        for endpoint in [e for e in self.ports if e not in keep]:
            self.ports.pop(endpoint).stopListening()
            log.info("No longer listening on {endpoint}", endpoint=endpoint)

    def close_all(self) -> List[Deferred[None]]:
        ports, self.ports = self.ports, {}
        return [d for d in (p.stopListening() for p in ports.values()) if d is not None]

    def warn_plaintext(self, plan: Sequence[PlannedListener], tls_mode: str) -> None:
        """
        RFC 9271 section 6.2: plaintext from the network must not be silent.
        """
        for item in plan:
            port = self.ports.get(item.endpoint)
            if port is not None:
                bound = getattr(port.getHost(), "host", None)
                warning = plaintext_warning(item, bound, tls_mode)
                if warning is not None:
                    log.warn("{problem}", problem=warning)
