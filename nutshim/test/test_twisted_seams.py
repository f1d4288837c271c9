"""
Canaries for the private Twisted internals nutshim's hot paths read.

L{nutshim.shim._transport.relay_write} and nut-upsd's protocol send on the
socket themselves when nothing is buffered before their bytes; to know
that, they read attributes Twisted does not promise to keep.  If a Twisted
release renames one, the fast paths would either raise in production or,
worse, overtake bytes still buffered (a reordered TLS stream).  These tests
fail loudly first, in the test run, naming what moved.
"""

from __future__ import annotations

from twisted.internet import abstract, tcp
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.trial.unittest import SynchronousTestCase

from nutshim.shim._transport import relay_write


class TCPSeamTests(SynchronousTestCase):
    def test_file_descriptor_buffer_attributes(self) -> None:
        """
        What L{relay_write} reads to tell "nothing buffered" on a TCP
        connection: C{connected}, C{disconnecting}, C{_writeDisconnected},
        C{_tempDataLen}, C{dataBuffer}, C{offset}.
        """
        fd = abstract.FileDescriptor(reactor=Clock())  # type: ignore[arg-type]
        for name in ("connected", "disconnecting", "_writeDisconnected", "_tempDataLen",
                     "dataBuffer", "offset", "_tempDataBuffer"):
            self.assertTrue(hasattr(fd, name), f"twisted FileDescriptor lost {name}")
        self.assertEqual((fd._tempDataLen, fd.dataBuffer, fd.offset), (0, b"", 0))
        fd.connected = True
        fd.startWriting = lambda: None  # type: ignore[method-assign]
        fd.write(b"queued")
        self.assertEqual(fd._tempDataLen, 6, "FileDescriptor.write no longer counts _tempDataLen")

    def test_tcp_connection_is_a_file_descriptor(self) -> None:
        self.assertTrue(issubclass(tcp.Connection, abstract.FileDescriptor))
        self.assertTrue(hasattr(tcp.Connection, "TLS"))


class TLSSeamTests(SynchronousTestCase):
    def test_tls_protocol_attributes(self) -> None:
        """
        What L{relay_write} reads on Twisted's TLS wrapper: the handshake
        and loss flags, the pre-handshake buffer, the OpenSSL connection,
        and the small-write aggregator's C{_buffer} (bytes there must not
        be overtaken).
        """
        from twisted.internet.ssl import optionsForClientTLS

        factory = TLSMemoryBIOFactory(optionsForClientTLS("example.invalid"), True,
                                      _WrappedFactory(), Clock())  # type: ignore[arg-type]
        self.assertIs(factory.protocol, BufferingTLSTransport)
        proto = factory.buildProtocol(None)
        assert proto is not None
        self.assertIsInstance(proto, TLSMemoryBIOProtocol)
        proto.makeConnection(StringTransport())
        for name in ("_handshakeDone", "_lostTLSConnection", "_appSendBuffer", "_tlsConnection",
                     "disconnecting", "_aggregator"):
            self.assertTrue(hasattr(proto, name), f"TLSMemoryBIOProtocol lost {name}")
        self.assertFalse(proto._handshakeDone)
        self.assertTrue(hasattr(proto._aggregator, "_buffer"),
                        "twisted's TLS write aggregator lost _buffer")
        proto.write(b"before the handshake")
        self.assertTrue(proto._appSendBuffer or proto._aggregator._buffer,
                        "a write before the handshake is no longer held where relay_write looks")
        self.assertTrue(hasattr(tcp.Connection, "TLS"))

    def test_other_transports_just_write(self) -> None:
        """
        Anything but a real TCP connection gets its own C{write}.
        """
        transport = StringTransport()
        relay_write(transport, b"GET VAR ups ups.status\n")
        self.assertEqual(transport.value(), b"GET VAR ups ups.status\n")


class _WrappedFactory:
    """The wrapped application's factory: a plain Protocol."""

    def buildProtocol(self, addr: object) -> Protocol:
        return Protocol()

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass
