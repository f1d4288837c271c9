"""
Tests for L{nutshim.protocol.starttls}: one classification of request lines
for nut-upsd and the server shim, and which replies accept STARTTLS.

The table test feeds the same bytes to nut-upsd's connection (its
tokenizer, parser and engine, TLS required as on the shim's port) and to a
server shim connection, and checks that both start TLS for the same lines
and otherwise answer the same -- except where the shim's policy is
documented to differ (it serves HELP and the protocol version only inside
TLS).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from typing import Any, List, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ITCPTransport, ITLSTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides, implementer

from nutshim.config import UpsdConf
from nutshim.protocol.starttls import Kind, RequestClassifier, starttls_accepted
from nutshim.shim.server import ServerShimFactory
from nutshim.test.test_engine import build
from nutshim.test.test_shim import StringEndpoint
from nutshim.test.test_tls import pki
from nutshim.tls import server_tls_options
from nutshim.upsd.service import UpsdFactory

#: Request bytes (one or more lines) and what they are.
TABLE: List[Tuple[bytes, Kind]] = [
    (b"STARTTLS\n", Kind.STARTTLS),
    (b"starttls\n", Kind.STARTTLS),
    (b"StartTls\n", Kind.STARTTLS),
    (b"STARTTLS extra\n", Kind.STARTTLS),
    (b"STARTTLS extra words and more\n", Kind.STARTTLS),
    (b"STARTTLS # comment\n", Kind.STARTTLS),
    (b"STARTTLS#comment\n", Kind.STARTTLS),
    (b'"STARTTLS"\n', Kind.STARTTLS),
    (b'"STARTTLS" "x y"\n', Kind.STARTTLS),
    (b"STARTTLS\r\n", Kind.STARTTLS),
    (b"  STARTTLS  \n", Kind.STARTTLS),
    (b"\tSTARTTLS\n", Kind.STARTTLS),
    (b"START\\\nTLS\n", Kind.STARTTLS),
    (b"STARTTLS\\\n\n", Kind.STARTTLS),
    (b"STARTTLS=\n", Kind.STARTTLS),
    (b"\x00STARTTLS\n", Kind.STARTTLS),
    (b"\xffSTART\x01TLS\xfe\n", Kind.STARTTLS),
    (b"STARTTLSX\n", Kind.OTHER),
    (b"XSTARTTLS\n", Kind.OTHER),
    (b"STAR TTLS\n", Kind.OTHER),
    (b'"START TLS"\n', Kind.OTHER),
    (b'STAR"TLS"\n', Kind.OTHER),
    (b"# STARTTLS\n", Kind.OTHER),
    (b"\n", Kind.OTHER),
    (b"\r\n", Kind.OTHER),
    (b"VER\n", Kind.OTHER),
    (b"USERNAME mon\n", Kind.OTHER),
    (b"LIST UPS\n", Kind.OTHER),
    (b"garbage \x01\x02 here\n", Kind.OTHER),
    (b"LOGOUT\n", Kind.GOODBYE),
    (b"detach\r\n", Kind.GOODBYE),
    (b"LOGOUT now\n", Kind.OTHER),
    (b'STARTTLS "unterminated\n', Kind.INVALID),
    (b'STARTTLS "a#b"\n', Kind.INVALID),
    (b'"\n', Kind.INVALID),
]

#: Verbs nut-upsd answers in plaintext even when TLS is required; the
#: server shim serves nothing but STARTTLS before TLS.
PLAINTEXT_IN_UPSD = (b"HELP\n", b"PROTVER\n", b"NETVER\n")


def classify(data: bytes) -> Kind:
    """The kind of the last request in C{data} (several lines)."""
    classifier = RequestClassifier()
    kinds = [classifier.line(line).kind for line in data.split(b"\n")[:-1]]
    assert all(k is Kind.INCOMPLETE for k in kinds[:-1]), kinds
    return kinds[-1]


class ClassifierTests(SynchronousTestCase):
    """
    L{RequestClassifier} on every line of the table.
    """

    def test_table(self) -> None:
        """
        Each line is what the table says.
        """
        for data, kind in TABLE:
            self.assertIs(classify(data), kind, data)

    def test_verb(self) -> None:
        """
        The verb is upper-cased; a continued line has none yet.
        """
        classifier = RequestClassifier()
        self.assertEqual(classifier.line(b"get VAR u x").verb, "GET")
        self.assertEqual(classifier.line(b"LIST \\").verb, "")
        self.assertTrue(classifier.pending)
        self.assertEqual(classifier.line(b"UPS").verb, "LIST")
        self.assertFalse(classifier.pending)

    def test_reset(self) -> None:
        """
        A reset forgets a continued line.
        """
        classifier = RequestClassifier()
        classifier.line(b"START\\")
        classifier.reset()
        self.assertIs(classifier.line(b"TLS").kind, Kind.OTHER)


class PurityTests(SynchronousTestCase):
    def test_no_twisted(self) -> None:
        """
        The classification is protocol core: it imports nothing from Twisted.
        """
        code = ("import sys, nutshim.protocol.starttls; print(any(m == 'twisted'"
                " or m.startswith('twisted.') for m in sys.modules))")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        self.assertEqual(out.stdout.strip(), "False")


class AcceptedTests(SynchronousTestCase):
    """
    L{starttls_accepted}: NUT's C{OK STARTTLS} and RFC 9271's bare C{OK}.
    """

    def test_accepted(self) -> None:
        for reply in (b"OK", b"OK\r", b"OK STARTTLS", b"OK STARTTLS\r\n", "OK", b"OK STARTTLS ok"):
            self.assertTrue(starttls_accepted(reply), reply)

    def test_refused(self) -> None:
        for reply in (b"ERR FEATURE-NOT-CONFIGURED", b"OK Goodbye", b"OK STARTTLSX", b"OKAY",
                      b"", b" OK", b"ok", b"OK  STARTTLS"):
            self.assertFalse(starttls_accepted(reply), reply)


@implementer(ITCPTransport)
class _Transport(StringTransport):
    """A connection whose startTLS is only recorded."""

    def __init__(self) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "192.0.2.7", 40000))
        self.tls: Any = None

    def startTLS(self, options: Any, normal: bool = True) -> None:
        self.tls = options
        directlyProvides(self, ITLSTransport, ITCPTransport)

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def loseWriteConnection(self) -> None:
        pass


class SameAnswerTests(SynchronousTestCase):
    """
    nut-upsd and the server shim give the same answer to the same bytes.
    """

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        files = pki().write(self.dir)
        self.clock = Clock()
        options = server_tls_options(replace(UpsdConf(), certfile=files["server.pem"]), self.dir)
        engine, _, _ = build()
        engine.tls_available = True
        self.upsd = UpsdFactory(engine, self.clock)
        self.upsd.tls_mode = "all"
        self.upsd.tls_context_factory = options
        self.shim = ServerShimFactory(
            self.clock, StringEndpoint(), "127.0.0.1:3493", handshake_timeout=10,
            tls_options=options,
        )

    def answer(self, factory: Any, data: bytes) -> Tuple[bytes, bool]:
        proto = factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40000))
        transport = _Transport()
        proto.makeConnection(transport)
        proto.dataReceived(data)
        return transport.value(), transport.tls is not None

    def test_table(self) -> None:
        """
        Every line of the table: TLS started by both or neither, the same
        reply bytes.
        """
        for data, kind in TABLE:
            upsd = self.answer(self.upsd, data)
            shim = self.answer(self.shim, data)
            self.assertEqual(upsd, shim, data)
            self.assertEqual(shim[1], kind is Kind.STARTTLS, data)

    def test_plaintext_policy(self) -> None:
        """
        The one documented difference: HELP and the protocol version, which
        nut-upsd answers in plaintext, are refused by the shim until TLS.
        """
        for data in PLAINTEXT_IN_UPSD:
            self.assertNotEqual(self.answer(self.upsd, data)[0], b"ERR TLS-NOT-ENABLED\n")
            self.assertEqual(self.answer(self.shim, data), (b"ERR TLS-NOT-ENABLED\n", False))
