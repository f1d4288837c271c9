# -*- test-case-name: nutshim.test.test_dstate -*-
"""
A driver's side of NUT's driver socket: serve an L{IDriver} to NUT's upsd.

With this, nutshim's drivers run as separate processes behind NUT's own C
upsd (or behind nutshim's L{SocketDriver}), exactly where a C driver would
be: the socket answers like C{drivers/dstate.c} of NUT 2.8.0.  C{DUMPALL}
gets the whole tree (C{DATASTALE} first if stale, C{DATAOK} if not,
C{DUMPDONE}); C{PING} gets C{PONG}; C{SET}/C{INSTCMD} go to the driver and,
when upsd gave a tracking id, the result goes back as C{TRACKING <id> <n>} to
the connection that asked; every change of the tree is broadcast to every
connection as it happens (through L{DeviceState.subscribe}), and so are the
driver's C{DATAOK}/C{DATASTALE} transitions (the driver's C{stale} flag is
looked at after each change and every second while anyone is connected).
Commands that 2.8.0 drivers do not know (C{GETPID}, C{DUMPVALUE},
C{LOGOUT}, ...) are ignored, as there.

Unlike NUT, a peer that sends a line over C{MAX_LENGTH} or floods the socket
is disconnected instead of being served forever.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, List, Optional, Set

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from nutshim.drivers import dstate
from nutshim.drivers.base import TRACKING_FAILED
from nutshim.protocol._tokenizer import ParseError, RequestTokenizer
from nutshim.state import Message

__all__ = ["DriverSocketProtocol", "DriverSocketFactory"]

#: Seconds between looks at the driver's C{stale} flag while connected.
STALE_CHECK_INTERVAL = 1.0


class DriverSocketProtocol(LineReceiver):
    """
    One client (normally upsd) of the driver socket.
    """

    delimiter = b"\n"
    MAX_LENGTH = 4096

    def __init__(self, owner: DriverSocketFactory) -> None:
        self.owner = owner

    def connectionMade(self) -> None:
        self._tokenizer = RequestTokenizer()
        self._limiter = dstate.RateLimiter(
            self.owner.FLOOD_RATE, self.owner.FLOOD_BURST, self.owner.clock.seconds()
        )
        self.owner._connected(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.owner._disconnected(self)

    def write(self, data: bytes) -> None:
        transport: Any = self.transport
        if transport is not None and not transport.disconnecting:
            transport.write(data)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._drop("sent a line longer than %d bytes" % (self.MAX_LENGTH,))

    def _drop(self, why: str) -> None:
        self.owner.log.error("Driver socket client {why}: disconnecting", why=why)
        transport: Any = self.transport
        transport.abortConnection()

    def lineReceived(self, line: bytes) -> None:
        if not self._limiter.allow(self.owner.clock.seconds()):
            self._drop("floods the socket")
            return
        words = self._tokenizer.line(line)
        if words is None:
            return
        if isinstance(words, ParseError):
            self.owner.log.info("Parse error on sock: {reason}", reason=words.reason)
            return
        msg = dstate.parse_upsd_line(words)
        if msg is None:
            if words:
                self.owner.log.info("Unknown command on socket: {words}", words=words)
        elif isinstance(msg, dstate.DumpAll):
            self.write(b"".join(self.owner.dump()))
        elif isinstance(msg, dstate.Ping):
            self.write(dstate.PONG)
        else:
            self.owner._request(self, msg)


class DriverSocketFactory(Factory):
    """
    Serves one driver's tree over a NUT driver socket.

    Listen on C{<statepath>/<driver>-<upsname>} with a
    C{UNIXServerEndpoint}; the factory subscribes to the tree while it has
    connections.  Drivers report tracked results through their
    C{tracking_listener}, which the factory takes over (results for ids it
    did not send are passed to the previous listener).

    @ivar driver: the L{IDriver} served.
    @ivar clock: an L{IReactorTime} provider.
    @ivar connections: the connected clients.
    """

    log = Logger()
    noisy = False

    #: Lines per second a client may send, sustained, and in one burst.
    FLOOD_RATE = 200.0
    FLOOD_BURST = 2000.0
    #: Tracked requests remembered while the driver works on them.
    MAX_PENDING = 1024

    def __init__(self, driver: Any, clock: Any) -> None:
        # An IDriver provider (zope interfaces are not types to mypy here).
        self.driver: Any = driver
        self.clock = clock
        self.connections: Set[DriverSocketProtocol] = set()
        self._pending: OrderedDict[str, DriverSocketProtocol] = OrderedDict()
        self._stale = self._driverStale()
        self._check: Any = None
        self._previous_listener = driver.tracking_listener
        driver.tracking_listener = self._trackingResult

    def buildProtocol(self, addr: Optional[IAddress]) -> DriverSocketProtocol:
        proto = DriverSocketProtocol(self)
        proto.factory = self
        return proto

    def _driverStale(self) -> bool:
        return bool(self.driver.stale) or not self.driver.connected

    def dump(self) -> List[bytes]:
        """
        The answer to C{DUMPALL}.
        """
        self._updateStale()
        return list(dstate.dump_lines(self.driver.state, self._stale))

    # Connections.

    def _connected(self, proto: DriverSocketProtocol) -> None:
        if not self.connections:
            self.driver.state.subscribe(self._changed)
            self._stale = self._driverStale()
            self._check = self.clock.callLater(STALE_CHECK_INTERVAL, self._periodic)
        self.connections.add(proto)

    def _disconnected(self, proto: DriverSocketProtocol) -> None:
        self.connections.discard(proto)
        for tracking_id in [k for k, v in self._pending.items() if v is proto]:
            del self._pending[tracking_id]
        if not self.connections:
            self.driver.state.unsubscribe(self._changed)
            if self._check is not None and self._check.active():
                self._check.cancel()
            self._check = None

    def _broadcast(self, line: bytes) -> None:
        for proto in list(self.connections):
            proto.write(line)

    # Changes.

    def _changed(self, message: Message) -> None:
        self._updateStale()
        self._broadcast(dstate.format_driver_words(message))

    def _updateStale(self) -> None:
        stale = self._driverStale()
        if stale != self._stale:
            self._stale = stale
            self._broadcast(b"DATASTALE\n" if stale else b"DATAOK\n")

    def _periodic(self) -> None:
        self._check = None
        self._updateStale()
        if self.connections:
            self._check = self.clock.callLater(STALE_CHECK_INTERVAL, self._periodic)

    # Requests and their results.

    def _request(self, proto: DriverSocketProtocol, msg: dstate.UpsdMessage) -> None:
        tracking_id = getattr(msg, "tracking_id", None)
        if tracking_id is not None:
            self._pending[tracking_id] = proto
            self._pending.move_to_end(tracking_id)
            while len(self._pending) > self.MAX_PENDING:
                self._pending.popitem(last=False)
        try:
            if isinstance(msg, dstate.SetVar):
                delivered = self.driver.setvar(msg.name, msg.value, tracking_id)
            else:
                assert isinstance(msg, dstate.InstCmd)
                delivered = self.driver.instcmd(msg.name, msg.param, tracking_id)
        except Exception:
            self.log.failure("Driver failed to handle {msg}", msg=msg)
            delivered = False
        if not delivered and tracking_id is not None and tracking_id in self._pending:
            self._trackingResult(tracking_id, TRACKING_FAILED)

    def _trackingResult(self, tracking_id: str, result: int) -> None:
        proto = self._pending.pop(tracking_id, None)
        if proto is None:
            self._previous_listener(tracking_id, result)
        else:
            proto.write(dstate.format_tracking(tracking_id, result))
