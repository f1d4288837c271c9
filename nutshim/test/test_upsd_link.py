"""
Tests for L{nutshim.upsd.link} and its use in L{nutshim.upsd.protocol}: the
end of a connection after C{OK Goodbye}, in plaintext and in TLS, and the
C{BEGIN LIST} line as a segment of its own.

No sockets and no real time: C{StringTransport}, a fake TCP socket, and a
real in-memory TLS handshake over L{iosim} whose C{startTLS} moves the
registered producer to the TLS layer, as Twisted's TCP transports do.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from nutshim.test.test_engine import build
from nutshim.test.test_tls import Client, ProducerTLSTransport, TLSTestCase, client_tls
from nutshim.test import test_upsd_protocol
from nutshim.test.test_upsd_protocol import connect
from nutshim.upsd import link as link_module
from nutshim.upsd.link import CLOSE_GRACE, TRANSITIONS, Link, split_list
from nutshim.upsd.protocol import UpsdProtocol
from nutshim.upsd.service import UpsdFactory

CREDENTIALS = b"USERNAME admin\nPASSWORD pw\n"


class LinkTests(SynchronousTestCase):
    """
    The state machine itself.
    """

    def test_every_state_has_moves(self) -> None:
        """
        Every state is in the transition table, and the final ones lead
        nowhere.
        """
        self.assertEqual(set(TRANSITIONS), set(Link))
        self.assertEqual(TRANSITIONS[Link.CLOSING], frozenset())
        self.assertEqual(TRANSITIONS[Link.FAILED], frozenset())

    def test_illegal_move(self) -> None:
        """
        A move the table does not allow is a bug, raised as such.
        """
        engine, _, _ = build()
        proto, tr = connect(UpsdFactory(engine, Clock()))
        proto.dataReceived(b"LOGOUT\n")
        self.assertRaises(RuntimeError, proto._move, Link.TLS)

    def test_split_list(self) -> None:
        """
        The replies of one read are cut after the first C{BEGIN LIST} line;
        a reply that merely contains the words is not a LIST.
        """
        listing = b"BEGIN LIST CMD u\nCMD u a\nEND LIST CMD u\n"
        self.assertEqual(split_list([listing]), (b"BEGIN LIST CMD u\n", b"CMD u a\nEND LIST CMD u\n"))
        self.assertEqual(
            split_list([b"OK\n", listing, b"1.3\n", listing]),
            (b"OK\nBEGIN LIST CMD u\n", b"CMD u a\nEND LIST CMD u\n1.3\n" + listing),
        )
        self.assertIsNone(split_list([b'VAR u x "BEGIN LIST y"\n', b"OK\n"]))


class GoodbyeTests(SynchronousTestCase):
    """
    After C{OK Goodbye} (LOGOUT, DETACH) nothing more runs and the
    connection ends within L{CLOSE_GRACE}.
    """

    def setUp(self) -> None:
        self.engine, _, _ = build()
        self.clock = Clock()
        self.factory = UpsdFactory(self.engine, self.clock)

    def fsd(self) -> bool:
        entry = self.engine.registry.get("fake")
        assert entry is not None
        return entry.fsd

    def test_nothing_after_goodbye(self) -> None:
        """
        Requests that arrive after C{OK Goodbye}, privileged ones included,
        are neither answered nor executed.
        """
        for goodbye in (b"LOGOUT\n", b"ATTACH fake\nDETACH\n"):
            proto, tr = connect(self.factory)
            proto.dataReceived(CREDENTIALS)
            proto.dataReceived(goodbye)
            before = tr.value()
            self.assertTrue(before.endswith(b"OK Goodbye\n"))
            proto.dataReceived(b"FSD fake\n")
            proto.dataReceived(b"GET VAR fake ups.status\nNETVER\n")
            self.assertEqual(tr.value(), before)
            self.assertFalse(self.fsd())

    def test_producer_unregistered(self) -> None:
        """
        The connection stops being the transport's producer before it asks
        to close: a registered producer holds Twisted's TLS close.
        """
        proto, tr = connect(self.factory)
        self.assertIs(tr.producer, proto)
        proto.dataReceived(b"LOGOUT\n")
        self.assertIsNone(tr.producer)
        self.assertTrue(tr.disconnecting)

    def test_aborted_after_grace(self) -> None:
        """
        A connection whose last replies are not taken (or whose TLS peer
        never answers close_notify) is aborted L{CLOSE_GRACE} seconds after
        C{OK Goodbye}, well within a second.
        """
        self.assertLess(CLOSE_GRACE, 1.0)
        proto, tr = connect(self.factory)
        proto.dataReceived(b"LOGOUT\n")
        self.clock.advance(CLOSE_GRACE - 0.01)
        self.assertFalse(tr.disconnected)
        self.clock.advance(0.01)
        self.assertTrue(tr.disconnected)

    def test_lost_cancels_timer(self) -> None:
        """
        A connection that closes in time leaves no timer behind; the idle
        timer is gone from the moment of C{OK Goodbye}.
        """
        proto, tr = connect(self.factory)
        proto.dataReceived(b"LOGOUT\n")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        proto.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_same_read_rule_kept(self) -> None:
        """
        NUT's rule stays: LOGOUT followed by more requests in the same read
        keeps the connection open, and it goes on serving.
        """
        proto, tr = connect(self.factory)
        proto.dataReceived(b"LOGOUT\nNETVER\n")
        proto.dataReceived(b"PROTVER\n")
        self.assertEqual(tr.value(), b"OK Goodbye\n1.3\n1.3\n")
        self.assertFalse(tr.disconnecting)
        self.assertIs(tr.producer, proto)

    def test_already_parsed_goodbye(self) -> None:
        """
        A LOGOUT line taken by the short path (parsed on an earlier
        connection) closes the same way.
        """
        warm, _ = connect(self.factory)
        warm.dataReceived(b"LOGOUT\n")
        proto, tr = connect(self.factory)
        proto.dataReceived(CREDENTIALS)
        proto.dataReceived(b"LOGOUT\n")
        proto.dataReceived(b"FSD fake\n")
        self.assertEqual(tr.value(), b"OK\nOK\nOK Goodbye\n")
        self.assertIsNone(tr.producer)
        self.assertFalse(self.fsd())


class TLSGoodbyeTests(TLSTestCase):
    """
    The same inside TLS, through a real handshake.
    """

    def connect(self, client: Client, host: str = "127.0.0.1") -> Tuple[UpsdProtocol, iosim.IOPump]:
        peer = IPv4Address("TCP", host, 40000)
        server = self.factory.buildProtocol(peer)
        assert isinstance(server, UpsdProtocol)
        sio = ProducerTLSTransport(
            server, True, self.clock, peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 3493)
        )
        cio = ProducerTLSTransport(
            client, False, self.clock, peerAddress=IPv4Address("TCP", "127.0.0.1", 3493), hostAddress=peer
        )
        pump = iosim.connect(server, sio, client, cio, greet=False, clock=self.clock)
        return server, pump

    def session(self) -> Tuple[Client, UpsdProtocol, iosim.IOPump]:
        self.configure()
        client = Client(client_tls())
        server, pump = self.starttls(client)
        self.assertTrue(client.handshake)
        client.send(CREDENTIALS)
        pump.flush()
        self.assertEqual(client.lines, [b"OK STARTTLS", b"OK", b"OK"])
        return client, server, pump

    def test_tls_closes(self) -> None:
        """
        LOGOUT or DETACH inside TLS: C{OK Goodbye}, then the connection
        ends (close_notify and EOF) without waiting for the idle timeout.
        """
        for goodbye in (b"LOGOUT\n", b"ATTACH fake\nDETACH\n"):
            client, server, pump = self.session()
            client.send(goodbye)
            pump.flush()
            self.assertEqual(client.lines[-1], b"OK Goodbye")
            self.assertIsNotNone(client.lost)
            self.assertEqual(self.engine.registry.session_count, 0)

    def test_tls_nothing_after_goodbye(self) -> None:
        """
        A privileged request in the next TLS record after LOGOUT (it reaches
        the server before the close does) is not executed.
        """
        client, server, pump = self.session()
        client.send(b"LOGOUT\n")
        client.send(b"FSD fake\n")
        pump.flush()
        self.assertEqual(client.lines[-1], b"OK Goodbye")
        self.assertNotIn(b"OK FSD-SET", client.lines)
        entry = self.engine.registry.get("fake")
        assert entry is not None
        self.assertFalse(entry.fsd)


class ListSegmentTests(SynchronousTestCase):
    """
    The C{BEGIN LIST} line goes out on its own, then the body in one piece:
    on every path (parsed or remembered request, remembered reply, the short
    path for one-line reads, pipelined reads, plain TCP, TLS).
    """

    def setUp(self) -> None:
        self.engine, _, _ = build()
        self.factory = UpsdFactory(self.engine, Clock())
        self.yields: List[bytes] = []
        self.sock: Optional[Any] = None
        self.patch(link_module, "yield_cpu", self.record_yield)

    def record_yield(self) -> None:
        self.yields.append(self.sock.sent if self.sock is not None else b"")

    def writes(self, *reads: bytes) -> List[bytes]:
        proto, tr = connect(self.factory)
        writes: List[bytes] = []
        tr.write = writes.append  # type: ignore[method-assign]
        for data in reads:
            proto.dataReceived(data)
        return writes

    def test_every_list(self) -> None:
        """
        Each LIST sub-command: two writes, the first exactly the
        C{BEGIN LIST} line.
        """
        for request in (b"LIST UPS", b"LIST VAR fake", b"LIST RW fake", b"LIST CMD fake",
                        b"LIST ENUM fake ups.beeper.status", b"LIST RANGE fake input.transfer.low",
                        b"LIST CLIENT fake"):
            writes = self.writes(request + b"\n")
            query = request[len(b"LIST "):]
            self.assertEqual(writes[0], b"BEGIN LIST " + query + b"\n", request)
            self.assertEqual(len(writes), 2, request)
            self.assertTrue(writes[1].endswith(b"END LIST " + query + b"\n"), request)

    def test_remembered(self) -> None:
        """
        A LIST VAR served from the remembered replies, through the short
        path for an already parsed line, is cut the same way.
        """
        first = self.writes(b"LIST VAR fake\n", b"LIST VAR fake\n")
        again = self.writes(b"LIST VAR fake\n")
        self.assertEqual(len(first), 4)
        self.assertEqual(first[:2], first[2:])
        self.assertEqual(again, first[:2])

    def test_pipelined(self) -> None:
        """
        Pipelined requests: everything up to the first C{BEGIN LIST} line,
        then everything else in one write.
        """
        writes = self.writes(b"GET VAR fake battery.charge\nLIST CMD fake\nNETVER\n")
        self.assertEqual(
            writes,
            [
                b'VAR fake battery.charge "90"\nBEGIN LIST CMD fake\n',
                b"CMD fake alpha.cmd\nCMD fake beeper.toggle\nCMD fake load.on\nCMD fake Zeta.cmd\n"
                b"END LIST CMD fake\n1.3\n",
            ],
        )

    def test_plain_tcp(self) -> None:
        """
        On plain TCP the C{BEGIN LIST} line goes to the socket at once, the
        CPU is yielded (a client on this CPU reads that line alone), and
        the body is queued for the next write; then the socket has it all.
        """
        proto, transport, sock = self.tcp_connect()
        self.sock = sock
        proto.dataReceived(b"LIST VAR fake\n")
        self.assertEqual(sock.sent, b"BEGIN LIST VAR fake\n")
        self.assertEqual(self.yields, [b"BEGIN LIST VAR fake\n"])
        body = b"".join(transport._tempDataBuffer)
        self.assertTrue(body.endswith(b"END LIST VAR fake\n"))
        transport.doWrite()
        self.assertEqual(sock.sent, b"BEGIN LIST VAR fake\n" + body)

    def test_plain_tcp_backlogged(self) -> None:
        """
        Behind replies still queued, the LIST queues in order, without a
        yield (the client is not waiting for its first line).
        """
        proto, transport, sock = self.tcp_connect()
        self.sock = sock
        sock.room = 2
        proto.dataReceived(b"NETVER\n")
        proto.dataReceived(b"LIST CMD fake\n")
        self.assertEqual(sock.sent, b"1.")
        self.assertEqual(self.yields, [])
        queued = transport.dataBuffer + b"".join(transport._tempDataBuffer)
        self.assertTrue(queued.startswith(b"3\nBEGIN LIST CMD fake\nCMD fake alpha.cmd\n"))

    def test_tls_records(self) -> None:
        """
        On TLS the line and the body are two writes (two TLS records, read
        separately by any TLS client); no yield is needed.
        """
        proto, transport, sock = self.tcp_connect()
        transport.TLS = True
        writes: List[bytes] = []
        transport.write = writes.append  # type: ignore[method-assign]
        proto.dataReceived(b"LIST CMD fake\n")
        self.assertEqual(writes[0], b"BEGIN LIST CMD fake\n")
        self.assertEqual(len(writes), 2)
        self.assertEqual(self.yields, [])

    def tcp_connect(self) -> Tuple[UpsdProtocol, Any, Any]:
        """
        A connection over a fake TCP socket.
        """
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        assert isinstance(proto, UpsdProtocol)
        sock = test_upsd_protocol._FakeSocket()
        transport = test_upsd_protocol._FakeTCP(sock, proto, MemoryReactor())  # type: ignore[arg-type]
        transport.connected = 1
        proto.makeConnection(transport)
        return proto, transport, sock

