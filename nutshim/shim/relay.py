# -*- test-case-name: nutshim.test.test_shim -*-
"""
What both STARTTLS shims share: a client-facing connection (L{Front}) spliced
to one upstream connection (whatever
L{nutshim.shim.factory.RelayFactory.back_protocol} builds),
with the properties RFC 9271's published shims lacked.

 - Requests are framed as lines (C{LineReceiver}, C{\\n}, a length cap) and
   assembled into whole requests as upsd sees them (a trailing backslash
   continues a request on the next line), classified the way nut-upsd
   classifies them (L{nutshim.protocol.starttls}), so a shim can answer the
   few requests it owns (C{STARTTLS}) in order: L{ReplySequencer} holds
   such an answer until upsd has answered every earlier request.
   Everything else is forwarded byte for byte; once relaying, a read that
   is nothing but whole ordinary requests is forwarded as read, in one
   write, without the line-by-line pass (L{Front.dataReceived}).
 - Replies are a byte stream passed on as received, never rewritten or
   cut; L{ReplyCounter} only notes where replies end.
 - Back-pressure both ways and the close: L{nutshim.shim._flow}.  At most
   L{MAX_OUTSTANDING} requests per client wait for upsd; at most
   L{MAX_QUEUE} bytes of requests wait for the upstream to become usable.
 - Until the upstream is usable (connected; for the client shim, TLS
   confirmed), requests are queued, never sent: credentials cannot leak.
 - When upsd goes away between replies, every request still waiting is
   answered C{ERR DRIVER-NOT-CONNECTED} (the error upsd itself gives when
   the data source behind it is gone, and one every NUT client handles as
   "no data", including upsmon) and the client is disconnected; if it goes
   away in the middle of a reply the client is only disconnected.  A
   client whose upstream never became usable gets that error for every
   request during L{FAIL_LINGER} seconds, then the close (so that upsmon
   reconnects, and finds the upstream again, on its next poll).
 - C{LOGOUT} (and C{DETACH}) end the session at C{OK Goodbye}: nothing the
   client sent behind it is forwarded, and the shim closes both sides
   itself instead of waiting for the upstream to close (NUT's upsd does at
   once; a server that does not must not keep a relayed session open).
   A client half-closing its side still gets every reply.
 - Idle clients are dropped (L{RelayFactory.idle_timeout}) on the
   factory's clock, so tests drive time with C{task.Clock}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IHalfCloseableProtocol
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from nutshim.protocol import NutError
from nutshim.protocol.starttls import Classified, Kind
from nutshim.shim._address import describe_address
from nutshim.shim._flow import FlowControl
from nutshim.shim._framing import ReplySequencer, RequestAssembler, RequestTooLong, plain_requests
from nutshim.shim._transport import Valve, close, nodelay, relay_write

if TYPE_CHECKING:
    from nutshim.shim.factory import RelayFactory

__all__ = [
    "FAIL_LINGER",
    "Front",
    "MAX_LINE",
    "MAX_OUTSTANDING",
    "MAX_QUEUE",
    "UPSTREAM_GONE",
]

log = Logger()

#: The longest request relayed, continuation lines included (NUT's own
#: limit is far lower).
MAX_LINE = 65536
#: Requests per client forwarded and not yet answered before the shim stops
#: reading that client.
MAX_OUTSTANDING = 8
#: Bytes of requests per client held while the upstream is not yet usable.
MAX_QUEUE = 65536
#: Seconds a client whose upstream never became usable is answered
#: L{UPSTREAM_GONE} before it is disconnected.
FAIL_LINGER = 2.0
#: The reply to requests that cannot reach upsd any more.
UPSTREAM_GONE = NutError.DRIVER_NOT_CONNECTED.line


@implementer(IHalfCloseableProtocol)
class Front(FlowControl, TimeoutMixin):
    """
    A client of a shim: requests in, replies out, spliced to one upstream
    connection.

    Subclasses decide when their own side is ready (L{front_ready}), when
    the upstream is opened (L{connect_at_once}, else L{open_upstream}) and
    which requests they answer themselves (L{intercept}).

    @ivar back: the upstream protocol, once usable.
    @ivar address: the client's address, for the log.
    @ivar requests: requests forwarded so far.
    @ivar replied: reply bytes passed on so far.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    factory: "RelayFactory"
    transport: Any
    #: Open the upstream connection as soon as the client connects (the
    #: client shim: its clients are local); the server shim waits for TLS.
    connect_at_once = True

    def __init__(self) -> None:
        self.back: Optional[Any] = None
        self.address = "?"
        self.requests = 0
        self.replied = 0
        self.sequencer = ReplySequencer(self._write_reply)
        self._assembler = RequestAssembler(MAX_LINE)
        #: Whole requests (their bytes) waiting for the upstream, and how
        #: many: one buffer, not an object per request.
        self._queue = bytearray()
        self._queued = 0
        self._relaying = False
        self._front_ready = False
        self._gone: Optional[str] = None
        self._eof = False
        self._lost = False
        self.init_flow()
        self._connecting: Optional[Deferred[Any]] = None
        self._linger: Optional[IDelayedCall] = None
        #: The end of the reply stream while a LOGOUT waits for its reply.
        self._goodbye: Optional[bytes] = None
        #: The upstream protocol once connected, usable or not.
        self._link: Optional[Any] = None

    # Life.

    def connectionMade(self) -> None:
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign,assignment]
        self.address = describe_address(self.transport.getPeer())
        self.factory.connections.add(self)
        nodelay(self.transport)
        self.transport.registerProducer(Valve(self._slow, self._fast), True)
        self.setTimeout(self.factory.idle_timeout or None)
        if self.connect_at_once:
            self.open_upstream()

    def open_upstream(self) -> None:
        """
        Start opening the upstream connection (once).
        """
        if self._connecting is not None or self._link is not None or self._lost:
            return
        self._connecting = self.factory.connect_upstream(self)
        self._connecting.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, proto: Any) -> None:
        self._connecting = None
        self._link = proto
        if self._lost and not proto.lost:
            proto.transport.abortConnection()

    def _connect_failed(self, failure: Failure) -> None:
        self._connecting = None
        if not self._lost:
            self.upstream_lost(failure.getErrorMessage())

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._lost = True
        self.setTimeout(None)
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self.factory.connections.discard(self)
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
        link = self._link
        if link is not None and link.transport is not None and not link.lost:
            if self._relaying:
                close(link.transport, self.factory.clock)
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
        if self._gone is not None and self._front_ready:
            self._fail()
        self._check_done()

    def writeConnectionLost(self) -> None:
        """The client cannot read any more: nothing left to do."""
        self.transport.abortConnection()

    # Requests.

    def intercept(self, request: Classified) -> Optional[bytes]:
        """
        The shim's own answer to this request, or L{None} to forward it.
        """
        return None

    def dataReceived(self, data: bytes) -> None:
        """
        Once relaying, a read that is nothing but whole ordinary requests
        (L{plain_requests}) and fits under L{MAX_OUTSTANDING} is forwarded
        whole, in one write -- what every poll of upsmon, upsc or PyNUT
        reads as; anything else goes line by line (C{LineReceiver}).
        """
        if (
            self._relaying
            and self.line_mode
            and not self.paused
            and not self._buffer
            and self._goodbye is None
            and not self._assembler.pending
        ):
            count = plain_requests(data, MAX_LINE)
            if count and self.sequencer.outstanding + count <= MAX_OUTSTANDING:
                assert self.back is not None
                self.resetTimeout()
                relay_write(self.back.transport, data)
                self.requests += count
                self.sequencer.forwarded(count)
                if self.sequencer.outstanding >= MAX_OUTSTANDING:
                    self._pause("outstanding")
                return
        LineReceiver.dataReceived(self, data)

    def lineReceived(self, line: bytes) -> None:
        self.resetTimeout()
        try:
            whole = self._assembler.line(line)
        except RequestTooLong:
            self.clearLineBuffer()
            self.lineLengthExceeded(line)
            return
        if whole is None:
            return  # continued on the next line
        if self._relaying:
            self._request(*whole)
            return
        if not self._queued:
            # Nothing waits before it: the shim's own answer can go now.
            reply = self.intercept(whole[0])
            if reply is not None:
                self.sequencer.local(reply)
                return
        self._queue += whole[1]
        self._queued += 1
        if len(self._queue) >= MAX_QUEUE:
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

    def _request(self, request: Classified, data: bytes) -> None:
        reply = self.intercept(request)
        if reply is not None:
            self.sequencer.local(reply)
            return
        assert self.back is not None
        if request.kind is Kind.GOODBYE:
            # Read nothing more until its reply says whether the session
            # ends (OK Goodbye) or not (an error).
            self._goodbye = b"\n" if self.sequencer.idle else b""
            self._pause("goodbye")
        relay_write(self.back.transport, data)
        self.requests += 1
        self.sequencer.forwarded()
        if self.sequencer.outstanding >= MAX_OUTSTANDING:
            self._pause("outstanding")

    # Replies.

    def _write_reply(self, data: bytes) -> None:
        self.replied += len(data)
        relay_write(self.transport, data)

    def upstream_data(self, data: bytes) -> None:
        """
        Bytes from upsd, in order.
        """
        if self._shut:
            return
        self.resetTimeout()
        self.sequencer.upstream(data)
        if self._goodbye is not None:
            self._goodbye_reply(data)
            if self._shut:
                return
        if self.sequencer.outstanding < MAX_OUTSTANDING:
            self._resume("outstanding")
        self._hold_upstream()
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
        if self._lost or self._shut:
            back.transport.abortConnection()
            return
        self.back = back
        nodelay(back.transport)
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
            Valve(lambda: self._pause("upstream-full"), lambda: self._resume("upstream-full")),
            True,
        )
        self.relay_started()
        # The queued requests go back in front of whatever is still unread
        # (a request still being continued included), to be forwarded at
        # the pace the limits allow.
        queue, self._queue, self._queued = self._queue, bytearray(), 0
        pending = self._assembler.take_pending()
        self._buffer = bytes(queue) + pending + self._buffer
        self._pauses.discard("queue")
        if not self._pauses:
            LineReceiver.resumeProducing(self)
        self._hold_upstream()
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
        if self._relaying and self.sequencer.outstanding and not self._closing():
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

        A client that never got through is answered for L{FAIL_LINGER}
        seconds before the close, from its first request on (a close alone
        reads as "server disconnected", and tools such as upscmd go on
        after an error to USERNAME).
        """
        if self._closing():
            return
        if self._relaying or self._eof:
            if self.sequencer.fail_outstanding(UPSTREAM_GONE):
                self._answer_queue()
            self.shut()
            return
        if not self._queued:
            return  # wait for the first request
        self._answer_queue()
        if self._linger is None:
            self._linger = self.factory.clock.callLater(FAIL_LINGER, self.shut)

    def _answer_queue(self) -> None:
        queue, self._queue, self._queued = self._queue, bytearray(), 0
        again = RequestAssembler(len(queue) + 1)
        for line in bytes(queue).split(b"\n")[:-1]:
            whole = again.line(line)
            if whole is not None:
                self.sequencer.local(self.intercept(whole[0]) or UPSTREAM_GONE)

    def _check_done(self) -> None:
        """
        After a half-close: close once every complete request has its reply.
        """
        if not self._eof or not self._relaying or self._closing():
            return
        if self.sequencer.idle and b"\n" not in self._buffer:
            if self.back is not None:
                close(self.back.transport, self.factory.clock)
            self.shut()
