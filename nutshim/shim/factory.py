# -*- test-case-name: nutshim.test.test_shim -*-
"""
The listener side of a shim (L{RelayFactory}: settings, access list, how
each client's upstream connection is opened) and the plain upstream
connection to a legacy upsd (L{UpstreamProtocol}).

Opening the upstream goes through an injected
L{IStreamClientEndpoint}, so the tests connect it in memory and the
daemons use a L{HostnameEndpoint} (IPv4 and IPv6, either address family).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Optional, Sequence, Set

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from nutshim.shim._address import Network, allowed, describe_address
from nutshim.shim._transport import nodelay
from nutshim.shim.relay import Front

__all__ = ["RelayFactory", "UpstreamProtocol"]

log = Logger()


class RelayFactory(Factory):
    """
    Settings and the upstream of one listener of a shim.

    @ivar clock: timers (C{callLater}).
    @ivar upstream: where each client's upstream connection goes.
    @ivar upstream_name: C{HOST:PORT} of it, for the log.
    @ivar allow: networks clients may connect from; empty: everyone.
    @ivar idle_timeout: seconds without a request or reply before a client
        is dropped; 0 or L{None}: never.
    @ivar handshake_timeout: seconds TLS may take to become usable.
    @ivar connections: the open client connections.
    @ivar max_connecting: upstream connection attempts in flight at once;
        more wait their turn.  NUT's upsd listens with a backlog of 16: a
        storm of simultaneous connects (every client coming back after a
        network outage) overflows it, and the kernel then drops SYNs that
        are retried only after 1, 3, 7... seconds.  Queued here instead,
        they go through at the rate upsd accepts them.
    @ivar upstream_blocks: whether the upstream writes with blocking
        C{write()}s (NUT's upsd): it is then read until every forwarded
        request has its reply even when the client has stopped reading
        (see L{nutshim.shim._flow}).
    """

    protocol: Any = None
    max_connecting = 16
    upstream_blocks = True

    def __init__(
        self,
        clock: IReactorTime,
        upstream: IStreamClientEndpoint,
        upstream_name: str,
        allow: Sequence[Network] = (),
        idle_timeout: Optional[float] = 300.0,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.clock = clock
        self.upstream = upstream
        self.upstream_name = upstream_name
        self.allow = list(allow)
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.connections: Set[Front] = set()
        self._in_flight = 0
        self._waiting: Deque[_Waiting] = deque()

    def buildProtocol(self, addr: Optional[IAddress]) -> Optional[Protocol]:
        """
        A L{Front} for an allowed peer; L{None} (the connection is closed at
        once) for anyone else.
        """
        if not allowed(addr, self.allow):
            log.warn(
                "Refused {client}: not in --allow", client=describe_address(addr)
            )
            return None
        proto: Optional[Protocol] = super().buildProtocol(addr)  # type: ignore[assignment]
        return proto

    def back_protocol(self, front: "Front") -> Protocol:
        """
        The protocol of C{front}'s upstream connection.
        """
        return UpstreamProtocol(front)

    def connect_upstream(self, front: "Front") -> "Deferred[Any]":
        """
        Open C{front}'s upstream connection, now or when one of the
        L{max_connecting} attempts in flight has finished.

        @return: fires with the connected upstream protocol; cancelling it
            takes C{front} out of the queue (or aborts the attempt).
        """
        if self._in_flight < self.max_connecting:
            return self._attempt(front)
        entry = _Waiting(front)

        def cancel(d: "Deferred[Any]") -> None:
            if entry.attempt is not None:
                entry.attempt.cancel()
            elif entry in self._waiting:
                self._waiting.remove(entry)

        entry.result = Deferred(cancel)
        self._waiting.append(entry)
        return entry.result

    def _attempt(self, front: "Front") -> "Deferred[Any]":
        self._in_flight += 1
        d = self.upstream.connect(_OneShot(self.back_protocol(front)))
        d.addBoth(self._attempt_over)
        return d

    def _attempt_over(self, result: Any) -> Any:
        self._in_flight -= 1
        while self._waiting and self._in_flight < self.max_connecting:
            entry = self._waiting.popleft()
            entry.attempt = self._attempt(entry.front)
            assert entry.result is not None
            entry.attempt.chainDeferred(entry.result)
        return result


class _Waiting:
    """
    A client waiting for an upstream connection attempt: its own Deferred,
    and the attempt once started (so that cancelling reaches it).
    """

    def __init__(self, front: Front) -> None:
        self.front = front
        self.result: Optional[Deferred[Any]] = None
        self.attempt: Optional[Deferred[Any]] = None


class _OneShot(Factory):
    noisy = False

    def __init__(self, proto: Protocol) -> None:
        self._proto = proto

    def buildProtocol(self, addr: Optional[IAddress]) -> Protocol:
        return self._proto


class UpstreamProtocol(Protocol):
    """
    The plaintext connection to upsd: every byte to L{Front.upstream_data}.
    """

    lost = False

    def __init__(self, front: Front) -> None:
        self.front = front

    def connectionMade(self) -> None:
        nodelay(self.transport)
        self.front.upstream_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.front.upstream_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = True
        self.front.upstream_lost(reason.getErrorMessage() if reason is not None else "closed")
