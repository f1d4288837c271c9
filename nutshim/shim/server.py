# -*- test-case-name: nutshim.test.test_shim -*-
"""
The Attachment Daemon shim (RFC 9271 Appendix D.1): TLS on port 401 in
front of a legacy upsd that has none.

Why each rule:

 - Nothing but C{STARTTLS} is served in plaintext (C{ERR TLS-NOT-ENABLED}):
   the shim exists so that credentials and commands never cross the network
   in clear, and RFC 9271's draft says STARTTLS "must be issued, accepted
   and applied" on this port.
 - C{STARTTLS} is answered C{OK STARTTLS} exactly (NUT's C client library
   and PyNUT match that prefix; the published shim's bare C{OK} fails them)
   and is never forwarded: the legacy upsd behind would refuse it.
 - Plaintext pipelined behind C{STARTTLS} is a protocol violation (the
   CVE-2011-0411 class): the connection is dropped and nothing is relayed.
 - TLS must be up within C{handshake_timeout} seconds of the connection
   being accepted, so a silent client cannot hold a connection (and an
   upstream connection) open.
 - A second C{STARTTLS} inside TLS is answered C{ERR TLS-ALREADY-ENABLED}
   by the shim, in order with upsd's replies.
 - Each client gets its own upstream connection, opened when it arrives.
   upsd sees every client as 127.0.0.1 with some port, so the shim logs the
   client's real address and certificate next to that port: an
   administrator can match upsd's log lines to real clients.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.interfaces import IDelayedCall, IHandshakeListener
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from nutshim.protocol import NutError
from nutshim.shim._address import describe_address
from nutshim.shim._framing import first_word
from nutshim.shim.factory import RelayFactory
from nutshim.shim._transport import close
from nutshim.shim.relay import Front
from nutshim.tls import (
    PeerIdentity,
    describe_handshake_failure,
    negotiated,
    peer_identity,
)

__all__ = ["ServerShimFactory", "ServerShimProtocol"]

log = Logger()

_STARTTLS = b"STARTTLS"


@implementer(IHandshakeListener)
class ServerShimProtocol(Front):
    """
    One client of the server shim.

    @ivar tls: L{None} (plaintext), C{"handshaking"}, C{"up"} or
        C{"failed"}.
    @ivar peer: the verified client certificate, once TLS is up.
    """

    factory: "ServerShimFactory"

    def __init__(self) -> None:
        super().__init__()
        self.tls: Optional[str] = None
        self.peer: Optional[PeerIdentity] = None
        self._deadline: Optional[IDelayedCall] = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._deadline = self.factory.clock.callLater(
            self.factory.handshake_timeout, self._too_slow
        )

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._cancel_deadline()
        if self.tls == "handshaking":
            log.warn(
                "TLS handshake with {client} failed: {why}",
                client=self.address,
                why=describe_handshake_failure(
                    reason, self.transport, self.factory.tls_options.minimum_version
                ),
            )
        super().connectionLost(reason)

    def _cancel_deadline(self) -> None:
        timer, self._deadline = self._deadline, None
        if timer is not None and timer.active():
            timer.cancel()

    def _too_slow(self) -> None:
        self._deadline = None
        log.warn(
            "{client}: TLS not up {seconds} s after connecting ({state}): disconnected",
            client=self.address,
            seconds=self.factory.handshake_timeout,
            state="no STARTTLS" if self.tls is None else "handshake unfinished",
        )
        if self.tls == "handshaking":
            self.tls = "failed"
        self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        """
        Half-closed in plaintext: there is nothing to answer but errors.
        """
        if self.tls is None:
            close(self.transport)
        else:
            super().readConnectionLost()

    # Requests.

    def lineReceived(self, line: bytes) -> None:
        if self.tls is not None:
            super().lineReceived(line)
            return
        if first_word(line) != _STARTTLS:
            self.transport.write(NutError.TLS_NOT_ENABLED.line)
        elif line.split()[1:]:
            self.transport.write(NutError.INVALID_ARGUMENT.line)
        else:
            self._start_tls()

    def intercept(self, line: bytes) -> Optional[bytes]:
        if first_word(line) == _STARTTLS:
            return NutError.TLS_ALREADY_ENABLED.line
        return None

    def _start_tls(self) -> None:
        self.transport.write(b"OK STARTTLS\n")
        dropped = self.clearLineBuffer()
        if dropped:
            self.tls = "failed"
            log.warn(
                "{client} pipelined {n} plaintext bytes after STARTTLS:"
                " discarded and disconnected",
                client=self.address,
                n=len(dropped),
            )
            self.transport.abortConnection()
            return
        self.tls = "handshaking"
        try:
            self.transport.startTLS(self.factory.tls_options)
        except Exception:
            self.tls = "failed"
            log.failure("Cannot start TLS for {client}", client=self.address)
            self.transport.abortConnection()

    def handshakeCompleted(self) -> None:
        """
        L{IHandshakeListener}: TLS is up; requests may flow to upsd.
        """
        if self.tls != "handshaking":
            return
        self.tls = "up"
        self._cancel_deadline()
        self.peer = peer_identity(self.transport)
        self.front_ready()

    def relay_started(self) -> None:
        local = describe_address(self.back.transport.getHost()) if self.back else "?"
        log.info(
            "{client} ({who}, {tls}) relayed to upsd {upstream} from {local}",
            client=self.address,
            who=self.who(),
            tls=negotiated(self.transport),
            upstream=self.factory.upstream_name,
            local=local,
        )

    def who(self) -> str:
        """
        The client's certificate identity in words, for the log.
        """
        if self.peer is None:
            return "no client certificate"
        return f"certificate {self.peer.subject} {self.peer.fingerprint}"

    def upstream_lost(self, why: str) -> None:
        if not self._relaying and self._gone is None and not self._lost:
            log.warn(
                "upsd {upstream} unreachable for {client}: {why}",
                upstream=self.factory.upstream_name,
                client=self.address,
                why=why,
            )
        super().upstream_lost(why)


class ServerShimFactory(RelayFactory):
    """
    A listener of the server shim.

    @ivar tls_options: the server's TLS settings (a
        L{nutshim.tls.ServerTLSOptions}).
    """

    protocol = ServerShimProtocol

    def __init__(self, *args: Any, tls_options: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tls_options = tls_options
