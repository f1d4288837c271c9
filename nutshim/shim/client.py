# -*- test-case-name: nutshim.test.test_shim -*-
"""
The Management Daemon shim (RFC 9271 Appendix D.1): a local port for a
legacy upsmon (or upsc, PyNUT...) that reaches a remote server shim (or a
TLS-capable upsd) over STARTTLS on port 401.

Why each rule:

 - Every legacy connection gets its own remote connection, opened when it
   arrives: a remote that is down costs that client an error, never the
   shim its life (the published shim exited), and the next connection
   simply tries again.
 - The remote must accept C{STARTTLS} -- C{OK STARTTLS} (NUT), or the bare
   C{OK} of RFC 9271 Appendix D.1.1 (the published upsdTLS.py) -- and its
   certificate is
   verified (CA and name, or a SHA-256 pin) during the handshake; then a
   version query (C{PROTVER}, C{NETVER} for older servers) must be
   answered I{over TLS}, because a failed handshake cannot be reported in
   plaintext.  Only then is anything of the legacy client's sent -- its
   USERNAME and PASSWORD included.  Until then its requests wait in a
   bounded queue.
 - A legacy client's own C{STARTTLS} is answered
   C{ERR FEATURE-NOT-CONFIGURED} (RFC 9271 Appendix D.1): the link to the
   remote is already encrypted, and NUT clients then go on in plaintext on
   the loopback connection.
 - When the remote cannot be used, each waiting request is answered
   C{ERR DRIVER-NOT-CONNECTED} and the client disconnected, and the log
   says why (refused, timed out, certificate not trusted, pin mismatch,
   STARTTLS refused).
"""

from __future__ import annotations

import enum
from typing import Any, Dict, FrozenSet, Optional, Sequence

from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from nutshim.pki._certs import fingerprint_sha256, name_to_text
from nutshim.protocol import NutError
from nutshim.protocol.starttls import Classified, Kind, starttls_accepted
from nutshim.shim.factory import RelayFactory
from nutshim.shim._transport import nodelay
from nutshim.shim.relay import Front
from nutshim.tls import negotiated

__all__ = ["ClientShimFactory", "LegacyClientProtocol", "RemoteProtocol", "Stage"]

log = Logger()


class Stage(enum.Enum):
    """
    How far a remote connection has got; the value is the word the log uses.
    """

    STARTTLS = "starttls"
    HANDSHAKE = "handshake"
    VERSION = "version"
    UP = "up"
    FAILED = "failed"


_TRANSITIONS: Dict[Stage, FrozenSet[Stage]] = {
    Stage.STARTTLS: frozenset((Stage.HANDSHAKE, Stage.FAILED)),
    Stage.HANDSHAKE: frozenset((Stage.VERSION, Stage.UP, Stage.FAILED)),
    Stage.VERSION: frozenset((Stage.UP, Stage.FAILED)),
    Stage.UP: frozenset(),
    Stage.FAILED: frozenset(),
}

_UNKNOWN_COMMAND = NutError.UNKNOWN_COMMAND.line.rstrip(b"\n")


def _ssl_text(error: BaseException) -> str:
    parts = []
    args = error.args[0] if error.args else None
    if isinstance(args, list):
        parts = [str(entry[-1]) if isinstance(entry, tuple) else str(entry) for entry in args]
    return "; ".join(p for p in parts if p) or str(error) or type(error).__name__


def describe_remote_failure(reason: Optional[Failure], options: Any, stage: Stage) -> str:
    """
    Why a remote connection could not be used, in an administrator's words.

    @param reason: what the connection was lost with.
    @param options: the client TLS connection creator (its C{mismatch}
        names a wrong pin).
    @param stage: how far it got.
    """
    error = reason.value if reason is not None else None
    mismatch = getattr(options, "mismatch", None)
    if isinstance(error, (VerificationError, CertificateError)):
        wanted = []
        for mismatch in getattr(error, "errors", ()):
            ident = getattr(mismatch, "mismatched_id", None)
            name = getattr(ident, "hostname", None) or getattr(ident, "ip", None)
            if name is not None:
                wanted.append(name.decode() if isinstance(name, bytes) else str(name))
        return (
            f"server certificate not for {' / '.join(wanted) or 'this host'}: issued by the"
            " right CA for other names (connect by a name or address it has, or --server-name)"
        )
    if isinstance(error, SSL.Error):
        text = _ssl_text(error)
        if mismatch is not None and "certificate verify failed" in text:
            return (
                f"server certificate {mismatch.actual} does not match --pin"
                f" {mismatch.expected} [OpenSSL: {text}]"
            )
        if "certificate verify failed" in text:
            return (
                "server certificate not trusted: not issued by --cafile's CA, expired,"
                f" or not for this host name/address [OpenSSL: {text}]"
            )
        if "alert" in text:
            return f"the server rejected the handshake (client certificate? TLS version?) [OpenSSL: {text}]"
        return f"TLS handshake failed [OpenSSL: {text}]"
    if stage is Stage.STARTTLS:
        return "the server closed the connection before answering STARTTLS"
    if stage is Stage.HANDSHAKE:
        return "the server closed the connection during the TLS handshake"
    return "the server closed the connection" + (
        f" ({reason.getErrorMessage()})" if reason is not None else ""
    )


@implementer(IHandshakeListener)
class RemoteProtocol(LineReceiver):
    """
    The connection to the remote: STARTTLS, handshake and version check in
    line mode, then raw bytes to the legacy client.

    @ivar stage: its L{Stage}.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096
    transport: Any
    lost = False

    def __init__(self, front: "LegacyClientProtocol") -> None:
        self.front = front
        self.stage = Stage.STARTTLS
        self._why: Optional[str] = None
        self._asked = b"PROTVER"
        self._deadline: Optional[IDelayedCall] = None

    def connectionMade(self) -> None:
        factory = self.front.factory
        self._deadline = factory.clock.callLater(factory.handshake_timeout, self._too_slow)
        nodelay(self.transport)
        self.transport.write(b"STARTTLS\n")

    def _too_slow(self) -> None:
        self._deadline = None
        self._abort(f"no usable TLS session within {self.front.factory.handshake_timeout} s"
                    f" (stuck at {self.stage.value})")

    def _abort(self, why: str) -> None:
        if self._why is None:
            self._why = why
        self._move(Stage.FAILED)
        self.transport.abortConnection()

    def _move(self, stage: Stage) -> bool:
        """
        Go to C{stage} if the transition table allows it from here.
        """
        if stage not in _TRANSITIONS[self.stage]:
            return False
        self.stage = stage
        return True

    def lineReceived(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if self.stage is Stage.STARTTLS:
            if not starttls_accepted(line):
                self._abort(f"the server refused STARTTLS: {line.decode('ascii', 'replace')!r}")
                return
            if self.clearLineBuffer():
                self._abort(f"the server sent plaintext after {line.decode('ascii', 'replace')}")
                return
            self._move(Stage.HANDSHAKE)
            self.transport.startTLS(self.front.factory.tls_options)
            # Written into TLS: sent once the handshake is done.
            self.transport.write(self._asked + b"\n")
        elif self.stage in (Stage.HANDSHAKE, Stage.VERSION):
            if line == _UNKNOWN_COMMAND and self._asked == b"PROTVER":
                self._asked = b"NETVER"  # NUT before 2.8.0
                self.transport.write(b"NETVER\n")
                return
            # Any reply that came through TLS proves the session works.
            self._confirmed(line)

    def handshakeCompleted(self) -> None:
        """
        L{IHandshakeListener}: the certificate was accepted; wait for the
        version reply.
        """
        self._move(Stage.VERSION)

    def _confirmed(self, version: bytes) -> None:
        timer, self._deadline = self._deadline, None
        if timer is not None and timer.active():
            timer.cancel()
        self._move(Stage.UP)
        self.version = version.decode("ascii", "replace")
        self.setRawMode()
        self.front.upstream_ready(self)

    def rawDataReceived(self, data: bytes) -> None:
        self.front.upstream_data(data)

    def describe_server(self) -> str:
        """
        The server certificate and the negotiated TLS, for the log.
        """
        try:
            cert = self.transport.getPeerCertificate().to_cryptography()
            who = f"{name_to_text(cert.subject)} {fingerprint_sha256(cert)}"
        except Exception:
            who = "certificate unknown"
        return f"{negotiated(self.transport)}, server {who}, protocol {self.version}"

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = True
        timer, self._deadline = self._deadline, None
        if timer is not None and timer.active():
            timer.cancel()
        if self.stage is Stage.UP:
            self.front.upstream_lost(reason.getErrorMessage() if reason is not None else "closed")
            return
        why = self._why or describe_remote_failure(
            reason, self.front.factory.tls_options, self.stage
        )
        self._move(Stage.FAILED)
        self.front.remote_failed(why)


class LegacyClientProtocol(Front):
    """
    A legacy client of the client shim (plaintext, on the loopback).
    """

    factory: "ClientShimFactory"

    def connectionMade(self) -> None:
        super().connectionMade()
        self.front_ready()

    def intercept(self, request: Classified) -> Optional[bytes]:
        if request.kind is Kind.STARTTLS:
            return NutError.FEATURE_NOT_CONFIGURED.line
        return None

    def remote_failed(self, why: str) -> None:
        """
        The remote could not be used at all: say why, fail the client.
        """
        if self._gone is None and not self._lost:
            log.warn(
                "Remote {remote} unusable for {client}: {why}",
                remote=self.factory.upstream_name,
                client=self.address,
                why=why,
            )
        self.upstream_lost(why)

    def _connect_failed(self, failure: Failure) -> None:
        if not self._lost and self._gone is None:
            log.warn(
                "Remote {remote} unreachable for {client}: {why}",
                remote=self.factory.upstream_name,
                client=self.address,
                why=failure.getErrorMessage(),
            )
        super()._connect_failed(failure)

    def relay_started(self) -> None:
        back = self.back
        log.info(
            "{client} relayed to {remote} ({server})",
            client=self.address,
            remote=self.factory.upstream_name,
            server=back.describe_server() if back is not None else "?",
        )


class ClientShimFactory(RelayFactory):
    """
    The listeners of one remote of the client shim.

    @ivar tls_options: the client TLS connection creator (from
        L{nutshim.client.tls.client_tls_options}); replaced by a reload,
        used by every later connection to the remote.
    @ivar remote_name: the remote's name (C{main}, a C{--remote} target, a
        C{[remote NAME]}), to match it on a reload.
    @ivar listen: its listener endpoints, as configured.
    """

    protocol = LegacyClientProtocol
    #: The remote is a server shim (backlog 1024), maybe far away: more
    #: connects in flight than upsd's backlog of 16 allows.
    max_connecting = 64
    #: Server shims and nut-upsd never block on a full socket: a legacy
    #: client that stops reading holds its remote at once.
    upstream_blocks = False

    def __init__(
        self,
        *args: Any,
        tls_options: Any,
        remote_name: str = "main",
        listen: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tls_options = tls_options
        self.remote_name = remote_name
        self.listen = list(listen)

    def back_protocol(self, front: Any) -> RemoteProtocol:
        return RemoteProtocol(front)
