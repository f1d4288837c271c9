# -*- test-case-name: nutshim.test.test_shim -*-
"""
The Attachment Daemon shim (RFC 9271 Appendix D.1): TLS on port 401 in
front of a legacy upsd that has none.

Why each rule:

 - Nothing but C{STARTTLS} is served in plaintext (C{ERR TLS-NOT-ENABLED};
   a line NUT's tokenizer rejects gets C{ERR INVALID-ARGUMENT}, as from
   nut-upsd): the shim exists so that credentials and commands never cross
   the network in clear, and RFC 9271's draft says STARTTLS "must be
   issued, accepted and applied" on this port.
 - What counts as C{STARTTLS} is nut-upsd's classification
   (L{nutshim.protocol.starttls}), so C{STARTTLS extra}, a comment, quotes
   or a continued line get the same answer from the shim and from
   nut-upsd.
 - C{STARTTLS} is answered C{OK STARTTLS} exactly (NUT's C client library
   and PyNUT match that prefix; the published shim's bare C{OK} fails them)
   and is never forwarded: the legacy upsd behind would refuse it.
 - Plaintext pipelined behind C{STARTTLS} is a protocol violation (the
   CVE-2011-0411 class): the connection is dropped and nothing is relayed.
 - The upstream (upsd) connection is opened only once the TLS handshake
   -- and with C{--require-client-cert} the certificate check -- has
   succeeded: upsd has few connections to give (a listen backlog of 16,
   C{MAXCONN}), and strangers that connect and say nothing, or only
   plaintext, must not get any of them.
 - Connections still without TLS are bounded on their own
   (L{ServerShimFactory.max_pending_tls}, the oldest plaintext one dropped
   first, then the oldest handshake) and each has C{handshake_timeout}
   seconds to get TLS up, so a flood of silent connections neither holds
   upsd connections nor keeps a client with a certificate from being
   served at once.
 - A second C{STARTTLS} inside TLS is answered C{ERR TLS-ALREADY-ENABLED}
   by the shim, in order with upsd's replies.
 - upsd sees every client as 127.0.0.1 with some port, so the shim logs the
   client's real address and certificate next to that port: an
   administrator can match upsd's log lines to real clients.
"""

from __future__ import annotations

import enum
from typing import Any, Dict, FrozenSet, Optional

from twisted.internet.interfaces import IDelayedCall, IHandshakeListener
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from nutshim.protocol import NutError
from nutshim.protocol.starttls import Classified, Kind, RequestClassifier
from nutshim.shim._address import describe_address
from nutshim.shim.factory import RelayFactory
from nutshim.shim.relay import Front
from nutshim.tls import (
    PeerIdentity,
    describe_handshake_failure,
    negotiated,
    peer_identity,
)

__all__ = ["ServerShimFactory", "ServerShimProtocol", "TLSState"]

log = Logger()

#: Seconds between two log lines about dropped pre-TLS connections.
DROP_LOG_PERIOD = 10.0


class TLSState(enum.Enum):
    """
    Where a server shim connection is with TLS.
    """

    PLAINTEXT = "no STARTTLS"
    HANDSHAKING = "handshake unfinished"
    UP = "up"
    FAILED = "failed"


_TRANSITIONS: Dict[TLSState, FrozenSet[TLSState]] = {
    TLSState.PLAINTEXT: frozenset((TLSState.HANDSHAKING, TLSState.FAILED)),
    TLSState.HANDSHAKING: frozenset((TLSState.UP, TLSState.FAILED)),
    TLSState.UP: frozenset(),
    TLSState.FAILED: frozenset(),
}


@implementer(IHandshakeListener)
class ServerShimProtocol(Front):
    """
    One client of the server shim.

    @ivar tls: its L{TLSState}.
    @ivar peer: the verified client certificate, once TLS is up.
    """

    factory: "ServerShimFactory"
    connect_at_once = False
    #: The answer to STARTTLS (RFC 9271 Appendix D.1.1 has a bare C{OK};
    #: NUT's clients need this).
    starttls_reply = b"OK STARTTLS\n"

    def __init__(self) -> None:
        super().__init__()
        self.tls = TLSState.PLAINTEXT
        self.peer: Optional[PeerIdentity] = None
        self._deadline: Optional[IDelayedCall] = None
        self._plaintext = RequestClassifier()

    def _move(self, state: TLSState) -> bool:
        """
        Go to C{state} if the transition table allows it from here.
        """
        if state not in _TRANSITIONS[self.tls]:
            return False
        self.tls = state
        if state is not TLSState.HANDSHAKING:
            self.factory.settled(self)
        else:
            self.factory.handshaking(self)
        return True

    def connectionMade(self) -> None:
        super().connectionMade()
        self._deadline = self.factory.clock.callLater(
            self.factory.handshake_timeout, self._too_slow
        )
        self.factory.admit(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._cancel_deadline()
        self.factory.settled(self)
        if self.tls is TLSState.HANDSHAKING:
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
            state=self.tls.value,
        )
        self._move(TLSState.FAILED)
        self.transport.abortConnection()

    def evict(self) -> None:
        """
        Dropped to make room (L{ServerShimFactory.max_pending_tls}).
        """
        self._cancel_deadline()
        self._move(TLSState.FAILED)
        self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        """
        Half-closed in plaintext: there is nothing to answer but errors.
        """
        if self.tls is TLSState.PLAINTEXT:
            self.shut()
        else:
            super().readConnectionLost()

    # Requests.

    def lineReceived(self, line: bytes) -> None:
        if self.tls is not TLSState.PLAINTEXT:
            super().lineReceived(line)
            return
        kind = self._plaintext.line(line).kind
        if kind is Kind.STARTTLS:
            self._start_tls()
        elif kind is Kind.INVALID:
            self.transport.write(NutError.INVALID_ARGUMENT.line)
        elif kind is not Kind.INCOMPLETE:
            self.transport.write(NutError.TLS_NOT_ENABLED.line)

    def intercept(self, request: Classified) -> Optional[bytes]:
        if request.kind is Kind.STARTTLS:
            return NutError.TLS_ALREADY_ENABLED.line
        return None

    def _start_tls(self) -> None:
        self.transport.write(self.starttls_reply)
        dropped = self.clearLineBuffer()
        if dropped:
            self._move(TLSState.FAILED)
            log.warn(
                "{client} pipelined {n} plaintext bytes after STARTTLS:"
                " discarded and disconnected",
                client=self.address,
                n=len(dropped),
            )
            self.transport.abortConnection()
            return
        self._move(TLSState.HANDSHAKING)
        try:
            self.transport.startTLS(self.factory.tls_options)
        except Exception:
            self._move(TLSState.FAILED)
            log.failure("Cannot start TLS for {client}", client=self.address)
            self.transport.abortConnection()

    def handshakeCompleted(self) -> None:
        """
        L{IHandshakeListener}: TLS is up (and the client certificate
        verified, when one is required): now, and only now, upsd is
        connected to and requests may flow.
        """
        if not self._move(TLSState.UP):
            return
        self._cancel_deadline()
        self.peer = peer_identity(self.transport)
        self.open_upstream()
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
        L{nutshim.tls.ServerTLSOptions}); replaced by a reload, used by
        every later STARTTLS.
    @ivar max_pending_tls: connections without TLS yet (plaintext or
        handshaking) kept at most; a new one beyond that drops the oldest
        plaintext connection, else the oldest handshake.
    """

    protocol = ServerShimProtocol

    def __init__(
        self, *args: Any, tls_options: Any, max_pending_tls: int = 1024, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tls_options = tls_options
        self.max_pending_tls = max(1, max_pending_tls)
        #: Insertion-ordered: the oldest first.
        self._plaintext: Dict[ServerShimProtocol, None] = {}
        self._handshaking: Dict[ServerShimProtocol, None] = {}
        self._dropped = 0
        self._drop_log: Optional[IDelayedCall] = None

    @property
    def pending_tls(self) -> int:
        """Connections without TLS yet."""
        return len(self._plaintext) + len(self._handshaking)

    def admit(self, proto: ServerShimProtocol) -> None:
        """
        A new connection, in plaintext: make room for it if needed.
        """
        self._plaintext[proto] = None
        while self.pending_tls > self.max_pending_tls:
            pool = self._plaintext if len(self._plaintext) > 1 else self._handshaking
            if not pool:
                pool = self._plaintext
            victim = next(iter(pool))
            if victim is proto:
                break
            del pool[victim]
            self._note_drop(victim)
            victim.evict()

    def handshaking(self, proto: ServerShimProtocol) -> None:
        """C{proto} accepted STARTTLS."""
        if proto in self._plaintext:
            del self._plaintext[proto]
            self._handshaking[proto] = None

    def settled(self, proto: ServerShimProtocol) -> None:
        """C{proto} has TLS, failed, or is gone."""
        self._plaintext.pop(proto, None)
        self._handshaking.pop(proto, None)

    def _note_drop(self, victim: ServerShimProtocol) -> None:
        # One line when it starts, then one every DROP_LOG_PERIOD while it
        # goes on: a flood must not flood the log too.
        if self._drop_log is None:
            log.warn(
                "More than {limit} connections without TLS: dropped the oldest,"
                " {client} ({state}); more are counted every {period:.0f} s",
                limit=self.max_pending_tls,
                client=victim.address,
                state=victim.tls.value,
                period=DROP_LOG_PERIOD,
            )
            self._drop_log = self.clock.callLater(DROP_LOG_PERIOD, self._log_drops)
        else:
            self._dropped += 1

    def _log_drops(self) -> None:
        self._drop_log = None
        if not self._dropped:
            return
        log.warn(
            "Dropped {n} more connections without TLS in {period:.0f} s"
            " (more than {limit} waiting)",
            n=self._dropped,
            period=DROP_LOG_PERIOD,
            limit=self.max_pending_tls,
        )
        self._dropped = 0
        self._drop_log = self.clock.callLater(DROP_LOG_PERIOD, self._log_drops)
