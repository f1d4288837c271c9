# -*- test-case-name: nutshim.test.test_shim -*-
"""
What both STARTTLS shims share: a client-facing connection (L{Front}) spliced
to one upstream connection (whatever L{RelayFactory.back_protocol} builds),
with the properties RFC 9271's published shims lacked.

 - Requests are framed as lines (C{LineReceiver}, C{\\n}, a length cap),
   so a shim can answer the few requests it owns (C{STARTTLS}) in order:
   L{ReplySequencer} holds such an answer until upsd has answered every
   earlier request.  Everything else is forwarded byte for byte.
 - Replies are a byte stream passed on as received, never rewritten or
   cut; L{ReplyCounter} only notes where replies end.
 - Back-pressure both ways, in the manner of
   C{twisted.protocols.portforward}: a client that stops reading stops the
   shim reading upsd I{and} forwarding that client's requests (so upsd
   never blocks writing to the shim); an upstream that stops reading stops
   the shim reading the client.  At most L{MAX_OUTSTANDING} requests per
   client wait for upsd, and at most L{MAX_QUEUE} bytes of requests wait
   for the upstream to become usable.  Memory per client is bounded.
 - Until the upstream is usable (connected; for the client shim, TLS
   confirmed), requests are queued, never sent: credentials cannot leak.
 - When upsd goes away between replies, every request still waiting is
   answered C{ERR DRIVER-NOT-CONNECTED} (the error upsd itself gives when
   the data source behind it is gone, and one every NUT client handles as
   "no data", including upsmon) and the client is disconnected; if it goes
   away in the middle of a reply the client is only disconnected.
 - A client half-closing its side still gets every reply; C{LOGOUT} is
   upsd's business (it answers and closes, and the close is passed on).
 - Idle clients are dropped (L{RelayFactory.idle_timeout}) on the
   factory's clock, so tests drive time with C{task.Clock}.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, List, Optional, Sequence, Set

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from nutshim.protocol import NutError
from nutshim.shim._framing import ReplySequencer

__all__ = [
    "Front",
    "RelayFactory",
    "UpstreamProtocol",
    "MAX_LINE",
    "MAX_OUTSTANDING",
    "MAX_QUEUE",
    "Network",
    "allowed",
    "describe_address",
    "first_word",
]

log = Logger()

#: The longest request line relayed (NUT's own limit is far lower).
MAX_LINE = 65536
#: Requests per client forwarded and not yet answered before the shim stops
#: reading that client.
MAX_OUTSTANDING = 16
#: Bytes of requests per client held while the upstream is not yet usable.
MAX_QUEUE = 65536
#: The reply to requests that cannot reach upsd any more.
UPSTREAM_GONE = NutError.DRIVER_NOT_CONNECTED.line

Network = Any  # ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(address: Optional[IAddress]) -> Optional[ipaddress._BaseAddress]:
    host = getattr(address, "host", None)
    if not host:
        return None
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def allowed(address: Optional[IAddress], networks: Sequence[Network]) -> bool:
    """
    Whether a peer may connect: always without C{--allow}, else when its IP
    (an IPv4-mapped IPv6 address counts as IPv4) is in one of C{networks}.
    """
    if not networks:
        return True
    ip = _ip(address)
    return ip is not None and any(ip in net for net in networks if ip.version == net.version)


def describe_address(address: Optional[IAddress]) -> str:
    """
    C{1.2.3.4:5678} or C{[2001:db8::1]:5678}, IPv4-mapped addresses as IPv4.
    """
    ip = _ip(address)
    port = getattr(address, "port", None)
    if ip is None:
        return str(address)
    text = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{text}:{port}" if port is not None else text


def first_word(line: bytes) -> bytes:
    """
    The verb of a request line, upper-cased (NUT compares verbs without
    regard to case); C{b""} for a blank line.
    """
    parts = line.split(None, 1)
    return parts[0].upper() if parts else b""


def _nodelay(transport: Any) -> None:
    if ITCPTransport.providedBy(transport):
        try:
            transport.setTcpNoDelay(True)
        except OSError:
            pass


@implementer(IPushProducer)
class _Valve:
    """
    A producer registered with one transport on behalf of the relay:
    Twisted pauses it when that transport's send buffer is full.
    """

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.pauseProducing = pause
        self.resumeProducing = resume

    def stopProducing(self) -> None:
        """The connection is going away; L{Front} handles closing."""


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
    """

    protocol: Any = None

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

    def buildProtocol(self, addr: IAddress) -> Optional[Protocol]:
        """
        A L{Front} for an allowed peer; L{None} (the connection is closed at
        once) for anyone else.
        """
        if not allowed(addr, self.allow):
            log.warn(
                "Refused {client}: not in --allow", client=describe_address(addr)
            )
            return None
        proto = super().buildProtocol(addr)
        return proto

    def back_protocol(self, front: "Front") -> Protocol:
        """
        The protocol of C{front}'s upstream connection.
        """
        return UpstreamProtocol(front)

    def connect_upstream(self, front: "Front") -> "Deferred[Any]":
        """
        Open C{front}'s upstream connection.
        """
        return self.upstream.connect(_OneShot(self.back_protocol(front)))


class _OneShot(Factory):
    def __init__(self, proto: Protocol) -> None:
        self._proto = proto

    def buildProtocol(self, addr: IAddress) -> Protocol:
        return self._proto


@implementer(IHalfCloseableProtocol)
class Front(LineReceiver, TimeoutMixin):
    """
    A client of a shim: requests in, replies out, spliced to one upstream
    connection.

    Subclasses decide when their own side is ready (L{front_ready}) and
    which requests they answer themselves (L{intercept}).

    @ivar back: the upstream protocol, once usable.
    @ivar address: the client's address, for the log.
    @ivar requests: requests forwarded so far.
    @ivar replied: reply bytes passed on so far.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    factory: RelayFactory
    transport: Any

    def __init__(self) -> None:
        self.back: Optional[Any] = None
        self.address = "?"
        self.requests = 0
        self.replied = 0
        self.sequencer = ReplySequencer(self._write_reply)
        self._queue: List[bytes] = []
        self._queued = 0
        self._relaying = False
        self._front_ready = False
        self._gone: Optional[str] = None
        self._eof = False
        self._lost = False
        self._pauses: Set[str] = set()
        self._client_slow = False
        self._connecting: Optional[Deferred[Any]] = None
        #: The upstream protocol once connected, usable or not.
        self._link: Optional[Any] = None

    # Life.

    def connectionMade(self) -> None:
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign]
        self.address = describe_address(self.transport.getPeer())
        self.factory.connections.add(self)
        _nodelay(self.transport)
        self.transport.registerProducer(_Valve(self._slow, self._fast), True)
        self.setTimeout(self.factory.idle_timeout or None)
        self._connecting = self.factory.connect_upstream(self)
        self._connecting.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, proto: Any) -> None:
        self._connecting = None
        self._link = proto
        if self._lost:
            proto.transport.abortConnection()

    def _connect_failed(self, failure: Failure) -> None:
        self._connecting = None
        if not self._lost:
            self.upstream_lost(failure.getErrorMessage())

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._lost = True
        self.setTimeout(None)
        self.factory.connections.discard(self)
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
        link = self._link
        if link is not None and link.transport is not None:
            if self._relaying:
                link.transport.loseConnection()
            else:
                link.transport.abortConnection()
        if self._relaying:
            log.info(
                "{client} left: {requests} requests, {replied} reply bytes",
                client=self.address,
                requests=self.requests,
                replied=self.replied,
            )

    def timeoutConnection(self) -> None:
        log.info(
            "Dropping idle client {client} (nothing for {seconds} s)",
            client=self.address,
            seconds=self.factory.idle_timeout,
        )
        self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        """
        The client sent all it will send (a half-close): answer every
        complete request, then close.  An unfinished last line is dropped.
        """
        self._eof = True
        self._check_done()

    def writeConnectionLost(self) -> None:
        """The client cannot read any more: nothing left to do."""
        self.transport.abortConnection()

    def _closing(self) -> bool:
        return self._lost or bool(self.transport.disconnecting)

    # Flow control.

    def _pause(self, reason: str) -> None:
        if not self._pauses:
            LineReceiver.pauseProducing(self)
        self._pauses.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and not self._closing():
            LineReceiver.resumeProducing(self)

    def _slow(self) -> None:
        # The client is not reading replies: stop reading upsd, and stop
        # sending it requests, or it would block writing to us.
        self._client_slow = True
        self._pause("client-slow")
        if self._relaying and self.back is not None:
            self.back.transport.pauseProducing()

    def _fast(self) -> None:
        self._client_slow = False
        if self._relaying and self.back is not None:
            self.back.transport.resumeProducing()
        self._resume("client-slow")

    # Requests.

    def intercept(self, line: bytes) -> Optional[bytes]:
        """
        The shim's own answer to this request, or L{None} to forward it.
        """
        return None

    def lineReceived(self, line: bytes) -> None:
        self.resetTimeout()
        if self._relaying:
            self._request(line)
            return
        if not self._queue and self._gone is None:
            # Nothing waits before it: the shim's own answer can go now.
            reply = self.intercept(line)
            if reply is not None:
                self.sequencer.local(reply)
                return
        self._queue.append(line)
        self._queued += len(line) + 1
        if self._queued >= MAX_QUEUE:
            self._pause("queue")
        if self._gone is not None and self._front_ready:
            self._fail()

    def lineLengthExceeded(self, line: bytes) -> None:
        log.warn(
            "Request line from {client} longer than {limit} bytes: disconnected",
            client=self.address,
            limit=self.MAX_LENGTH,
        )
        if not self._relaying:
            self.transport.abortConnection()
            return
        # Answered in order, after the replies to the requests before it.
        self.sequencer.local(NutError.TOO_LONG.line)
        self._pause("too-long")
        self._eof = True
        self._check_done()

    def _request(self, line: bytes) -> None:
        reply = self.intercept(line)
        if reply is not None:
            self.sequencer.local(reply)
            return
        assert self.back is not None
        self.back.transport.write(line + b"\n")
        self.requests += 1
        self.sequencer.forwarded()
        if self.sequencer.outstanding >= MAX_OUTSTANDING:
            self._pause("outstanding")

    # Replies.

    def _write_reply(self, data: bytes) -> None:
        self.replied += len(data)
        self.transport.write(data)

    def upstream_data(self, data: bytes) -> None:
        """
        Bytes from upsd, in order.
        """
        self.resetTimeout()
        self.sequencer.upstream(data)
        if self.sequencer.outstanding < MAX_OUTSTANDING:
            self._resume("outstanding")
        self._check_done()

    # The two halves meet.

    def front_ready(self) -> None:
        """
        The client's side can carry requests (for the server shim: TLS is up).
        """
        self._front_ready = True
        self._maybe_start()

    def upstream_ready(self, back: Any) -> None:
        """
        The upstream connection can carry requests.
        """
        self._connecting = None
        self._link = back
        if self._lost:
            back.transport.abortConnection()
            return
        self.back = back
        _nodelay(back.transport)
        self._maybe_start()

    def _maybe_start(self) -> None:
        if not self._front_ready or self._closing():
            return
        if self._gone is not None:
            self._fail()
            return
        if self.back is None or self._relaying:
            return
        self._relaying = True
        back = self.back
        back.transport.registerProducer(
            _Valve(lambda: self._pause("upstream-full"), lambda: self._resume("upstream-full")),
            True,
        )
        if self._client_slow:
            back.transport.pauseProducing()
        self.relay_started()
        queue, self._queue, self._queued = self._queue, [], 0
        for line in queue:
            self._request(line)
        self._resume("queue")
        self._check_done()

    def relay_started(self) -> None:
        """
        Called once requests start to flow; subclasses log the pairing.
        """

    def upstream_lost(self, why: str) -> None:
        """
        The upstream connection failed or closed.
        """
        if self._gone is not None:
            return
        self._gone = why
        self._connecting = None
        if self._relaying and self.sequencer.outstanding:
            log.warn(
                "Upstream of {client} lost with {n} request(s) unanswered: {why}",
                client=self.address,
                n=self.sequencer.outstanding,
                why=why,
            )
        if self._relaying or self._front_ready:
            self._fail()

    def _fail(self) -> None:
        """
        Answer what can be answered with L{UPSTREAM_GONE}, then close.
        """
        if self._closing():
            return
        clean = self.sequencer.fail_outstanding(UPSTREAM_GONE)
        if clean:
            queue, self._queue, self._queued = self._queue, [], 0
            for line in queue:
                self.sequencer.local(self.intercept(line) or UPSTREAM_GONE)
        self.transport.loseConnection()

    def _check_done(self) -> None:
        """
        After a half-close: close once every complete request has its reply.
        """
        if not self._eof or not self._relaying or self._closing():
            return
        if self.sequencer.idle and b"\n" not in self._buffer:
            if self.back is not None:
                self.back.transport.loseConnection()
            self.transport.loseConnection()


class UpstreamProtocol(Protocol):
    """
    The plaintext connection to upsd: every byte to L{Front.upstream_data}.
    """

    def __init__(self, front: Front) -> None:
        self.front = front

    def connectionMade(self) -> None:
        self.front.upstream_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.front.upstream_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.front.upstream_lost(reason.getErrorMessage() if reason is not None else "closed")
