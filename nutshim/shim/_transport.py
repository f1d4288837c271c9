# -*- test-case-name: nutshim.test.test_shim -*-
"""
Three things the shims do to every transport: close it even when a producer
is registered, switch Nagle off, and stand in as its producer.

Each exists because of a specific trap:

 - Twisted's TLS transport (C{twisted.protocols.tls.TLSMemoryBIOProtocol})
   does not even start closing while a producer is registered: its
   C{loseConnection} only sets C{disconnecting} and sends the close_notify
   when C{unregisterProducer} is called (C{if not self._appSendBuffer and
   self._producer is None: self._shutdownTLS()}), and until then it keeps
   accepting writes and delivering what it reads.  The relays register a
   producer on every transport (back-pressure), so without unregistering
   it first a session would stay open -- and go on relaying requests --
   after C{OK Goodbye}.  A plain TCP transport has a milder form of the
   same trap (C{FileDescriptor.doWrite} resumes a paused producer instead
   of closing).
 - After the close_notify, Twisted waits for the peer's close_notify before
   it closes the TCP connection; a peer that never sends one (or never
   reads) would hold the connection for ever, so L{close} bounds that wait
   (L{CLOSE_GRACE}) and then aborts.
 - With Nagle, a TLS handshake's small records wait 40 ms for delayed ACKs.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.interfaces import IPushProducer, IReactorTime, ISSLTransport, ITCPTransport
from zope.interface import implementer

__all__ = ["CLOSE_GRACE", "Valve", "close", "nodelay"]

#: Seconds a TLS peer has, after our close_notify, to answer it or close;
#: then the connection is aborted.
CLOSE_GRACE = 5.0


def close(transport: Any, clock: Optional[IReactorTime] = None) -> None:
    """
    C{loseConnection}, after unregistering the relay's producer, and for a
    TLS transport an abort L{CLOSE_GRACE} seconds later on C{clock} if the
    TLS shutdown has not finished by then.
    """
    try:
        transport.unregisterProducer()
    except RuntimeError:
        pass  # none registered (test transports say so)
    transport.loseConnection()
    if clock is not None and ISSLTransport.providedBy(transport):
        clock.callLater(CLOSE_GRACE, _abort_if_open, transport)


def _abort_if_open(transport: Any) -> None:
    if not getattr(transport, "disconnected", False):
        transport.abortConnection()


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
