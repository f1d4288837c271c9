# -*- test-case-name: nutshim.test.test_usbhid_driver -*-
"""
C{driver = nutshim-usbhid}: the Twisted side of the USB HID driver.

pyusb blocks, so every USB call runs on the driver's own worker thread
(L{ThreadWorker}, one thread per UPS, every transfer bounded by
L{nutshim.drivers.usbhid.device.TIMEOUT_MS}); the reactor only schedules
polls and publishes the results into the L{DeviceState}.  The engine is
touched by that thread only.  The driver is an explicit state machine:

    STOPPED -> CONNECTING -> POLLING -> (device lost) WAITING -> CONNECTING ...

Until the first connection the daemon reports C{DRIVER-NOT-CONNECTED}
(where NUT's driver would not be running); after a loss the data are
stale (C{DATA-STALE}, as NUT's driver reports while it reconnects), and
the driver reconnects by itself every C{pollinterval}.
"""

from __future__ import annotations

import enum
import time
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Set, Tuple, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from nutshim import __version__
from nutshim.drivers.base import TRACKING_FAILED, DriverBase
from nutshim.drivers.usbhid import commands, quirks
from nutshim.drivers.usbhid.descriptor import parse
from nutshim.drivers.usbhid.device import Device
from nutshim.drivers.usbhid.engine import (DeviceGone, Engine, Mode, Options, Snapshot,
                                           TransportError)
from nutshim.drivers.usbhid.subdrivers import choose

__all__ = ["State", "Worker", "ThreadWorker", "SyncWorker", "UsbHidUPS", "Session", "connect"]

T = TypeVar("T")

#: Seconds between two interrupt reads (each read itself waits up to
#: C{interrupt_timeout_ms} on the USB thread; the gap lets a poll queue).
INTERRUPT_GAP = 0.01


class State(enum.Enum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    POLLING = "polling"
    WAITING = "waiting"


#: The transitions the driver may make.
TRANSITIONS: Dict[State, Set[State]] = {
    State.STOPPED: {State.CONNECTING},
    State.CONNECTING: {State.POLLING, State.WAITING, State.STOPPED},
    State.POLLING: {State.WAITING, State.STOPPED},
    State.WAITING: {State.CONNECTING, State.STOPPED},
}


class Worker(Protocol):
    def submit(self, fn: Callable[[], T]) -> "Deferred[T]": ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SyncWorker:
    """
    Runs jobs at once (tests on a Clock: no threads, no real time).
    """

    def submit(self, fn: Callable[[], T]) -> "Deferred[T]":
        try:
            return succeed(fn())
        except Exception:
            return fail(Failure())

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class ThreadWorker:
    """
    One dedicated thread: USB calls of one device never overlap.
    """

    def __init__(self, reactor: Any, name: str) -> None:
        from twisted.python.threadpool import ThreadPool

        self._reactor = reactor
        self._pool = ThreadPool(1, 1, name=f"nutshim-usbhid-{name}")

    def submit(self, fn: Callable[[], T]) -> "Deferred[T]":
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self._reactor, self._pool, fn)

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.stop()


class Session:
    """
    An opened device and its engine (touched only by the worker).
    """

    def __init__(self, device: Device, engine: Engine, applied: Tuple[str, ...]) -> None:
        self.device, self.engine, self.applied = device, engine, applied


def connect(opener: Callable[[], Device], options: Options, override: Optional[str],
            fix_quirks: bool = True) -> Tuple[Session, Snapshot]:
    """
    Open the device, parse and repair its descriptor, choose the
    subdriver and make the first walk (blocking: worker thread only).
    """
    device = opener()
    try:
        desc, applied = quirks.apply(device.ident, parse(device.descriptor), fix_quirks)
        engine = Engine(device.ident, desc, choose(device.ident, override), options)
        snapshot = engine.walk(Mode.INIT, device)
    except Exception:
        device.close()
        raise
    return Session(device, engine, tuple(applied)), snapshot


class UsbHidUPS(DriverBase):
    """
    One USB HID UPS (see the module docstring).
    """

    log = Logger()

    def __init__(self, name: str, clock: Any, opener: Callable[[], Device], worker: Worker,
                 options: Options = Options(), pollinterval: float = 2.0,
                 pollfreq: float = 30.0, subdriver: Optional[str] = None,
                 parameters: Mapping[str, str] = {}, interrupts: bool = True,
                 fix_quirks: bool = True, sleep: Callable[[float], None] = time.sleep,
                 interrupt_timeout_ms: int = 500, usb_version: str = "") -> None:
        super().__init__()
        self.name, self._clock, self._opener, self._worker = name, clock, opener, worker
        self.options, self.pollinterval, self.pollfreq = options, pollinterval, pollfreq
        self._override, self._parameters = subdriver, dict(parameters)
        self._interrupts, self._fix, self._sleep = interrupts, fix_quirks, sleep
        self._interrupt_ms = interrupt_timeout_ms
        self._usb_version = usb_version
        self.fsm = State.STOPPED
        self.session: Optional[Session] = None
        self._timer: Any = None
        self._listening = False
        self._listen_call: Any = None
        self._last_full = 0.0
        self._published: Set[str] = set()
        self._commands: Set[str] = set()
        self._last_error: Optional[str] = None
        self.polls = 0
        self.backend: Any = None

    def _to(self, new: State) -> None:
        if new not in TRANSITIONS[self.fsm]:
            raise RuntimeError(f"{self.name}: no transition {self.fsm.name} -> {new.name}")
        self.fsm = new

    # IDriver

    def start(self) -> None:
        if self.fsm is not State.STOPPED:
            return
        self._worker.start()
        self.state.set_info("driver.name", "nutshim-usbhid")
        self.state.set_info("driver.version", __version__)
        self.state.set_info("driver.version.internal", __version__)
        if self._usb_version:
            self.state.set_info("driver.version.usb", self._usb_version)
        self.state.set_info("device.type", "ups")
        for key, value in sorted(self._parameters.items()):
            if key.startswith("flag."):
                self.state.set_info(f"driver.{key}", value)
            else:
                self.state.set_info(f"driver.parameter.{key}", value)
        self._connect()

    def stop(self) -> None:
        if self.fsm is State.STOPPED:
            return
        self._to(State.STOPPED)
        self._cancel()
        if self._listen_call is not None and self._listen_call.active():
            self._listen_call.cancel()
        self._listening = False
        session, self.session = self.session, None
        if session is not None:
            self._worker.submit(session.device.close)
        self._worker.stop()
        self.connected = False
        self.stale = True

    def instcmd(self, cmd: str, param: Optional[str], tracking_id: Optional[str]) -> bool:
        session = self.session
        if session is None or self.fsm is not State.POLLING:
            return False
        def run() -> Tuple[int, Snapshot]:
            result = commands.run_command(session.engine, session.device, cmd, param, self._sleep)
            return result, session.engine.snapshot()

        self._finish(self._worker.submit(run), cmd, tracking_id)
        return True

    def setvar(self, name: str, value: str, tracking_id: Optional[str]) -> bool:
        session = self.session
        if session is None or self.fsm is not State.POLLING:
            return False
        def run() -> Tuple[int, Snapshot]:
            result = commands.run_setvar(session.engine, session.device, name, value)
            return result, session.engine.snapshot()

        self._finish(self._worker.submit(run), name, tracking_id)
        return True

    def _finish(self, d: "Deferred[Tuple[int, Snapshot]]", what: str,
                tracking_id: Optional[str]) -> None:
        # The snapshot is taken on the USB thread: only it touches the engine.
        def done(outcome: Tuple[int, Snapshot]) -> None:
            result, snapshot = outcome
            self.log.info("{ups}: {what}: result {result}", ups=self.name, what=what,
                          result=result)
            self.report(tracking_id, result)
            if self.session is not None:
                self._apply(snapshot)

        def failed(f: Failure) -> None:
            self.log.failure("{ups}: {what} failed", f, ups=self.name, what=what)
            self.report(tracking_id, TRACKING_FAILED)

        d.addCallbacks(done, failed)

    # Connecting.

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _later(self, delay: float, what: Callable[[], None]) -> None:
        self._cancel()
        self._timer = self._clock.callLater(delay, what)

    def _connect(self) -> None:
        self._to(State.CONNECTING)
        d = self._worker.submit(lambda: connect(self._opener, self.options, self._override,
                                                self._fix))
        d.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, result: Tuple[Session, Snapshot]) -> None:
        session, snapshot = result
        if self.fsm is not State.CONNECTING:
            self._worker.submit(session.device.close)
            return
        self._to(State.POLLING)
        self.session = session
        self._last_error = None
        ident, engine = session.device.ident, session.engine
        names = " ".join(n for n in (ident.manufacturer, ident.product) if n)
        self.log.info("{ups}: {where}{names}, subdriver {sub}{fixes}",
                      ups=self.name, where=session.device.where,
                      names=f" ({names})" if names else "", sub=engine.sub.name,
                      fixes=f", report descriptor fixed: {', '.join(session.applied)}"
                      if session.applied else "")
        identity = engine.sub.identity(ident)
        identity.update({"ups.vendorid": f"{ident.vendor_id:04x}",
                         "ups.productid": f"{ident.product_id:04x}",
                         "driver.version.data": engine.sub.name})
        for what in ("mfr", "model", "serial"):
            if f"ups.{what}" in identity:
                identity[f"device.{what}"] = identity[f"ups.{what}"]
        for var, value in identity.items():
            self.state.set_info(var, value)
        self._apply(snapshot)
        self.connected = True
        self.stale = False
        self._last_full = self._clock.seconds()
        self._later(self.pollinterval, self._poll)
        if self._interrupts and session.device.endpoint is not None and not self._listening:
            self._listening = True
            self._listen()

    def _connect_failed(self, f: Failure) -> None:
        if self.fsm is not State.CONNECTING:
            return
        reason = str(f.value) if f.check(TransportError) else f.getErrorMessage()
        if reason != self._last_error:
            if f.check(TransportError):
                self.log.error("{ups}: {reason}; retrying every {poll} s", ups=self.name,
                               reason=reason, poll=self.pollinterval)
            else:
                self.log.failure("{ups}: cannot use the device; retrying", f, ups=self.name)
        self._last_error = reason
        self._lost()

    def _lost(self) -> None:
        self._to(State.WAITING)
        self.stale = True
        session, self.session = self.session, None
        if session is not None:
            self._worker.submit(session.device.close)
        self._later(self.pollinterval, self._connect)

    # Polling.

    def _poll(self) -> None:
        self._timer = None
        session = self.session
        if session is None or self.fsm is not State.POLLING:
            return
        now = self._clock.seconds()
        mode = Mode.QUICK
        if now - self._last_full >= self.pollfreq or session.engine.changed:
            mode, self._last_full = Mode.FULL, now
        d = self._worker.submit(lambda: session.engine.walk(mode, session.device))
        d.addCallbacks(lambda snap: self._polled(session, snap),
                       lambda f: self._poll_failed(session, f))

    def _polled(self, session: Session, snapshot: Snapshot) -> None:
        if session is not self.session:
            return
        self.polls += 1
        self._apply(snapshot)
        self.stale = False
        self._later(self.pollinterval, self._poll)

    def _poll_failed(self, session: Session, f: Failure) -> None:
        if session is not self.session or self.fsm is not State.POLLING:
            return
        if f.check(DeviceGone):
            self.log.error("{ups}: {reason}; data are stale, reconnecting", ups=self.name,
                           reason=str(f.value))
            self._last_error = str(f.value)
        else:
            self.log.failure("{ups}: poll failed; reconnecting", f, ups=self.name)
        self._lost()

    def _listen(self) -> None:
        """
        Read the interrupt endpoint between polls (each read bounded by
        C{interrupt_timeout_ms}, so polls never wait longer than that).
        """
        session = self.session
        if session is None or self.fsm is not State.POLLING:
            self._listening = False
            return

        def read() -> Optional[Snapshot]:
            data = session.device.read_interrupt(self._interrupt_ms)
            return session.engine.interrupt(data) if data else None

        def got(snapshot: Optional[Snapshot]) -> None:
            if snapshot is not None and session is self.session:
                self._apply(snapshot)
            self._listen_call = self._clock.callLater(INTERRUPT_GAP, self._listen)

        def failed(f: Failure) -> None:
            self._listening = False  # the next poll notices a loss
            if not f.check(TransportError):
                self.log.failure("{ups}: interrupt report not understood", f, ups=self.name)

        self._worker.submit(read).addCallbacks(got, failed)

    # Publishing.

    def _apply(self, snapshot: Snapshot) -> None:
        seen = set()
        for var, value in snapshot.variables:
            seen.add(var)
            self.state.set_info(var, value)
        for var, aux in snapshot.writable:
            v = self.state.get(var)
            if v is not None and aux:
                self.state.set_flags(var, ["RW", "STRING"])
                self.state.set_aux(var, aux)
        for var in self._published - seen:
            self.state.del_info(var)
        self._published = seen
        for cmd in sorted(snapshot.commands - self._commands):
            self.state.add_command(cmd)
        for cmd in sorted(self._commands - snapshot.commands):
            self.state.del_command(cmd)
        self._commands = set(snapshot.commands)
