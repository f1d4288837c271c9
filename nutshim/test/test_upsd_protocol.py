"""
Tests for L{nutshim.upsd.protocol}: framing, close rules, limits, timers and
back-pressure, over C{StringTransport} and C{Clock}.
"""

from __future__ import annotations

from typing import Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from nutshim.test.test_engine import build
from nutshim.upsd import protocol as protocol_module
from nutshim.upsd.protocol import UpsdProtocol, is_loopback
from nutshim.upsd.service import UpsdFactory


def connect(
    factory: UpsdFactory, host: str = "127.0.0.1"
) -> Tuple[UpsdProtocol, StringTransport]:
    proto = factory.buildProtocol(IPv4Address("TCP", host, 40000))
    assert isinstance(proto, UpsdProtocol)
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
    proto.makeConnection(transport)
    return proto, transport


class ProtocolTests(SynchronousTestCase):
    """
    One connection's framing and life.
    """

    def setUp(self) -> None:
        self.engine, self.driver, _ = build()
        self.clock = Clock()
        self.factory = UpsdFactory(self.engine, self.clock)

    def test_pipelined_one_segment(self) -> None:
        """
        Several requests in one segment are answered in order; CRLF works.
        """
        proto, tr = connect(self.factory)
        proto.dataReceived(b"PROTVER\r\nGET VAR fake battery.charge\nNETVER\n")
        self.assertEqual(tr.value(), b'1.3\nVAR fake battery.charge "90"\n1.3\n')

    def test_split_line(self) -> None:
        """
        A request split across segments is reassembled.
        """
        proto, tr = connect(self.factory)
        for byte in b"GET VAR fake battery.charge\n":
            proto.dataReceived(bytes([byte]))
        self.assertEqual(tr.value(), b'VAR fake battery.charge "90"\n')

    def test_list_two_writes(self) -> None:
        """
        A LIST reply is handed to the transport in two writes: its
        C{BEGIN LIST} line, then the whole body in one piece.
        """
        proto, tr = connect(self.factory)
        writes: list[bytes] = []
        tr.write = writes.append  # type: ignore[method-assign]
        proto.dataReceived(b"LIST VAR fake\n")
        self.assertEqual(len(writes), 2)
        self.assertEqual(writes[0], b"BEGIN LIST VAR fake\n")
        self.assertTrue(writes[1].startswith(b"VAR fake "))
        self.assertTrue(writes[1].endswith(b"END LIST VAR fake\n"))

    def test_logout_closes(self) -> None:
        """
        LOGOUT closes the connection after its reply.
        """
        proto, tr = connect(self.factory)
        proto.dataReceived(b"LOGOUT\n")
        self.assertEqual(tr.value(), b"OK Goodbye\n")
        self.assertTrue(tr.disconnecting)

    def test_logout_then_more(self) -> None:
        """
        As in NUT, requests after LOGOUT in the same read keep it open.
        """
        proto, tr = connect(self.factory)
        proto.dataReceived(b"LOGOUT\nPROTVER\n")
        self.assertEqual(tr.value(), b"OK Goodbye\n1.3\n")
        self.assertFalse(tr.disconnecting)

    def test_login_dropped_on_close(self) -> None:
        """
        The attach count drops when the connection is lost.
        """
        proto, tr = connect(self.factory)
        proto.dataReceived(b"USERNAME sec\nPASSWORD spw\nLOGIN fake\n")
        entry = self.engine.registry.get("fake")
        assert entry is not None
        self.assertEqual(entry.numlogins, 1)
        proto.connectionLost(None)
        self.assertEqual(entry.numlogins, 0)
        self.assertEqual(self.engine.registry.session_count, 0)

    def test_line_too_long(self) -> None:
        """
        A line over the cap gets ERR TOO-LONG; the rest of that line is
        skipped and the next request is answered.
        """
        self.factory.max_line = 512
        proto, tr = connect(self.factory)
        proto.dataReceived(b"GET VAR " + b"a" * 600)
        self.assertEqual(tr.value(), b"ERR TOO-LONG\n")
        proto.dataReceived(b"b" * 10000)
        proto.dataReceived(b"ccc\nPROTVER\n")
        self.assertEqual(tr.value(), b"ERR TOO-LONG\n1.3\n")
        self.assertFalse(tr.disconnecting)

    def test_line_too_long_complete(self) -> None:
        """
        A complete over-long line followed by requests in the same segment.
        """
        self.factory.max_line = 512
        proto, tr = connect(self.factory)
        proto.dataReceived(b"x" * 700 + b"\nPROTVER\n")
        self.assertEqual(tr.value(), b"ERR TOO-LONG\n1.3\n")

    def test_idle_timeout(self) -> None:
        """
        A client silent for the idle timeout is dropped; any full line resets
        the timer.
        """
        proto, tr = connect(self.factory)
        self.clock.advance(59)
        proto.dataReceived(b"bogus\n")
        self.clock.advance(59)
        self.assertFalse(tr.disconnecting)
        self.clock.advance(2)
        self.assertTrue(tr.disconnecting)

    def test_maxconn(self) -> None:
        """
        Past MAXCONN a new connection is closed at once.
        """
        self.factory.maxconn = 1
        connect(self.factory)
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        tr = StringTransport()
        assert proto is not None
        proto.makeConnection(tr)
        self.assertTrue(tr.disconnecting)
        self.assertEqual(tr.value(), b"")

    def test_backpressure(self) -> None:
        """
        The connection is the transport's streaming producer: when the
        client stops reading, requests stop being read too.
        """
        proto, tr = connect(self.factory)
        self.assertIs(tr.producer, proto)
        self.assertTrue(tr.streaming)
        proto.pauseProducing()
        self.assertEqual(tr.producerState, "paused")
        proto.dataReceived(b"PROTVER\n")
        self.assertEqual(tr.value(), b"")
        proto.resumeProducing()
        self.assertEqual(tr.value(), b"1.3\n")

    def test_tls_required_remote(self) -> None:
        """
        With TLS required for remote clients, a remote client is refused in
        plaintext and a loopback one is not.
        """
        self.factory.tls_mode = "remote"
        remote, rtr = connect(self.factory, "192.0.2.9")
        local, ltr = connect(self.factory, "127.0.0.1")
        remote.dataReceived(b"LIST UPS\n")
        local.dataReceived(b"GET UPSDESC nodesc\n")
        self.assertEqual(rtr.value(), b"ERR TLS-NOT-ENABLED\n")
        self.assertEqual(ltr.value(), b'UPSDESC nodesc "Unavailable"\n')


class ChunkingTests(SynchronousTestCase):
    """
    Any split of the byte stream gives the same replies.
    """

    STREAM = (
        b'PROTVER\nGET VAR fake "ups.id"\nLIST CMD fake\r\nUSERNAME "a b"\n'
        b'GET VAR fake ups.\\\nstatus\nGET VAR "x#y"\nHELP\n'
    )

    def reply(self, chunks: list[bytes]) -> bytes:
        engine, _, _ = build()
        proto, tr = connect(UpsdFactory(engine, Clock()))
        for chunk in chunks:
            proto.dataReceived(chunk)
        return tr.value()

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
    def test_any_chunking(self, cuts: list[int]) -> None:
        """
        Cutting the stream anywhere does not change the replies.
        """
        whole = self.reply([self.STREAM])
        points = sorted(set(cuts))
        chunks = [self.STREAM[a:b] for a, b in zip([0] + points, points + [len(self.STREAM)])]
        self.assertEqual(self.reply(chunks), whole)

    def test_loopback(self) -> None:
        """
        Loopback detection covers IPv4, IPv6 and IPv4-mapped addresses.
        """
        for ip, expected in [
            ("127.0.0.1", True),
            ("127.8.9.1", True),
            ("::1", True),
            ("::ffff:127.0.0.1", True),
            ("192.0.2.1", False),
            ("::ffff:192.0.2.1", False),
            ("bogus", False),
        ]:
            self.assertEqual(is_loopback(ip), expected, ip)


class _FakeSocket:
    """
    Just enough of a socket for L{tcp.Connection}: C{send} takes at most
    C{room} bytes (or raises C{error}) and records what it took.
    """

    def __init__(self) -> None:
        self.sent = b""
        self.room: int = 1 << 20
        self.error: Optional[OSError] = None

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return 99

    def setsockopt(self, *args: object) -> None:
        pass

    def send(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        taken = bytes(data[: self.room])
        self.sent += taken
        return len(taken)


class _FakeTCP(tcp.Connection):
    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 40000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 3493)


class FastPathTests(SynchronousTestCase):
    """
    The hot path: parsed plain lines are shared, and on plain TCP replies go
    straight to the socket when nothing is queued, without changing what
    the client receives or in which order.
    """

    def setUp(self) -> None:
        self.engine, self.driver, _ = build()
        self.factory = UpsdFactory(self.engine, Clock())

    def tcp_connect(self) -> Tuple[UpsdProtocol, _FakeTCP, _FakeSocket]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        assert isinstance(proto, UpsdProtocol)
        sock = _FakeSocket()
        transport = _FakeTCP(sock, proto, MemoryReactor())  # type: ignore[arg-type]
        transport.connected = 1
        proto.makeConnection(transport)
        return proto, transport, sock

    def queued(self, transport: _FakeTCP) -> bytes:
        return transport.dataBuffer + b"".join(transport._tempDataBuffer)

    def test_direct(self) -> None:
        """
        With nothing queued, the replies of one read go to the socket in
        one C{send}, and nothing is queued.
        """
        proto, transport, sock = self.tcp_connect()
        proto.dataReceived(b"NETVER\nGET VAR fake battery.charge\n")
        self.assertEqual(sock.sent, b'1.3\nVAR fake battery.charge "90"\n')
        self.assertEqual(self.queued(transport), b"")

    def test_partial(self) -> None:
        """
        What the socket does not take is queued, in order.
        """
        proto, transport, sock = self.tcp_connect()
        sock.room = 5
        proto.dataReceived(b"GET VAR fake battery.charge\n")
        self.assertEqual(sock.sent, b"VAR f")
        self.assertEqual(self.queued(transport), b'ake battery.charge "90"\n')
        # Something is queued now: the next reply queues behind it.
        sock.room = 1 << 20
        proto.dataReceived(b"NETVER\n")
        self.assertEqual(sock.sent, b"VAR f")
        self.assertEqual(self.queued(transport), b'ake battery.charge "90"\n1.3\n')

    def test_would_block_or_lost(self) -> None:
        """
        A full socket, or one that is gone, leaves the reply to C{write}.
        """
        for error in (BlockingIOError(), ConnectionResetError()):
            proto, transport, sock = self.tcp_connect()
            sock.error = error
            proto.dataReceived(b"NETVER\n")
            self.assertEqual(self.queued(transport), b"1.3\n")

    def test_tls_queues(self) -> None:
        """
        Once TLS is on, replies go through the transport as usual.
        """
        proto, transport, sock = self.tcp_connect()
        transport.TLS = True
        writes: list[bytes] = []
        transport.write = writes.append  # type: ignore[method-assign]
        proto.dataReceived(b"NETVER\n")
        self.assertEqual(sock.sent, b"")
        self.assertEqual(writes, [b"1.3\n"])

    def test_logout_closes(self) -> None:
        """
        LOGOUT's reply is sent before the connection closes.
        """
        proto, transport, sock = self.tcp_connect()
        proto.dataReceived(b"LOGOUT\n")
        self.assertEqual(sock.sent, b"OK Goodbye\n")
        self.assertTrue(transport.disconnecting)

    def test_logout_already_parsed(self) -> None:
        """
        A LOGOUT line already parsed on another connection (the short path
        for a read of one known request) still closes after its reply, and
        LOGOUT followed by another request in the same read still does not.
        """
        warm, _ = connect(self.factory)
        warm.dataReceived(b"LOGOUT\n")
        self.assertIn(b"LOGOUT", protocol_module._PARSED)
        proto, transport, sock = self.tcp_connect()
        proto.dataReceived(b"LOGOUT\n")
        self.assertEqual(sock.sent, b"OK Goodbye\n")
        self.assertTrue(transport.disconnecting)
        proto, transport, sock = self.tcp_connect()
        proto.dataReceived(b"LOGOUT\nNETVER\n")
        self.assertEqual(sock.sent, b"OK Goodbye\n1.3\n")
        self.assertFalse(transport.disconnecting)

    def test_shared_parse_respects_continuation(self) -> None:
        """
        A line parsed on one connection is reused on another, but not as the
        second half of a continued line.
        """
        first, tr1 = connect(self.factory)
        first.dataReceived(b"NETVER\nbattery.charge\n")
        second, tr2 = connect(self.factory)
        second.dataReceived(b"GET VAR fake \\\nNETVER\nGET VAR fake \\\nbattery.charge\nNETVER\n")
        self.assertEqual(tr2.value(), b'ERR VAR-NOT-SUPPORTED\nVAR fake battery.charge "90"\n1.3\n')

    def test_shared_parse_bounded(self) -> None:
        """
        The shared table of parsed lines stays bounded; long lines are not
        kept.
        """
        proto, tr = connect(self.factory)
        proto.dataReceived(b"".join(b"GET VAR fake v%d\n" % i for i in range(3000)))
        self.assertLessEqual(len(protocol_module._PARSED), protocol_module._PARSED_MAX)
        long_line = b"GET VAR fake " + b"x" * 400
        proto.dataReceived(long_line + b"\n")
        self.assertNotIn(long_line, protocol_module._PARSED)
        self.assertEqual(tr.value().count(b"ERR VAR-NOT-SUPPORTED\n"), 3001)

    def test_one_line_reads_keep_the_limit(self) -> None:
        """
        A read holding exactly one request takes the short way, with the
        same line-length limit: MAX_LENGTH bytes pass, one more does not.
        """
        self.factory.max_line = 512
        proto, tr = connect(self.factory)
        at_limit = b"GET VAR fake " + b"v" * (512 - 13)
        proto.dataReceived(at_limit + b"\n")
        proto.dataReceived(at_limit + b"w\n")
        proto.dataReceived(b"NETVER\n")
        self.assertEqual(tr.value(), b"ERR VAR-NOT-SUPPORTED\nERR TOO-LONG\n1.3\n")
