# -*- test-case-name: nutshim.test.test_tls -*-
"""
Tests for STARTTLS in upsd: L{nutshim.tls} (the server context from
upsd.conf, the peer's identity, failure messages) and its wiring into
L{nutshim.upsd.protocol}, L{nutshim.upsd.engine} and
L{nutshim.upsd.service}.

Handshakes are real (OpenSSL through L{TLSMemoryBIOProtocol}) but in
memory: L{iosim} moves the bytes, a L{Clock} is the only time, and every
certificate is made here with L{nutshim.pki._certs}.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHandshakeListener, ISSLTransport
from twisted.internet.ssl import (
    Certificate,
    TLSVersion,
    optionsForClientTLS,
    trustRootFromCertificates,
)
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides, implementer

from nutshim.config import ConfigError, UpsdConf, load_config, parse_upsd_conf, parse_users
from nutshim.pki import _certs
from nutshim.test.test_engine import Conversation
from nutshim.testing import MemoryDriver
from nutshim.tls import (
    PeerIdentity,
    ServerTLSOptions,
    describe_handshake_failure,
    peer_identity,
    server_tls_options,
)
from nutshim.upsd import tap
from nutshim.upsd.engine import Engine
from nutshim.upsd import protocol as protocol_module
from nutshim.upsd.protocol import UpsdProtocol
from nutshim.upsd.registry import Registry, UpsEntry
from nutshim.upsd.service import UpsdFactory, UpsdService
from nutshim.upsd.tracking import TrackingTable

# ---------------------------------------------------------------------------
# certificates, made once


class PKI:
    """
    A CA with a server and client certificates, a second CA with its own
    client, and broken material.
    """

    def __init__(self) -> None:
        self.ca, self.ca_key = _certs.make_ca("test CA")
        self.server, self.server_key = _certs.make_leaf(
            self.ca, self.ca_key, "localhost", ["127.0.0.1"], "server"
        )
        self.client, self.client_key = _certs.make_leaf(
            self.ca, self.ca_key, "upsmon-box", [], "client"
        )
        self.pinned, self.pinned_key = _certs.make_leaf(
            self.ca, self.ca_key, "anonymous-box", [], "client"
        )
        self.stranger, self.stranger_key = _certs.make_leaf(
            self.ca, self.ca_key, "stranger", [], "client"
        )
        self.other_ca, self.other_ca_key = _certs.make_ca("other CA")
        self.other_client, self.other_client_key = _certs.make_leaf(
            self.other_ca, self.other_ca_key, "upsmon-box", [], "client"
        )
        past = datetime.now(timezone.utc) - timedelta(days=30)
        self.expired_client, self.expired_client_key = _certs.make_leaf(
            self.ca, self.ca_key, "upsmon-box", [], "client", days=2, now=past
        )
        self.expired_server, self.expired_server_key = _certs.make_leaf(
            self.ca, self.ca_key, "localhost", ["127.0.0.1"], "server", days=2, now=past
        )

    def write(self, directory: str) -> Dict[str, str]:
        """
        The files a configuration directory would hold.
        """
        os.makedirs(directory, exist_ok=True)
        files = {
            "server.pem": _certs.leaf_pem(self.server, self.server_key, [self.ca]),
            "ca.pem": _certs.certificate_pem(self.ca),
            "other-ca.pem": _certs.certificate_pem(self.other_ca),
            "expired.pem": _certs.leaf_pem(self.expired_server, self.expired_server_key, [self.ca]),
            "mismatched.pem": _certs.certificate_pem(self.server)
            + _certs.key_pem(self.client_key),
            "nokey.pem": _certs.certificate_pem(self.server),
            "client.pem": _certs.leaf_pem(self.client, self.client_key, [self.ca]),
        }
        paths = {}
        for name, data in files.items():
            path = os.path.join(directory, name)
            with open(path, "wb") as f:
                f.write(data)
            paths[name] = path
        return paths


_pki: Optional[PKI] = None


def pki() -> PKI:
    global _pki
    if _pki is None:
        _pki = PKI()
    return _pki


USERS = """
[admin]
  password = pw
  actions = SET FSD
  instcmds = ALL
[mon]
  password = mpw
  upsmon primary
  instcmds = load.on
  certificate = upsmon-box
[pinned]
  actions = FSD
  certificate = {pin}
"""


def users_text() -> bytes:
    return USERS.format(pin=_certs.fingerprint_sha256(pki().pinned)).encode()


# ---------------------------------------------------------------------------
# an in-memory transport whose startTLS does a real handshake


class _Wire:
    """
    The raw side of a L{TLSFakeTransport}: where the TLS layer writes
    records and what it closes.
    """

    def __init__(self, raw: "TLSFakeTransport") -> None:
        self._raw = raw

    def write(self, data: bytes) -> None:
        iosim.FakeTransport.write(self._raw, data)

    def writeSequence(self, data: List[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        iosim.FakeTransport.loseConnection(self._raw)

    def abortConnection(self) -> None:
        iosim.FakeTransport.abortConnection(self._raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class TLSFakeTransport(iosim.FakeTransport):
    """
    L{iosim.FakeTransport} whose C{startTLS} does what the TCP transport's
    does: put a L{TLSMemoryBIOProtocol} between the wire and the protocol.
    """

    def __init__(self, protocol: Any, isServer: bool, clock: Clock, **kw: Any) -> None:
        super().__init__(protocol, isServer, **kw)
        self.clock = clock
        self.layer: Optional[TLSMemoryBIOProtocol] = None

    def startTLS(self, contextFactory: Any, beNormal: bool = True) -> None:
        client = (not self.isServer) if beNormal else self.isServer
        factory = TLSMemoryBIOFactory(contextFactory, client, None, clock=self.clock)  # type: ignore[arg-type]
        layer = TLSMemoryBIOProtocol(factory, self.protocol, False)
        self.protocol = layer
        self.layer = layer
        directlyProvides(self, ISSLTransport)
        layer.makeConnection(_Wire(self))

    def write(self, data: bytes) -> None:
        if self.layer is not None:
            self.layer.write(data)
        else:
            super().write(data)

    def loseConnection(self) -> None:
        if self.layer is not None:
            self.layer.loseConnection()
        else:
            super().loseConnection()

    def abortConnection(self) -> None:
        if self.layer is not None:
            self.layer.abortConnection()
        else:
            super().abortConnection()

    def getHandle(self) -> Any:
        assert self.layer is not None
        return self.layer.getHandle()

    def getPeerCertificate(self) -> Any:
        assert self.layer is not None
        return self.layer.getPeerCertificate()


class _RawWire(_Wire):
    """
    The raw side of a L{ProducerTLSTransport}: the TLS layer's producer goes
    to the wire, as C{_BypassTLS} sends it to the TCP transport.
    """

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        iosim.FakeTransport.registerProducer(self._raw, producer, streaming)

    def unregisterProducer(self) -> None:
        iosim.FakeTransport.unregisterProducer(self._raw)


class ProducerTLSTransport(TLSFakeTransport):
    """
    L{TLSFakeTransport} whose producers take the path they take on a real
    TCP transport after C{startTLS} (C{twisted.internet._newtls}): the
    producer registered before TLS is moved to the TLS layer, and later
    ones are registered there (what made TLS connections outlive
    C{OK Goodbye} in nut-upsd and the shims).  So the TLS layer's own
    rules apply -- in particular that C{loseConnection} does not close while a producer is
    registered.
    """

    def startTLS(self, contextFactory: Any, beNormal: bool = True) -> None:
        producer, streaming = self.producer, self.streamingProducer
        if producer is not None:
            iosim.FakeTransport.unregisterProducer(self)
        client = (not self.isServer) if beNormal else self.isServer
        factory = TLSMemoryBIOFactory(contextFactory, client, None, clock=self.clock)  # type: ignore[arg-type]
        layer = TLSMemoryBIOProtocol(factory, self.protocol, False)
        self.protocol = layer
        self.layer = layer
        directlyProvides(self, ISSLTransport)
        layer.makeConnection(_RawWire(self))
        if producer is not None:
            layer.registerProducer(producer, streaming)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.layer is not None:
            self.layer.registerProducer(producer, streaming)
        else:
            super().registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        if self.layer is not None:
            self.layer.unregisterProducer()
        else:
            super().unregisterProducer()


@implementer(IHandshakeListener)
class Client(LineReceiver):
    """
    A test client: collects reply lines and, if given TLS options, starts
    TLS on C{OK STARTTLS}.
    """

    delimiter = b"\n"

    def __init__(self, tls: Any = None) -> None:
        self.tls = tls
        self.lines: List[bytes] = []
        self.handshake = False
        self.lost: Optional[Failure] = None

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"OK STARTTLS" and self.tls is not None:
            self.clearLineBuffer()
            self.transport.startTLS(self.tls)  # type: ignore[union-attr]

    def handshakeCompleted(self) -> None:
        self.handshake = True

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = reason

    def send(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]


def client_tls(
    cert: Optional[x509.Certificate] = None,
    key: Optional[_certs.PrivateKey] = None,
    ca: Optional[x509.Certificate] = None,
    max_version: Optional[Any] = None,
) -> Any:
    """
    Client TLS options that verify the server as C{localhost} against the
    test CA, optionally presenting a client certificate.
    """
    extra: Dict[str, Any] = {}
    if cert is not None:
        extra.update(privateKey=key, certificate=cert)
    if max_version is not None:
        extra.update(lowerMaximumSecurityTo=max_version)
    root = trustRootFromCertificates(
        [Certificate(crypto.X509.from_cryptography(ca or pki().ca))]
    )
    return optionsForClientTLS("localhost", root, extraCertificateOptions=extra)


def observe(case: SynchronousTestCase) -> EventLoggingObserver:
    """
    Collect the log events emitted during the test.
    """
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return observer


def upsd_conf(**fields: Any) -> UpsdConf:
    return replace(UpsdConf(), **fields)


# ---------------------------------------------------------------------------
# fixtures


class TLSTestCase(SynchronousTestCase):
    """
    An engine with one UPS, a factory on a Clock, certificate files in a
    temporary configuration directory and a log observer.
    """

    def setUp(self) -> None:
        self.confdir = os.path.abspath(self.mktemp())
        self.files = pki().write(self.confdir)
        self.clock = Clock()
        self.driver = MemoryDriver()
        self.driver.state.set_info("ups.status", "OL")
        self.driver.state.add_command("load.on")
        self.driver.state.add_command("load.off")
        registry = Registry()
        registry.add(UpsEntry("fake", "Fake UPS", self.driver, "memory", "x"))
        self.users = parse_users(users_text(), "upsd.users")
        self.engine = Engine(registry, self.users, TrackingTable(self.clock.seconds, 3600.0))
        self.factory = UpsdFactory(self.engine, self.clock)
        self.log = observe(self)

    def configure(self, **fields: Any) -> ServerTLSOptions:
        """
        Enable TLS on the factory with these upsd.conf fields.
        """
        fields.setdefault("certfile", "server.pem")
        options = server_tls_options(upsd_conf(**fields), self.confdir)
        assert options is not None
        self.factory.tls_context_factory = options
        self.engine.tls_available = True
        return options

    def connect(
        self, client: Client, host: str = "127.0.0.1"
    ) -> Tuple[UpsdProtocol, iosim.IOPump]:
        """
        Connect C{client} to a new server protocol through the fake wire.
        """
        peer = IPv4Address("TCP", host, 40000)
        server = self.factory.buildProtocol(peer)
        assert isinstance(server, UpsdProtocol)
        sio = TLSFakeTransport(
            server, True, self.clock, peerAddress=peer,
            hostAddress=IPv4Address("TCP", "127.0.0.1", 3493),
        )
        cio = TLSFakeTransport(
            client, False, self.clock, peerAddress=IPv4Address("TCP", "127.0.0.1", 3493),
            hostAddress=peer,
        )
        pump = iosim.connect(server, sio, client, cio, greet=False, clock=self.clock)
        return server, pump

    def starttls(self, client: Client, host: str = "127.0.0.1") -> Tuple[UpsdProtocol, iosim.IOPump]:
        """
        Connect and do STARTTLS.
        """
        server, pump = self.connect(client, host)
        client.send(b"STARTTLS\n")
        pump.flush()
        return server, pump

    def messages(self) -> List[str]:
        return [formatEvent(e) for e in self.log]

    def assertLogged(self, *fragments: str) -> str:
        """
        Some log message contains every fragment; return it.
        """
        for message in self.messages():
            if all(f in message for f in fragments):
                return message
        self.fail(f"no log message with {fragments!r} in {self.messages()!r}")


# ---------------------------------------------------------------------------
# the STARTTLS exchange


class StartTLSTests(TLSTestCase):
    """
    STARTTLS through a real in-memory handshake.
    """

    def test_starttls(self) -> None:
        """
        C{OK STARTTLS} in plaintext, a TLS 1.3 handshake, then requests are
        answered inside TLS; the log says the client is on TLS.
        """
        self.configure()
        client = Client(client_tls())
        server, pump = self.starttls(client)
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        self.assertTrue(client.handshake)
        client.send(b"PROTVER\nGET VAR fake ups.status\n")
        pump.flush()
        self.assertEqual(client.lines[1:], [b"1.3", b'VAR fake ups.status "OL"'])
        self.assertTrue(server.session.tls)
        self.assertIsNone(server.session.tls_identity)
        self.assertLogged("Client 127.0.0.1 is on TLS (TLSv1.3", "no client certificate")

    def test_starttls_already_parsed(self) -> None:
        """
        A STARTTLS line already parsed on an earlier connection (the short
        path for polls) still switches to TLS, on every connection.
        """
        self.configure()
        for _ in range(2):
            client = Client(client_tls())
            server, pump = self.starttls(client)
            self.assertIn(b"STARTTLS", protocol_module._PARSED)
            self.assertTrue(client.handshake)
            client.send(b"GET VAR fake ups.status\n")
            pump.flush()
            self.assertEqual(client.lines, [b"OK STARTTLS", b'VAR fake ups.status "OL"'])

    def test_pipelined_injection(self) -> None:
        """
        C{STARTTLS}, C{USERNAME} and C{PASSWORD} in one segment: only
        C{OK STARTTLS} is answered, the injected lines never run (before or
        inside TLS) and the connection is dropped.
        """
        self.configure()
        client = Client()
        server, pump = self.connect(client)
        client.send(b"STARTTLS\nUSERNAME x\nPASSWORD y\n")
        pump.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        self.assertIsNone(server.session.username)
        self.assertIsNone(server.session.password)
        self.assertIsNotNone(client.lost)
        self.assertLogged("pipelined", "plaintext bytes after STARTTLS")

    def test_pipelined_injection_tls_required(self) -> None:
        """
        The same from a remote client that must use TLS.
        """
        self.configure()
        self.factory.tls_mode = "remote"
        client = Client()
        server, pump = self.connect(client, "192.0.2.7")
        client.send(b"STARTTLS\nUSERNAME admin\nPASSWORD pw\nFSD fake\n")
        pump.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        self.assertIsNone(server.session.username)
        entry = self.engine.registry.get("fake")
        assert entry is not None
        self.assertFalse(entry.fsd)

    def test_second_starttls(self) -> None:
        """
        STARTTLS inside TLS is C{ERR TLS-ALREADY-ENABLED}, sent over TLS,
        and the session goes on.
        """
        self.configure()
        client = Client(client_tls())
        server, pump = self.starttls(client)
        client.send(b"STARTTLS\nPROTVER\n")
        pump.flush()
        self.assertEqual(client.lines[1:], [b"ERR TLS-ALREADY-ENABLED", b"1.3"])
        self.assertIsNone(client.lost)

    def test_not_configured(self) -> None:
        """
        Without CERTFILE there are no TLS options and STARTTLS is
        C{ERR FEATURE-NOT-CONFIGURED}; the connection stays in plaintext.
        """
        self.assertIsNone(server_tls_options(UpsdConf(), self.confdir))
        client = Client(client_tls())
        server, pump = self.starttls(client)
        client.send(b"PROTVER\n")
        pump.flush()
        self.assertEqual(client.lines, [b"ERR FEATURE-NOT-CONFIGURED", b"1.3"])
        self.assertFalse(server.session.tls)

    def test_plaintext_credentials_refused(self) -> None:
        """
        A client that must use TLS cannot send USERNAME/PASSWORD in
        plaintext: both are C{ERR TLS-NOT-ENABLED} and nothing is stored.
        """
        self.configure()
        self.factory.tls_mode = "remote"
        client = Client()
        server, pump = self.connect(client, "192.0.2.7")
        client.send(b"USERNAME admin\nPASSWORD pw\nLOGIN fake\n")
        pump.flush()
        self.assertEqual(client.lines, [b"ERR TLS-NOT-ENABLED"] * 3)
        self.assertIsNone(server.session.username)
        self.assertIsNone(server.session.password)

    def test_credentials_after_tls(self) -> None:
        """
        The same remote client is served once TLS is up.
        """
        self.configure()
        self.factory.tls_mode = "all"
        client = Client(client_tls())
        server, pump = self.starttls(client, "192.0.2.7")
        client.send(b"USERNAME admin\nPASSWORD pw\nFSD fake\n")
        pump.flush()
        self.assertEqual(client.lines[1:], [b"OK", b"OK", b"OK FSD-SET"])

    def test_list_client_format(self) -> None:
        """
        LIST CLIENT keeps NUT's C{CLIENT <ups> <ip>} lines for TLS sessions:
        the TLS details are in the log, not in the reply clients parse.
        """
        self.configure(certrequest=2, certpath="ca.pem")
        client = Client(client_tls(pki().client, pki().client_key))
        server, pump = self.starttls(client)
        client.send(b"USERNAME mon\nPASSWORD mpw\nLOGIN fake\nLIST CLIENT fake\n")
        pump.flush()
        self.assertEqual(
            client.lines[-3:],
            [b"BEGIN LIST CLIENT fake", b"CLIENT fake 127.0.0.1", b"END LIST CLIENT fake"],
        )


class VersionTests(TLSTestCase):
    """
    TLS 1.3 only by default; TLS_MIN_VERSION 1.2 lets TLS 1.2 in.
    """

    def test_tls12_refused_by_default(self) -> None:
        """
        A TLS 1.2-only client fails the handshake; the log names the
        version problem and the peer.
        """
        self.configure()
        client = Client(client_tls(max_version=TLSVersion.TLSv1_2))
        server, pump = self.starttls(client)
        self.assertFalse(client.handshake)
        self.assertIsNotNone(client.lost)
        self.assertLogged("TLS handshake with 127.0.0.1 failed", "no TLS version in common")

    def test_tls12_allowed(self) -> None:
        """
        With TLS_MIN_VERSION 1.2 the same client gets TLS 1.2.
        """
        self.configure(tls_min_version="1.2")
        client = Client(client_tls(max_version=TLSVersion.TLSv1_2))
        server, pump = self.starttls(client)
        self.assertTrue(client.handshake)
        client.send(b"PROTVER\n")
        pump.flush()
        self.assertEqual(client.lines[-1], b"1.3")
        self.assertLogged("is on TLS (TLSv1.2")


class ClientCertificateTests(TLSTestCase):
    """
    CERTREQUEST, CERTPATH and what a verified certificate is good for.
    """

    def test_required_missing(self) -> None:
        """
        CERTREQUEST 2: a client without a certificate fails the handshake
        and the log says why.
        """
        self.configure(certrequest=2, certpath="ca.pem")
        client = Client(client_tls())
        server, pump = self.starttls(client)
        client.send(b"PROTVER\n")
        pump.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        self.assertIsNotNone(client.lost)
        self.assertLogged("TLS handshake with 127.0.0.1 failed", "no client certificate")

    def test_wrong_ca(self) -> None:
        """
        A client certificate from another CA is rejected, and the log says
        it is not from a CA in CERTPATH.
        """
        self.configure(certrequest=2, certpath="ca.pem")
        client = Client(client_tls(pki().other_client, pki().other_client_key))
        server, pump = self.starttls(client)
        client.send(b"PROTVER\n")
        pump.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        self.assertLogged("client certificate rejected", "not in CERTPATH", "CN=upsmon-box")
        self.assertIsNone(server.session.cert_user)

    def test_expired_client(self) -> None:
        """
        An expired client certificate is rejected as expired.
        """
        self.configure(certrequest=1, certpath="ca.pem")
        client = Client(client_tls(pki().expired_client, pki().expired_client_key))
        server, pump = self.starttls(client)
        self.assertLogged("client certificate rejected", "expired")

    def test_request_optional(self) -> None:
        """
        CERTREQUEST 1: a client without a certificate is served, with no
        identity.
        """
        self.configure(certrequest=1, certpath="ca.pem")
        client = Client(client_tls())
        server, pump = self.starttls(client)
        client.send(b"PROTVER\n")
        pump.flush()
        self.assertEqual(client.lines[-1], b"1.3")
        self.assertIsNone(server.session.tls_identity)
        self.assertIsNone(server.peer)

    def test_not_requested(self) -> None:
        """
        CERTREQUEST 0: a client certificate is never asked for, so nothing
        is learned from it.
        """
        self.configure()
        client = Client(client_tls(pki().client, pki().client_key))
        server, pump = self.starttls(client)
        self.assertTrue(client.handshake)
        self.assertIsNone(server.session.tls_identity)
        self.assertIsNone(server.session.cert_user)

    def test_identity_and_mapping(self) -> None:
        """
        A verified certificate sets the session's identity (its CN) and the
        user upsd.users maps it to; the log names both.
        """
        self.configure(certrequest=2, certpath="ca.pem")
        client = Client(client_tls(pki().client, pki().client_key))
        server, pump = self.starttls(client)
        self.assertEqual(server.session.tls_identity, "upsmon-box")
        self.assertEqual(server.session.cert_user, "mon")
        assert server.peer is not None
        self.assertEqual(server.peer.fingerprint, _certs.fingerprint_sha256(pki().client))
        self.assertLogged("is on TLS", "CN=upsmon-box", "upsd.users user mon")

    def test_fsd_instcmd_without_password(self) -> None:
        """
        The mapped user may LOGIN, PRIMARY, FSD and run its instant
        commands without PASSWORD, with or without naming itself; commands
        it was not granted stay denied.
        """
        self.configure(certrequest=2, certpath="ca.pem")
        client = Client(client_tls(pki().client, pki().client_key))
        server, pump = self.starttls(client)
        client.send(
            b"LOGIN fake\nPRIMARY fake\nINSTCMD fake load.on\nINSTCMD fake load.off\n"
            b"SET VAR fake ups.status x\n"
        )
        pump.flush()
        self.assertEqual(
            client.lines[1:],
            [b"OK", b"OK PRIMARY-GRANTED", b"OK", b"ERR ACCESS-DENIED", b"ERR ACCESS-DENIED"],
        )
        client.send(b"USERNAME mon\nFSD fake\n")
        pump.flush()
        self.assertEqual(client.lines[-2:], [b"OK", b"OK FSD-SET"])
        self.assertEqual(self.driver.requests, [("INSTCMD", "load.on", None, None)])

    def test_pinned_user_without_password(self) -> None:
        """
        A user with only a C{certificate = sha256:...} line (no password)
        authenticates through that exact certificate.
        """
        self.configure(certrequest=2, certpath="ca.pem")
        client = Client(client_tls(pki().pinned, pki().pinned_key))
        server, pump = self.starttls(client)
        client.send(b"FSD fake\nLOGIN fake\n")
        pump.flush()
        self.assertEqual(server.session.cert_user, "pinned")
        self.assertEqual(client.lines[1:], [b"OK FSD-SET", b"ERR ACCESS-DENIED"])

    def test_password_not_overridden(self) -> None:
        """
        A PASSWORD means password authentication: a wrong one is denied
        even with a mapped certificate, and USERNAME naming someone else
        still needs that user's password.
        """
        self.configure(certrequest=2, certpath="ca.pem")
        client = Client(client_tls(pki().client, pki().client_key))
        server, pump = self.starttls(client)
        client.send(b"USERNAME mon\nPASSWORD wrong\nFSD fake\n")
        pump.flush()
        self.assertEqual(client.lines[-1], b"ERR ACCESS-DENIED")
        other = Client(client_tls(pki().client, pki().client_key))
        server2, pump2 = self.starttls(other)
        other.send(b"USERNAME admin\nFSD fake\n")
        pump2.flush()
        self.assertEqual(other.lines[-1], b"ERR PASSWORD-REQUIRED")

    def test_unmapped_certificate(self) -> None:
        """
        A verified certificate no user claims authenticates nobody.
        """
        self.configure(certrequest=2, certpath="ca.pem")
        client = Client(client_tls(pki().stranger, pki().stranger_key))
        server, pump = self.starttls(client)
        client.send(b"FSD fake\n")
        pump.flush()
        self.assertEqual(server.session.tls_identity, "stranger")
        self.assertIsNone(server.session.cert_user)
        self.assertEqual(client.lines[-1], b"ERR USERNAME-REQUIRED")
        self.assertLogged("CN=stranger", "not mapped to a user")


class HandshakeTimeoutTests(TLSTestCase):
    """
    A client that goes quiet after C{OK STARTTLS} is dropped after the
    handshake timeout, and nobody else waits for it.
    """

    def test_silent_client(self) -> None:
        """
        The silent client is disconnected after 10 s with a log line; a
        client connected meanwhile is answered at once.
        """
        self.configure()
        silent = Client()
        server, pump = self.connect(silent)
        silent.send(b"STARTTLS\n")
        pump.flush()
        self.assertEqual(silent.lines, [b"OK STARTTLS"])
        self.clock.advance(5)
        other = Client(client_tls())
        server2, pump2 = self.starttls(other)
        other.send(b"PROTVER\n")
        pump2.flush()
        self.assertEqual(other.lines, [b"OK STARTTLS", b"1.3"])
        self.assertIsNone(silent.lost)
        self.clock.advance(5)
        pump.flush()
        self.assertIsNotNone(silent.lost)
        self.assertLogged("TLS handshake with 127.0.0.1 not finished after 10.0 s")
        self.clock.advance(60)
        pump2.flush()
        other.send(b"PROTVER\n")
        pump2.flush()
        self.assertEqual(other.lines[-1], b"1.3")

    def test_timer_cancelled(self) -> None:
        """
        A finished handshake cancels its timer.
        """
        self.configure()
        client = Client(client_tls())
        self.starttls(client)
        self.assertEqual(
            [
                c
                for c in self.clock.getDelayedCalls()
                if getattr(getattr(c, "func", None), "__name__", "") == "_handshake_timed_out"
            ],
            [],
        )

    def test_configured_timeout(self) -> None:
        """
        The factory's timeout (TLS_HANDSHAKE_TIMEOUT) is used.
        """
        self.configure()
        self.factory.tls_handshake_timeout = 2.0
        silent = Client()
        server, pump = self.connect(silent)
        silent.send(b"STARTTLS\n")
        pump.flush()
        self.clock.advance(2)
        pump.flush()
        self.assertIsNotNone(silent.lost)

    def test_not_tls_after_ok(self) -> None:
        """
        A client that answers C{OK STARTTLS} with plaintext fails the
        handshake with a clear reason.
        """
        self.configure()
        client = Client()
        server, pump = self.connect(client)
        client.send(b"STARTTLS\n")
        pump.flush()
        client.send(b"USERNAME admin\r\n")
        pump.flush()
        self.assertIsNotNone(client.lost)
        self.assertLogged("TLS handshake with 127.0.0.1 failed", "did not speak TLS")
        self.assertIsNone(server.session.username)


# ---------------------------------------------------------------------------
# loading the configuration


class ServerOptionsTests(TLSTestCase):
    """
    L{server_tls_options}: what upsd.conf's TLS keys turn into, and what
    stops the daemon.
    """

    def assertConfigError(self, *fragments: str, **fields: Any) -> ConfigError:
        fields.setdefault("certfile", "server.pem")
        e = self.assertRaises(ConfigError, server_tls_options, upsd_conf(**fields), self.confdir)
        for fragment in fragments:
            self.assertIn(fragment, str(e))
        return e

    def test_defaults(self) -> None:
        """
        A relative CERTFILE is found in the configuration directory; TLS
        1.3 is the minimum and no client certificate is requested.
        """
        options = self.configure()
        self.assertEqual(options.certfile, self.files["server.pem"])
        self.assertEqual(options.minimum_version, "1.3")
        self.assertEqual(options.certrequest, 0)
        self.assertIn("TLS 1.3 and later", options.describe())
        self.assertIn("client certificates not requested", options.describe())

    def test_tls12_ciphers(self) -> None:
        """
        With TLS 1.2 allowed, only forward-secret AEAD suites are offered.
        """
        from OpenSSL import SSL

        options = self.configure(tls_min_version="1.2")
        names = SSL.Connection(options.getContext(), None).get_cipher_list()
        legacy = [n for n in names if not n.startswith("TLS_")]
        self.assertTrue(legacy)
        for name in legacy:
            self.assertTrue(name.startswith("ECDHE-"), name)
            self.assertTrue("GCM" in name or "CHACHA20" in name, name)

    def test_absolute_path(self) -> None:
        """
        An absolute CERTFILE is used as it is.
        """
        options = server_tls_options(upsd_conf(certfile=self.files["server.pem"]), "/nonexistent")
        assert options is not None
        self.assertEqual(options.leaf, pki().server)

    def test_missing(self) -> None:
        """
        A missing CERTFILE names the file.
        """
        e = self.assertConfigError("CERTFILE: no such file", certfile="nope.pem")
        self.assertEqual(e.path, os.path.join(self.confdir, "nope.pem"))

    def test_expired(self) -> None:
        """
        An expired server certificate is refused at load.
        """
        self.assertConfigError("expired.pem", "CERTFILE", "expired on", certfile="expired.pem")

    def test_not_yet_valid(self) -> None:
        """
        A certificate checked before its validity starts is refused.
        """
        past = datetime.now(timezone.utc) - timedelta(days=1000)
        e = self.assertRaises(
            ConfigError, server_tls_options, upsd_conf(certfile="server.pem"), self.confdir, past
        )
        self.assertIn("not valid before", str(e))

    def test_mismatched_key(self) -> None:
        """
        A key that is not the certificate's is refused.
        """
        self.assertConfigError("mismatched.pem", "does not match", certfile="mismatched.pem")

    def test_no_key(self) -> None:
        """
        A certificate without a key is refused.
        """
        self.assertConfigError("nokey.pem", "no private key", certfile="nokey.pem")

    def test_client_certificate_as_certfile(self) -> None:
        """
        A client certificate cannot serve as the server's.
        """
        self.assertConfigError("client certificate", certfile="client.pem")

    def test_nss_directory(self) -> None:
        """
        A CERTFILE that is a directory (NUT's NSS layout) gets an
        explanation, not a traceback.
        """
        os.mkdir(os.path.join(self.confdir, "nssdb"))
        self.assertConfigError("NSS database", "nutshim-pki server", certfile="nssdb")

    def test_garbage(self) -> None:
        """
        A file that is not PEM is refused, naming it.
        """
        with open(os.path.join(self.confdir, "junk.pem"), "wb") as f:
            f.write(b"hello\n")
        self.assertConfigError("junk.pem", "CERTFILE", certfile="junk.pem")

    def test_certrequest_needs_certpath(self) -> None:
        """
        CERTREQUEST 1 or 2 without CERTPATH cannot verify anything.
        """
        self.assertConfigError("CERTREQUEST 2 needs CERTPATH", certrequest=2)
        self.assertConfigError("CERTREQUEST 1 needs CERTPATH", certrequest=1)

    def test_certpath_missing(self) -> None:
        """
        A CERTPATH that does not exist names the file.
        """
        self.assertConfigError("CERTPATH", "no such file", certrequest=2, certpath="none.pem")

    def test_certpath_without_ca(self) -> None:
        """
        A CERTPATH holding no CA certificate is refused.
        """
        self.assertConfigError("no valid CA", certrequest=1, certpath="nokey.pem")

    def test_certpath_directory(self) -> None:
        """
        A directory CERTPATH trusts every CA certificate in it once (leaf
        bundles and keys in it are skipped).
        """
        options = self.configure(certrequest=2, certpath=".")
        self.assertEqual(
            sorted(_certs.fingerprint_sha256(c) for c in options.authorities),
            sorted(_certs.fingerprint_sha256(c) for c in (pki().ca, pki().other_ca)),
        )
        self.assertIn("required (2 CA(s) from CERTPATH)", options.describe())

    def test_tls_required_without_certfile(self) -> None:
        """
        TLS_REQUIRED remote/all without a certificate could serve nobody.
        """
        self.assertConfigError("TLS_REQUIRED all needs CERTFILE", certfile=None, tls_required="all")
        self.assertIsNone(server_tls_options(upsd_conf(tls_required="off"), self.confdir))

    def test_encrypted_key(self) -> None:
        """
        An encrypted key is opened with CERTIDENT's password, as NUT's
        OpenSSL build does; without it, or with a wrong one, the error says
        so.
        """
        key = pki().server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        with open(os.path.join(self.confdir, "enc.pem"), "wb") as f:
            f.write(_certs.certificate_pem(pki().server) + _certs.certificate_pem(pki().ca) + key)
        options = server_tls_options(
            upsd_conf(certfile="enc.pem", certident=("localhost", "secret")), self.confdir
        )
        assert options is not None
        self.assertEqual(options.leaf, pki().server)
        self.assertConfigError("CERTIDENT gives no password", certfile="enc.pem")
        self.assertConfigError(
            "cannot decrypt", certfile="enc.pem", certident=("localhost", "wrong")
        )

    def test_certident_name_mismatch(self) -> None:
        """
        A CERTIDENT name that is not the certificate's is only a warning.
        """
        options = self.configure(certident=("otherhost", ""))
        self.assertIsNotNone(options)
        self.assertLogged("CERTIDENT otherhost does not name the certificate")

    def test_expiring_warning(self) -> None:
        """
        A certificate expiring within 30 days is accepted with a warning.
        """
        soon = pki().server.not_valid_after_utc - timedelta(days=10)
        server_tls_options(upsd_conf(certfile="server.pem"), self.confdir, soon)
        self.assertLogged("expires on", "nutshim-pki renew")

    def test_handshake_timeout_key(self) -> None:
        """
        TLS_HANDSHAKE_TIMEOUT takes 1 to 300 seconds (default 10).
        """
        self.assertEqual(UpsdConf().tls_handshake_timeout, 10)
        conf = parse_upsd_conf(b"TLS_HANDSHAKE_TIMEOUT 3\n", "upsd.conf")
        self.assertEqual(conf.tls_handshake_timeout, 3)
        for bad in (b"0", b"301", b"x"):
            self.assertRaises(
                ConfigError, parse_upsd_conf, b"TLS_HANDSHAKE_TIMEOUT " + bad + b"\n", "upsd.conf"
            )


class HelperTests(SynchronousTestCase):
    """
    The small helpers of L{nutshim.tls}.
    """

    def test_peer_identity_plaintext(self) -> None:
        """
        A transport without TLS has no peer identity.
        """
        self.assertIsNone(peer_identity(object()))

    def test_identity_name(self) -> None:
        """
        An identity is called by its CN, else by its subject.
        """
        self.assertEqual(PeerIdentity("a", "CN=a", "sha256:00").name, "a")
        self.assertEqual(PeerIdentity(None, "O=x", "sha256:00").name, "O=x")

    def test_describe_closed(self) -> None:
        """
        A connection that just closed during the handshake says so.
        """
        from twisted.internet.error import ConnectionLost

        self.assertIn(
            "connection closed during the handshake",
            describe_handshake_failure(Failure(ConnectionLost()), None),
        )


class _Handle:
    """A transport that only hands out its OpenSSL connection."""

    def __init__(self, conn: SSL.Connection) -> None:
        self.conn = conn

    def getHandle(self) -> SSL.Connection:
        return self.conn


class ClientAlertTests(TLSTestCase):
    """
    A certificate alert from the client names every cause it can stand for
    -- an untrusted CA, a name that is not one of the certificate's
    (CERTHOST, or the host the client connected to), an expired
    certificate -- led by the likeliest for that alert, and no longer only
    "does it trust our CA?".  The alerts are real: Python's C{ssl} client
    sends what NUT's NSS upsmon sends (bad certificate for a wrong name,
    unknown ca for an unknown CA).
    """

    def fail_handshake(self, client: ssl.SSLContext, host: str) -> str:
        """
        Run C{client} against nut-upsd's own server context in memory until
        the server's handshake fails; describe that failure.
        """
        server = SSL.Connection(self.configure().getContext(), None)
        server.set_accept_state()
        c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        peer = client.wrap_bio(c_in, c_out, server_hostname=host)
        for _ in range(10):
            try:
                peer.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            server.bio_write(c_out.read())
            try:
                server.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as error:
                return describe_handshake_failure(Failure(error), _Handle(server))
            with contextlib.suppress(SSL.WantReadError):
                c_in.write(server.bio_read(65536))
        self.fail("the server's handshake did not fail")

    def client(self, ca: x509.Certificate) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=_certs.certificate_pem(ca).decode("ascii"))

    def test_wrong_name(self) -> None:
        """
        A client that asked for another name sends bad certificate: the log
        leads with the name, shows the certificate's names, and still
        mentions the CA and expiry.
        """
        text = self.fail_handshake(self.client(pki().ca), "elsewhere.example")
        self.assertIn("the client rejected the handshake (alert: bad certificate): "
                      "the name it asked for (CERTHOST in upsmon.conf, else the host it "
                      "connected to) may not be one of our certificate's "
                      "(DNS:localhost, IP:127.0.0.1), it may not trust our CA", text)
        self.assertIn("or our certificate may be expired or not yet valid by its clock", text)
        self.assertNotIn("does it trust our CA?", text)
        self.assertEqual(len(text.splitlines()), 1)

    def test_unknown_ca(self) -> None:
        """
        A client trusting another CA sends unknown ca: the CA comes first,
        with the hint for NUT's OpenSSL build (CERTPATH a PEM file).
        """
        text = self.fail_handshake(self.client(pki().other_ca), "localhost")
        self.assertIn("(alert: unknown ca): it may not trust our CA (NUT built with "
                      "OpenSSL: CERTPATH must be a hashed directory, nutshim-pki "
                      "export-capath), the name it asked for", text)
        self.assertIn("expired", text)

    def test_expired_alert(self) -> None:
        """
        certificate expired leads with the clocks; without a transport the
        names are left out.
        """
        error = SSL.Error([("SSL routines", "", "sslv3 alert certificate expired")])
        text = describe_handshake_failure(error, None)
        self.assertIn("(alert: certificate expired): our certificate may be expired or "
                      "not yet valid by its clock, the name it asked for", text)
        self.assertIn("certificate's, or it may not trust our CA", text)

    def test_other_alert(self) -> None:
        """
        An alert that is not about the certificate blames no certificate.
        """
        error = SSL.Error([("SSL routines", "", "tlsv1 alert internal error")])
        self.assertEqual(
            describe_handshake_failure(error, None),
            "the client rejected the handshake (alert: internal error) "
            "[OpenSSL: tlsv1 alert internal error]",
        )


# ---------------------------------------------------------------------------
# the engine's rule, without TLS machinery


class EngineRuleTests(SynchronousTestCase):
    """
    L{Engine._certificate_user}: the certificate counts only on TLS, only
    for its own user, and only without a PASSWORD.
    """

    def setUp(self) -> None:
        registry = Registry()
        driver = MemoryDriver()
        driver.state.set_info("ups.status", "OL")
        registry.add(UpsEntry("fake", None, driver, "memory", "x"))
        users = parse_users(users_text(), "upsd.users")
        self.engine = Engine(registry, users, TrackingTable(Clock().seconds, 3600.0))

    def test_requires_tls(self) -> None:
        """
        A cert_user on a session that is not on TLS grants nothing.
        """
        c = Conversation(self.engine)
        c.session.cert_user = "mon"
        self.assertEqual(c.send(b"FSD fake\n"), b"ERR USERNAME-REQUIRED\n")
        c.session.tls = True
        self.assertEqual(c.send(b"FSD fake\n"), b"OK FSD-SET\n")

    def test_removed_user(self) -> None:
        """
        A mapped user that no longer exists (reload) grants nothing.
        """
        c = Conversation(self.engine)
        c.session.tls = True
        c.session.cert_user = "gone"
        self.assertEqual(c.send(b"FSD fake\n"), b"ERR USERNAME-REQUIRED\n")


# ---------------------------------------------------------------------------
# the daemon: tap, service, reload


class ServiceTLSTests(SynchronousTestCase):
    """
    TLS settings reach the running daemon at start and on reload, and bad
    ones stop it (start) or are not applied (reload).
    """

    def setUp(self) -> None:
        self.confdir = self.mktemp()
        pki().write(self.confdir)
        self.write("ups.conf", "[fake]\n driver = dummy-ups\n port = x.dev\n")
        self.write("upsd.conf", "CERTFILE server.pem\n")
        self.write("upsd.users", users_text().decode())
        self.reactor = MemoryReactorClock()
        self.log = observe(self)

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.confdir, name), "w") as f:
            f.write(text)

    def builder(self, *args: Any) -> MemoryDriver:
        driver = MemoryDriver()
        driver.state.set_info("ups.status", "OL")
        return driver

    def service(self) -> UpsdService:
        svc = UpsdService(load_config(self.confdir), self.reactor, driver_builder=self.builder)
        svc.startService()
        self.addCleanup(svc.stopService)
        return svc

    def test_enabled(self) -> None:
        """
        CERTFILE enables STARTTLS and, by default, requires TLS from
        non-loopback clients; the log describes the setup.
        """
        svc = self.service()
        self.assertTrue(svc.engine.tls_available)
        self.assertIsInstance(svc.factory.tls_options(), ServerTLSOptions)
        self.assertEqual(svc.factory.tls_mode, "remote")
        self.assertEqual(svc.factory.tls_handshake_timeout, 10.0)
        self.assertTrue(any("STARTTLS: certificate CN=localhost" in formatEvent(e) for e in self.log))

    def test_disabled(self) -> None:
        """
        Without CERTFILE there is no TLS and nothing is required.
        """
        self.write("upsd.conf", "")
        svc = self.service()
        self.assertFalse(svc.engine.tls_available)
        self.assertIsNone(svc.factory.tls_options())
        self.assertEqual(svc.factory.tls_mode, "off")

    def test_bad_certificate_at_start(self) -> None:
        """
        The tap refuses an expired certificate with one line naming it.
        """
        self.write("upsd.conf", "CERTFILE expired.pem\n")
        options = tap.Options()
        e = self.assertRaises(SystemExit, options.parseOptions, ["--confdir", self.confdir])
        self.assertIn("expired.pem: CERTFILE: the certificate CN=localhost expired on", str(e))
        self.assertNotIn("\n", str(e))

    def test_tap_builds_once(self) -> None:
        """
        The options the tap checked are the ones the service uses.
        """
        options = tap.Options()
        options.parseOptions(["--confdir", self.confdir, "--listen", "tcp:0"])
        svc = tap.makeService(options, self.reactor)
        assert isinstance(svc, UpsdService)
        self.assertIs(svc.factory.tls_options(), options["tls"])

    def test_reload_keeps_old_on_error(self) -> None:
        """
        A reload with a mismatched key keeps the running TLS settings.
        """
        svc = self.service()
        before = svc.factory.tls_options()
        self.write("upsd.conf", "CERTFILE mismatched.pem\nTLS_REQUIRED all\n")
        self.assertFalse(svc.reload())
        self.assertIs(svc.factory.tls_options(), before)
        self.assertEqual(svc.factory.tls_mode, "remote")

    def test_reload_applies(self) -> None:
        """
        A good reload changes the context, the requirement (also for open
        plaintext sessions) and the handshake timeout.
        """
        svc = self.service()
        before = svc.factory.tls_options()
        proto = svc.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert isinstance(proto, UpsdProtocol)
        from twisted.internet.testing import StringTransport

        proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1)))
        self.assertFalse(proto.session.tls_required)
        self.write("upsd.conf", "CERTFILE server.pem\nTLS_REQUIRED all\nTLS_HANDSHAKE_TIMEOUT 4\n")
        self.assertTrue(svc.reload())
        self.assertIsNot(svc.factory.tls_options(), before)
        self.assertEqual(svc.factory.tls_mode, "all")
        self.assertTrue(proto.session.tls_required)
        self.assertEqual(svc.factory.tls_handshake_timeout, 4.0)

    def test_reload_remaps_certificates(self) -> None:
        """
        After a reload, a TLS session's certificate is mapped through the
        new upsd.users: a removed C{certificate} line takes its rights away.
        """
        svc = self.service()
        proto = svc.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert isinstance(proto, UpsdProtocol)
        from twisted.internet.testing import StringTransport

        proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1)))
        proto.peer = PeerIdentity(
            "upsmon-box", "CN=upsmon-box", _certs.fingerprint_sha256(pki().client)
        )
        proto.session.tls = True
        proto.map_certificate()
        self.assertEqual(proto.session.cert_user, "mon")
        self.write("upsd.users", "[mon]\n password = mpw\n upsmon primary\n")
        self.assertTrue(svc.reload())
        self.assertIsNone(proto.session.cert_user)
        self.assertEqual(proto.session.tls_identity, "upsmon-box")
