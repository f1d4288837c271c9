# -*- test-case-name: nutshim.test.test_upsd_protocol -*-
"""
One client connection of the Attachment Daemon: thin glue around the engine.

The parts NUT gets wrong are fixed here, at the transport:
 - the replies to one read are sent together, with TCP_NODELAY, so nothing
   waits on the client's delayed ACK; on plain TCP they go straight to the
   socket when nothing is queued; a LIST's C{BEGIN LIST} line goes out as a
   segment of its own, its body in one piece right after (L{split_list});
 - the connection is registered as a streaming producer of the transport,
   so a client that stops reading stops being read: its unsent output stays
   bounded by the transport's buffer and nobody else waits;
 - request lines have a length cap with a clear error;
 - after C{OK Goodbye} nothing more is executed (L{Link.CLOSING}), the
   producer is unregistered so that TLS really closes, and a connection
   whose last replies are not taken is aborted after L{CLOSE_GRACE};
 - after C{OK STARTTLS} the line buffer is cleared before anything else is
   parsed: plaintext pipelined behind STARTTLS never runs inside TLS;
 - the TLS handshake is asynchronous and has its own deadline (NUT's is
   blocking, so one client that goes quiet after C{OK STARTTLS} freezes
   every other client); a failure is logged with the peer and the reason;
 - a verified client certificate names the session (C{tls_identity}) and,
   through upsd.users' C{certificate} lines, its user (C{cert_user}).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any, Dict, List, Optional

from twisted.internet import tcp
from twisted.internet.interfaces import IAddress, IDelayedCall, IHandshakeListener, ITCPTransport
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from nutshim.protocol import ParseError, RequestTokenizer, parse_request
from nutshim.protocol._tokenizer import plain_words
from nutshim.protocol.commands import Request
from nutshim.protocol.errors import NutError
from nutshim.tls import PeerIdentity, describe_handshake_failure, negotiated, peer_identity
from nutshim.upsd.engine import Action, Engine
from nutshim.upsd.link import CLOSE_GRACE, TRANSITIONS, Link, send_replies, send_reply
from nutshim.upsd.registry import Session

__all__ = ["UpsdProtocol", "is_loopback", "peer_ip"]

log = Logger()

#: Parsed plain request lines, shared by all connections (requests are
#: immutable); bounded in count and line length.
_PARSED: Dict[bytes, Request] = {}
_PARSED_MAX = 1024
_PARSED_LINE_MAX = 256


def peer_ip(address: IAddress) -> str:
    """
    The peer's IP as NUT prints it (C{inet_ntop}); C{"unix"} otherwise.
    """
    host = getattr(address, "host", None)
    return str(host) if host else "unknown"


@functools.lru_cache(maxsize=256)
def is_loopback(ip: str) -> bool:
    """
    Whether C{ip} is this host (127/8, ::1, or IPv4-mapped 127/8).
    """
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


@implementer(IHandshakeListener)
class UpsdProtocol(LineReceiver, TimeoutMixin):
    """
    A client of upsd.

    @ivar factory: provides C{engine}, C{clock}, C{idle_timeout},
        C{max_line}, C{tls_required_for(session)}, C{tls_options()},
        C{tls_handshake_timeout}, C{connection_closed}.
    @ivar peer: the verified client certificate, once TLS is up.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096

    factory: Any
    #: Twisted types it as ITransport; the TCP/TLS transports we get also
    #: provide ITCPTransport, ITLSTransport and abortConnection.
    transport: Any
    session: Session
    #: The endpoint of the listener that accepted this connection (set by
    #: its L{nutshim.upsd.listeners.ListenerFactory}); it decides whether
    #: TLS is required (LISTEN_TLS).
    listener = ""
    _engine: Engine

    def __init__(self) -> None:
        self._tokenizer = RequestTokenizer()
        #: Replies to the requests of the current read, sent together.
        self._out: List[bytes] = []
        #: Whether replies may go straight to the socket (plain TCP).
        self._direct = False
        #: Whether the last line ended with a continuation backslash.
        self._continued = False
        #: Whether the current read's last request was LOGOUT/DETACH.
        self._close_pending = False
        self._discarding = False
        self._rest = b""
        self._link = Link.PLAIN
        self._tls_minimum = "1.3"
        self._handshake_timer: Optional[IDelayedCall] = None
        self._close_timer: Optional[IDelayedCall] = None
        self.peer: Optional[PeerIdentity] = None

    # Connection life.

    def connectionMade(self) -> None:
        # TimeoutMixin's timers run on the factory's clock, not the global
        # reactor, so tests drive them with task.Clock.
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign]
        ip = peer_ip(self.transport.getPeer())
        self.session = Session(ip, is_loopback(ip), self.listener)
        self.session.tls_required = self.factory.tls_required_for(self.session)
        self.MAX_LENGTH = self.factory.max_line
        self._engine = self.factory.engine
        self._engine.registry.open(self.session)
        self.factory.connection_opened(self)
        if ITCPTransport.providedBy(self.transport):
            try:
                self.transport.setTcpNoDelay(True)
            except OSError:
                pass
        self._direct = isinstance(self.transport, tcp.Connection) and hasattr(self.transport, "_tempDataLen")
        # Back-pressure: stop reading a client whose replies are not read.
        self.transport.registerProducer(self, True)
        self.setTimeout(self.factory.idle_timeout or None)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        self._cancel_handshake_timer()
        timer, self._close_timer = self._close_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if self._link is Link.HANDSHAKING:
            log.warn(
                "TLS handshake with {address} failed: {why}",
                address=self.session.address,
                why=describe_handshake_failure(reason, self.transport, self._tls_minimum),
            )
        self.factory.engine.registry.close(self.session)
        self.factory.connection_closed(self)

    def timeoutConnection(self) -> None:
        log.info(
            "Dropping idle client {address} (no request for {seconds} s)",
            address=self.session.address,
            seconds=self.factory.idle_timeout,
        )
        self.transport.abortConnection()

    def _move(self, new: Link) -> None:
        if new not in TRANSITIONS[self._link]:
            raise RuntimeError(f"upsd connection cannot go from {self._link.name} to {new.name}")
        self.factory.link_moved(self, self._link, new)
        self._link = new

    def _goodbye(self) -> None:
        """
        C{OK Goodbye} is written: close, for real, within a second.

        Nothing received from now on is executed.  The producer is
        unregistered first: while one is registered, Twisted's TLS layer
        postpones its close (and a paused plaintext transport would resume
        reading instead of closing once drained).  Whatever is still
        unsent then has L{CLOSE_GRACE} seconds.
        """
        if Link.CLOSING not in TRANSITIONS[self._link]:
            return
        self._move(Link.CLOSING)
        self.setTimeout(None)
        self._cancel_handshake_timer()
        transport = self.transport
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        transport.loseConnection()
        self._close_timer = self.factory.clock.callLater(CLOSE_GRACE, self._close_overdue)

    def _close_overdue(self) -> None:
        self._close_timer = None
        log.info(
            "Client {address} did not take its last replies within {seconds} s of OK Goodbye: aborted",
            address=self.session.address,
            seconds=CLOSE_GRACE,
        )
        self.transport.abortConnection()

    # Input.

    def dataReceived(self, data: bytes) -> None:
        if self._link is Link.CLOSING or self._link is Link.FAILED:
            return  # after OK Goodbye, or while being aborted: nothing runs
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            self._discarding = False
            data = data[end + 1 :]
            if not data:
                return
        last = len(data) - 1
        if last >= 0 and data.find(b"\n") == last <= self.MAX_LENGTH and not self._buffer and not self.paused:
            # The usual read: exactly one whole request.
            self.resetTimeout()
            request = None if self._continued else _PARSED.get(data[:-1])
            if request is not None and not self._out:
                # ...and an already parsed one (a poll): answer it in one step.
                self._close_pending = False
                reply, action = self._engine.handle(self.session, request)
                if action is Action.NONE:
                    send_reply(self.transport, reply, self._direct)
                    return
                self._out.append(reply)
                if action is Action.CLOSE:
                    self._close_pending = True
                elif action is Action.START_TLS:
                    self._start_tls()
            else:
                self.lineReceived(data[:-1])
        else:
            if b"\n" in data:
                # A complete request (even a bad one) proves the client
                # alive, as in NUT; once per read is enough.
                self.resetTimeout()
            super().dataReceived(data)
            while self._rest and not self.transport.disconnecting and not self._discarding:
                rest, self._rest = self._rest, b""
                super().dataReceived(rest)
        self._flush()
        if self._close_pending:
            # NUT closes after LOGOUT unless more requests came in the same
            # read; those keep the connection open.
            self._goodbye()

    def lineLengthExceeded(self, line: bytes) -> None:
        log.warn(
            "Request from {address} longer than {limit} bytes: refused",
            address=self.session.address,
            limit=self.MAX_LENGTH,
        )
        self._tokenizer.reset()
        self._continued = False
        self._out.append(NutError.TOO_LONG.line)
        end = line.find(b"\n")
        if end < 0:
            self._discarding = True
        else:
            self._rest = line[end + 1 :]

    def lineReceived(self, line: bytes) -> None:
        self._close_pending = False
        request = _PARSED.get(line)
        if request is None or self._continued:
            request = self._parse(line)
            if request is None:
                return
        reply, action = self._engine.handle(self.session, request)
        self._out.append(reply)
        if action is Action.CLOSE:
            self._close_pending = True
        elif action is Action.START_TLS:
            self._start_tls()

    def _parse(self, line: bytes) -> Optional[Request]:
        """
        Tokenize and parse one line; L{None} if there is nothing to answer
        yet (a continued line) or the reply is already queued (a parse
        error).  Plain lines (most requests) are remembered: they parse the
        same way on every connection.
        """
        if not self._continued and len(line) <= _PARSED_LINE_MAX:
            words = plain_words(line)
            if words is not None:
                request = parse_request(words)
                if len(_PARSED) >= _PARSED_MAX:
                    _PARSED.clear()
                _PARSED[line] = request
                return request
        result = self._tokenizer.line(line)
        self._continued = result is None
        if result is None:
            return None  # continued on the next line
        if isinstance(result, ParseError):
            log.debug(
                "Parse error from {address}: {reason}",
                address=self.session.address,
                reason=result.reason,
            )
            self._out.append(NutError.INVALID_ARGUMENT.line)
            return None
        return parse_request(result)

    def _flush(self) -> None:
        """
        Send the replies of this read together (L{send_replies}).
        """
        out = self._out
        if out:
            self._out = []
            send_replies(self.transport, out, self._direct)

    # TLS.

    def _start_tls(self) -> None:
        """
        Reply already written; now switch the transport and drop whatever
        plaintext followed the STARTTLS line.

        From here on the session counts as TLS (a second STARTTLS is
        refused and no plaintext is ever parsed again); the handshake runs
        while other clients are served, and must finish within
        C{factory.tls_handshake_timeout} seconds.
        """
        # The replies so far (OK STARTTLS last) go out in plaintext.
        self._flush()
        options = self.factory.tls_options()
        self._tls_minimum = getattr(options, "minimum_version", "1.3")
        self.session.tls = True
        dropped = self.clearLineBuffer()
        self._rest = b""
        self._tokenizer.reset()
        self._continued = False
        if dropped:
            self._move(Link.FAILED)
            log.warn(
                "Client {address} pipelined {n} plaintext bytes after STARTTLS:"
                " discarded and disconnected",
                address=self.session.address,
                n=len(dropped),
            )
            self.transport.abortConnection()
            return
        try:
            self.transport.startTLS(options)
        except Exception:
            self._move(Link.FAILED)
            log.failure("Cannot start TLS for {address}", address=self.session.address)
            self.transport.abortConnection()
            return
        self._move(Link.HANDSHAKING)
        self._handshake_timer = self.factory.clock.callLater(
            self.factory.tls_handshake_timeout, self._handshake_timed_out
        )

    def _cancel_handshake_timer(self) -> None:
        timer, self._handshake_timer = self._handshake_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._link is not Link.HANDSHAKING:
            return
        self._move(Link.FAILED)
        log.warn(
            "TLS handshake with {address} not finished after {seconds} s: disconnected",
            address=self.session.address,
            seconds=self.factory.tls_handshake_timeout,
        )
        self.transport.abortConnection()

    def handshakeCompleted(self) -> None:
        """
        L{IHandshakeListener}: TLS is up.  Note the verified client
        certificate and the user it maps to, and say so in the log.
        """
        if self._link is not Link.HANDSHAKING:
            return  # renegotiation is disabled; only the first one counts
        self._cancel_handshake_timer()
        self._move(Link.TLS)
        self.resetTimeout()
        self.peer = peer_identity(self.transport)
        self.map_certificate()
        log.info(
            "Client {address} is on TLS ({tls}); {who}",
            address=self.session.address,
            tls=negotiated(self.transport),
            who=self._who(),
        )

    def map_certificate(self) -> None:
        """
        Set C{session.tls_identity} and C{session.cert_user} from the
        verified certificate and the I{current} upsd.users (called again
        after a reload, so a removed C{certificate} line takes effect).
        """
        peer = self.peer
        if peer is None:
            self.session.tls_identity = None
            self.session.cert_user = None
            return
        self.session.tls_identity = peer.name
        user = self.factory.engine.users.user_for_certificate(peer.cn or "", peer.fingerprint)
        self.session.cert_user = user.name if user is not None else None

    def _who(self) -> str:
        peer = self.peer
        if peer is None:
            return "no client certificate"
        text = f"client certificate {peer.subject} ({peer.fingerprint})"
        if self.session.cert_user is not None:
            return text + f" = upsd.users user {self.session.cert_user}"
        return text + ", not mapped to a user"
