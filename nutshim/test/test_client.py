# -*- test-case-name: nutshim.test.test_client -*-
"""
Tests for L{nutshim.client}: the protocol, TLS, connection helpers and CLI.

No sockets, no real time: the protocol is driven through C{StringTransport}
or an in-memory pipe whose transports can start real TLS (OpenSSL memory
BIOs), with certificates made in memory and time from L{Clock}.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto
from twisted.internet import error as netError
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import (
    IHostnameResolver,
    IReactorPluggableNameResolver,
    ITLSTransport,
)
from twisted.internet.protocol import Factory
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    trustRootFromCertificates,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from nutshim.client import _tools as T
from nutshim.client import cli
from nutshim.client.connect import authenticate, connect, negotiate_tls
from nutshim.client.errors import (
    NUTError,
    PinMismatch,
    PlaintextCredentialsRefused,
    ProtocolError,
    RequestTimeout,
    StartTLSUnavailable,
    TLSTrustNotConfigured,
    upscli_message,
)
from nutshim.client.protocol import NUTClientProtocol
from nutshim.client.service import NUTClientService
from nutshim.client.tls import (
    TLSConfigError,
    TLSSettings,
    client_tls_options,
    format_pin,
    parse_pin,
)
from nutshim.protocol import NutError

# ---------------------------------------------------------------------------
# Certificates, made in memory.


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "Test CA") -> Tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca: Tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str,
              sans: Sequence[x509.GeneralName] = (), client: bool = False
              ) -> Tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                     False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def server_sans() -> List[x509.GeneralName]:
    import ipaddress

    return [x509.DNSName("nut.example"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


def pem(*items: Any) -> bytes:
    out = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            out += item.public_bytes(serialization.Encoding.PEM)
        else:
            out += item.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    return out


def server_options(cert: x509.Certificate, key: Any, client_ca: Optional[x509.Certificate] = None,
                   max_tls: Optional[Any] = None) -> CertificateOptions:
    extra: Dict[str, Any] = {}
    if client_ca is not None:
        extra["trustRoot"] = trustRootFromCertificates(
            [Certificate(crypto.X509.from_cryptography(client_ca))])
    if max_tls is not None:
        extra["lowerMaximumSecurityTo"] = max_tls
    return CertificateOptions(privateKey=crypto.PKey.from_cryptography_key(key),
                              certificate=crypto.X509.from_cryptography(cert), **extra)


# ---------------------------------------------------------------------------
# An in-memory connection whose transports can start real TLS.


class _Bypass:
    """The raw side of a L{MemoryTransport}, for its TLS layer."""

    def __init__(self, owner: "MemoryTransport") -> None:
        self.owner = owner
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        self.owner.raw_write(data)

    def writeSequence(self, seq: Sequence[bytes]) -> None:
        self.owner.raw_write(b"".join(seq))

    def loseConnection(self) -> None:
        self.owner.closing = True

    def abortConnection(self) -> None:
        self.owner.aborted = True

    def getPeer(self) -> IPv4Address:
        return self.owner.getPeer()

    def getHost(self) -> IPv4Address:
        return self.owner.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


@implementer(ITLSTransport)
class MemoryTransport:  # type: ignore[misc]
    """One end of a L{Pipe}."""

    def __init__(self, protocol: Any, is_client: bool) -> None:
        self.protocol = protocol
        self.is_client = is_client
        self.tls: Optional[TLSMemoryBIOProtocol] = None
        self.outgoing: List[bytes] = []
        self.closing = False
        self.aborted = False
        self.closed = False
        self.disconnecting = False

    def raw_write(self, data: bytes) -> None:
        if not self.closed and not self.aborted:
            self.outgoing.append(data)

    def write(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.write(data)
        else:
            self.raw_write(data)

    def writeSequence(self, seq: Iterable[bytes]) -> None:
        self.write(b"".join(seq))

    def loseConnection(self) -> None:
        self.disconnecting = True
        if self.tls is not None:
            self.tls.loseConnection()
        else:
            self.closing = True

    def abortConnection(self) -> None:
        self.disconnecting = True
        if self.tls is not None:
            self.tls.abortConnection()
        self.aborted = True

    def startTLS(self, options: Any, normal: bool = True) -> None:
        factory = TLSMemoryBIOFactory(options, self.is_client, Factory(), clock=Clock())
        self.tls = TLSMemoryBIOProtocol(factory, self.protocol, _connectWrapped=False)
        self.tls.makeConnection(_Bypass(self))

    def deliver(self, data: bytes) -> None:
        (self.tls or self.protocol).dataReceived(data)

    def lost(self, reason: Failure) -> None:
        self.closed = True
        (self.tls or self.protocol).connectionLost(reason)

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 3493 if self.is_client else 40000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 40000 if self.is_client else 3493)

    def getPeerCertificate(self) -> Any:
        assert self.tls is not None
        return self.tls.getPeerCertificate()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


class Pipe:
    """Two L{MemoryTransport}s joined; L{flush} moves bytes until quiet."""

    def __init__(self, client: Any, server: Any) -> None:
        self.client = MemoryTransport(client, True)
        self.server = MemoryTransport(server, False)
        server.makeConnection(self.server)
        client.makeConnection(self.client)

    def flush(self) -> None:
        for _ in range(200):
            moved = False
            for src, dst in ((self.client, self.server), (self.server, self.client)):
                if src.outgoing and not dst.closed:
                    data = b"".join(src.outgoing)
                    del src.outgoing[:]
                    dst.deliver(data)
                    moved = True
            for end in (self.client, self.server):
                if (end.closing or end.aborted) and not end.outgoing and not end.closed:
                    reason = netError.ConnectionAborted() if end.aborted else netError.ConnectionDone()
                    other = self.server if end is self.client else self.client
                    end.lost(Failure(reason))
                    if not other.closed:
                        other.lost(Failure(netError.ConnectionDone()))
                    moved = True
            if not moved:
                return


class FakeServer(LineReceiver):
    """
    A scripted NUT server: request line to reply bytes (a list gives
    successive replies); unknown requests get C{ERR UNKNOWN-COMMAND}.
    """

    delimiter = b"\n"

    def __init__(self, replies: Optional[Dict[str, Any]] = None, tls: Any = None,
                 inject: bytes = b"") -> None:
        self.replies: Dict[str, Any] = dict(replies or {})
        self.tls = tls
        self.inject = inject
        self.received: List[str] = []

    def lineReceived(self, line: bytes) -> None:
        text = line.decode()
        self.received.append(text)
        assert self.transport is not None
        if text == "STARTTLS":
            if self.tls is None:
                self.transport.write(b"ERR FEATURE-NOT-CONFIGURED\n")
                return
            self.transport.write(b"OK STARTTLS\n" + self.inject)
            self.transport.startTLS(self.tls)  # type: ignore[attr-defined]
            self.clearLineBuffer()
            return
        reply = self.replies.get(text, b"ERR UNKNOWN-COMMAND\n")
        if isinstance(reply, list):
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        self.transport.write(reply)
        if text == "LOGOUT":
            self.transport.loseConnection()


class SilentServer(FakeServer):
    """A server that reads requests and never answers."""

    def lineReceived(self, line: bytes) -> None:
        self.received.append(line.decode())


def pipe(replies: Optional[Dict[str, Any]] = None, tls: Any = None, inject: bytes = b"",
         clock: Optional[Clock] = None, require_tls: bool = False
         ) -> Tuple[NUTClientProtocol, FakeServer, Pipe]:
    client = NUTClientProtocol(clock or Clock(), timeout=30, require_tls=require_tls)
    server = FakeServer(replies, tls, inject)
    return client, server, Pipe(client, server)


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):  # type: ignore[misc]
    """A StringTransport that records startTLS instead of doing it."""

    def __init__(self) -> None:
        super().__init__()
        self.tls_options: Any = None
        self.tls_at: Optional[int] = None

    def startTLS(self, options: Any, normal: bool = True) -> None:
        self.tls_options = options
        self.tls_at = len(self.value())


def connected(require_tls: bool = False, timeout: Optional[float] = 30
              ) -> Tuple[NUTClientProtocol, TLSStringTransport, Clock]:
    clock = Clock()
    proto = NUTClientProtocol(clock, timeout=timeout, require_tls=require_tls)
    transport = TLSStringTransport()
    proto.makeConnection(transport)
    return proto, transport, clock


def lines(transport: StringTransport) -> List[str]:
    return transport.value().decode().splitlines()


# ---------------------------------------------------------------------------
# The protocol.


class RequestReplyTests(SynchronousTestCase):
    """
    Requests are written at once, replies matched in order and parsed.
    """

    def test_pipelined_replies_in_order(self) -> None:
        """
        Three requests go out before any reply; the replies, arriving in one
        chunk, resolve them in order.
        """
        proto, transport, _ = connected()
        var = proto.get_var("ups", "ups.status")
        ver = proto.ver()
        upses = proto.list_ups()
        self.assertEqual(lines(transport), ["GET VAR ups ups.status", "VER", "LIST UPS"])
        proto.dataReceived(
            b'VAR ups ups.status "OL CHRG"\n'
            b"Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/\n"
            b'BEGIN LIST UPS\nUPS ups "Crash \\"Dummy\\""\nUPS b "x"\nEND LIST UPS\n'
        )
        self.assertEqual(self.successResultOf(var), "OL CHRG")
        self.assertEqual(self.successResultOf(ver),
                         "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/")
        result = self.successResultOf(upses)
        self.assertEqual(result, {"ups": 'Crash "Dummy"', "b": "x"})
        self.assertEqual(list(result), ["ups", "b"])

    def test_list_split_anywhere(self) -> None:
        """
        A LIST reply fed one byte at a time (with CRLF endings) assembles to
        the same result, and only at C{END LIST} with the same query.
        """
        proto, transport, _ = connected()
        d = proto.list_var("ups")
        reply = (b'BEGIN LIST VAR ups\r\nVAR ups battery.charge "90"\r\n'
                 b'VAR ups ups.id "a\\#b"\r\nEND LIST VAR ups\r\n')
        for i in range(len(reply) - 1):
            proto.dataReceived(reply[i:i + 1])
        self.assertNoResult(d)
        proto.dataReceived(reply[-1:])
        self.assertEqual(self.successResultOf(d), {"battery.charge": "90", "ups.id": "a#b"})

    @given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
    def test_any_chunking(self, cuts: List[int]) -> None:
        """
        However the reply stream is cut into reads, pipelined requests get
        the same results.
        """
        proto, transport, _ = connected()
        ds = [proto.get_var("u", "ups.id"), proto.list_cmd("u"), proto.get_tracking("X"),
              proto.num_attach("u")]
        stream = (b'VAR u ups.id "a \\\"b\\\" \\#c"\r\nBEGIN LIST CMD u\nCMD u load.off\n'
                  b"END LIST CMD u\nERR UNKNOWN\nNUMATTACH u 4\n")
        position = 0
        for cut in cuts:
            proto.dataReceived(stream[position:position + cut])
            position += cut
        proto.dataReceived(stream[position:])
        self.assertEqual([self.successResultOf(d) for d in ds],  # type: ignore[arg-type]
                         ['a "b" #c', ["load.off"], "ERR UNKNOWN", 4])

    def test_list_queries(self) -> None:
        """
        Each LIST method sends its query and returns its shape.
        """
        proto, transport, _ = connected()
        cmds = proto.list_cmd("u")
        clients = proto.list_client("u")
        enum = proto.list_enum("u", "v")
        rng = proto.list_range("u", "w")
        rw = proto.list_rw("u")
        self.assertEqual(lines(transport), ["LIST CMD u", "LIST CLIENT u", "LIST ENUM u v",
                                            "LIST RANGE u w", "LIST RW u"])
        proto.dataReceived(
            b"BEGIN LIST CMD u\nCMD u load.off\nCMD u beeper.toggle\nEND LIST CMD u\n"
            b"BEGIN LIST CLIENT u\nCLIENT u 127.0.0.1\nCLIENT u ::1\nEND LIST CLIENT u\n"
            b'BEGIN LIST ENUM u v\nENUM u v "H"\nENUM u v "L"\nEND LIST ENUM u v\n'
            b'BEGIN LIST RANGE u w\nRANGE u w "1" "5"\nEND LIST RANGE u w\n'
            b'BEGIN LIST RW u\nRW u ups.id "x"\nEND LIST RW u\n'
        )
        self.assertEqual(self.successResultOf(cmds), ["load.off", "beeper.toggle"])
        self.assertEqual(self.successResultOf(clients), ["127.0.0.1", "::1"])
        self.assertEqual(self.successResultOf(enum), ["H", "L"])
        self.assertEqual(self.successResultOf(rng), [("1", "5")])
        self.assertEqual(self.successResultOf(rw), {"ups.id": "x"})

    def test_get_queries(self) -> None:
        """
        The GET methods send their request and return the value they ask for.
        """
        proto, transport, _ = connected()
        results = [
            proto.get_type("u", "ups.id"), proto.get_desc("u", "ups.id"),
            proto.get_cmddesc("u", "load.off"), proto.get_upsdesc("u"),
            proto.num_attach("u"), proto.get_tracking(), proto.help(), proto.netver(),
        ]
        self.assertEqual(lines(transport), [
            "GET TYPE u ups.id", "GET DESC u ups.id", "GET CMDDESC u load.off",
            "GET UPSDESC u", "GET NUMATTACH u", "GET TRACKING", "HELP", "NETVER"])
        proto.dataReceived(
            b"TYPE u ups.id RW STRING:16\nDESC u ups.id \"UPS system identifier\"\n"
            b'CMDDESC u load.off "Turn off the load immediately"\nUPSDESC u "Unavailable"\n'
            b"NUMATTACH u 2\nON\nCommands: HELP VER\n1.3\n")
        vt = self.successResultOf(results[0])  # type: ignore[arg-type,var-annotated]
        self.assertEqual(vt.flags, ("RW", "STRING:16"))
        self.assertTrue(vt.writable and vt.is_string)
        self.assertEqual(vt.max_length, 16)
        self.assertFalse(vt.is_enum or vt.is_range or vt.is_number)
        self.assertEqual([self.successResultOf(d) for d in results[1:]], [  # type: ignore[arg-type]
            "UPS system identifier", "Turn off the load immediately", "Unavailable", 2,
            True, "Commands: HELP VER", "1.3"])

    def test_server_info_lower_case(self) -> None:
        """
        NUT answers C{GET VAR x SERVER.INFO} with the lower-case name: the
        echo is compared without case.
        """
        proto, transport, _ = connected()
        d = proto.get_var("x", "SERVER.INFO")
        proto.dataReceived(b'VAR x server.info "Network UPS Tools upsd 2.8.0"\n')
        self.assertEqual(self.successResultOf(d), "Network UPS Tools upsd 2.8.0")

    def test_ok_commands(self) -> None:
        """
        LOGIN, FSD, SET TRACKING and credentials resolve on C{OK...};
        PRIMARY returns the grant text.
        """
        proto, transport, _ = connected()
        ds = [proto.username("admin"), proto.password("pass word"), proto.login("u"),
              proto.fsd("u"), proto.set_tracking(True), proto.primary("u")]
        self.assertEqual(lines(transport), [
            "USERNAME admin", 'PASSWORD "pass word"', "LOGIN u", "FSD u",
            "SET TRACKING ON", "PRIMARY u"])
        proto.dataReceived(b"OK\nOK\nOK\nOK FSD-SET\nOK\nOK PRIMARY-GRANTED\n")
        self.assertEqual([self.successResultOf(d) for d in ds],  # type: ignore[arg-type]
                         [None, None, None, None, None, "PRIMARY-GRANTED"])

    def test_set_var_always_quoted(self) -> None:
        """
        SET VAR quotes and escapes the value as upsrw does, and returns the
        tracking id of C{OK TRACKING <id>}.
        """
        proto, transport, _ = connected()
        plain = proto.set_var("u", "ups.id", "abc")
        tricky = proto.set_var("u", "ups.id", 'a "b" #c\\d')
        self.assertEqual(lines(transport), ['SET VAR u ups.id "abc"',
                                            'SET VAR u ups.id "a \\"b\\" \\#c\\\\d"'])
        proto.dataReceived(b"OK\nOK TRACKING 1F2E3D4C-0000-4000-8000-0123456789AB\n")
        self.assertIsNone(self.successResultOf(plain))
        self.assertEqual(self.successResultOf(tricky), "1F2E3D4C-0000-4000-8000-0123456789AB")

    def test_instcmd(self) -> None:
        """
        INSTCMD carries an optional parameter, quoted when it needs it.
        """
        proto, transport, _ = connected()
        a = proto.instcmd("u", "load.off")
        b = proto.instcmd("u", "shutdown.return", "1 2")
        self.assertEqual(lines(transport), ["INSTCMD u load.off", 'INSTCMD u shutdown.return "1 2"'])
        proto.dataReceived(b"OK\nOK TRACKING ABC\n")
        self.assertIsNone(self.successResultOf(a))
        self.assertEqual(self.successResultOf(b), "ABC")

    def test_tracking_results(self) -> None:
        """
        C{GET TRACKING <id>} gives its status line, including the C{ERR}
        statuses; C{FEATURE-NOT-CONFIGURED} (tracking off) is an error.
        """
        proto, transport, _ = connected()
        ds = [proto.get_tracking("X") for _ in range(4)]
        off = proto.get_tracking("X")
        proto.dataReceived(b"PENDING\nSUCCESS\nERR UNKNOWN\nERR INVALID-ARGUMENT\n"
                           b"ERR FEATURE-NOT-CONFIGURED\n")
        self.assertEqual([self.successResultOf(d) for d in ds],
                         ["PENDING", "SUCCESS", "ERR UNKNOWN", "ERR INVALID-ARGUMENT"])
        err = self.failureResultOf(off, NUTError).value
        self.assertIs(err.error, NutError.FEATURE_NOT_CONFIGURED)

    def test_words_checked(self) -> None:
        """
        A newline or non-ASCII character in a word is refused before
        anything is written.
        """
        proto, transport, _ = connected()
        self.assertRaises(ValueError, proto.get_var, "ups", "x\nINSTCMD ups load.off")
        self.assertRaises(ValueError, proto.set_var, "ups", "ups.id", "caf\u00e9")
        self.assertEqual(transport.value(), b"")

    def test_logout_closes(self) -> None:
        """
        LOGOUT resolves on C{OK Goodbye} and then closes the connection.
        """
        proto, transport, _ = connected()
        d = proto.logout()
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"OK Goodbye\n")
        self.assertIsNone(self.successResultOf(d))
        self.assertTrue(transport.disconnecting)


class ErrorTests(SynchronousTestCase):
    """
    C{ERR} replies, protocol violations, timeouts and lost connections.
    """

    def test_err_known(self) -> None:
        """
        C{ERR VAR-NOT-SUPPORTED} fails with L{NUTError} carrying the enum
        member and libupsclient's message; the connection stays usable.
        """
        proto, transport, _ = connected()
        d = proto.get_var("u", "bogus.var")
        after = proto.ver()
        proto.dataReceived(b"ERR VAR-NOT-SUPPORTED\nv\n")
        err = self.failureResultOf(d, NUTError).value
        self.assertIs(err.error, NutError.VAR_NOT_SUPPORTED)
        self.assertEqual(err.name, "VAR-NOT-SUPPORTED")
        self.assertEqual(err.message, "Variable not supported by UPS")
        self.assertEqual(err.line, "ERR VAR-NOT-SUPPORTED")
        self.assertEqual(err.request, "GET VAR u bogus.var")
        self.assertEqual(self.successResultOf(after), "v")

    def test_err_unknown_name(self) -> None:
        """
        An error name nutshim does not know is kept as text, with any extra
        words; NUT's tools call it C{Unknown error}.
        """
        proto, transport, _ = connected()
        d = proto.ver()
        proto.dataReceived(b'ERR SOMETHING-NEW "with detail"\n')
        err = self.failureResultOf(d, NUTError).value
        self.assertEqual(err.error, "SOMETHING-NEW")
        self.assertEqual(err.extra, ("with detail",))
        self.assertEqual(err.message, "Unknown error")

    def test_password_not_in_errors(self) -> None:
        """
        The request recorded on an error never shows the password.
        """
        proto, transport, _ = connected()
        d = proto.password("secret")
        proto.dataReceived(b"ERR ALREADY-SET-PASSWORD\n")
        err = self.failureResultOf(d, NUTError).value
        self.assertNotIn("secret", str(err))

    def test_upscli_messages(self) -> None:
        """
        Messages follow libupsclient, by prefix; unknown names and the ones
        it lacks (INVALID-ARGUMENT) are C{Unknown error}.
        """
        self.assertEqual(upscli_message(NutError.DRIVER_NOT_CONNECTED), "Driver not connected")
        self.assertEqual(upscli_message("DATA-STALE"), "Data stale")
        self.assertEqual(upscli_message(NutError.INVALID_ARGUMENT), "Unknown error")
        self.assertEqual(upscli_message("UNKNOWN-UPSX"), "Unknown UPS")

    def test_list_error_instead_of_begin(self) -> None:
        """
        An C{ERR} in place of C{BEGIN LIST} fails that LIST only.
        """
        proto, transport, _ = connected()
        d = proto.list_var("nosuch")
        proto.dataReceived(b"ERR UNKNOWN-UPS\n")
        self.assertIs(self.failureResultOf(d, NUTError).value.error, NutError.UNKNOWN_UPS)
        self.assertFalse(transport.disconnecting)

    def test_wrong_end_of_list(self) -> None:
        """
        C{END LIST} for another query is a protocol error: everything pending
        fails and the connection is dropped.
        """
        proto, transport, _ = connected()
        d = proto.list_var("a")
        other = proto.ver()
        proto.dataReceived(b"BEGIN LIST VAR a\nEND LIST VAR b\n")
        self.failureResultOf(d, ProtocolError)
        self.failureResultOf(other, ProtocolError)
        self.assertTrue(transport.disconnected)
        self.failureResultOf(proto.ver(), ProtocolError)

    def test_reply_for_another_variable(self) -> None:
        """
        A GET reply that does not echo the request drops the connection.
        """
        proto, transport, _ = connected()
        d = proto.get_var("u", "a.b")
        proto.dataReceived(b'VAR u c.d "1"\n')
        self.failureResultOf(d, ProtocolError)
        self.assertTrue(transport.disconnected)

    def test_line_too_long(self) -> None:
        """
        A reply line beyond C{MAX_LENGTH} drops the connection.
        """
        proto, transport, _ = connected()
        d = proto.ver()
        proto.dataReceived(b"x" * (proto.MAX_LENGTH + 10))
        self.failureResultOf(d, ProtocolError)
        self.assertTrue(transport.disconnected)

    def test_unsolicited_line_ignored(self) -> None:
        """
        A line when nothing is pending is logged and ignored.
        """
        proto, transport, _ = connected()
        proto.dataReceived(b"OK\n")
        d = proto.ver()
        proto.dataReceived(b"v\n")
        self.assertEqual(self.successResultOf(d), "v")

    def test_cancelled_request(self) -> None:
        """
        A cancelled request's reply is still consumed, so the next request
        gets its own reply.
        """
        proto, transport, _ = connected()
        first = proto.get_var("u", "a.b")
        second = proto.ver()
        first.cancel()
        self.failureResultOf(first, CancelledError)
        proto.dataReceived(b'VAR u a.b "1"\nv\n')
        self.assertEqual(self.successResultOf(second), "v")
        proto.connectionLost(Failure(netError.ConnectionDone()))

    def test_timeout(self) -> None:
        """
        Without a reply within the timeout, every pending request fails with
        L{RequestTimeout} and the connection is dropped.
        """
        proto, transport, clock = connected(timeout=5)
        a = proto.ver()
        clock.advance(1)
        b = proto.list_ups()
        clock.advance(3.9)
        self.assertNoResult(a)
        clock.advance(0.2)
        self.failureResultOf(a, RequestTimeout)
        self.failureResultOf(b, RequestTimeout)
        self.assertTrue(transport.disconnected)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_reply_cancels_timer(self) -> None:
        """
        A complete reply cancels its timer.
        """
        proto, transport, clock = connected(timeout=5)
        d = proto.ver()
        proto.dataReceived(b"v\n")
        self.successResultOf(d)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_connection_lost(self) -> None:
        """
        Losing the connection fails pending requests with the reason, fires
        L{when_closed}, and later requests fail at once.
        """
        proto, transport, _ = connected()
        d = proto.ver()
        closed = proto.when_closed()
        proto.connectionLost(Failure(netError.ConnectionLost()))
        self.failureResultOf(d, netError.ConnectionLost)
        self.assertIsNone(self.successResultOf(closed))
        self.failureResultOf(proto.get_var("u", "a.b"), netError.ConnectionLost)
        self.assertTrue(proto.closed)


class FallbackTests(SynchronousTestCase):
    """
    RFC 9271 names first, NUT 2.8's on the error NUT gives for them.
    """

    def check(self, call: Callable[[NUTClientProtocol], Deferred[Any]], first: str,
              error: bytes, second: str, reply: bytes, expected: Any) -> None:
        proto, transport, _ = connected()
        d = call(proto)
        self.assertEqual(lines(transport), [first])
        proto.dataReceived(error)
        self.assertEqual(lines(transport), [first, second])
        self.assertNoResult(d)
        proto.dataReceived(reply)
        self.assertEqual(self.successResultOf(d), expected)

    def test_protver(self) -> None:
        """PROTVER falls back to NETVER on UNKNOWN-COMMAND (NUT 2.7)."""
        self.check(lambda p: p.protver(), "PROTVER", b"ERR UNKNOWN-COMMAND\n", "NETVER",
                   b"1.2\n", "1.2")

    def test_attach(self) -> None:
        """ATTACH falls back to LOGIN."""
        self.check(lambda p: p.attach("u"), "ATTACH u", b"ERR UNKNOWN-COMMAND\n", "LOGIN u",
                   b"OK\n", None)

    def test_detach(self) -> None:
        """DETACH falls back to LOGOUT."""
        self.check(lambda p: p.detach(), "DETACH", b"ERR UNKNOWN-COMMAND\n", "LOGOUT",
                   b"OK Goodbye\n", None)

    def test_primary(self) -> None:
        """PRIMARY falls back to MASTER (NUT 2.7)."""
        self.check(lambda p: p.primary("u"), "PRIMARY u", b"ERR UNKNOWN-COMMAND\n",
                   "MASTER u", b"OK MASTER-GRANTED\n", "MASTER-GRANTED")

    def test_num_attach_invalid_argument(self) -> None:
        """GET NUMATTACH falls back to NUMLOGINS on INVALID-ARGUMENT (NUT 2.8)."""
        self.check(lambda p: p.num_attach("u"), "GET NUMATTACH u", b"ERR INVALID-ARGUMENT\n",
                   "GET NUMLOGINS u", b"NUMLOGINS u 3\n", 3)

    def test_num_attach_unknown_command(self) -> None:
        """GET NUMATTACH falls back to NUMLOGINS on UNKNOWN-COMMAND."""
        self.check(lambda p: p.num_attach("u"), "GET NUMATTACH u", b"ERR UNKNOWN-COMMAND\n",
                   "GET NUMLOGINS u", b"NUMLOGINS u 1\n", 1)

    def test_other_errors_not_retried(self) -> None:
        """Other errors are not a reason to try the legacy name."""
        proto, transport, _ = connected()
        d = proto.attach("u")
        proto.dataReceived(b"ERR ACCESS-DENIED\n")
        self.assertIs(self.failureResultOf(d, NUTError).value.error, NutError.ACCESS_DENIED)
        self.assertEqual(lines(transport), ["ATTACH u"])


class StartTLSTests(SynchronousTestCase):
    """
    The STARTTLS sequence, with a transport that records startTLS.
    """

    def test_buffer_cleared_and_confirmed(self) -> None:
        """
        Plaintext after C{OK STARTTLS} in the same read is discarded; TLS
        starts; PROTVER confirms; requests made meanwhile follow it.
        """
        proto, transport, _ = connected()
        options = object()
        d = proto.starttls(options)
        held = proto.get_var("u", "ups.status")
        self.assertEqual(lines(transport), ["STARTTLS"])
        proto.dataReceived(b'OK STARTTLS\nVAR u ups.status "INJECTED"\n')
        self.assertIs(transport.tls_options, options)
        self.assertEqual(transport.tls_at, len(b"STARTTLS\n"))
        self.assertTrue(proto.tls_active)
        self.assertEqual(lines(transport), ["STARTTLS", "PROTVER", "GET VAR u ups.status"])
        self.assertNoResult(d)
        self.assertNoResult(held)
        proto.dataReceived(b'1.3\nVAR u ups.status "OL"\n')
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.successResultOf(held), "OL")

    def test_confirmation_error_still_confirms(self) -> None:
        """
        An old server answering PROTVER with an error still proves the TLS
        channel works.
        """
        proto, transport, _ = connected()
        d = proto.starttls(object())
        proto.dataReceived(b"OK STARTTLS\n")
        proto.dataReceived(b"ERR UNKNOWN-COMMAND\n")
        self.assertIsNone(self.successResultOf(d))

    def test_refused(self) -> None:
        """
        C{ERR FEATURE-NOT-CONFIGURED} fails with L{StartTLSUnavailable};
        held requests are then sent in plaintext, held credentials are not
        when TLS is required.
        """
        proto, transport, _ = connected(require_tls=True)
        d = proto.starttls(object())
        held = proto.ver()
        user = proto.username("admin")
        proto.dataReceived(b"ERR FEATURE-NOT-CONFIGURED\n")
        err = self.failureResultOf(d, StartTLSUnavailable).value
        self.assertIs(err.error, NutError.FEATURE_NOT_CONFIGURED)
        self.failureResultOf(user, PlaintextCredentialsRefused)
        self.assertEqual(lines(transport), ["STARTTLS", "VER"])
        self.assertFalse(proto.tls_active)
        proto.dataReceived(b"v\n")
        self.assertEqual(self.successResultOf(held), "v")

    def test_not_supported(self) -> None:
        """
        C{ERR FEATURE-NOT-SUPPORTED} (a NUT built without TLS) is the same.
        """
        proto, transport, _ = connected()
        d = proto.starttls(object())
        proto.dataReceived(b"ERR FEATURE-NOT-SUPPORTED\n")
        self.failureResultOf(d, StartTLSUnavailable)

    def test_probe_without_trust(self) -> None:
        """
        Without options, an accepting server gets the connection dropped
        with L{TLSTrustNotConfigured}: nothing more is said in plaintext.
        """
        proto, transport, _ = connected()
        d = proto.starttls(None)
        held = proto.ver()
        proto.dataReceived(b"OK STARTTLS\n")
        self.failureResultOf(d, TLSTrustNotConfigured)
        self.failureResultOf(held, TLSTrustNotConfigured)
        self.assertTrue(transport.disconnected)
        self.assertIsNone(transport.tls_options)
        self.assertEqual(lines(transport), ["STARTTLS"])

    def test_bare_ok(self) -> None:
        """
        A bare C{OK} -- RFC 9271 Appendix D.1.1's server shim, the published
        upsdTLS.py -- accepts STARTTLS as C{OK STARTTLS} does: TLS starts,
        PROTVER confirms, held requests follow.
        """
        for answer in (b"OK\n", b"OK\r\n", b"OK STARTTLS\r\n"):
            proto, transport, _ = connected()
            options = object()
            d = proto.starttls(options)
            held = proto.ver()
            proto.dataReceived(answer)
            self.assertIs(transport.tls_options, options, answer)
            self.assertEqual(lines(transport), ["STARTTLS", "PROTVER", "VER"])
            proto.dataReceived(b"1.3\nv\n")
            self.assertIsNone(self.successResultOf(d))
            self.assertEqual(self.successResultOf(held), "v")

    def test_other_ok_refused(self) -> None:
        """
        Any other C{OK ...} is no answer to STARTTLS: the connection is
        dropped rather than guessed at.
        """
        for answer in (b"OK Goodbye\n", b"OK STARTTLSX\n", b"OKAY\n"):
            proto, transport, _ = connected()
            d = proto.starttls(object())
            proto.dataReceived(answer)
            self.failureResultOf(d, ProtocolError)
            self.assertIsNone(transport.tls_options)

    def test_twice(self) -> None:
        """
        STARTTLS cannot be repeated or overlapped.
        """
        proto, transport, _ = connected()
        proto.starttls(object())
        self.failureResultOf(proto.starttls(object()))
        self.assertEqual(lines(transport), ["STARTTLS"])

    def test_transport_without_tls(self) -> None:
        """
        On a transport that cannot start TLS, STARTTLS fails without being
        sent.
        """
        proto = NUTClientProtocol(Clock())
        transport = StringTransport()
        proto.makeConnection(transport)
        self.failureResultOf(proto.starttls(object()))
        self.assertEqual(transport.value(), b"")

    def test_credentials_refused_in_plaintext(self) -> None:
        """
        With C{require_tls}, USERNAME and PASSWORD fail and nothing is
        written while TLS is not active.
        """
        proto, transport, _ = connected(require_tls=True)
        self.failureResultOf(proto.username("admin"), PlaintextCredentialsRefused)
        self.failureResultOf(proto.password("secret"), PlaintextCredentialsRefused)
        self.assertEqual(transport.value(), b"")

    def test_credentials_after_tls(self) -> None:
        """
        With C{require_tls}, credentials asked for during STARTTLS are
        written once TLS has started.
        """
        proto, transport, _ = connected(require_tls=True)
        proto.starttls(object())
        user = proto.username("admin")
        self.assertEqual(lines(transport), ["STARTTLS"])
        proto.dataReceived(b"OK STARTTLS\n")
        self.assertEqual(lines(transport), ["STARTTLS", "PROTVER", "USERNAME admin"])
        proto.dataReceived(b"1.3\nOK\n")
        self.assertIsNone(self.successResultOf(user))


# ---------------------------------------------------------------------------
# Real TLS, in memory.


class _PKI:
    """A CA, a server certificate for nut.example/127.0.0.1, a client one."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.ca = make_ca()
        self.server = make_leaf(self.ca, "nut.example", server_sans())
        self.client = make_leaf(self.ca, "monitor", client=True)
        self.dir = case.mktemp()
        import os

        os.makedirs(self.dir)
        self.cafile = self.write("ca.pem", pem(self.ca[0]))
        self.clientfile = self.write("client.pem", pem(self.client[0], self.ca[0], self.client[1]))
        self.pin = format_pin(self.server[0].fingerprint(hashes.SHA256()))

    def write(self, name: str, data: bytes) -> str:
        import os

        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def server_options(self, **kw: Any) -> CertificateOptions:
        return server_options(self.server[0], self.server[1], **kw)


REPLIES = {"GET VAR u ups.status": b'VAR u ups.status "OL"\n', "PROTVER": b"1.3\n"}


class TLSTests(SynchronousTestCase):
    """
    STARTTLS with a real handshake against a server certificate made in
    memory: CA verification, pins, client certificates, TLS versions.
    """

    def setUp(self) -> None:
        self.pki = _PKI(self)

    def negotiate(self, settings: TLSSettings, host: str = "nut.example",
                  **server_kw: Any) -> Tuple[Deferred[bool], NUTClientProtocol, FakeServer, Pipe]:
        client, server, p = pipe(REPLIES, tls=self.pki.server_options(**server_kw),
                                 inject=b'VAR u ups.status "INJECTED"\n')
        d = Deferred.fromCoroutine(negotiate_tls(client, settings, host))
        p.flush()
        return d, client, server, p

    def test_cafile(self) -> None:
        """
        With the CA file, the chain and the name verify; requests then go
        over TLS, and the plaintext injected after C{OK STARTTLS} was
        never read as a reply.
        """
        d, client, server, p = self.negotiate(TLSSettings(cafile=self.pki.cafile))
        self.assertTrue(self.successResultOf(d))
        value = client.get_var("u", "ups.status")
        p.flush()
        self.assertEqual(self.successResultOf(value), "OL")
        self.assertEqual(server.received, ["STARTTLS", "PROTVER", "GET VAR u ups.status"])
        self.assertIsNotNone(p.client.tls)

    def test_cafile_by_ip(self) -> None:
        """
        An IP address is verified against the iPAddress SANs.
        """
        d, client, server, p = self.negotiate(TLSSettings(cafile=self.pki.cafile), host="127.0.0.1")
        self.assertTrue(self.successResultOf(d))

    def test_cafile_wrong_name(self) -> None:
        """
        A certificate for another name fails the handshake.
        """
        d, client, server, p = self.negotiate(TLSSettings(cafile=self.pki.cafile),
                                              host="other.example")
        self.failureResultOf(d)
        self.assertEqual(server.received, ["STARTTLS"])
        self.assertTrue(client.closed)

    def test_cafile_other_ca(self) -> None:
        """
        A server certificate from another CA fails the handshake.
        """
        other = self.pki.write("other.pem", pem(make_ca("Other CA")[0]))
        d, client, server, p = self.negotiate(TLSSettings(cafile=other))
        self.failureResultOf(d)
        self.assertEqual(server.received, ["STARTTLS"])

    def test_pin(self) -> None:
        """
        The right pin is accepted whatever the chain and the name.
        """
        d, client, server, p = self.negotiate(TLSSettings(pin=self.pki.pin), host="anything")
        self.assertTrue(self.successResultOf(d))
        self.assertEqual(server.received, ["STARTTLS", "PROTVER"])

    def test_pin_mismatch(self) -> None:
        """
        Another certificate than the pinned one fails the handshake with
        L{PinMismatch} before any request (no credentials) crosses.
        """
        wrong = "sha256:" + "00" * 32
        client, server, p = pipe(REPLIES, tls=self.pki.server_options(), require_tls=True)
        d = Deferred.fromCoroutine(negotiate_tls(client, TLSSettings(pin=wrong), "x"))
        user = client.username("admin")
        p.flush()
        err = self.failureResultOf(d, PinMismatch).value
        self.assertEqual(err.expected, wrong)
        self.assertEqual(err.actual, self.pki.pin)
        self.failureResultOf(user)
        self.assertEqual(server.received, ["STARTTLS"])

    def test_pin_and_cafile(self) -> None:
        """
        With both, the pin and the chain must both match.
        """
        d, client, server, p = self.negotiate(
            TLSSettings(cafile=self.pki.cafile, pin=self.pki.pin))
        self.assertTrue(self.successResultOf(d))
        d, client, server, p = self.negotiate(
            TLSSettings(cafile=self.pki.cafile, pin=self.pki.pin), host="other.example")
        self.failureResultOf(d)

    def test_insecure(self) -> None:
        """
        C{insecure} encrypts without verifying.
        """
        d, client, server, p = self.negotiate(TLSSettings(insecure=True), host="whatever")
        self.assertTrue(self.successResultOf(d))

    def test_no_trust(self) -> None:
        """
        Without CA, pin or C{insecure}, a server offering TLS is refused.
        """
        d, client, server, p = self.negotiate(TLSSettings())
        self.failureResultOf(d, TLSTrustNotConfigured)
        self.assertEqual(server.received, ["STARTTLS"])

    def test_server_without_tls(self) -> None:
        """
        A server without TLS is used in plaintext unless TLS is required.
        """
        client, server, p = pipe(REPLIES)
        d = Deferred.fromCoroutine(negotiate_tls(client, TLSSettings(pin=self.pki.pin), "x"))
        p.flush()
        self.assertFalse(self.successResultOf(d))
        client, server, p = pipe(REPLIES)
        d = Deferred.fromCoroutine(
            negotiate_tls(client, TLSSettings(pin=self.pki.pin, required=True), "x"))
        p.flush()
        self.failureResultOf(d, StartTLSUnavailable)

    def test_tls13_minimum(self) -> None:
        """
        A server limited to TLS 1.2 is refused by default and accepted with
        C{min_tls="1.2"}.
        """
        d, client, server, p = self.negotiate(TLSSettings(pin=self.pki.pin),
                                              max_tls=TLSVersion.TLSv1_2)
        self.failureResultOf(d)
        d, client, server, p = self.negotiate(TLSSettings(pin=self.pki.pin, min_tls="1.2"),
                                              max_tls=TLSVersion.TLSv1_2)
        self.assertTrue(self.successResultOf(d))

    def test_client_certificate(self) -> None:
        """
        A server that requires client certificates accepts the one given in
        C{certfile} (chain and key in one PEM file).
        """
        d, client, server, p = self.negotiate(
            TLSSettings(cafile=self.pki.cafile, certfile=self.pki.clientfile),
            client_ca=self.pki.ca[0])
        self.assertTrue(self.successResultOf(d))

    def test_client_certificate_missing(self) -> None:
        """
        Without a client certificate, such a server ends the connection.
        """
        d, client, server, p = self.negotiate(TLSSettings(cafile=self.pki.cafile),
                                              client_ca=self.pki.ca[0])
        self.failureResultOf(d)

    def test_bad_configuration(self) -> None:
        """
        Unusable pins, versions and files raise L{TLSConfigError}.
        """
        self.assertEqual(parse_pin("SHA256:" + "AB:" * 31 + "AB"), b"\xab" * 32)
        for pin in ("md5:00", "sha256:xyz", "sha256:00"):
            self.assertRaises(TLSConfigError, parse_pin, pin)
        self.assertRaises(TLSConfigError, client_tls_options, "h", pin=self.pki.pin, min_tls="1.1")
        self.assertRaises(TLSConfigError, client_tls_options, "h", cafile=self.pki.dir + "/none")
        self.assertRaises(TLSConfigError, client_tls_options, "h", cafile=self.pki.clientfile[:-4]
                          + "x")
        nokey = self.pki.write("nokey.pem", pem(self.pki.client[0]))
        self.assertRaises(TLSConfigError, client_tls_options, "h", pin=self.pki.pin,
                          client_cert_pem=nokey)
        mismatched = self.pki.write("bad.pem", pem(self.pki.client[0], self.pki.server[1]))
        self.assertRaises(TLSConfigError, client_tls_options, "h", pin=self.pki.pin,
                          client_cert_pem=mismatched)


# ---------------------------------------------------------------------------
# connect() and the reconnecting service, on a memory reactor.


@implementer(IHostnameResolver)
class _Resolver:
    def resolveHostName(self, receiver: Any, hostName: str, portNumber: int = 0,
                        addressTypes: Any = None, transportSemantics: str = "TCP") -> Any:
        receiver.resolutionBegan(None)
        receiver.addressResolved(IPv4Address("TCP", "127.0.0.1", portNumber))
        receiver.resolutionComplete()
        return receiver


@implementer(IReactorPluggableNameResolver)
class ResolvingReactor(MemoryReactorClock):
    """A memory reactor that resolves every name to 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.nameResolver = _Resolver()

    def installNameResolver(self, resolver: Any) -> Any:
        old, self.nameResolver = self.nameResolver, resolver
        return old


def accept(reactor: ResolvingReactor, server: FakeServer, index: int = -1) -> Pipe:
    """Complete the connection attempt C{index} to C{server}."""
    host, port, factory, timeout, bind = reactor.tcpClients[index]
    p = Pipe(factory.buildProtocol(IPv4Address("TCP", host, port)), server)
    p.flush()
    return p


class ConnectTests(SynchronousTestCase):
    """
    L{connect}: TCP through HostnameEndpoint, then the TLS policy.
    """

    def test_plaintext(self) -> None:
        """
        Without TLS settings the protocol is ready once TCP connects.
        """
        reactor = ResolvingReactor()
        d = connect(reactor, "nut.example", 3493, tls=None, timeout=5)
        self.assertEqual(reactor.tcpClients[0][:2], ("127.0.0.1", 3493))
        server = FakeServer(REPLIES)
        accept(reactor, server)
        proto = self.successResultOf(d)
        self.assertIsInstance(proto, NUTClientProtocol)
        self.assertEqual(server.received, [])

    def test_opportunistic(self) -> None:
        """
        A server without TLS is used in plaintext when TLS is not required.
        """
        reactor = ResolvingReactor()
        d = connect(reactor, "nut.example", tls=TLSSettings(insecure=True))
        server = FakeServer(REPLIES)
        accept(reactor, server)
        proto = self.successResultOf(d)
        self.assertFalse(proto.tls_active)
        self.assertEqual(server.received, ["STARTTLS"])

    def test_required_closes(self) -> None:
        """
        When TLS is required and refused, the connection is closed and the
        L{Deferred} fails.
        """
        reactor = ResolvingReactor()
        d = connect(reactor, "nut.example", tls=TLSSettings(insecure=True, required=True),
                    require_tls=True)
        p = accept(reactor, FakeServer(REPLIES))
        self.failureResultOf(d, StartTLSUnavailable)
        self.assertTrue(p.client.closed)

    def test_configuration_error_first(self) -> None:
        """
        Unusable TLS settings fail before any connection attempt.
        """
        reactor = ResolvingReactor()
        d = connect(reactor, "nut.example", tls=TLSSettings(cafile="/nonexistent/ca.pem"))
        self.failureResultOf(d, TLSConfigError)
        self.assertEqual(reactor.tcpClients, [])

    def test_authenticate(self) -> None:
        """
        L{authenticate} pipelines USERNAME and PASSWORD.
        """
        client, server, p = pipe({"USERNAME u": b"OK\n", "PASSWORD p": b"OK\n"})
        d = Deferred.fromCoroutine(authenticate(client, "u", "p"))
        p.flush()
        self.assertIsNone(self.successResultOf(d))
        client, server, p = pipe(require_tls=True)
        d = Deferred.fromCoroutine(authenticate(client, "u", "p"))
        self.failureResultOf(d, PlaintextCredentialsRefused)


class ServiceTests(SynchronousTestCase):
    """
    L{NUTClientService}: prepared connections, back-off, no state-machine
    errors when a connection dies during preparation.
    """

    def service(self, reactor: ResolvingReactor, **kw: Any) -> NUTClientService:
        service = NUTClientService(reactor, "nut.example", 3493, timeout=5,
                                   retry_policy=lambda failures: 2.0 * failures, **kw)
        service.startService()
        return service

    def test_prepared(self) -> None:
        """
        The caller's preparation runs before L{when_connected} fires.
        """
        reactor = ResolvingReactor()

        async def login(proto: NUTClientProtocol) -> None:
            await authenticate(proto, "mon", "pw")
            await proto.login("u")

        service = self.service(reactor, prepare=login)
        d = service.when_connected()
        self.assertNoResult(d)
        server = FakeServer({"USERNAME mon": b"OK\n", "PASSWORD pw": b"OK\n", "LOGIN u": b"OK\n"})
        p = accept(reactor, server)
        proto = self.successResultOf(d)
        self.assertIsInstance(proto, NUTClientProtocol)
        self.assertEqual(server.received, ["USERNAME mon", "PASSWORD pw", "LOGIN u"])
        stopped = service.stopService()
        p.flush()
        self.assertTrue(proto.closed)
        self.assertIsNone(self.successResultOf(stopped))

    def test_rejected_then_retried(self) -> None:
        """
        A failed preparation closes that connection and counts as a failed
        attempt: the service retries after the back-off delay.
        """
        reactor = ResolvingReactor()
        service = self.service(reactor, prepare=lambda proto: proto.login("u"))
        d = service.when_connected()
        p = accept(reactor, FakeServer({"LOGIN u": b"ERR ACCESS-DENIED\n"}))
        self.assertTrue(p.client.closed)
        self.assertNoResult(d)
        self.assertEqual(len(reactor.tcpClients), 1)
        reactor.advance(2.0)
        self.assertEqual(len(reactor.tcpClients), 2)
        p = accept(reactor, FakeServer({"LOGIN u": b"OK\n"}))
        self.assertIsInstance(self.successResultOf(d), NUTClientProtocol)
        stopped = service.stopService()
        p.flush()
        self.successResultOf(stopped)

    def test_lost_during_preparation(self) -> None:
        """
        A connection that drops while being prepared is retried like a
        failed attempt (Twisted's ClientService would raise NoTransition).
        """
        reactor = ResolvingReactor()
        service = self.service(reactor, tls=TLSSettings(insecure=True))
        d = service.when_connected()
        host, port, factory, timeout, bind = reactor.tcpClients[0]
        server = SilentServer()
        p = Pipe(factory.buildProtocol(IPv4Address("TCP", host, port)), server)
        p.flush()
        self.assertEqual(server.received, ["STARTTLS"])
        server.transport.loseConnection()  # type: ignore[union-attr]
        p.flush()
        self.assertNoResult(d)
        reactor.advance(2.0)
        self.assertEqual(len(reactor.tcpClients), 2)
        service.stopService()
        self.failureResultOf(d, CancelledError)


# ---------------------------------------------------------------------------
# The command-line tools, against the fake server.

TRACK_ID = "0A1B2C3D-4E5F-4061-8273-94A5B6C7D8E9"

NUT: Dict[str, Any] = {
    "LIST UPS": b'BEGIN LIST UPS\nUPS dummy "Crash \\"Dummy\\" \\#1"\n'
                b'UPS other "Description unavailable"\nEND LIST UPS\n',
    "LIST VAR dummy": b'BEGIN LIST VAR dummy\nVAR dummy battery.charge "90"\n'
                      b'VAR dummy ups.status "OL CHRG"\nEND LIST VAR dummy\n',
    "GET VAR dummy ups.status": b'VAR dummy ups.status "OL CHRG"\n',
    "GET VAR dummy bogus.var": b"ERR VAR-NOT-SUPPORTED\n",
    "LIST VAR nosuch": b"ERR UNKNOWN-UPS\n",
    "LIST CLIENT dummy": b"BEGIN LIST CLIENT dummy\nCLIENT dummy 127.0.0.1\n"
                         b"CLIENT dummy ::1\nEND LIST CLIENT dummy\n",
    "LIST CMD dummy": b"BEGIN LIST CMD dummy\nCMD dummy load.off\nCMD dummy test.x\n"
                      b"END LIST CMD dummy\n",
    "GET CMDDESC dummy load.off": b'CMDDESC dummy load.off "Turn off the load immediately"\n',
    "GET CMDDESC dummy test.x": b"ERR DATA-STALE\n",
    "LIST RW dummy": b'BEGIN LIST RW dummy\nRW dummy battery.charge.low "10"\n'
                     b'RW dummy input.sensitivity "M"\nRW dummy odd.var "x"\n'
                     b'RW dummy ups.delay.shutdown "20"\nRW dummy ups.id "my \\"id\\""\n'
                     b'RW dummy weird.var "1"\nEND LIST RW dummy\n',
    "GET DESC dummy ups.id": b'DESC dummy ups.id "UPS system identifier"\n',
    "GET DESC dummy input.sensitivity": b'DESC dummy input.sensitivity "Input sensitivity"\n',
    "GET DESC dummy battery.charge.low":
        b'DESC dummy battery.charge.low "Description unavailable"\n',
    "GET DESC dummy ups.delay.shutdown": b'DESC dummy ups.delay.shutdown "Shutdown delay"\n',
    "GET DESC dummy weird.var": b'DESC dummy weird.var "Weird"\n',
    "GET TYPE dummy ups.id": b"TYPE dummy ups.id RW STRING:16\n",
    "GET TYPE dummy input.sensitivity": b"TYPE dummy input.sensitivity RW ENUM STRING:1\n",
    "GET TYPE dummy battery.charge.low": b"TYPE dummy battery.charge.low RW RANGE NUMBER\n",
    "GET TYPE dummy ups.delay.shutdown": b"TYPE dummy ups.delay.shutdown RW NUMBER\n",
    "GET TYPE dummy odd.var": b"TYPE dummy odd.var RW FANCY ENUM\n",
    "GET VAR dummy ups.id": b'VAR dummy ups.id "my \\"id\\""\n',
    "GET VAR dummy input.sensitivity": b'VAR dummy input.sensitivity "M"\n',
    "GET VAR dummy battery.charge.low": b'VAR dummy battery.charge.low "10"\n',
    "GET VAR dummy ups.delay.shutdown": b'VAR dummy ups.delay.shutdown "20"\n',
    "GET VAR dummy odd.var": b'VAR dummy odd.var "x"\n',
    "LIST ENUM dummy input.sensitivity": b'BEGIN LIST ENUM dummy input.sensitivity\n'
        b'ENUM dummy input.sensitivity "H"\nENUM dummy input.sensitivity "M"\n'
        b'ENUM dummy input.sensitivity "L"\nEND LIST ENUM dummy input.sensitivity\n',
    "LIST ENUM dummy odd.var": b"BEGIN LIST ENUM dummy odd.var\nEND LIST ENUM dummy odd.var\n",
    "LIST RANGE dummy battery.charge.low": b'BEGIN LIST RANGE dummy battery.charge.low\n'
        b'RANGE dummy battery.charge.low "5" "10"\nRANGE dummy battery.charge.low "20" "30"\n'
        b"END LIST RANGE dummy battery.charge.low\n",
    "USERNAME admin": b"OK\n",
    "PASSWORD secret": b"OK\n",
    "SET TRACKING ON": b"OK\n",
    "INSTCMD dummy load.off": b"OK\n",
    "INSTCMD dummy load.on": b"ERR CMD-NOT-SUPPORTED\n",
    'SET VAR dummy ups.id "new value"': b"OK TRACKING " + TRACK_ID.encode() + b"\n",
    "GET TRACKING " + TRACK_ID: [b"PENDING\n", b"PENDING\n", b"SUCCESS\n"],
    "LOGOUT": b"OK Goodbye\n",
}

UPSRW_LISTING = """\
[battery.charge.low]
Description unavailable
Type: RANGE NUMBER
Option: "5-10" SELECTED
Option: "20-30"

[input.sensitivity]
Input sensitivity
Type: ENUM STRING
Maximum length: 1
Option: "H"
Option: "M" SELECTED
Option: "L"

[odd.var]
Description unavailable
Type: FANCY (unrecognized)
Type: ENUM

[ups.delay.shutdown]
Shutdown delay
Type: NUMBER
Value: 20

[ups.id]
UPS system identifier
Type: STRING
Maximum length: 16
Value: my "id"

[weird.var]
Weird
Unknown type

"""


class CLIRun:
    """The result of one tool run against a L{FakeServer}."""

    def __init__(self, case: SynchronousTestCase, argv: List[str], stdin: str = "",
                 tls: Any = None, replies: Optional[Dict[str, Any]] = None) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self.servers: List[FakeServer] = []
        self.prompts: List[str] = []
        self.connected_to: List[Tuple[str, int]] = []
        clock = Clock()
        pipes: List[Pipe] = []
        try:
            opts = cli.parse(argv[0], argv[1:], self.out, self.err)
        except (cli._Exit, T.Fatal) as e:
            self.status = getattr(e, "status", 0)
            if isinstance(e, T.Fatal):
                self.err.write(e.message + "\n")
            return

        def open_connection(host: str, port: int) -> Deferred[NUTClientProtocol]:
            # As connect() does: TLS settings are checked before connecting.
            try:
                options = opts.tls.options(host) if opts.tls is not None else None
            except TLSConfigError as e:
                return fail(e)
            self.connected_to.append((host, port))
            client, server, p = pipe(dict(replies or NUT), tls=tls, clock=clock,
                                     require_tls=opts.require_tls)
            self.servers.append(server)
            pipes.append(p)

            async def ready() -> NUTClientProtocol:
                if opts.tls is not None:
                    await negotiate_tls(client, opts.tls, host, options)
                return client

            return Deferred.fromCoroutine(ready())

        def getpass(prompt: str) -> str:
            self.prompts.append(prompt)
            return "secret"

        env = T.Env(out=self.out, err=self.err, stdin=io.StringIO(stdin), getpass=getpass,
                    clock=clock, connect=open_connection, describe=cli.describe,
                    login_name="tester")
        d = Deferred.fromCoroutine(cli.run(env, opts))
        for _ in range(30):
            for p in pipes:
                p.flush()
            if d.called:
                break
            clock.advance(1)
        self.status = case.successResultOf(d)

    @property
    def received(self) -> List[str]:
        return self.servers[0].received if self.servers else []


class UpscTests(SynchronousTestCase):
    """
    C{nutshim-client upsc}: NUT's formats and messages.
    """

    def test_list_variables(self) -> None:
        """
        C{upsc ups@host:port} prints C{name: value} lines, after trying
        STARTTLS, and says LOGOUT.
        """
        run = CLIRun(self, ["upsc", "dummy@nut.example:3494"])
        self.assertEqual((run.status, run.out.getvalue(), run.err.getvalue()),
                         (0, "battery.charge: 90\nups.status: OL CHRG\n", ""))
        self.assertEqual(run.connected_to, [("nut.example", 3494)])
        self.assertEqual(run.received, ["STARTTLS", "LIST VAR dummy", "LOGOUT"])

    def test_one_variable(self) -> None:
        """
        C{upsc ups var} prints the bare value.
        """
        run = CLIRun(self, ["upsc", "dummy", "ups.status"])
        self.assertEqual((run.status, run.out.getvalue()), (0, "OL CHRG\n"))
        self.assertEqual(run.connected_to, [("localhost", 3493)])

    def test_errors(self) -> None:
        """
        Server errors read as libupsclient's; exit status 1.
        """
        run = CLIRun(self, ["upsc", "dummy", "bogus.var"])
        self.assertEqual((run.status, run.out.getvalue(), run.err.getvalue()),
                         (1, "", "Error: Variable not supported by UPS\n"))
        run = CLIRun(self, ["upsc", "nosuch@h"])
        self.assertEqual(run.err.getvalue(), "Error: Unknown UPS\n")

    def test_list_upses(self) -> None:
        """
        C{-l} prints names, C{-L} names and descriptions, unescaped.
        """
        run = CLIRun(self, ["upsc", "-l", "h:1234"])
        self.assertEqual(run.out.getvalue(), "dummy\nother\n")
        self.assertEqual(run.connected_to, [("h", 1234)])
        run = CLIRun(self, ["upsc", "-L"])
        self.assertEqual(run.out.getvalue(),
                         'dummy: Crash "Dummy" #1\nother: Description unavailable\n')
        self.assertEqual(run.connected_to, [("localhost", 3493)])

    def test_clients(self) -> None:
        """
        C{-c} prints one client address per line.
        """
        run = CLIRun(self, ["upsc", "-c", "dummy@[::1]:3493"])
        self.assertEqual(run.out.getvalue(), "127.0.0.1\n::1\n")
        self.assertEqual(run.connected_to, [("::1", 3493)])

    def test_bad_arguments(self) -> None:
        """
        Bad names and old-style variables get NUT's messages.
        """
        run = CLIRun(self, ["upsc"])
        self.assertEqual((run.status, run.err.getvalue()), (1, (
            "Error: invalid UPS definition.\nRequired format: upsname[@hostname[:port]]\n")))
        run = CLIRun(self, ["upsc", "dummy@h:"])
        self.assertEqual(run.err.getvalue(), (
            "upscli_splitaddr: no port specified after ':' separator\n"
            "Error: invalid UPS definition.\nRequired format: upsname[@hostname[:port]]\n"))
        run = CLIRun(self, ["upsc", "-l", "h:x"])
        self.assertIn("Error: invalid hostname.\nRequired format: [hostname[:port]]\n",
                      run.err.getvalue())
        run = CLIRun(self, ["upsc", "dummy", "upsstatus"])
        self.assertEqual(run.err.getvalue(),
                         "Error: old-style variable names are not supported\n")

    def test_no_tls(self) -> None:
        """
        C{--no-tls} skips STARTTLS.
        """
        run = CLIRun(self, ["upsc", "--no-tls", "dummy", "ups.status"])
        self.assertEqual(run.received, ["GET VAR dummy ups.status", "LOGOUT"])


class UpscmdTests(SynchronousTestCase):
    """
    C{nutshim-client upscmd}.
    """

    def test_list(self) -> None:
        """
        C{-l} prints the header and C{cmd - desc}, or the bare name when the
        description cannot be had.
        """
        run = CLIRun(self, ["upscmd", "-l", "dummy"])
        self.assertEqual(run.out.getvalue(), (
            "Instant commands supported on UPS [dummy]:\n\n"
            "load.off - Turn off the load immediately\ntest.x\n"))

    def test_command(self) -> None:
        """
        The command runs with the given credentials; NUT prints the C{OK}
        on stderr.
        """
        run = CLIRun(self, ["upscmd", "-u", "admin", "-p", "secret", "dummy", "load.off"])
        self.assertEqual((run.status, run.out.getvalue(), run.err.getvalue()), (0, "", "OK\n"))
        self.assertEqual(run.received, ["STARTTLS", "USERNAME admin", "PASSWORD secret",
                                        "INSTCMD dummy load.off", "LOGOUT"])

    def test_prompts(self) -> None:
        """
        Without C{-u}/C{-p}, the username is asked on stdout (empty: the
        login name) and the password through getpass.
        """
        run = CLIRun(self, ["upscmd", "dummy", "load.off"], stdin="admin\n")
        self.assertEqual(run.out.getvalue(), "Username (tester): ")
        self.assertEqual(run.prompts, ["Password: "])
        self.assertEqual(run.status, 0)

    def test_refused(self) -> None:
        """
        An C{ERR} reply is shown as upscmd shows it.
        """
        run = CLIRun(self, ["upscmd", "-u", "admin", "-p", "secret", "dummy", "load.on"])
        self.assertEqual((run.status, run.err.getvalue()),
                         (1, "Unexpected response from upsd: ERR CMD-NOT-SUPPORTED\n"))

    def test_old_name(self) -> None:
        """
        Command names without a dot are refused before any credential is
        sent.
        """
        run = CLIRun(self, ["upscmd", "-u", "admin", "-p", "secret", "dummy", "loadoff"])
        self.assertEqual(run.err.getvalue(), "Error: old command names are not supported\n")
        self.assertNotIn("USERNAME admin", run.received)

    def test_usage(self) -> None:
        """
        Without a command, upscmd prints its usage and exits 0.
        """
        run = CLIRun(self, ["upscmd", "dummy"])
        self.assertEqual(run.status, 0)
        self.assertIn("usage: upscmd [-h]", run.out.getvalue())


class UpsrwTests(SynchronousTestCase):
    """
    C{nutshim-client upsrw}.
    """

    def test_listing(self) -> None:
        """
        Each writable variable gets NUT's block: description, type, value or
        options with the current one SELECTED.
        """
        run = CLIRun(self, ["upsrw", "dummy"])
        self.assertEqual((run.status, run.out.getvalue(), run.err.getvalue()),
                         (0, UPSRW_LISTING, ""))

    def test_set_tracked(self) -> None:
        """
        C{-s var=value -w} quotes the value, polls the tracking id once a
        second, and prints the result on stderr.
        """
        run = CLIRun(self, ["upsrw", "-s", "ups.id=new value", "-u", "admin", "-p", "secret",
                            "-w", "dummy"])
        self.assertEqual((run.status, run.err.getvalue()), (0, "SUCCESS\n"))
        self.assertEqual(run.received, [
            "STARTTLS", "USERNAME admin", "PASSWORD secret", "SET TRACKING ON",
            'SET VAR dummy ups.id "new value"'] + ["GET TRACKING " + TRACK_ID] * 3 + ["LOGOUT"])

    def test_set_prompted_value(self) -> None:
        """
        C{-s var} alone asks for the value.
        """
        run = CLIRun(self, ["upsrw", "-s", "ups.id", "-u", "admin", "-p", "secret", "dummy"],
                     stdin="new value\n")
        self.assertEqual(run.out.getvalue(), "Enter new value for ups.id: ")
        self.assertEqual(run.err.getvalue(), "OK TRACKING " + TRACK_ID + "\n")

    def test_tracking_timeout(self) -> None:
        """
        With C{-t}, a result still PENDING after that long is an error.
        """
        replies = dict(NUT)
        replies["GET TRACKING " + TRACK_ID] = [b"PENDING\n"]
        run = CLIRun(self, ["upsrw", "-s", "ups.id=new value", "-u", "admin", "-p", "secret",
                            "-w", "-t", "2", "dummy"], replies=replies)
        self.assertEqual((run.status, run.err.getvalue()),
                         (1, "Can't receive status tracking information: timeout\n"))

    def test_list_overrides_set(self) -> None:
        """
        C{-l} after C{-s} warns and lists.
        """
        run = CLIRun(self, ["upsrw", "-s", "ups.id=x", "-l", "dummy"])
        self.assertTrue(run.err.getvalue().startswith(
            "Listing mode requested, overriding setvar specified earlier!\n"))
        self.assertEqual(run.out.getvalue(), UPSRW_LISTING)


class CLITLSTests(SynchronousTestCase):
    """
    The tools' TLS policy.
    """

    def setUp(self) -> None:
        self.pki = _PKI(self)

    def test_offered_but_no_trust(self) -> None:
        """
        A server offering TLS without C{--cafile}/C{--pin} stops the tool
        with an explanation, before anything else is sent.
        """
        run = CLIRun(self, ["upsc", "dummy"], tls=self.pki.server_options())
        self.assertEqual(run.status, 1)
        self.assertIn("--cafile or --pin", run.err.getvalue())
        self.assertEqual(run.received, ["STARTTLS"])

    def test_pin(self) -> None:
        """
        With the pin, the tool works over TLS.
        """
        run = CLIRun(self, ["upsc", "--pin", self.pki.pin, "dummy", "ups.status"],
                     tls=self.pki.server_options())
        self.assertEqual((run.status, run.out.getvalue()), (0, "OL CHRG\n"))
        self.assertEqual(run.received, ["STARTTLS", "PROTVER", "GET VAR dummy ups.status",
                                        "LOGOUT"])

    def test_wrong_pin(self) -> None:
        """
        A wrong pin is an SSL error naming both fingerprints.
        """
        run = CLIRun(self, ["upsc", "--pin", "sha256:" + "11" * 32, "dummy"],
                     tls=self.pki.server_options())
        self.assertEqual(run.status, 1)
        self.assertIn("Error: SSL error: certificate fingerprint " + self.pki.pin,
                      run.err.getvalue())

    def test_required(self) -> None:
        """
        C{--tls} against a server without TLS: C{SSL is not available}.
        """
        run = CLIRun(self, ["upscmd", "--tls", "--insecure", "-u", "admin", "-p", "secret",
                            "dummy", "load.off"])
        self.assertEqual((run.status, run.err.getvalue()), (1, "Error: SSL is not available\n"))
        self.assertEqual(run.received, ["STARTTLS"])

    def test_option_errors(self) -> None:
        """
        Conflicting or malformed options are reported without connecting.
        """
        run = CLIRun(self, ["upsc", "--no-tls", "--pin", self.pki.pin, "dummy"])
        self.assertEqual(run.status, 1)
        self.assertIn("--no-tls", run.err.getvalue())
        run = CLIRun(self, ["upscmd", "-t", "soon", "dummy", "load.off"])
        self.assertIn("Could not convert the provided value for timeout", run.err.getvalue())
        run = CLIRun(self, ["upsc", "-x"])
        self.assertEqual(run.status, 0)
        self.assertTrue(run.err.getvalue().startswith("upsc: option -x not recognized"))
        self.assertIn("usage: upsc -l | -L", run.out.getvalue())
        run = CLIRun(self, ["upsc", "--pin", "sha256:00", "dummy"])
        self.assertEqual((run.status, run.servers), (1, []))
        self.assertIn("pin must look like", run.err.getvalue())


class DescribeTests(SynchronousTestCase):
    """
    L{cli.describe}: libupsclient's words for what went wrong.
    """

    def test_network_errors(self) -> None:
        """
        Connection failures read as C{upscli_strerror} would put them.
        """
        self.assertEqual(cli.describe(netError.ConnectionRefusedError()),
                         "Connection failure: Connection refused")
        self.assertEqual(cli.describe(netError.DNSLookupError("x")), "No such host")
        self.assertEqual(cli.describe(netError.TCPTimedOutError()),
                         "Connection failure: Connection timed out")
        self.assertEqual(cli.describe(netError.ConnectionDone()), "Server disconnected")
        self.assertEqual(cli.describe(RequestTimeout("x")),
                         "Receive failure: Connection timed out")
        self.assertEqual(cli.describe(NUTError(NutError.DATA_STALE)), "Data stale")

    def test_split(self) -> None:
        """
        C{ups[@host[:port]]} splits as upscli_splitname does.
        """
        env = T.Env(io.StringIO(), io.StringIO(), io.StringIO(), lambda p: "", Clock(),
                    lambda h, p: Deferred(), cli.describe)
        self.assertEqual(T.split_name("u", env), ("u", "localhost", 3493))
        self.assertEqual(T.split_name("u@h", env), ("u", "h", 3493))
        self.assertEqual(T.split_name("u@h:99", env), ("u", "h", 99))
        self.assertEqual(T.split_name("u@[fe80::1]:99", env), ("u", "fe80::1", 99))
        self.assertEqual(T.split_name("u@[::1]", env), ("u", "::1", 3493))
        self.assertIsNone(T.split_name("u@[::1", env))
        self.assertIsNone(T.split_name("u@h:0", env))
        self.assertIsNone(T.split_name("@h", env))

    def test_main_without_tool(self) -> None:
        """
        C{nutshim-client} alone explains itself and exits 2.
        """
        err = io.StringIO()
        self.patch(cli.sys, "stderr", err)  # type: ignore[attr-defined]
        self.patch(cli.sys, "argv", ["nutshim-client"])  # type: ignore[attr-defined]
        self.assertEqual(cli.main([]), 2)
        self.assertIn("upsc|upscmd|upsrw", err.getvalue())
