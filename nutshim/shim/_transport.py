# -*- test-case-name: nutshim.test.test_shim -*-
"""
Four things the shims do to every transport: close it even when a producer
is registered, switch Nagle off, stand in as its producer, and write to it
without a detour through the reactor once a session is established
(L{relay_write}).

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
 - Twisted never writes to a socket at once: C{FileDescriptor.write}
   buffers and registers the socket for writing (an C{epoll_ctl}), the
   next reactor iteration sends and unregisters it (another); a TLS
   transport first holds the bytes for one more iteration
   (C{_AggregateSmallWrites}, a C{callLater(0)}).  For a relay, which
   writes one whole batch of requests or replies per read, that detour was
   most of the CPU per request (docs/shims.md, "Where the time goes").
   L{relay_write} sends at once when nothing is buffered before the bytes
   -- one TLS record per batch -- and leaves everything else (a partial
   send, a full socket, an error, a close, the producer's pause) to
   Twisted's own buffered path, so order and back-pressure are unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from OpenSSL.SSL import Error as SSLError
from OpenSSL.SSL import WantReadError
from twisted.internet.interfaces import IPushProducer, IReactorTime, ISSLTransport, ITCPTransport
from twisted.internet.tcp import Connection
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

__all__ = ["CLOSE_GRACE", "Valve", "close", "nodelay", "relay_write"]

#: The largest TLS record payload.
_RECORD = 16384

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


def _tcp_idle(connection: Any) -> bool:
    """
    An open TCP connection with nothing buffered.
    """
    return bool(
        connection.connected
        and not connection.disconnecting
        and not connection._writeDisconnected
        and not connection._tempDataLen
        and len(connection.dataBuffer) == connection.offset
    )


def _send(connection: Any, data: bytes, write: Callable[[bytes], None]) -> None:
    """
    Send on C{connection}'s socket what it takes now; C{write} (Twisted's
    buffered path) gets the rest, and pauses the producer if it has to, or
    meets the error on its own path.
    """
    if _tcp_idle(connection):
        try:
            sent = connection.socket.send(data)
        except OSError:
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    write(data)


def relay_write(transport: Any, data: bytes) -> None:
    """
    C{transport.write(data)}, sent at once when nothing is buffered before
    it: the relay's hot path (see the module docstring).

    On a TCP connection with TLS started (C{startTLS}, as both shims do),
    with the handshake done and nothing held (aggregated, buffered for a
    renegotiation, or closing), the bytes are encrypted here, at most
    L{_RECORD} bytes a record, and the records sent straight away; anything
    unusual (C{WantReadError}, an OpenSSL error) hands the rest to
    Twisted's unaggregated TLS C{write}, which deals with it as it always
    does.  Any other transport (the tests' C{StringTransport} included)
    just gets C{write}.
    """
    if not isinstance(transport, Connection):
        transport.write(data)
        return
    if not getattr(transport, "TLS", False):
        _send(transport, data, transport.write)
        return
    proto = transport.protocol
    if (
        not isinstance(proto, TLSMemoryBIOProtocol)
        or not transport.connected
        or not proto._handshakeDone
        or proto._lostTLSConnection
        or proto._appSendBuffer
        or proto.disconnecting
        or getattr(getattr(proto, "_aggregator", None), "_buffer", None)
    ):
        transport.write(data)
        return
    tls = proto._tlsConnection
    lower: Any = proto.transport
    bypass = lower.write
    pos = 0
    size = len(data)
    while pos < size:
        try:
            pos += tls.send(data[pos : pos + _RECORD] if size > _RECORD else data)
        except (WantReadError, SSLError):
            break
        _flush(tls, transport, bypass)
    if pos < size:
        TLSMemoryBIOProtocol.write(proto, data[pos:])


def _flush(tls: Any, connection: Any, write: Callable[[bytes], None]) -> None:
    """Every record OpenSSL has ready, to the TCP connection."""
    while True:
        try:
            records = tls.bio_read(65536)
        except WantReadError:
            return
        if not records:
            return
        _send(connection, records, write)
