# -*- test-case-name: nutshim.test.test_client -*-
"""
Opening a NUT connection: TCP through L{HostnameEndpoint} (IPv4 and IPv6,
happy eyeballs), then STARTTLS as the L{TLSSettings} ask.

This is where the client's TLS policy lives, shared by the one-shot
L{connect} (the command-line tools) and the reconnecting
L{nutshim.client.service.NUTClientService} (monitors): try STARTTLS, go on
in plaintext only when the server says it has no TLS and TLS was not
required, and never after C{OK STARTTLS} (that connection cannot go back).
"""

from __future__ import annotations

import math
from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from nutshim.client.errors import StartTLSUnavailable
from nutshim.client.protocol import DEFAULT_TIMEOUT, NUTClientProtocol
from nutshim.client.tls import TLSSettings

__all__ = ["NUT_PORT", "NUTClientFactory", "connect", "negotiate_tls", "authenticate"]

#: The IANA port of NUT (C{nut}).
NUT_PORT = 3493

log = Logger()


class NUTClientFactory(Factory):
    """
    Builds L{NUTClientProtocol}s sharing one clock, timeout and TLS policy.
    """

    def __init__(self, clock: IReactorTime, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 require_tls: bool = False) -> None:
        self.clock = clock
        self.timeout = timeout
        self.require_tls = require_tls

    def buildProtocol(self, addr: Optional[IAddress]) -> NUTClientProtocol:
        proto = NUTClientProtocol(self.clock, self.timeout, self.require_tls)
        proto.factory = self
        return proto


async def negotiate_tls(proto: NUTClientProtocol, tls: TLSSettings, host: str,
                        options: Any = None) -> bool:
    """
    Run STARTTLS on a fresh connection as C{tls} asks.

    @param options: the connection creator, if already built from C{tls}
        (so that configuration errors surface before connecting).
    @return: whether TLS is now active (L{False}: the server has no TLS and
        C{tls.required} is false).
    @raise StartTLSUnavailable: the server has no TLS and it is required.
    @raise TLSTrustNotConfigured: the server offers TLS, nothing to verify it.
    @raise PinMismatch: the server certificate does not match the pin.
    """
    if options is None:
        options = tls.options(host)
    try:
        await proto.starttls(options)
    except StartTLSUnavailable as e:
        if tls.required:
            raise
        log.info("{host} has no TLS ({error}): continuing in plaintext",
                 host=host, error=e.name)
        return False
    except Exception as e:
        mismatch = getattr(options, "mismatch", None)
        if mismatch is not None:
            raise mismatch from e
        raise
    return True


async def authenticate(proto: NUTClientProtocol, username: str, password: str) -> None:
    """
    USERNAME and PASSWORD, pipelined (refused in plaintext with
    C{require_tls}).
    """
    user = proto.username(username)
    pw = proto.password(password)
    try:
        await user
    except BaseException:
        pw.addErrback(lambda failure: None)  # same cause; not worth a log line
        raise
    await pw


def connect(
    reactor: Any,
    host: str,
    port: int = NUT_PORT,
    *,
    tls: Optional[TLSSettings] = None,
    require_tls: bool = False,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
) -> Deferred[NUTClientProtocol]:
    """
    Connect to a NUT server.

    @param reactor: provides C{IReactorTCP} and C{IReactorTime}.
    @param tls: STARTTLS policy; L{None} for plaintext.
    @param require_tls: make the protocol refuse USERNAME/PASSWORD unless
        TLS is active.
    @param timeout: seconds for the TCP connection and for each reply.
    @return: fires with a ready protocol (TLS negotiated as asked); on any
        failure after TCP connected, the connection is closed first.
    """

    async def run() -> NUTClientProtocol:
        options = tls.options(host) if tls is not None else None
        connect_timeout = math.ceil(timeout) if timeout else 30
        # Typed Any: without the mypy-zope plugin, providers of interfaces
        # do not type-check as those interfaces.
        endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=connect_timeout)
        proto: NUTClientProtocol = await endpoint.connect(
            NUTClientFactory(reactor, timeout, require_tls)
        )
        try:
            if tls is not None:
                await negotiate_tls(proto, tls, host, options)
        except BaseException:
            transport: Any = proto.transport
            if transport is not None:
                transport.abortConnection()
            raise
        return proto

    return Deferred.fromCoroutine(run())
