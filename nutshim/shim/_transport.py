# -*- test-case-name: nutshim.test.test_shim -*-
"""
Three things the shims do to every transport: close it even when a producer
is registered, switch Nagle off, and stand in as its producer.

Each exists because of a specific trap: Twisted's TLS transport does not
start closing while a producer is registered (the connection would stay
open for ever), and with Nagle a TLS handshake's small records wait 40 ms
for delayed ACKs.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IPushProducer, ITCPTransport
from zope.interface import implementer

__all__ = ["Valve", "close", "nodelay"]


def close(transport: Any) -> None:
    """
    C{loseConnection}, after unregistering the relay's producer: a TLS
    transport does not even start closing while a producer is registered.
    """
    try:
        transport.unregisterProducer()
    except RuntimeError:
        pass  # none registered (test transports say so)
    transport.loseConnection()


def nodelay(transport: Any) -> None:
    """
    TCP_NODELAY: NUT is request/reply, and a TLS handshake writes several
    small records in a row; with Nagle, the second waits for the peer's
    delayed ACK (40 ms on Linux).
    """
    if ITCPTransport.providedBy(transport):
        try:
            transport.setTcpNoDelay(True)
        except OSError:
            pass


@implementer(IPushProducer)
class Valve:
    """
    A producer registered with one transport on behalf of the relay:
    Twisted pauses it when that transport's send buffer is full.
    """

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.pauseProducing = pause
        self.resumeProducing = resume

    def stopProducing(self) -> None:
        """The connection is going away; L{Front} handles closing."""
