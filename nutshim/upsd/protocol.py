# -*- test-case-name: nutshim.test.test_upsd_protocol -*-
"""
One client connection of the Attachment Daemon: thin glue around the engine.

The parts NUT gets wrong are fixed here, at the transport:
 - replies are written with one C{write} per reply (a LIST is one write) and
   with TCP_NODELAY, so nothing waits on the client's delayed ACK;
 - the connection is registered as a streaming producer of the transport,
   so a client that stops reading stops being read: its unsent output stays
   bounded by the transport's buffer and nobody else waits;
 - request lines have a length cap with a clear error;
 - after C{OK STARTTLS} the line buffer is cleared before anything else is
   parsed: plaintext pipelined behind STARTTLS never runs inside TLS.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, List, Optional

from twisted.internet.interfaces import IAddress, ITCPTransport
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin

from nutshim.protocol import ParseError, RequestTokenizer, parse_request
from nutshim.protocol.errors import NutError
from nutshim.upsd.engine import Action, Engine
from nutshim.upsd.registry import Session

__all__ = ["UpsdProtocol", "is_loopback", "peer_ip"]

log = Logger()


def peer_ip(address: IAddress) -> str:
    """
    The peer's IP as NUT prints it (C{inet_ntop}); C{"unix"} otherwise.
    """
    host = getattr(address, "host", None)
    return str(host) if host else "unknown"


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


class UpsdProtocol(LineReceiver, TimeoutMixin):
    """
    A client of upsd.

    @ivar factory: provides C{engine}, C{idle_timeout}, C{max_line},
        C{tls_required_for(session)}, C{tls_options()}, C{connection_closed}.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096

    factory: Any
    session: Session

    def __init__(self) -> None:
        self._tokenizer = RequestTokenizer()
        self._close_pending = False
        self._discarding = False
        self._rest = b""
        self._tls_starting = False

    # Connection life.

    def connectionMade(self) -> None:
        # TimeoutMixin's timers run on the factory's clock, not the global
        # reactor, so tests drive them with task.Clock.
        self.callLater = self.factory.clock.callLater
        ip = peer_ip(self.transport.getPeer())
        self.session = Session(ip, is_loopback(ip))
        self.session.tls_required = self.factory.tls_required_for(self.session)
        self.MAX_LENGTH = self.factory.max_line
        self.factory.engine.registry.open(self.session)
        if ITCPTransport.providedBy(self.transport):
            try:
                self.transport.setTcpNoDelay(True)
            except OSError:
                pass
        # Back-pressure: stop reading a client whose replies are not read.
        self.transport.registerProducer(self, True)
        self.setTimeout(self.factory.idle_timeout or None)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        self.factory.engine.registry.close(self.session)
        self.factory.connection_closed(self)

    def timeoutConnection(self) -> None:
        log.info(
            "Dropping idle client {address} (no request for {seconds} s)",
            address=self.session.address,
            seconds=self.factory.idle_timeout,
        )
        self.transport.abortConnection()

    # Input.

    def dataReceived(self, data: bytes) -> None:
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            self._discarding = False
            data = data[end + 1 :]
            if not data:
                return
        super().dataReceived(data)
        while self._rest and not self.transport.disconnecting and not self._discarding:
            rest, self._rest = self._rest, b""
            super().dataReceived(rest)
        if self._close_pending and not self.transport.disconnecting:
            # NUT closes after LOGOUT unless more requests came in the same
            # read; those keep the connection open.
            self.transport.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        log.warn(
            "Request from {address} longer than {limit} bytes: refused",
            address=self.session.address,
            limit=self.MAX_LENGTH,
        )
        self._tokenizer.reset()
        self.transport.write(NutError.TOO_LONG.line)
        end = line.find(b"\n")
        if end < 0:
            self._discarding = True
        else:
            self._rest = line[end + 1 :]

    def lineReceived(self, line: bytes) -> None:
        self.resetTimeout()
        self._close_pending = False
        result = self._tokenizer.line(line)
        if result is None:
            return  # continued on the next line
        if isinstance(result, ParseError):
            log.debug(
                "Parse error from {address}: {reason}",
                address=self.session.address,
                reason=result.reason,
            )
            self.transport.write(NutError.INVALID_ARGUMENT.line)
            return
        request = parse_request(result)
        reply, action = self.factory.engine.handle(self.session, request)
        self.transport.write(reply)
        if action is Action.CLOSE:
            self._close_pending = True
        elif action is Action.START_TLS:
            self._start_tls()

    # TLS.

    def _start_tls(self) -> None:
        """
        Reply already written; now switch the transport and drop whatever
        plaintext followed the STARTTLS line.
        """
        self.transport.startTLS(self.factory.tls_options())
        dropped = self.clearLineBuffer()
        self._rest = b""
        self._tokenizer.reset()
        self.session.tls = True
        if dropped:
            log.warn(
                "Client {address} pipelined {n} plaintext bytes after STARTTLS:"
                " discarded and disconnected",
                address=self.session.address,
                n=len(dropped),
            )
            self.transport.abortConnection()
