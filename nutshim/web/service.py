# -*- test-case-name: nutshim.test.test_web_resources -*-
"""
The HTTP listeners of nut-upsd (C{--http}, upsd.conf C{HTTP_LISTEN}).

Endpoints are Twisted endpoint strings with two conveniences:

  - a bare port (C{9199}) listens on 127.0.0.1 only: nothing is ever
    reachable from the network unless an address says so;
  - C{tls:<endpoint>} (e.g. C{tls:9199:interface=0.0.0.0}, or C{tls:9199})
    serves HTTPS with the daemon's own certificate (upsd.conf C{CERTFILE},
    with its CERTREQUEST/CERTPATH client-certificate rules), and follows
    a reload that changes it.  Any other endpoint (C{tcp:}, C{tcp6:},
    C{ssl:} with its own key, C{unix:}, C{systemd:}) is used as given.

A listener that cannot be opened at start stops the daemon with one line,
as its NUT listeners do; on reload, listeners whose line changed are
opened and closed, and a failure is logged and keeps the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from twisted.application.service import Service
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.server import Site
from zope.interface import implementer

__all__ = ["HttpEndpoint", "parse_http_endpoint", "WebService", "MAX_HTTP_CONNECTIONS"]

log = Logger()

#: Concurrent HTTP connections: scrapers and a few browsers need few; the
#: cap keeps file descriptors for NUT clients.
MAX_HTTP_CONNECTIONS = 64


@dataclass(frozen=True)
class HttpEndpoint:
    """
    One HTTP listener.

    @ivar text: as the administrator wrote it (for messages).
    @ivar description: the Twisted endpoint string to listen on.
    @ivar tls: whether to wrap it in TLS with the daemon's certificate.
    """

    text: str
    description: str
    tls: bool = False


class _ParseOnly:
    """
    A stand-in reactor: endpoint parsers only store it.
    """


def parse_http_endpoint(text: str) -> HttpEndpoint:
    """
    Check an HTTP endpoint string.

    @raise ValueError: with a message for one line of an error.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty HTTP endpoint")
    tls = False
    rest = text
    if rest.startswith("tls:"):
        tls = True
        rest = rest[4:]
    if rest.isdigit():
        if not 0 <= int(rest) <= 65535:
            raise ValueError(f"HTTP endpoint {text!r}: port out of range")
        rest = f"tcp:{rest}:interface=127.0.0.1"
    if tls and not rest.startswith(("tcp:", "tcp6:", "unix:", "systemd:")):
        raise ValueError(f"HTTP endpoint {text!r}: tls: takes a tcp:, tcp6:, unix: or systemd: endpoint")
    try:
        serverFromString(_ParseOnly(), rest)
    except Exception as e:
        raise ValueError(f"HTTP endpoint {text!r}: {e}") from None
    return HttpEndpoint(text, rest, tls)


@implementer(IOpenSSLServerConnectionCreator)
class _CurrentTLS:
    """
    The daemon's TLS settings as they are now: a reload's new certificate
    applies to the next HTTPS connection.
    """

    def __init__(self, current: Callable[[], Any]) -> None:
        self._current = current

    def serverConnectionForTLS(self, tlsProtocol: Any) -> Any:
        options = self._current()
        if options is None:
            raise RuntimeError("no CERTFILE: cannot serve HTTPS")
        return options.serverConnectionForTLS(tlsProtocol)


class _Limited(WrappingFactory):
    """
    At most C{limit} connections at once; past it a connection is closed
    as soon as it is accepted.
    """

    noisy = False

    def __init__(self, wrapped: Any, limit: int) -> None:
        super().__init__(wrapped)
        self.limit = limit

    def buildProtocol(self, addr: Any) -> Any:
        if len(self.protocols) >= self.limit:
            return None
        return super().buildProtocol(addr)


class WebService(Service):
    """
    Listens on the HTTP endpoints with one site.

    @param site: the twisted.web site (L{nutshim.web.resources.make_site}).
    @param tls_options: returns the daemon's current server TLS options
        (or L{None} without CERTFILE).
    @param on_start: called whenever there are HTTP endpoints after a
        start or a reload (starts the history's sampling; idempotent).
    @param on_stop: called when the service stops.
    """

    def __init__(self, reactor: Any, site: Site, endpoints: Sequence[HttpEndpoint],
                 tls_options: Callable[[], Any] = lambda: None,
                 on_start: Callable[[], None] = lambda: None,
                 on_stop: Callable[[], None] = lambda: None) -> None:
        self.reactor = reactor
        self.site = site
        self.endpoints = list(endpoints)
        self.tls_options = tls_options
        self._on_start = on_start
        self._on_stop = on_stop
        self.ports: Dict[HttpEndpoint, IListeningPort] = {}
        self._plain = _Limited(site, MAX_HTTP_CONNECTIONS)
        tls = TLSMemoryBIOFactory(_CurrentTLS(tls_options), False, site)
        tls.noisy = False
        self._tls = _Limited(tls, MAX_HTTP_CONNECTIONS)

    def startService(self) -> None:
        super().startService()
        failed = [e.text + ": " + why for e in self.endpoints
                  for why in [self._listen(e)] if why is not None]
        if failed:
            raise SystemExit(f"nut-upsd: cannot listen for HTTP on {'; '.join(failed)}")
        if self.endpoints:
            self._on_start()

    def stopService(self) -> Any:
        super().stopService()
        self._on_stop()
        ports, self.ports = self.ports, {}
        for port in ports.values():
            port.stopListening()
        return None

    def _listen(self, endpoint: HttpEndpoint) -> Optional[str]:
        """
        Listen on C{endpoint}; the reason when that failed at once.
        """
        if endpoint.tls and self.tls_options() is None:
            return "tls: needs CERTFILE in upsd.conf"
        result: List[Any] = []
        factory = self._tls if endpoint.tls else self._plain
        try:
            d = serverFromString(self.reactor, endpoint.description).listen(factory)
        except Exception as e:
            return str(e)
        d.addCallbacks(result.append, lambda f: result.append(f.getErrorMessage()))
        if not result:
            return "listening did not finish"
        if isinstance(result[0], str):
            return result[0]
        self.ports[endpoint] = result[0]
        log.info("HTTP (metrics, status page) on {endpoint}{tls}", endpoint=endpoint.text,
                 tls=" with TLS" if endpoint.tls else "")
        return None

    def set_endpoints(self, endpoints: Sequence[HttpEndpoint]) -> None:
        """
        A reload: close the listeners that are gone, open the new ones
        (a failure is logged; the daemon goes on).
        """
        self.endpoints = list(endpoints)
        if not self.running:
            return
        for endpoint in list(self.ports):
            if endpoint not in self.endpoints:
                self.ports.pop(endpoint).stopListening()
                log.info("No longer serving HTTP on {endpoint}", endpoint=endpoint.text)
        for endpoint in self.endpoints:
            if endpoint not in self.ports:
                why = self._listen(endpoint)
                if why is not None:
                    log.error("Cannot listen for HTTP on {endpoint}: {why}", endpoint=endpoint.text,
                              why=why)
        if self.endpoints:
            self._on_start()
