# -*- test-case-name: nutshim.test.test_client -*-
"""
A reconnecting NUT session for long-lived monitors (upsmon).

L{NUTClientService} is a L{ClientService}: it reconnects with exponential
back-off and hands out the current connection through L{when_connected}.
Each new connection is prepared before anyone sees it: STARTTLS as the
L{TLSSettings} ask, then the caller's own step (credentials, LOGIN,
PRIMARY...).  A connection whose preparation fails is closed and counts as
a failed attempt, so a server that accepts TCP but fails TLS or refuses the
login is retried with growing delays instead of hammered.

Twisted's L{ClientService} state machine has no transition for a
disconnection while a connection is being prepared, or after it was
rejected (C{NoTransition} for C{_clientDisconnected} in C{Connecting} and
C{Waiting}); so during preparation the proxy's disconnection notice is held
back here, and dropped when the connection is rejected.
"""

from __future__ import annotations

import math
from typing import Any, Awaitable, Callable, Optional, Union, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from nutshim.client.connect import NUT_PORT, NUTClientFactory, negotiate_tls
from nutshim.client.protocol import DEFAULT_TIMEOUT, NUTClientProtocol
from nutshim.client.tls import TLSSettings

__all__ = ["NUTClientService", "Prepare"]

#: The caller's preparation step: may return a Deferred or an awaitable.
Prepare = Callable[[NUTClientProtocol], Union[None, Deferred[Any], Awaitable[Any]]]


class _HeldNotice:
    """
    Hold back a L{ClientService} proxy's disconnection notice.
    """

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy
        self._notify: Optional[Callable[[Failure], None]] = getattr(
            proxy, "_lostNotification", None
        )
        self.lost: Optional[Failure] = None
        if self._notify is not None:
            proxy._lostNotification = self._remember

    def _remember(self, reason: Failure) -> None:
        self.lost = reason

    def drop(self) -> None:
        """The connection was rejected: its loss concerns nobody."""
        self._notify = None

    def release(self) -> None:
        """The connection is accepted: notices go to the service again."""
        if self._notify is not None:
            self._proxy._lostNotification = self._notify


class NUTClientService(ClientService):
    """
    Keep a prepared NUT connection open, reconnecting with back-off.

    @ivar host: the server's name or address.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int = NUT_PORT,
        *,
        tls: Optional[TLSSettings] = None,
        require_tls: bool = False,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        prepare: Optional[Prepare] = None,
        retry_policy: Optional[Callable[[int], float]] = None,
    ) -> None:
        """
        @param reactor: provides C{IReactorTCP} and C{IReactorTime}.
        @param tls: STARTTLS policy; L{None} for plaintext.
        @param require_tls: refuse USERNAME/PASSWORD without TLS.
        @param timeout: seconds for TCP connection and for each reply.
        @param prepare: run on each new connection after STARTTLS
            (e.g. credentials and LOGIN); a failure rejects the connection.
        @param retry_policy: seconds to wait after N failures; defaults to
            exponential back-off from 1 s up to 60 s.
        """
        self.host = host
        self._tls = tls
        self._prepare_step = prepare
        connect_timeout = math.ceil(timeout) if timeout else 30
        # Typed Any: without the mypy-zope plugin, providers of interfaces
        # do not type-check as those interfaces.
        endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=connect_timeout)
        factory: Any = NUTClientFactory(reactor, timeout, require_tls)
        super().__init__(
            endpoint,
            factory,
            retryPolicy=retry_policy or backoffPolicy(initialDelay=1.0, maxDelay=60.0),
            clock=reactor,
            prepareConnection=self._prepare,
        )

    def when_connected(self, failAfterFailures: Optional[int] = None) -> Deferred[NUTClientProtocol]:
        """
        The current prepared connection, or the next one.

        @param failAfterFailures: see L{ClientService.whenConnected}.
        """
        return cast(Deferred[NUTClientProtocol], self.whenConnected(failAfterFailures))

    def _prepare(self, proxy: Any) -> Deferred[None]:
        proto: NUTClientProtocol = getattr(proxy, "_protocol", proxy)
        held = _HeldNotice(proxy)

        async def run() -> None:
            try:
                if self._tls is not None:
                    await negotiate_tls(proto, self._tls, self.host)
                if self._prepare_step is not None:
                    result = self._prepare_step(proto)
                    if result is not None:
                        await result
                if held.lost is not None:
                    raise ConnectionDone("connection lost while being prepared")
            except BaseException:
                held.drop()
                transport: Any = proto.transport
                if transport is not None and held.lost is None:
                    transport.abortConnection()
                raise
            held.release()

        return Deferred.fromCoroutine(run())
