# -*- test-case-name: nutshim.test.test_shim -*-
"""
Tests for the STARTTLS shims (L{nutshim.shim}): the reply framing, the
server shim, the client shim, the two together, flow control, timeouts,
access lists, options and listeners.

Everything runs in memory: L{iosim} moves bytes, handshakes are real
(OpenSSL through L{TLSMemoryBIOProtocol}, certificates made by
L{nutshim.pki._certs}), a L{Clock} is the only time and upsd is a fake that
records what reached it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, List, Optional

from hypothesis import given, strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.internet.interfaces import (
    ISSLTransport,
    IStreamClientEndpoint,
    ITCPTransport,
    ITLSTransport,
)
from twisted.internet.task import Clock
from twisted.internet.tcp import Connection
from twisted.internet.testing import MemoryReactor, MemoryReactorClock, StringTransport
from twisted.logger import formatEvent
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides, implementer

from nutshim.client.tls import client_tls_options
from nutshim.config import UpsdConf
from nutshim.pki import _certs
from nutshim.shim import tap_client, tap_server
from nutshim.shim._address import allowed, describe_address
from nutshim.shim._framing import ReplyCounter, ReplySequencer, plain_requests
from nutshim.shim.client import ClientShimFactory, LegacyClientProtocol
from nutshim.shim.options import ShimExit, parse_network, upstream_endpoint
from nutshim.shim._transport import CLOSE_GRACE, close, relay_write
from nutshim.shim.relay import FAIL_LINGER, MAX_LINE, MAX_OUTSTANDING, MAX_QUEUE
from nutshim.shim.server import DROP_LOG_PERIOD, ServerShimFactory, ServerShimProtocol
from nutshim.shim.service import ListenerError, ListenerService, ShimService
from nutshim.test.test_signals import FakeSignal
from nutshim.test.test_tls import ProducerTLSTransport, client_tls, observe, pki
from nutshim.tls import server_tls_options

# ---------------------------------------------------------------------------
# framing


REPLIES = [
    b"OK\n",
    b"VAR ups ups.status \"OL\"\n",
    b"BEGIN LIST VAR ups\nVAR ups a \"1\"\nVAR ups b \"END LIST \"\nEND LIST VAR ups\n",
    b"ERR UNKNOWN-UPS\n",
    b"BEGIN LIST UPS\nEND LIST UPS\n",
    b"1.3\n",
]


class ReplyCounterTests(SynchronousTestCase):
    """
    L{ReplyCounter} finds where replies end, however the stream is cut.
    """

    def test_whole(self) -> None:
        """
        A LIST is one reply; every other line is one.
        """
        counter = ReplyCounter()
        stream = b"".join(REPLIES)
        ends = counter.feed(stream)
        expected, pos = [], 0
        for reply in REPLIES:
            pos += len(reply)
            expected.append(pos)
        self.assertEqual(ends, expected)
        self.assertTrue(counter.at_boundary)

    @given(st.lists(st.integers(min_value=1, max_value=len(b"".join(REPLIES))), max_size=12))
    def test_any_split(self, cuts: List[int]) -> None:
        """
        Any chunking of the stream gives the same reply ends.
        """
        stream = b"".join(REPLIES)
        points = sorted(set(cuts))
        counter = ReplyCounter()
        ends: List[int] = []
        start = 0
        for cut in points + [len(stream)]:
            ends.extend(start + e for e in counter.feed(stream[start:cut]))
            start = cut
        self.assertEqual(ends, ReplyCounter().feed(stream))

    def test_mid_reply(self) -> None:
        """
        Inside a LIST or a line, the counter is not at a boundary.
        """
        counter = ReplyCounter()
        counter.feed(b"BEGIN LIST VAR ups\nVAR ups a \"1\"\n")
        self.assertFalse(counter.at_boundary)
        counter = ReplyCounter()
        counter.feed(b"VAR ups a")
        self.assertFalse(counter.at_boundary)


class ReplySequencerTests(SynchronousTestCase):
    """
    L{ReplySequencer} keeps local replies in request order.
    """

    def setUp(self) -> None:
        self.out: List[bytes] = []
        self.seq = ReplySequencer(self.out.append)

    def test_local_waits(self) -> None:
        """
        A local reply waits for the upstream replies of earlier requests,
        even when they arrive in pieces and together with later ones.
        """
        self.seq.forwarded()
        self.seq.local(b"ERR TLS-ALREADY-ENABLED\n")
        self.seq.forwarded()
        self.seq.upstream(b"BEGIN LIST UPS\nUPS a \"x\"\n")
        self.assertEqual(b"".join(self.out), b"BEGIN LIST UPS\nUPS a \"x\"\n")
        self.seq.upstream(b"END LIST UPS\nOK\n")
        self.assertEqual(
            b"".join(self.out),
            b"BEGIN LIST UPS\nUPS a \"x\"\nEND LIST UPS\nERR TLS-ALREADY-ENABLED\nOK\n",
        )
        self.assertTrue(self.seq.idle)

    def test_local_at_once(self) -> None:
        """
        With nothing outstanding, a local reply is written at once.
        """
        self.seq.local(b"ERR X\n")
        self.assertEqual(self.out, [b"ERR X\n"])

    def test_fail_outstanding(self) -> None:
        """
        Between replies, every outstanding request gets the error, local
        replies keeping their place.
        """
        self.seq.forwarded(2)
        self.seq.local(b"ERR L\n")
        self.seq.forwarded()
        self.seq.upstream(b"OK\n")
        self.assertTrue(self.seq.fail_outstanding(b"ERR G\n"))
        self.assertEqual(b"".join(self.out), b"OK\nERR G\nERR L\nERR G\n")

    def test_fail_mid_reply(self) -> None:
        """
        In the middle of a reply nothing is added.
        """
        self.seq.forwarded()
        self.seq.upstream(b"BEGIN LIST VAR ups\n")
        self.assertFalse(self.seq.fail_outstanding(b"ERR G\n"))
        self.assertEqual(b"".join(self.out), b"BEGIN LIST VAR ups\n")


# ---------------------------------------------------------------------------
# fixtures


class FakeUpsd(LineReceiver):
    """
    A legacy upsd: records request lines, answers a few; with C{hold},
    keeps replies until L{release}.
    """

    delimiter = b"\n"

    def __init__(self, big: int = 0, closes: bool = True) -> None:
        self.requests: List[bytes] = []
        self.hold = False
        self.held: List[bytes] = []
        self.big = big
        self.lost = False
        #: Whether LOGOUT closes (NUT's upsd does; a server with nut-upsd's
        #: old bug did not).
        self.closes = closes
        self._part = b""

    def reply(self, data: bytes) -> None:
        if self.hold:
            self.held.append(data)
        else:
            self.transport.write(data)  # type: ignore[union-attr]

    def release(self) -> None:
        self.hold = False
        held, self.held = self.held, []
        for data in held:
            self.transport.write(data)  # type: ignore[union-attr]

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\\"):
            # Continued on the next line, as NUT reads it.
            self._part += line[:-1]
            return
        line, self._part = self._part + line, b""
        self.requests.append(line)
        words = line.split()
        verb = words[0].upper() if words else b""
        if verb in (b"PROTVER", b"NETVER"):
            self.reply(b"1.3\n")
        elif verb in (b"USERNAME", b"PASSWORD"):
            self.reply(b"OK\n")
        elif line == b"GET VAR ups ups.status":
            self.reply(b'VAR ups ups.status "OL"\n')
        elif line == b"LIST VAR ups":
            body = b"".join(b'VAR ups v%d "%d"\n' % (i, i) for i in range(self.big))
            self.reply(b"BEGIN LIST VAR ups\n" + body + b"END LIST VAR ups\n")
        elif verb == b"LOGOUT" and len(words) > 1:
            self.reply(b"ERR INVALID-ARGUMENT\n")
        elif verb == b"LOGOUT":
            self.reply(b"OK Goodbye\n")
            if self.closes:
                self.transport.loseConnection()  # type: ignore[union-attr]
        elif verb == b"STARTTLS":
            self.reply(b"ERR FEATURE-NOT-CONFIGURED\n")
        else:
            self.reply(b"ERR UNKNOWN-COMMAND\n")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = True


class Net:
    """
    Every in-memory connection of a test, pumped together.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pumps: List[iosim.IOPump] = []
        self.port = 50000

    def pair(self, server: Any, client: Any, client_ip: str = "127.0.0.1") -> iosim.IOPump:
        self.port += 1
        peer = IPv4Address("TCP", client_ip, self.port)
        here = IPv4Address("TCP", "127.0.0.1", 401)
        sio = ProducerTLSTransport(server, True, self.clock, peerAddress=peer, hostAddress=here)
        cio = ProducerTLSTransport(client, False, self.clock, peerAddress=here, hostAddress=peer)
        pump = iosim.connect(server, sio, client, cio, greet=False, clock=self.clock)
        self.pumps.append(pump)
        return pump

    def flush(self) -> None:
        for _ in range(10000):
            if not any([p.pump() for p in self.pumps]):
                return
        raise AssertionError("the network never went quiet")


@implementer(IStreamClientEndpoint)
class Endpoint:
    """
    Connects to servers built by C{make}; refuses while C{refuse} is set;
    with C{pending}, connections wait for L{complete}.
    """

    def __init__(self, net: Net, make: Callable[[], Any]) -> None:
        self.net = net
        self.make = make
        self.refuse = False
        self.pending = False
        self.waiting: List[Callable[[], None]] = []
        self.servers: List[Any] = []

    def connect(self, factory: Any) -> "Deferred[Any]":
        if self.refuse:
            return fail(ConnectionRefusedError("127.0.0.1", 3493))
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 3493))

        def go() -> None:
            server = self.make()
            self.servers.append(server)
            self.net.pair(server, proto)
            d.callback(proto)

        d: Deferred[Any] = Deferred()
        if self.pending:
            self.waiting.append(go)
        else:
            go()
        return d

    def complete(self) -> None:
        waiting, self.waiting = self.waiting, []
        for go in waiting:
            go()


class Client(LineReceiver):
    """
    A NUT client: every byte received, every line; STARTTLS with C{tls}.
    """

    delimiter = b"\n"

    def __init__(self, tls: Any = None) -> None:
        self.tls = tls
        self.raw = b""
        self.lines: List[bytes] = []
        self.lost: Optional[Failure] = None

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"OK STARTTLS" and self.tls is not None:
            self.clearLineBuffer()
            self.transport.startTLS(self.tls)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = reason

    def send(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]


class ShimTestCase(SynchronousTestCase):
    """
    Certificates on disk, a clock, a network, a fake upsd behind a server
    shim factory, and a log observer.
    """

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.files = pki().write(self.dir)
        self.clock = Clock()
        self.net = Net(self.clock)
        self.big = 0
        self.upsd_closes = True
        self.upsd_end = Endpoint(self.net, lambda: FakeUpsd(self.big, self.upsd_closes))
        self.server = self.server_factory()
        self.log = observe(self)

    def server_factory(self, certrequest: int = 0, allow: Any = ()) -> ServerShimFactory:
        conf = replace(
            UpsdConf(),
            certfile=self.files["server.pem"],
            certpath=self.files["ca.pem"] if certrequest else None,
            certrequest=certrequest,
        )
        return ServerShimFactory(
            self.clock, self.upsd_end, "127.0.0.1:3493", allow=allow, idle_timeout=300,
            handshake_timeout=10, tls_options=server_tls_options(conf, self.dir),
        )

    @property
    def upsd(self) -> FakeUpsd:
        return self.upsd_end.servers[-1]  # type: ignore[no-any-return]

    def connect_server(self, client: Client, ip: str = "192.0.2.7") -> ServerShimProtocol:
        proto = self.server.buildProtocol(IPv4Address("TCP", ip, 40000))
        assert isinstance(proto, ServerShimProtocol)
        self.net.pair(proto, client, ip)
        return proto

    def tls_client(self) -> Client:
        """A client through STARTTLS with the server shim."""
        client = Client(client_tls())
        self.connect_server(client)
        client.send(b"STARTTLS\n")
        self.net.flush()
        return client

    def messages(self) -> List[str]:
        return [formatEvent(e) for e in self.log]

    def assertLogged(self, *fragments: str) -> str:
        for message in self.messages():
            if all(f in message for f in fragments):
                return message
        self.fail(f"no log message with {fragments!r} in {self.messages()!r}")


# ---------------------------------------------------------------------------
# the server shim


class ServerShimTests(ShimTestCase):
    """
    nut-server-shim: STARTTLS first, then everything to upsd.
    """

    def test_starttls_then_relay(self) -> None:
        """
        C{OK STARTTLS}, a TLS handshake, then requests reach upsd and its
        replies come back; STARTTLS itself never reaches upsd.
        """
        client = self.tls_client()
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        client.send(b"GET VAR ups ups.status\nUSERNAME mon\n")
        self.net.flush()
        self.assertEqual(client.lines[1:], [b'VAR ups ups.status "OL"', b"OK"])
        self.assertEqual(self.upsd.requests, [b"GET VAR ups ups.status", b"USERNAME mon"])

    def test_not_enabled_before_tls(self) -> None:
        """
        Before STARTTLS every request is refused with C{ERR TLS-NOT-ENABLED}
        and nothing reaches upsd.
        """
        client = Client()
        self.connect_server(client)
        client.send(b"USERNAME mon\nPASSWORD secret\nVER\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"ERR TLS-NOT-ENABLED"] * 3)
        self.assertEqual(self.upsd_end.servers, [])

    def test_pipelined_plaintext_dropped(self) -> None:
        """
        Plaintext sent right behind STARTTLS is discarded with the
        connection: never relayed.
        """
        client = Client()
        self.connect_server(client)
        client.send(b"STARTTLS\nUSERNAME evil\nPASSWORD evil\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        self.assertIsNotNone(client.lost)
        self.assertEqual(self.upsd_end.servers, [])
        self.assertLogged("pipelined", "plaintext")

    def test_second_starttls_in_order(self) -> None:
        """
        A STARTTLS inside TLS is answered by the shim with
        C{ERR TLS-ALREADY-ENABLED}, after the replies to earlier requests
        and before those to later ones, even when upsd is slow.
        """
        client = self.tls_client()
        self.upsd.hold = True
        client.send(b"LIST VAR ups\nSTARTTLS\nGET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        self.upsd.release()
        self.net.flush()
        self.assertEqual(
            client.lines[1:],
            [b"BEGIN LIST VAR ups", b"END LIST VAR ups", b"ERR TLS-ALREADY-ENABLED",
             b'VAR ups ups.status "OL"'],
        )
        self.assertNotIn(b"STARTTLS", self.upsd.requests)

    def test_large_list_intact(self) -> None:
        """
        A LIST of 20000 lines arrives byte for byte.
        """
        self.big = 20000
        client = self.tls_client()
        before = len(client.raw)
        client.send(b"LIST VAR ups\n")
        self.net.flush()
        body = b"".join(b'VAR ups v%d "%d"\n' % (i, i) for i in range(20000))
        self.assertEqual(
            client.raw[before:], b"BEGIN LIST VAR ups\n" + body + b"END LIST VAR ups\n"
        )

    def test_requests_wait_for_upstream(self) -> None:
        """
        Requests made over TLS before upsd's connection is up wait for it,
        and are answered in order.
        """
        self.upsd_end.pending = True
        client = self.tls_client()
        client.send(b"USERNAME a\nGET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS"])
        self.upsd_end.complete()
        self.net.flush()
        self.assertEqual(client.lines[1:], [b"OK", b'VAR ups ups.status "OL"'])

    def test_upstream_refused(self) -> None:
        """
        When upsd refuses, the client is told C{ERR DRIVER-NOT-CONNECTED}
        and disconnected; the factory then serves the next client.
        """
        self.upsd_end.refuse = True
        client = self.tls_client()
        self.assertIsNone(client.lost)
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS", b"ERR DRIVER-NOT-CONNECTED"])
        self.assertIsNone(client.lost)
        self.clock.advance(FAIL_LINGER)
        self.net.flush()
        self.assertIsNotNone(client.lost)
        self.assertLogged("unreachable", "Connection was refused")
        self.upsd_end.refuse = False
        again = self.tls_client()
        again.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(again.lines, [b"OK STARTTLS", b'VAR ups ups.status "OL"'])

    def test_upstream_refused_pipelined(self) -> None:
        """
        Requests that were waiting for a refused upstream each get
        C{ERR DRIVER-NOT-CONNECTED}.
        """
        self.upsd_end.pending = True
        client = self.tls_client()
        client.send(b"USERNAME a\nSTARTTLS\nLIST UPS\n")
        self.net.flush()
        proto = next(iter(self.server.connections))
        proto.upstream_lost("refused")
        self.net.flush()
        self.assertEqual(
            client.lines[1:],
            [b"ERR DRIVER-NOT-CONNECTED", b"ERR TLS-ALREADY-ENABLED", b"ERR DRIVER-NOT-CONNECTED"],
        )
        self.clock.advance(FAIL_LINGER)
        self.net.flush()
        self.assertIsNotNone(client.lost)

    def test_upstream_lost_between_replies(self) -> None:
        """
        upsd going away with requests unanswered: each gets
        C{ERR DRIVER-NOT-CONNECTED}, then the client is disconnected.
        """
        client = self.tls_client()
        self.upsd.hold = True
        client.send(b"GET VAR ups ups.status\nGET VAR ups ups.status\n")
        self.net.flush()
        self.upsd.transport.loseConnection()  # type: ignore[union-attr]
        self.net.flush()
        self.assertEqual(client.lines[1:], [b"ERR DRIVER-NOT-CONNECTED"] * 2)
        self.assertIsNotNone(client.lost)

    def test_upstream_lost_mid_reply(self) -> None:
        """
        upsd going away in the middle of a LIST: what arrived is passed on,
        no error line is inserted into the list, the client is disconnected.
        """
        client = self.tls_client()
        before = len(client.raw)
        self.upsd.transport.write(b"BEGIN LIST VAR ups\nVAR ups a \"1\"\n")  # type: ignore[union-attr]
        self.upsd.transport.loseConnection()  # type: ignore[union-attr]
        self.net.flush()
        self.assertEqual(client.raw[before:], b"BEGIN LIST VAR ups\nVAR ups a \"1\"\n")
        self.assertIsNotNone(client.lost)

    def test_logout(self) -> None:
        """
        LOGOUT: upsd says goodbye and closes; the client gets the goodbye,
        then the close.
        """
        client = self.tls_client()
        client.send(b"LOGOUT\n")
        self.net.flush()
        self.assertEqual(client.lines[-1], b"OK Goodbye")
        self.assertIsNotNone(client.lost)

    def test_client_gone_closes_upstream(self) -> None:
        """
        The client leaving closes its upstream connection.
        """
        client = self.tls_client()
        client.transport.loseConnection()  # type: ignore[union-attr]
        self.net.flush()
        self.assertTrue(self.upsd.lost)
        self.assertEqual(self.server.connections, set())

    def test_silent_client(self) -> None:
        """
        A client without TLS after the handshake timeout is dropped; upsd
        was never connected to for it.
        """
        client = Client()
        self.connect_server(client)
        self.net.flush()
        self.assertEqual(self.upsd_end.servers, [])
        self.clock.advance(11)
        self.net.flush()
        self.assertIsNotNone(client.lost)
        self.assertEqual(self.upsd_end.servers, [])
        self.assertLogged("TLS not up", "no STARTTLS")

    def test_idle_timeout(self) -> None:
        """
        A TLS client silent for the idle timeout is dropped; one that keeps
        talking is not.
        """
        client = self.tls_client()
        self.clock.advance(299)
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.clock.advance(299)
        self.net.flush()
        self.assertIsNone(client.lost)
        self.clock.advance(2)
        self.net.flush()
        self.assertIsNotNone(client.lost)
        self.assertLogged("idle", "192.0.2.7")

    def test_client_certificate_required(self) -> None:
        """
        With a required client certificate, a client without one fails the
        handshake (logged), and nothing reaches upsd.
        """
        self.server = self.server_factory(certrequest=2)
        client = self.tls_client()
        client.send(b"USERNAME mon\n")
        self.net.flush()
        self.assertIsNotNone(client.lost)
        self.assertEqual(self.upsd_end.servers, [])
        self.assertLogged("TLS handshake with 192.0.2.7", "no client certificate")

    def test_identity_and_port_logged(self) -> None:
        """
        The client's address and certificate are logged with the local
        port of its upsd connection.
        """
        self.server = self.server_factory(certrequest=2)
        p = pki()
        client = Client(client_tls(p.client, p.client_key))
        self.connect_server(client)
        client.send(b"STARTTLS\n")
        self.net.flush()
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines[-1], b'VAR ups ups.status "OL"')
        port = str(self.upsd.transport.getPeer().port)  # type: ignore[union-attr]
        self.assertLogged("192.0.2.7", "CN=upsmon-box", "sha256:", "127.0.0.1:" + port)

    def test_connect_storm_queued(self) -> None:
        """
        At most C{max_connecting} upstream connection attempts run at once;
        the others wait their turn, and a client that leaves while waiting
        costs no attempt.
        """
        self.server.max_connecting = 1
        self.upsd_end.pending = True
        clients = [self.tls_client() for _ in range(3)]
        self.assertEqual(len(self.upsd_end.waiting), 1)
        clients[1].transport.loseConnection()  # type: ignore[union-attr]
        self.net.flush()
        self.upsd_end.complete()
        self.net.flush()
        self.assertEqual(len(self.upsd_end.waiting), 1)
        self.upsd_end.complete()
        self.net.flush()
        self.assertEqual(len(self.upsd_end.servers), 2)
        for client in (clients[0], clients[2]):
            client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(clients[2].lines, [b"OK STARTTLS", b'VAR ups ups.status "OL"'])

    def test_allow(self) -> None:
        """
        With --allow, clients from elsewhere are refused before anything
        happens (no upstream connection).
        """
        self.server = self.server_factory(allow=[parse_network("192.0.2.0/24")])
        self.assertIsNone(self.server.buildProtocol(IPv4Address("TCP", "198.51.100.1", 1)))
        self.assertIsNotNone(self.server.buildProtocol(IPv4Address("TCP", "192.0.2.9", 1)))
        self.assertEqual(self.upsd_end.servers, [])
        self.assertLogged("Refused 198.51.100.1:1")


# ---------------------------------------------------------------------------
# the client shim


class ClientShimTestCase(ShimTestCase):
    """
    A client shim whose remote is the server shim of L{ShimTestCase}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.remote_end = Endpoint(self.net, self._server_proto)
        self.shim = self.client_factory(cafile=self.files["ca.pem"])

    def _server_proto(self) -> Any:
        return self.server.buildProtocol(IPv4Address("TCP", "198.51.100.5", 40001))

    def client_factory(self, **tls: Any) -> ClientShimFactory:
        return ClientShimFactory(
            self.clock, self.remote_end, "localhost:401", idle_timeout=300,
            handshake_timeout=10, tls_options=client_tls_options("localhost", **tls),
        )

    def legacy(self) -> Client:
        """A legacy client of the client shim."""
        client = Client()
        proto = self.shim.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40002))
        self.net.pair(proto, client)
        return client


class ClientShimTests(ClientShimTestCase):
    """
    nut-client-shim, through the server shim to upsd.
    """

    def test_chain(self) -> None:
        """
        A legacy client's requests reach upsd over TLS; the version query
        went first; replies come back unchanged.
        """
        client = self.legacy()
        client.send(b"USERNAME mon\nPASSWORD pw\nGET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"OK", b"OK", b'VAR ups ups.status "OL"'])
        self.assertEqual(
            self.upsd.requests,
            [b"PROTVER", b"USERNAME mon", b"PASSWORD pw", b"GET VAR ups ups.status"],
        )
        self.assertLogged("relayed to localhost:401", "TLSv1.3", "CN=localhost")

    def test_legacy_starttls(self) -> None:
        """
        A legacy client's STARTTLS gets C{ERR FEATURE-NOT-CONFIGURED} from
        the shim and goes nowhere; the session goes on.
        """
        client = self.legacy()
        client.send(b"STARTTLS\n")
        self.net.flush()
        client.send(b"GET VAR ups ups.status\nSTARTTLS\n")
        self.net.flush()
        self.assertEqual(
            client.lines,
            [b"ERR FEATURE-NOT-CONFIGURED", b'VAR ups ups.status "OL"', b"ERR FEATURE-NOT-CONFIGURED"],
        )
        self.assertNotIn(b"STARTTLS", self.upsd.requests)

    def test_pin(self) -> None:
        """
        A matching pin is enough to trust the server.
        """
        self.shim = self.client_factory(pin=_certs.fingerprint_sha256(pki().server))
        client = self.legacy()
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b'VAR ups ups.status "OL"'])

    def test_pin_mismatch(self) -> None:
        """
        A wrong pin aborts the handshake: the legacy client gets an error,
        nothing reaches upsd, and the log names both fingerprints.
        """
        self.shim = self.client_factory(pin="sha256:" + "00" * 32)
        client = self.legacy()
        client.send(b"USERNAME mon\nPASSWORD pw\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"ERR DRIVER-NOT-CONNECTED"] * 2)
        self.clock.advance(FAIL_LINGER)
        self.net.flush()
        self.assertIsNotNone(client.lost)
        self.assertEqual(self.upsd_end.servers, [])
        self.assertLogged("does not match --pin", "sha256:" + "00" * 32,
                          _certs.fingerprint_sha256(pki().server))

    def test_wrong_ca(self) -> None:
        """
        A server certificate from another CA is refused (logged why).
        """
        self.shim = self.client_factory(cafile=self.files["other-ca.pem"])
        client = self.legacy()
        client.send(b"USERNAME mon\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"ERR DRIVER-NOT-CONNECTED"])
        self.assertEqual(self.upsd_end.servers, [])
        self.assertLogged("Remote localhost:401 unusable", "not trusted")

    def test_wrong_name(self) -> None:
        """
        A certificate from the right CA but for another name is refused.
        """
        self.shim = ClientShimFactory(
            self.clock, self.remote_end, "ups.example.org:401", handshake_timeout=10,
            tls_options=client_tls_options("ups.example.org", cafile=self.files["ca.pem"]),
        )
        client = self.legacy()
        client.send(b"USERNAME mon\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"ERR DRIVER-NOT-CONNECTED"])
        self.assertEqual(self.upsd_end.servers, [])
        self.assertLogged("server certificate not for ups.example.org", "--server-name")

    def test_client_certificate(self) -> None:
        """
        The client shim presents its certificate to a server shim that
        requires one.
        """
        self.server = self.server_factory(certrequest=2)
        self.shim = self.client_factory(
            cafile=self.files["ca.pem"], client_cert_pem=self.files["client.pem"]
        )
        client = self.legacy()
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b'VAR ups ups.status "OL"'])
        self.assertLogged("CN=upsmon-box")

    def test_remote_refused_then_retry(self) -> None:
        """
        A refused remote costs the client an error; the next connection
        tries again and works.
        """
        self.remote_end.refuse = True
        client = self.legacy()
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"ERR DRIVER-NOT-CONNECTED"])
        client.send(b"PASSWORD pw\nSTARTTLS\n")
        self.net.flush()
        self.assertEqual(
            client.lines[1:], [b"ERR DRIVER-NOT-CONNECTED", b"ERR FEATURE-NOT-CONFIGURED"]
        )
        self.clock.advance(FAIL_LINGER)
        self.net.flush()
        self.assertIsNotNone(client.lost)
        self.assertLogged("unreachable", "refused")
        self.remote_end.refuse = False
        client = self.legacy()
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b'VAR ups ups.status "OL"'])

    def test_upsd_down_behind_server_shim(self) -> None:
        """
        With upsd down behind a working server shim, the legacy client gets
        C{ERR DRIVER-NOT-CONNECTED}, not a hang.
        """
        self.upsd_end.refuse = True
        client = self.legacy()
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines, [b"ERR DRIVER-NOT-CONNECTED"])
        self.clock.advance(FAIL_LINGER)
        self.net.flush()
        self.assertIsNotNone(client.lost)

    def test_half_close(self) -> None:
        """
        A client that sends its requests and half-closes still gets every
        reply, then the connection is closed.
        """
        client = self.legacy()
        client.send(b"GET VAR ups ups.status\nLIST VAR ups\n")
        proto = next(iter(self.shim.connections))
        proto.readConnectionLost()
        self.net.flush()
        self.assertEqual(
            client.lines, [b'VAR ups ups.status "OL"', b"BEGIN LIST VAR ups", b"END LIST VAR ups"]
        )
        self.assertIsNotNone(client.lost)


@implementer(ITCPTransport)
class RemoteTransport(StringTransport):
    """
    A remote connection whose C{startTLS} is only recorded.
    """

    def __init__(self) -> None:
        super().__init__(lenient=True)
        self.tls: Any = None
        self.nodelay = False

    def startTLS(self, options: Any) -> None:
        self.tls = options
        directlyProvides(self, ITLSTransport)

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay = enabled

    def getTcpNoDelay(self) -> bool:
        return self.nodelay

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def loseWriteConnection(self) -> None:
        pass


@implementer(IStreamClientEndpoint)
class StringEndpoint:
    """
    Connects the remote protocol to a L{RemoteTransport}.
    """

    def __init__(self) -> None:
        self.protos: List[Any] = []

    def connect(self, factory: Any) -> "Deferred[Any]":
        proto = factory.buildProtocol(None)
        proto.makeConnection(RemoteTransport())
        self.protos.append(proto)
        return succeed(proto)


class ClientShimUnitCase(SynchronousTestCase):
    """
    The client shim's legacy side on a L{StringTransport}, the remote
    scripted by hand.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.end = StringEndpoint()
        self.factory = ClientShimFactory(
            self.clock, self.end, "ups:401", idle_timeout=300, handshake_timeout=10,
            tls_options=object(),
        )
        self.log = observe(self)
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert isinstance(proto, LegacyClientProtocol)
        self.proto: Any = proto
        self.legacy: Any = StringTransport(lenient=True)
        self.proto.makeConnection(self.legacy)
        self.remote: Any = self.end.protos[0]
        self.wire: Any = self.remote.transport

    def confirm(self) -> None:
        self.remote.dataReceived(b"OK STARTTLS\n")
        self.remote.dataReceived(b"1.3\n")


class ClientShimUnitTests(ClientShimUnitCase):
    """
    The client shim, by hand: what is written when, and flow control.
    """

    def test_credentials_held(self) -> None:
        """
        USERNAME and PASSWORD are not written to the remote until TLS was
        started and the version reply came back through it.
        """
        self.proto.dataReceived(b"USERNAME mon\nPASSWORD secret\n")
        self.assertEqual(self.wire.value(), b"STARTTLS\n")
        # No Nagle from the start: the handshake writes small records.
        self.assertTrue(self.wire.nodelay)
        self.remote.dataReceived(b"OK STARTTLS\n")
        self.assertIsNotNone(self.wire.tls)
        self.assertEqual(self.wire.value(), b"STARTTLS\nPROTVER\n")
        self.remote.dataReceived(b"1.3\n")
        self.assertEqual(self.wire.value(), b"STARTTLS\nPROTVER\nUSERNAME mon\nPASSWORD secret\n")

    def test_starttls_refused(self) -> None:
        """
        A remote without STARTTLS (or answering it with anything but C{OK}
        or C{OK STARTTLS}) is refused: the client gets errors, the
        credentials stay here.
        """
        for answer in (b"ERR FEATURE-NOT-CONFIGURED\n", b"OK Goodbye\n", b"OK STARTTLSX\n"):
            self.setUp()
            self.proto.dataReceived(b"USERNAME mon\nPASSWORD secret\n")
            self.remote.dataReceived(answer)
            self.remote.connectionLost(Failure(ConnectionRefusedError()))
            self.assertEqual(self.wire.value(), b"STARTTLS\n")
            self.assertEqual(self.legacy.value(), b"ERR DRIVER-NOT-CONNECTED\n" * 2)
            self.clock.advance(FAIL_LINGER)
            self.assertTrue(self.legacy.disconnecting)
        self.assertTrue(any("refused STARTTLS" in formatEvent(e) for e in self.log))

    def test_bare_ok_accepted(self) -> None:
        """
        RFC 9271 Appendix D.1.1's server shim (the published upsdTLS.py)
        answers a bare C{OK}: that starts TLS as C{OK STARTTLS} does.
        """
        self.proto.dataReceived(b"USERNAME mon\n")
        self.remote.dataReceived(b"OK\r\n")
        self.assertIsNotNone(self.wire.tls)
        self.assertEqual(self.wire.value(), b"STARTTLS\nPROTVER\n")
        self.remote.dataReceived(b"1.3\n")
        self.assertEqual(self.wire.value(), b"STARTTLS\nPROTVER\nUSERNAME mon\n")

    def test_plaintext_after_ok(self) -> None:
        """
        Bytes behind C{OK STARTTLS} in plaintext abort the remote.
        """
        self.proto.dataReceived(b"USERNAME mon\n")
        self.remote.dataReceived(b"OK STARTTLS\n1.3\n")
        self.assertIsNone(self.wire.tls)
        self.assertTrue(self.wire.disconnecting)
        self.assertEqual(self.wire.value(), b"STARTTLS\n")

    def test_netver_fallback(self) -> None:
        """
        A server without PROTVER is asked NETVER.
        """
        self.remote.dataReceived(b"OK STARTTLS\n")
        self.remote.dataReceived(b"ERR UNKNOWN-COMMAND\n")
        self.assertEqual(self.wire.value(), b"STARTTLS\nPROTVER\nNETVER\n")
        self.proto.dataReceived(b"VER\n")
        self.assertEqual(self.wire.value(), b"STARTTLS\nPROTVER\nNETVER\n")
        self.remote.dataReceived(b"1.2\n")
        self.assertTrue(self.wire.value().endswith(b"NETVER\nVER\n"))

    def test_setup_timeout(self) -> None:
        """
        A remote that never finishes STARTTLS is given up after the
        handshake timeout; the client gets an error.
        """
        self.proto.dataReceived(b"GET VAR ups ups.status\n")
        self.clock.advance(10)
        self.assertTrue(self.wire.disconnecting)
        self.remote.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.legacy.value(), b"ERR DRIVER-NOT-CONNECTED\n")
        self.assertTrue(any("within 10" in formatEvent(e) for e in self.log))

    def test_queue_bounded(self) -> None:
        """
        Before the remote is usable, a client sending too much is no longer
        read; it is read again once the queue went out.
        """
        line = b"GET VAR ups " + b"x" * 1000 + b"\n"
        self.proto.dataReceived(line * (MAX_QUEUE // len(line) + 5))
        self.assertEqual(self.legacy.producerState, "paused")
        self.confirm()
        for _ in range(MAX_QUEUE // len(line) + 5):
            self.remote.dataReceived(b"VAR x\n")
        self.assertEqual(self.legacy.producerState, "producing")
        self.assertEqual(self.wire.value().count(b"GET VAR"), MAX_QUEUE // len(line) + 5)

    def test_backpressure_slow_client(self) -> None:
        """
        A client that does not read its replies stops the shim forwarding
        that client's requests and, with no reply pending, reading the
        remote; reading again resumes both.
        """
        self.confirm()
        self.legacy.producer.pauseProducing()
        self.assertEqual(self.wire.producerState, "paused")
        self.assertEqual(self.legacy.producerState, "paused")
        sent = self.wire.value()
        self.proto.dataReceived(b"LIST VAR ups\n")
        self.assertEqual(self.wire.value(), sent)
        self.legacy.producer.resumeProducing()
        self.assertEqual(self.wire.producerState, "producing")
        self.assertEqual(self.wire.value(), sent + b"LIST VAR ups\n")

    def test_slow_client_remote_held_at_once(self) -> None:
        """
        Even with replies pending, a slow client's remote is paused at once
        (a server shim or nut-upsd never blocks on a full socket), so a
        stalled reader costs the client shim one transport buffer, not
        L{MAX_OUTSTANDING} replies; reading again resumes it.
        """
        self.confirm()
        self.proto.dataReceived(b"LIST VAR ups\nVER\n")
        self.legacy.producer.pauseProducing()
        self.assertEqual(self.wire.producerState, "paused")
        self.legacy.producer.resumeProducing()
        self.assertEqual(self.wire.producerState, "producing")

    def test_backpressure_slow_remote(self) -> None:
        """
        A remote that does not read stops the shim reading the client.
        """
        self.confirm()
        self.wire.producer.pauseProducing()
        self.assertEqual(self.legacy.producerState, "paused")
        self.wire.producer.resumeProducing()
        self.assertEqual(self.legacy.producerState, "producing")

    def test_outstanding_bounded(self) -> None:
        """
        At most L{MAX_OUTSTANDING} requests wait for replies; more are read
        as replies come in, in order.
        """
        self.confirm()
        base = len(self.wire.value())
        self.proto.dataReceived(b"VER\n" * (MAX_OUTSTANDING + 10))
        self.assertEqual(self.wire.value()[base:], b"VER\n" * MAX_OUTSTANDING)
        self.remote.dataReceived(b"x\n" * 5)
        self.assertEqual(self.wire.value()[base:], b"VER\n" * (MAX_OUTSTANDING + 5))
        self.remote.dataReceived(b"x\n" * (MAX_OUTSTANDING + 5))
        self.assertEqual(self.legacy.value(), b"x\n" * (MAX_OUTSTANDING + 10))
        self.assertEqual(self.wire.value()[base:], b"VER\n" * (MAX_OUTSTANDING + 10))

    def test_plain_batch_forwarded_whole(self) -> None:
        """
        Once relaying, a read of whole ordinary requests is forwarded as
        read, without going line by line (issue 14), and counted: their
        replies come back, and the limit holds.
        """
        self.confirm()
        lines: List[bytes] = []
        self.proto.lineReceived = lines.append
        base = len(self.wire.value())
        batch = b"GET VAR ups a\r\n\nLIST VAR ups\n"
        self.proto.dataReceived(batch)
        self.assertEqual(lines, [])
        self.assertEqual(self.wire.value()[base:], batch)
        self.assertEqual(self.proto.sequencer.outstanding, 3)
        self.remote.dataReceived(b"VAR ups a 1\nERR UNKNOWN-COMMAND\nBEGIN LIST VAR ups\nEND LIST VAR ups\n")
        self.assertTrue(self.proto.sequencer.idle)

    def test_batch_with_special_requests_goes_line_by_line(self) -> None:
        """
        A read holding STARTTLS, LOGOUT, DETACH or a backslash, or more
        than the outstanding limit, is framed line by line as before.
        """
        self.confirm()
        for batch in (b"VER\nstarttls\n", b"VER\nLOGOUT\n", b"VER \\\nx\n", b"VER\n" * (MAX_OUTSTANDING + 1)):
            lines: List[bytes] = []
            self.proto.lineReceived = lines.append
            self.proto.dataReceived(batch)
            self.assertEqual(lines, batch.split(b"\n")[:-1])

    def test_queue_then_outstanding_bounded(self) -> None:
        """
        Requests queued before the remote was usable are forwarded within
        the same limit as the rest.
        """
        self.proto.dataReceived(b"VER\n" * (MAX_OUTSTANDING + 10))
        self.confirm()
        self.assertEqual(self.wire.value(), b"STARTTLS\nPROTVER\n" + b"VER\n" * MAX_OUTSTANDING)
        self.remote.dataReceived(b"x\n" * (MAX_OUTSTANDING + 10))
        self.assertEqual(self.legacy.value(), b"x\n" * (MAX_OUTSTANDING + 10))

    def test_idle_timeout(self) -> None:
        """
        A client idle for the timeout is dropped with its remote.
        """
        self.confirm()
        self.clock.advance(300)
        self.assertTrue(self.legacy.disconnecting)

    def test_remote_lost(self) -> None:
        """
        The remote going away after the relay began closes the client, with
        an error for the request waiting.
        """
        self.confirm()
        self.proto.dataReceived(b"GET VAR ups ups.status\n")
        self.remote.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.legacy.value(), b"ERR DRIVER-NOT-CONNECTED\n")
        self.assertTrue(self.legacy.disconnecting)
        # A TLS transport does not close while a producer is registered.
        self.assertIsNone(self.legacy.producer)

    def test_too_long(self) -> None:
        """
        An over-long request is answered C{ERR TOO-LONG}, in order, and the
        client is disconnected once answered.
        """
        self.confirm()
        self.proto.dataReceived(b"VER\n" + b"x" * 70000)
        self.assertEqual(self.legacy.value(), b"")
        self.remote.dataReceived(b"Network UPS Tools\n")
        self.assertEqual(self.legacy.value(), b"Network UPS Tools\nERR TOO-LONG\n")
        self.assertTrue(self.legacy.disconnecting)


class ServerShimSessionTests(ShimTestCase):
    """
    How a server shim session ends (LOGOUT), what counts as a request
    (continuations, STARTTLS in any spelling), and that upsd is connected
    to only for clients through TLS.
    """

    def test_logout_ends_session(self) -> None:
        """
        After C{OK Goodbye} the client's TLS session ends even when the
        upstream does not close (a server with nut-upsd's old bug): both
        sides are closed and what the client sent behind LOGOUT never
        reaches upsd.
        """
        self.upsd_closes = False
        client = self.tls_client()
        client.send(b"GET VAR ups ups.status\nLOGOUT\nUSERNAME evil\nFSD ups\n")
        self.net.flush()
        self.assertEqual(client.lines[1:], [b'VAR ups ups.status "OL"', b"OK Goodbye"])
        self.assertIsNotNone(client.lost)
        self.assertTrue(self.upsd.lost)
        self.assertEqual(self.upsd.requests, [b"GET VAR ups ups.status", b"LOGOUT"])
        self.assertEqual(self.server.connections, set())

    def test_logout_closes_with_producer(self) -> None:
        """
        The close after C{OK Goodbye} reaches the client through a TLS
        transport whose producer sits in the TLS layer (as on a real TCP
        transport): Twisted's TLS does not start closing while a producer
        is registered, so the shim unregisters it first.
        """
        client = self.tls_client()
        proto = next(iter(self.server.connections))
        self.assertIsNotNone(proto.transport.layer._producer)
        client.send(b"LOGOUT\n")
        self.net.flush()
        self.assertEqual(client.lines[-1], b"OK Goodbye")
        self.assertIsNotNone(client.lost)
        self.assertEqual(self.server.connections, set())

    def test_failed_logout_goes_on(self) -> None:
        """
        A LOGOUT upsd refuses (C{LOGOUT x}), or a DETACH a NUT 2.8.0 upsd
        does not know, does not end the session: what follows is served.
        """
        client = self.tls_client()
        client.send(b"LOGOUT x\nDETACH\nGET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(
            client.lines[1:],
            [b"ERR INVALID-ARGUMENT", b"ERR UNKNOWN-COMMAND", b'VAR ups ups.status "OL"'],
        )
        self.assertIsNone(client.lost)

    def test_close_notify_unanswered(self) -> None:
        """
        A TLS peer that never answers the shim's close_notify (nor closes)
        is aborted L{CLOSE_GRACE} seconds later.
        """
        transport = StringTransport()
        directlyProvides(transport, ISSLTransport)
        aborted: List[bool] = []
        transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        close(transport, self.clock)
        self.assertTrue(transport.disconnecting)
        self.clock.advance(CLOSE_GRACE - 0.1)
        self.assertEqual(aborted, [])
        self.clock.advance(0.1)
        self.assertEqual(aborted, [True])
        plain = StringTransport()
        close(plain, self.clock)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_upstream_before_tls(self) -> None:
        """
        upsd is connected to only once TLS is up: not for a connection that
        only connects, nor for plaintext requests, nor before the
        handshake finishes.
        """
        client = Client()
        self.connect_server(client)
        client.send(b"USERNAME mon\nPASSWORD pw\nLIST UPS\n")
        self.net.flush()
        self.assertEqual(self.upsd_end.servers, [])
        client.tls = client_tls()
        client.send(b"STARTTLS\n")
        self.net.flush()
        self.assertEqual(len(self.upsd_end.servers), 1)
        client.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(client.lines[-1], b'VAR ups ups.status "OL"')

    def test_starttls_spellings(self) -> None:
        """
        Every spelling nut-upsd takes for STARTTLS starts TLS here too:
        extra words, a comment, quotes, lower case, CR, a continuation.
        """
        for request in (b"STARTTLS extra\n", b"STARTTLS # comment\n", b'"STARTTLS"\n',
                        b"starttls\r\n", b"START\\\nTLS\n"):
            client = Client(client_tls())
            self.connect_server(client)
            client.send(request)
            self.net.flush()
            client.send(b"GET VAR ups ups.status\n")
            self.net.flush()
            self.assertEqual(client.lines, [b"OK STARTTLS", b'VAR ups ups.status "OL"'], request)

    def test_continued_request_inside_tls(self) -> None:
        """
        Inside TLS a request continued over two lines is one request (the
        shim's own replies stay in order behind its reply), and a continued
        or quoted STARTTLS is the shim's, never upsd's.
        """
        client = self.tls_client()
        self.upsd.hold = True
        client.send(b"GET VAR ups \\\nups.status\nSTART\\\nTLS\n\"STARTTLS\"\nGET VAR ups ups.status\n")
        self.net.flush()
        self.upsd.release()
        self.net.flush()
        self.assertEqual(
            client.lines[1:],
            [b'VAR ups ups.status "OL"', b"ERR TLS-ALREADY-ENABLED", b"ERR TLS-ALREADY-ENABLED",
             b'VAR ups ups.status "OL"'],
        )
        self.assertEqual(self.upsd.requests, [b"GET VAR ups ups.status"] * 2)

    def test_continuation_bounded(self) -> None:
        """
        A request continued for ever is cut at the line limit.
        """
        client = self.tls_client()
        client.send(b"x\\\n" * (MAX_LINE // 3 + 2))
        self.net.flush()
        self.assertEqual(client.lines[-1], b"ERR TOO-LONG")
        self.assertIsNotNone(client.lost)

    def test_bare_ok_shim(self) -> None:
        """
        The client shim works through an RFC-literal server shim that
        answers STARTTLS with a bare C{OK} (Appendix D.1.1, upsdTLS.py).
        """

        class BareOK(ServerShimProtocol):
            starttls_reply = b"OK\n"

        self.server.protocol = BareOK
        shim = ClientShimFactory(
            self.clock, Endpoint(self.net, lambda: self.server.buildProtocol(None)), "localhost:401",
            handshake_timeout=10,
            tls_options=client_tls_options("localhost", cafile=self.files["ca.pem"]),
        )
        legacy = Client()
        self.net.pair(shim.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1)), legacy)
        legacy.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(legacy.lines, [b'VAR ups ups.status "OL"'])


@implementer(ITCPTransport)
class TLSStringTransport(RemoteTransport):
    """A client connection of the server shim: startTLS recorded, never done."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.peerAddress = IPv4Address("TCP", host, port)
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True


class PendingTLSTests(SynchronousTestCase):
    """
    The server shim's bound on connections without TLS, on string
    transports and a clock.
    """

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.files = pki().write(self.dir)
        self.clock = Clock()
        self.upstream = StringEndpoint()
        conf = replace(UpsdConf(), certfile=self.files["server.pem"])
        self.factory = ServerShimFactory(
            self.clock, self.upstream, "127.0.0.1:3493", handshake_timeout=10,
            tls_options=server_tls_options(conf, self.dir), max_pending_tls=3,
        )
        self.log = observe(self)
        self.port = 1000

    def connect(self) -> Any:
        self.port += 1
        proto: Any = self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", self.port))
        proto.makeConnection(TLSStringTransport("192.0.2.1", self.port))
        return proto

    def lose(self, *protos: Any) -> None:
        for proto in protos:
            if proto.transport.aborted and not proto._lost:
                proto.connectionLost(Failure(ConnectionRefusedError()))

    def test_oldest_plaintext_dropped(self) -> None:
        """
        Beyond the bound the oldest plaintext connection is dropped, before
        any that is handshaking; upsd is connected to for none of them.
        """
        a, b, c = self.connect(), self.connect(), self.connect()
        a.dataReceived(b"STARTTLS\n")
        self.assertIsNotNone(a.transport.tls)
        d = self.connect()
        self.assertEqual([p.transport.aborted for p in (a, b, c, d)], [False, True, False, False])
        e = self.connect()
        self.assertEqual([p.transport.aborted for p in (a, c, d, e)], [False, True, False, False])
        self.lose(b, c)
        self.assertEqual(self.factory.pending_tls, 3)
        self.assertEqual(self.upstream.protos, [])

    def test_oldest_handshake_dropped_last(self) -> None:
        """
        With only handshakes to drop, the oldest goes; the newcomer stays.
        """
        protos = [self.connect() for _ in range(3)]
        for proto in protos:
            proto.dataReceived(b"STARTTLS\n")
        d = self.connect()
        self.assertEqual([p.transport.aborted for p in protos + [d]], [True, False, False, False])
        self.lose(*protos)
        self.assertEqual(self.factory.pending_tls, 3)

    def test_tls_up_leaves_the_count(self) -> None:
        """
        A connection whose handshake completed no longer counts, gets its
        upsd connection at once, and is never dropped for newcomers.
        """
        a = self.connect()
        a.dataReceived(b"STARTTLS\n")
        a.handshakeCompleted()
        self.assertEqual(len(self.upstream.protos), 1)
        self.assertEqual(self.factory.pending_tls, 0)
        for _ in range(5):
            self.connect()
        self.assertFalse(a.transport.aborted)
        self.assertEqual(self.factory.pending_tls, 3)

    def test_drops_logged_sparingly(self) -> None:
        """
        The first drop is logged at once, the rest counted every
        L{DROP_LOG_PERIOD} seconds.
        """
        for _ in range(3 + 50):
            self.connect()
        drops = [formatEvent(e) for e in self.log if "without TLS" in formatEvent(e)]
        self.assertEqual(len(drops), 1)
        self.assertIn("More than 3 connections without TLS", drops[0])
        self.clock.advance(DROP_LOG_PERIOD)
        drops = [formatEvent(e) for e in self.log if "without TLS" in formatEvent(e)]
        self.assertEqual(len(drops), 2)
        self.assertIn("Dropped 49 more", drops[1])
        self.clock.advance(DROP_LOG_PERIOD)
        self.assertEqual(len([e for e in self.log if "without TLS" in formatEvent(e)]), 2)

    def test_deadline(self) -> None:
        """
        Each connection has the handshake timeout to get TLS up.
        """
        a = self.connect()
        b = self.connect()
        b.dataReceived(b"STARTTLS\n")
        self.clock.advance(10)
        self.assertTrue(a.transport.aborted)
        self.assertTrue(b.transport.aborted)
        self.assertEqual(self.upstream.protos, [])


class ClientShimSessionTests(ClientShimUnitCase):
    """
    How a client shim session ends.
    """

    def test_logout_ends_session(self) -> None:
        """
        After the remote's C{OK Goodbye} both sides are closed even if the
        remote keeps its side open (nut-upsd's old bug made the legacy
        client wait for its 60 s idle timeout); nothing sent behind LOGOUT
        is forwarded.
        """
        self.confirm()
        base = len(self.wire.value())
        self.proto.dataReceived(b"LOGOUT\nUSERNAME evil\n")
        self.assertEqual(self.wire.value()[base:], b"LOGOUT\n")
        self.remote.dataReceived(b"OK Goodbye\n")
        self.assertEqual(self.legacy.value(), b"OK Goodbye\n")
        self.assertTrue(self.legacy.disconnecting)
        self.assertTrue(self.wire.disconnecting)
        self.assertEqual(self.wire.value()[base:], b"LOGOUT\n")
        self.proto.dataReceived(b"FSD ups\n")
        self.assertEqual(self.wire.value()[base:], b"LOGOUT\n")

    def test_detach_ends_session(self) -> None:
        """
        DETACH, RFC 9271's name for LOGOUT, ends it the same way.
        """
        self.confirm()
        self.proto.dataReceived(b"detach\r\n")
        self.remote.dataReceived(b"OK Goodbye\n")
        self.assertTrue(self.legacy.disconnecting)

    def test_goodbye_after_other_replies(self) -> None:
        """
        Replies before the LOGOUT's, arriving in pieces with it, are passed
        on whole; only the LOGOUT's own C{OK Goodbye} ends the session.
        """
        self.confirm()
        self.proto.dataReceived(b"LIST VAR ups\nLOGOUT\n")
        self.remote.dataReceived(b"BEGIN LIST VAR ups\nVAR ups a \"OK Goodbye\"\n")
        self.assertFalse(self.legacy.disconnecting)
        self.remote.dataReceived(b"END LIST VAR ups\nOK Good")
        self.assertFalse(self.legacy.disconnecting)
        self.remote.dataReceived(b"bye\n")
        self.assertTrue(self.legacy.disconnecting)
        self.assertTrue(self.legacy.value().endswith(b"END LIST VAR ups\nOK Goodbye\n"))


class ThreadlessReactor(MemoryReactorClock):
    """A memory reactor whose C{callFromThread} runs the call at once."""

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


class ServerReloadTests(SynchronousTestCase):
    """
    SIGHUP in the server shim: signals installed from startService, the
    certificate, key, CA and allow list read again, a bad file refused.
    """

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.files = pki().write(self.dir)
        self.cert = os.path.join(self.dir, "live.pem")
        self.allow = os.path.join(self.dir, "allow")
        self.copy("server.pem", self.cert)
        with open(self.allow, "w") as f:
            f.write("# who\n192.0.2.0/24\n")
        self.log = observe(self)
        self.sig = FakeSignal()
        options = tap_server.Options()
        options.parseOptions(["--certfile", self.cert, "--allow-file", self.allow,
                              "--allow", "10.0.0.1", "--listen", "tcp:4401"])
        self.reactor = ThreadlessReactor()
        service: Any = tap_server.makeService(options, self.reactor, self.sig)  # type: ignore[arg-type]
        self.service = service
        self.service.privilegedStartService()
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.factory: ServerShimFactory = self.service.factory

    def copy(self, name: str, to: str) -> None:
        with open(self.files[name], "rb") as src, open(to, "wb") as dst:
            dst.write(src.read())

    def fingerprint(self) -> str:
        return _certs.fingerprint_sha256(self.factory.tls_options.leaf)

    def test_signals(self) -> None:
        """
        SIGHUP is the shim's (reload); SIGUSR1 and SIGUSR2 are logged and
        ignored, never left at their default (which ends the process).
        """
        self.assertEqual(self.service.signals,
                         {"SIGHUP": "ours", "SIGUSR1": "ignored", "SIGUSR2": "ignored"})
        for signum in (FakeSignal.SIGUSR1, FakeSignal.SIGUSR2):
            self.sig.deliver(signum)
        self.assertTrue(any("SIGUSR1 received and ignored" in formatEvent(e) for e in self.log))

    def test_twistd_log_rotation_kept(self) -> None:
        """
        A SIGUSR1 handler twistd installed (--logfile rotation) stays.
        """
        rotate = lambda *a: None  # noqa: E731
        sig = FakeSignal()
        sig.handlers[FakeSignal.SIGUSR1] = rotate
        service = ShimService(self.reactor, "nut-server-shim", lambda: "", sig)  # type: ignore[arg-type]
        service.startService()
        self.assertEqual(service.signals["SIGUSR1"], "kept")
        self.assertIs(sig.handlers[FakeSignal.SIGUSR1], rotate)

    def test_certificate_swapped(self) -> None:
        """
        A new certificate in the same file is used after SIGHUP.
        """
        before = self.fingerprint()
        new, key = _certs.make_leaf(pki().ca, pki().ca_key, "localhost", ["127.0.0.1"], "server")
        with open(self.cert, "wb") as f:
            f.write(_certs.leaf_pem(new, key, [pki().ca]))
        self.sig.deliver(FakeSignal.SIGHUP)
        self.assertNotEqual(self.fingerprint(), before)
        self.assertEqual(self.fingerprint(), _certs.fingerprint_sha256(new))
        self.assertTrue(any("reloaded" in formatEvent(e) for e in self.log))

    def test_bad_certificate_kept(self) -> None:
        """
        Junk, a mismatched key, an expired certificate or a missing file
        are refused with one line naming the file; the old one stays.
        """
        before = self.fingerprint()
        for name, words in (("junk", "not a PEM file"), ("mismatched.pem", "does not match"),
                            ("expired.pem", "expired"), ("missing", "no such file")):
            if name == "junk":
                with open(self.cert, "wb") as f:
                    f.write(b"junk\n")
            elif name == "missing":
                os.remove(self.cert)
            else:
                self.copy(name, self.cert)
            self.assertFalse(self.service.reload())
            self.assertEqual(self.fingerprint(), before)
            line = [formatEvent(e) for e in self.log if "reload refused" in formatEvent(e)][-1]
            self.assertIn(f"{self.cert}: --certfile: ", line)
            self.assertIn(words, line)
            self.assertNotIn("\n", line)

    def test_allow_file(self) -> None:
        """
        The allow file is read again; --allow stays; a bad line is refused
        with its number.
        """
        self.assertEqual([str(n) for n in self.factory.allow], ["10.0.0.1/32", "192.0.2.0/24"])
        with open(self.allow, "w") as f:
            f.write("198.51.100.7\n")
        self.assertTrue(self.service.reload())
        self.assertEqual([str(n) for n in self.factory.allow], ["10.0.0.1/32", "198.51.100.7/32"])
        self.assertIsNone(self.factory.buildProtocol(IPv4Address("TCP", "192.0.2.9", 1)))
        with open(self.allow, "w") as f:
            f.write("198.51.100.7\n10.0.0.0/33\n")
        self.assertFalse(self.service.reload())
        self.assertEqual([str(n) for n in self.factory.allow], ["10.0.0.1/32", "198.51.100.7/32"])
        self.assertTrue(any(f"{self.allow}:2: --allow-file" in formatEvent(e) for e in self.log))


class ClientReloadTests(ClientShimTestCase):
    """
    SIGHUP in the client shim: the --config file (pins), certificates and
    CA read again for new sessions; open sessions go on.
    """

    def setUp(self) -> None:
        super().setUp()
        self.config = os.path.join(self.dir, "shim.ini")
        self.write_config(_certs.fingerprint_sha256(pki().server))
        options = tap_client.Options()
        options.parseOptions(["--upstream", "localhost:401", "--config", self.config])
        service: Any = tap_client.makeService(options, ThreadlessReactor(), FakeSignal())  # type: ignore[arg-type]
        self.service = service
        self.shim = self.service.factories[0]
        self.shim.upstream = self.remote_end
        self.shim.clock = self.clock

    def write_config(self, pin: str, extra: str = "") -> None:
        with open(self.config, "w") as f:
            f.write(f"[shim]\npin = {pin}\n{extra}")

    def test_pin_reloaded(self) -> None:
        """
        A changed pin applies to the next session, not to the open one.
        """
        first = self.legacy()
        first.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.write_config("sha256:" + "00" * 32)
        self.assertTrue(self.service.reload())
        first.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(first.lines, [b'VAR ups ups.status "OL"'] * 2)
        second = self.legacy()
        second.send(b"GET VAR ups ups.status\n")
        self.net.flush()
        self.assertEqual(second.lines, [b"ERR DRIVER-NOT-CONNECTED"])
        self.assertLogged("does not match --pin")

    def test_bad_config_kept(self) -> None:
        """
        A broken config file or CA file is refused; the running settings
        stay and serve.
        """
        for text in ("[shim\n", f"[shim]\ncafile = {self.files['nokey.pem']}x\n"):
            with open(self.config, "w") as f:
                f.write(text)
            self.assertFalse(self.service.reload())
            client = self.legacy()
            client.send(b"GET VAR ups ups.status\n")
            self.net.flush()
            self.assertEqual(client.lines, [b'VAR ups ups.status "OL"'])
        self.assertLogged("reload refused", "nokey.pemx: --cafile: cannot read")

    def test_listener_change_noted(self) -> None:
        """
        What needs a restart (a new remote) is said; the rest is applied.
        """
        self.write_config(_certs.fingerprint_sha256(pki().server),
                          "[remote more]\nlisten = tcp:3999\nupstream = other.example\n")
        self.assertTrue(self.service.reload())
        self.assertLogged("reloaded", "remote more is new: needs a restart")


# ---------------------------------------------------------------------------
# access lists, options, listeners


class AllowTests(SynchronousTestCase):
    """
    L{allowed} and L{describe_address}.
    """

    def test_networks(self) -> None:
        """
        Addresses are matched against IPv4 and IPv6 networks; IPv4-mapped
        IPv6 addresses count as IPv4; no list allows everyone.
        """
        nets = [parse_network("10.0.0.0/8"), parse_network("2001:db8::/32")]
        self.assertTrue(allowed(IPv4Address("TCP", "10.1.2.3", 1), nets))
        self.assertTrue(allowed(IPv6Address("TCP", "::ffff:10.1.2.3", 1), nets))
        self.assertTrue(allowed(IPv6Address("TCP", "2001:db8::5", 1), nets))
        self.assertFalse(allowed(IPv4Address("TCP", "192.0.2.1", 1), nets))
        self.assertFalse(allowed(IPv6Address("TCP", "::1", 1), nets))
        self.assertTrue(allowed(IPv4Address("TCP", "192.0.2.1", 1), []))

    def test_describe(self) -> None:
        """
        Addresses are written as NUT administrators read them.
        """
        self.assertEqual(describe_address(IPv6Address("TCP", "::ffff:10.1.2.3", 7)), "10.1.2.3:7")
        self.assertEqual(describe_address(IPv6Address("TCP", "2001:db8::5", 7)), "[2001:db8::5]:7")


class OptionsTests(SynchronousTestCase):
    """
    The options of both taps, and the services they build.
    """

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.files = pki().write(self.dir)

    def server(self, *args: str) -> tap_server.Options:
        options = tap_server.Options()
        options.parseOptions(["--certfile", self.files["server.pem"], *args])
        return options

    def client(self, *args: str) -> tap_client.Options:
        options = tap_client.Options()
        options.parseOptions(list(args))
        return options

    def test_server_defaults(self) -> None:
        """
        Port 401 on all addresses (IPv6 and IPv4), upsd on 127.0.0.1:3493,
        TLS 1.3, five minutes of idle time.
        """
        options = self.server()
        self.assertEqual(
            options["listen"],
            ["tcp6:401:interface=\\:\\::backlog=1024", "tcp:401:backlog=1024"],
        )
        self.assertFalse(options["explicit_listen"])
        self.assertEqual((options["upstream_host"], options["upstream_port"]), ("127.0.0.1", 3493))
        self.assertEqual(options["tls"].minimum_version, "1.3")
        self.assertEqual(options["tls"].certrequest, 0)
        self.assertEqual(options["idle-timeout"], 300.0)

    def test_server_options(self) -> None:
        """
        Every option is parsed into the settings it names.
        """
        options = self.server(
            "--listen", "tcp:4401:interface=127.0.0.1", "--upstream", "[::1]:3494",
            "--cafile", self.files["ca.pem"], "--require-client-cert", "--allow", "10.0.0.0/8",
            "--allow", "::1", "--min-tls", "1.2", "--idle-timeout", "0",
        )
        self.assertEqual(options["listen"], ["tcp:4401:interface=127.0.0.1:backlog=1024"])
        self.assertEqual((options["upstream_host"], options["upstream_port"]), ("::1", 3494))
        self.assertEqual(options["tls"].certrequest, 2)
        self.assertEqual(options["tls"].minimum_version, "1.2")
        self.assertEqual([str(n) for n in options["allow"]], ["10.0.0.0/8", "::1/128"])
        self.assertEqual(options["idle-timeout"], 0.0)

    def test_server_errors(self) -> None:
        """
        Bad options stop twistd with one line naming the option.
        """
        for args, text in (
            ([], "--certfile is required"),
            (["--certfile", self.files["nokey.pem"]], "--certfile"),
            (["--certfile", self.files["server.pem"], "--require-client-cert"], "needs --cafile"),
            (["--certfile", self.files["server.pem"], "--allow", "10.0.0.0/33"], "--allow"),
            (["--certfile", self.files["server.pem"], "--upstream", "h:99999"], "bad port"),
            (["--certfile", self.files["server.pem"], "--min-tls", "1.1"], "1.2 or 1.3"),
        ):
            with self.assertRaises(ShimExit) as e:
                tap_server.Options().parseOptions(args)
            self.assertIn(text, str(e.exception), args)
            self.assertTrue(str(e.exception).startswith("nut-server-shim: "), str(e.exception))
            self.assertNotIn("\n", str(e.exception))

    def test_server_service(self) -> None:
        """
        makeService binds nothing until started; then every listener is on
        the reactor.
        """
        reactor = MemoryReactor()
        service = tap_server.makeService(self.server("--listen", "tcp:4401"), reactor)
        self.assertEqual(reactor.tcpServers, [])
        service.privilegedStartService()
        self.assertEqual([s[0] for s in reactor.tcpServers], [4401])
        self.assertIsInstance(reactor.tcpServers[0][1], ServerShimFactory)

    def test_upstream_endpoints(self) -> None:
        """
        An address is connected to directly (no resolver thread per
        client); a name goes through HostnameEndpoint, resolved each time.
        """
        reactor = MemoryReactor()
        self.assertIsInstance(upstream_endpoint(reactor, "127.0.0.1", 3493, 10), TCP4ClientEndpoint)
        self.assertIsInstance(upstream_endpoint(reactor, "::1", 3493, 10), TCP6ClientEndpoint)
        self.assertIsInstance(upstream_endpoint(reactor, "ups.example.org", 401, 10), HostnameEndpoint)
        service = tap_server.makeService(self.server("--upstream", "[::1]:3494"), reactor)
        self.assertIsInstance(service.factory.upstream, TCP6ClientEndpoint)  # type: ignore[attr-defined]

    def test_client_defaults(self) -> None:
        """
        The loopback on 3493, remote port 401, CA required.
        """
        options = self.client("--upstream", "ups.example.org", "--cafile", self.files["ca.pem"])
        [remote] = options["remotes"]
        self.assertEqual((remote.host, remote.port), ("ups.example.org", 401))
        self.assertEqual(
            remote.listen,
            ["tcp:3493:interface=127.0.0.1:backlog=1024", "tcp6:3493:interface=\\:\\:1:backlog=1024"],
        )

    def test_client_remotes(self) -> None:
        """
        --remote and a config file add remotes; a section overrides [shim],
        which overrides the command line.
        """
        config = os.path.join(self.dir, "shim.ini")
        pin = _certs.fingerprint_sha256(pki().server)
        with open(config, "w") as f:
            f.write(
                f"[shim]\ncafile = {self.files['ca.pem']}\n"
                "[remote b]\nlisten = tcp:3495 tcp:3496\nupstream = b.example:4401\n"
                f"[remote c]\nlisten = tcp:3497\nupstream = c.example\npin = {pin}\n"
                "server-name = ups-c.example\n"
            )
        options = self.client(
            "--pin", "sha256:" + "11" * 32, "--remote", "tcp:3494:interface=127.0.0.1=a.example:401",
            "--config", config,
        )
        remotes = {r.name: r for r in options["remotes"]}
        self.assertEqual(remotes["a.example:401"].listen, ["tcp:3494:interface=127.0.0.1:backlog=1024"])
        self.assertEqual(remotes["a.example:401"].tls.pin, "sha256:" + "11" * 32)
        self.assertEqual(remotes["a.example:401"].tls.cafile, self.files["ca.pem"])
        self.assertEqual((remotes["b"].host, remotes["b"].port), ("b.example", 4401))
        self.assertEqual(len(remotes["b"].listen), 2)
        self.assertEqual(remotes["c"].tls.pin, pin)
        self.assertEqual(remotes["c"].tls.server_name, "ups-c.example")
        reactor = MemoryReactor()
        tap_client.makeService(options, reactor).privilegedStartService()
        self.assertEqual(sorted(s[0] for s in reactor.tcpServers), [3494, 3495, 3496, 3497])

    def test_client_errors(self) -> None:
        """
        No remote, no trust, a bad pin, a reused listener: one line each.
        """
        ca = self.files["ca.pem"]
        for args, text in (
            ([], "nothing to relay"),
            (["--upstream", "u"], "--cafile or --pin is required"),
            (["--upstream", "u", "--pin", "sha256:12"], "pin must look like"),
            (["--upstream", "u", "--cafile", "/nonexistent"], "cannot read"),
            (["--listen", "tcp:1", "--cafile", ca], "--listen needs --upstream"),
            (["--remote", "tcp:1"], "LISTEN_ENDPOINT=HOST"),
            (["--cafile", ca, "--remote", "tcp:1=a", "--remote", "tcp:1=b"], "used for both"),
        ):
            with self.assertRaises(ShimExit) as e:
                tap_client.Options().parseOptions(args)
            self.assertIn(text, str(e.exception), args)
            self.assertTrue(str(e.exception).startswith("nut-client-shim: "), str(e.exception))


class ListenerServiceTests(SynchronousTestCase):
    """
    L{ListenerService}: explicit listeners must all bind, defaults at least
    one.
    """

    class Reactor(MemoryReactor):
        def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
            if interface == "":
                raise CannotListenError(interface, port, OSError(98, "Address already in use"))
            return super().listenTCP(port, factory, backlog, interface)

    def test_defaults_tolerate_one(self) -> None:
        """
        A default listener that cannot bind (the dual-stack case) is skipped
        and logged.
        """
        observer = observe(self)
        service = ListenerService(self.Reactor(), [(object(), ["tcp6:401", "tcp:401"], False)])  # type: ignore[list-item]
        service.privilegedStartService()
        self.assertEqual(len(service.ports), 1)
        self.assertTrue(any("skipped" in formatEvent(e) for e in observer))

    def test_explicit_must_bind(self) -> None:
        """
        An explicit listener that cannot bind stops the service.
        """
        service = ListenerService(self.Reactor(), [(object(), ["tcp6:401", "tcp:401"], True)])  # type: ignore[list-item]
        self.assertRaises(ListenerError, service.privilegedStartService)
        self.assertEqual(service.ports, [])


class _Socket:
    """A socket that takes at most C{room} bytes per send."""

    def __init__(self, room: int = 1 << 20) -> None:
        self.room = room
        self.sent: List[bytes] = []

    def send(self, data: bytes) -> int:
        taken = bytes(data[: self.room])
        if not taken:
            raise BlockingIOError()
        self.sent.append(taken)
        return len(taken)


class _Connection(Connection):
    """
    A TCP connection's write-side state, without a reactor or a real
    socket: what L{relay_write} looks at, and Twisted's buffered
    C{write} recorded.
    """

    def __init__(self, sock: _Socket) -> None:  # no Connection.__init__: no fd
        self.socket = sock  # type: ignore[assignment]
        self.connected = 1
        self.disconnecting = False
        self._writeDisconnected = False
        self._tempDataLen = 0
        self.dataBuffer = b""
        self.offset = 0
        self.buffered: List[bytes] = []

    def write(self, data: bytes) -> None:
        self.buffered.append(data)
        self._tempDataLen += len(data)


class RelayWriteTests(SynchronousTestCase):
    """
    L{relay_write}: the relay's writes go straight to the socket when
    nothing waits before them (issue 14: Twisted's buffered write costs
    two epoll_ctl and a reactor iteration per reply), and through
    Twisted's buffer whenever order or back-pressure need it.
    """

    def test_idle_connection_sends_at_once(self) -> None:
        sock = _Socket()
        conn = _Connection(sock)
        relay_write(conn, b"VAR ups ups.status \"OL\"\n")
        self.assertEqual(sock.sent, [b'VAR ups ups.status "OL"\n'])
        self.assertEqual(conn.buffered, [])

    def test_partial_send_buffers_the_rest(self) -> None:
        sock = _Socket(room=4)
        conn = _Connection(sock)
        relay_write(conn, b"GET VAR ups x\n")
        self.assertEqual(sock.sent, [b"GET "])
        self.assertEqual(conn.buffered, [b"VAR ups x\n"])

    def test_after_buffered_bytes_order_is_kept(self) -> None:
        sock = _Socket(room=4)
        conn = _Connection(sock)
        relay_write(conn, b"first\n")
        relay_write(conn, b"second\n")
        self.assertEqual(sock.sent, [b"firs"])
        self.assertEqual(conn.buffered, [b"t\n", b"second\n"])

    def test_full_socket_buffers_all(self) -> None:
        conn = _Connection(_Socket(room=0))
        relay_write(conn, b"reply\n")
        self.assertEqual(conn.buffered, [b"reply\n"])

    def test_closing_connection_is_left_to_twisted(self) -> None:
        sock = _Socket()
        conn = _Connection(sock)
        conn.disconnecting = True
        relay_write(conn, b"reply\n")
        self.assertEqual((sock.sent, conn.buffered), ([], [b"reply\n"]))

    def test_other_transports_get_write(self) -> None:
        transport = StringTransport()
        relay_write(transport, b"reply\n")
        self.assertEqual(transport.value(), b"reply\n")


class PlainRequestsTests(SynchronousTestCase):
    """
    L{plain_requests}: which reads a relay may forward whole.
    """

    def test_whole_ordinary_requests(self) -> None:
        self.assertEqual(plain_requests(b"GET VAR ups ups.status\n", 100), 1)
        self.assertEqual(plain_requests(b"VER\r\n\n# c\nLIST UPS\n", 100), 4)

    def test_must_go_line_by_line(self) -> None:
        for data in (b"VER", b"VER\nLIST", b"StartTLS\n", b"logout\n", b"DETACH\n",
                     b"SET VAR ups x \\\n", b'GET VAR ups "a\\"b"\n', b"VER\n" * 30):
            self.assertEqual(plain_requests(data, 100), 0, data)
