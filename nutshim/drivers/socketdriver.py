# -*- test-case-name: nutshim.test.test_dstate -*-
"""
upsd's side of NUT's driver socket: use any NUT driver as an L{IDriver}.

NUT's drivers (C{usbhid-ups}, C{snmp-ups}, C{dummy-ups}, ...) run as their
own processes and serve their data on a Unix socket
C{<statepath>/<driver>-<upsname>}.  L{SocketDriver} is what NUT's upsd does
with that socket (C{server/sstate.c}, reference §7): connect, send
C{DUMPALL}, show C{ups.status "WAIT"} until the dump replaces it, mirror every
change, C{PING} a quiet driver, call the data stale after C{MAXAGE} seconds of
silence or after C{DATASTALE} (only once the dump is done), forget everything
when the socket goes away and try again every 2 seconds.  So nutshim can
stand in for upsd without giving up a single NUT driver.

Unlike NUT, a driver cannot make the daemon grow without bound: a line over
L{SocketDriver.MAX_LENGTH}, a sustained flood of lines or a tree beyond the
size limits is logged and the connection dropped (and retried later); nothing
else is affected.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from nutshim.drivers import dstate
from nutshim.drivers.base import DriverBase
from nutshim.protocol._tokenizer import ParseError, RequestTokenizer

__all__ = ["SocketDriver"]

#: Seconds between reconnection attempts (upsd retries on every loop, ≤2 s).
RECONNECT_DELAY = 2.0
#: Connection failures are logged at most this often (C{SS_CONNFAIL_INT}).
CONNFAIL_LOG_INTERVAL = 300.0
#: Seconds between staleness/PING evaluations (upsd's loop runs every ≤2 s).
CHECK_INTERVAL = 1.0


def _transport(proto: LineReceiver) -> Any:
    """
    The protocol's transport (an L{ITransport}, typed loosely for mypy).
    """
    return proto.transport


class _DriverLineProtocol(LineReceiver):
    """
    One connection to a driver socket; everything is handled by the owner.
    """

    delimiter = b"\n"

    def __init__(self, owner: SocketDriver) -> None:
        self.owner = owner
        self.MAX_LENGTH = owner.MAX_LENGTH

    def connectionMade(self) -> None:
        self.owner._connectionMade(self)

    def lineReceived(self, line: bytes) -> None:
        self.owner._lineReceived(self, line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.owner._misbehaved(self, "sent a line longer than %d bytes" % (self.MAX_LENGTH,))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.owner._connectionLost(self, reason)


class _DriverFactory(Factory):
    noisy = False

    def __init__(self, owner: SocketDriver) -> None:
        self.owner = owner

    def buildProtocol(self, addr: Optional[IAddress]) -> _DriverLineProtocol:
        proto = _DriverLineProtocol(self.owner)
        proto.factory = self
        return proto


class SocketDriver(DriverBase):
    """
    A UPS served by a NUT driver process over its Unix socket.

    @ivar ups_name: the UPS (ups.conf section) name.
    @ivar driver_name: the driver program, as in ups.conf's C{driver}.
    @ivar path: the socket, C{<statepath>/<driver>-<upsname>}.
    @ivar maxage: upsd.conf's C{MAXAGE}: seconds of silence before stale.
    """

    log = Logger()

    #: Longest accepted line; NUT drivers format lines into 512 bytes.
    MAX_LENGTH = 4096
    #: Lines per second a driver may send, sustained, and in one burst (a
    #: full dump of a large ePDU is about 2000 lines).
    FLOOD_RATE = 2000.0
    FLOOD_BURST = 20000.0
    #: Size limits of the mirrored tree.
    MAX_VARIABLES = 10000
    MAX_COMMANDS = 2000
    MAX_ENUMS = 1000
    MAX_RANGES = 100

    def __init__(
        self,
        ups_name: str,
        driver_name: str,
        statepath: str,
        reactor: Any,
        maxage: int = 15,
    ) -> None:
        super().__init__()
        self.ups_name = ups_name
        self.driver_name = driver_name
        self.path = os.path.join(statepath, "%s-%s" % (driver_name, ups_name))
        self.maxage = maxage
        # Provides IReactorUNIX and IReactorTime.
        self._reactor = reactor
        self._factory = _DriverFactory(self)
        self._proto: Optional[_DriverLineProtocol] = None
        self._connecting: Optional[Deferred[_DriverLineProtocol]] = None
        self._running = False
        # IDelayedCall providers.
        self._retry: Any = None
        self._tick: Any = None
        self._last_connfail: Optional[float] = None
        self._tokenizer = RequestTokenizer()
        self._limiter = dstate.RateLimiter(self.FLOOD_RATE, self.FLOOD_BURST, 0.0)
        self._dumpdone = False
        self._data_ok = False
        self._last_heard = 0.0
        self._last_ping = 0.0

    @property
    def last_heard(self) -> Optional[float]:
        """
        When the driver last sent a line that counts as a sign of life
        (reactor seconds), while connected: what MAXAGE is measured from.
        """
        return self._last_heard if self._proto is not None else None

    @property
    def dump_done(self) -> bool:
        """
        Whether the answer to C{DUMPALL} is complete: the first data are in.
        """
        return self._proto is not None and self._dumpdone

    # IDriver.

    def start(self) -> None:
        """
        Connect, and keep reconnecting until L{stop}.
        """
        if self._running:
            return
        self._running = True
        self._connect()

    def stop(self) -> None:
        """
        Disconnect and stop retrying; the tree is emptied.
        """
        self._running = False
        for call in (self._retry, self._tick):
            if call is not None and call.active():
                call.cancel()
        self._retry = self._tick = None
        if self._connecting is not None:
            self._connecting.cancel()
        proto = self._proto
        if proto is not None:
            self._gone()
            _transport(proto).loseConnection()

    def instcmd(self, cmd: str, param: Optional[str], tracking_id: Optional[str]) -> bool:
        """
        Send C{INSTCMD}; C{False} when the driver is not connected.
        """
        return self._send(dstate.format_instcmd(cmd, param, tracking_id))

    def setvar(self, name: str, value: str, tracking_id: Optional[str]) -> bool:
        """
        Send C{SET}; C{False} when the driver is not connected.
        """
        return self._send(dstate.format_set(name, value, tracking_id))

    # Connecting.

    def _connect(self) -> None:
        self._retry = None
        if not self._running or self._proto is not None or self._connecting is not None:
            return
        endpoint = UNIXClientEndpoint(self._reactor, self.path, timeout=10)  # type: ignore[no-untyped-call]
        d: Deferred[_DriverLineProtocol] = endpoint.connect(self._factory)  # type: ignore[no-untyped-call]
        self._connecting = d
        d.addCallbacks(self._connectDone, self._connectFailed)

    def _connectDone(self, proto: _DriverLineProtocol) -> None:
        self._connecting = None

    def _connectFailed(self, reason: Failure) -> None:
        self._connecting = None
        if not self._running:
            return
        now = self._reactor.seconds()
        if self._last_connfail is None or now - self._last_connfail >= CONNFAIL_LOG_INTERVAL:
            self._last_connfail = now
            self.log.error(
                "Can't connect to UPS [{ups}] ({path}): {error}",
                ups=self.ups_name, path=self.path, error=reason.getErrorMessage(),
            )
        self._scheduleReconnect()

    def _scheduleReconnect(self) -> None:
        if self._running and self._retry is None:
            self._retry = self._reactor.callLater(RECONNECT_DELAY, self._connect)

    def _connectionMade(self, proto: _DriverLineProtocol) -> None:
        if not self._running or self._proto is not None:
            _transport(proto).loseConnection()
            return
        now = self._reactor.seconds()
        self._proto = proto
        self._tokenizer.reset()
        self._limiter = dstate.RateLimiter(self.FLOOD_RATE, self.FLOOD_BURST, now)
        self._dumpdone = False
        self._data_ok = False
        self._last_heard = now
        self._last_ping = float("-inf")
        self.state.clear()
        self.state.set_info("ups.status", "WAIT")
        self.connected = True
        self.stale = False
        _transport(proto).write(dstate.DUMPALL)
        self.log.info("Connected to UPS [{ups}]: {path}", ups=self.ups_name, path=self.path)
        self._tick = self._reactor.callLater(CHECK_INTERVAL, self._check)

    def _gone(self) -> None:
        """
        Forget the connection and the data (upsd's C{sstate_disconnect}).
        """
        self._proto = None
        self.connected = False
        self.stale = True
        self.state.clear()
        if self._tick is not None and self._tick.active():
            self._tick.cancel()
        self._tick = None

    def _connectionLost(self, proto: _DriverLineProtocol, reason: Failure) -> None:
        if proto is not self._proto:
            return
        self._gone()
        self.log.warn(
            "Lost connection to the driver of UPS [{ups}]: {error}",
            ups=self.ups_name, error=reason.getErrorMessage(),
        )
        self._scheduleReconnect()

    def _misbehaved(self, proto: _DriverLineProtocol, why: str) -> None:
        """
        Drop a driver connection that broke the rules; retry later.
        """
        if proto is not self._proto:
            return
        self.log.error(
            "Driver of UPS [{ups}] {why}: dropping the connection", ups=self.ups_name, why=why
        )
        self._gone()
        _transport(proto).abortConnection()
        self._scheduleReconnect()

    # Reading.

    def _lineReceived(self, proto: _DriverLineProtocol, line: bytes) -> None:
        if proto is not self._proto:
            return
        now = self._reactor.seconds()
        if not self._limiter.allow(now):
            self._misbehaved(proto, "floods its socket")
            return
        words = self._tokenizer.line(line)
        if words is None:
            return
        if isinstance(words, ParseError):
            self.log.debug("Parse error on sock: {reason}", reason=words.reason)
            return
        msg = dstate.parse_driver_line(words)
        if msg is None or isinstance(msg, dstate.Ping):
            # Unrecognised lines do not count as a sign of life.
            return
        self._last_heard = now
        if isinstance(msg, dstate.Tracking):
            self.report(msg.tracking_id, msg.result)
        elif isinstance(msg, dstate.DumpDone):
            self._dumpdone = True
        elif isinstance(msg, (dstate.DataOK, dstate.DataStale)):
            self._data_ok = isinstance(msg, dstate.DataOK)
        elif not isinstance(msg, dstate.Pong):
            why = self._tooBig(msg)
            if why:
                self._misbehaved(proto, why)
                return
            dstate.apply(self.state, msg)
        # upsd re-evaluates right after any activity.
        self._updateStale(now)

    def _tooBig(self, msg: dstate.DriverMessage) -> Optional[str]:
        state = self.state
        if isinstance(msg, dstate.SetInfo):
            if len(state) >= self.MAX_VARIABLES and state.get(msg.name) is None:
                return "publishes more than %d variables" % (self.MAX_VARIABLES,)
        elif isinstance(msg, dstate.AddCmd):
            if len(state.commands()) >= self.MAX_COMMANDS and not state.has_command(msg.name):
                return "publishes more than %d commands" % (self.MAX_COMMANDS,)
        elif isinstance(msg, (dstate.AddEnum, dstate.AddRange)):
            var = state.get(msg.name)
            if var is not None:
                if isinstance(msg, dstate.AddEnum) and len(var.enums) >= self.MAX_ENUMS:
                    return "publishes more than %d enums for %s" % (self.MAX_ENUMS, var.name)
                if isinstance(msg, dstate.AddRange) and len(var.ranges) >= self.MAX_RANGES:
                    return "publishes more than %d ranges for %s" % (self.MAX_RANGES, var.name)
        return None

    # Writing and timing.

    def _send(self, data: bytes) -> bool:
        proto = self._proto
        if proto is None or proto.transport is None:
            return False
        _transport(proto).write(data)
        return True

    def _check(self) -> None:
        """
        upsd's C{sstate_dead}: PING a quiet driver, re-evaluate staleness.
        """
        self._tick = None
        if self._proto is None:
            return
        now = self._reactor.seconds()
        third = self.maxage // 3
        if now - self._last_heard > third and now - self._last_ping > third:
            self._last_ping = now
            self._send(dstate.PING)
        self._updateStale(now)
        if self._proto is not None:
            self._tick = self._reactor.callLater(CHECK_INTERVAL, self._check)

    def _updateStale(self, now: float) -> None:
        # NUT 2.8.0: "elapsed > MAXAGE" in whole seconds; DATASTALE counts
        # only once the dump is done.
        stale = now - self._last_heard > self.maxage or (self._dumpdone and not self._data_ok)
        if stale and not self.stale:
            self.log.warn("Data for UPS [{ups}] is stale - check driver", ups=self.ups_name)
        elif self.stale and not stale:
            self.log.info("UPS [{ups}] data is no longer stale", ups=self.ups_name)
        self.stale = stale
