"""
Tests for L{nutshim.upsd.protocol}: framing, close rules, limits, timers and
back-pressure, over C{StringTransport} and C{Clock}.
"""

from __future__ import annotations

from typing import Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from nutshim.test.test_engine import build
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

    def test_list_one_write(self) -> None:
        """
        A LIST reply is handed to the transport in one write.
        """
        proto, tr = connect(self.factory)
        writes: list[bytes] = []
        tr.write = writes.append  # type: ignore[method-assign]
        proto.dataReceived(b"LIST VAR fake\n")
        self.assertEqual(len(writes), 1)
        self.assertTrue(writes[0].endswith(b"END LIST VAR fake\n"))

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
