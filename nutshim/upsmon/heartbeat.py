# -*- test-case-name: nutshim.test.test_heartbeat -*-
"""
Watching a heartbeat UPS (RFC 9271, section 5.2, note 3): a software UPS
whose C{ups.status} changes between C{TICK} and C{TOCK} at a regular
interval, so that the change reaching nut-upsmon proves the whole chain
-- driver, Attachment Daemon, network, polling -- works.

Which UPS is a heartbeat: a C{MONITOR} with power value 0 whose status
shows C{TICK} or C{TOCK} (found at the first such status), or one that a
C{HEARTBEAT} line declares (watched from the start, so a heartbeat that is
never reached is reported too).  A beat is a status whose C{TICK}/C{TOCK}
differs from the last one seen (the first one seen counts): the same
C{OL TICK} polled again and again is a heartbeat that has stopped.

The window: when no beat arrives within it, the heartbeat is lost
(C{HEARTBEATLOST}); the next beat brings it back (C{HEARTBEATOK}).  By
default it is twice the heartbeat's interval plus one C{POLLFREQ} -- one
missed change is tolerated, and the poll that sees a change may come a
C{POLLFREQ} late.  The interval is the UPS's C{driver.parameter.interval}
(published by C{nutshim-heartbeat}), else 300 s; C{HEARTBEAT <ups>
<seconds>} sets the window itself.  The window runs on the clock, not on
polls, so a hung server (SIGSTOPped upsd) is noticed on time, and a
heartbeat never counts in the power accounting: losing it can never shut
the system down.

An explicit state machine: L{Beat} and the transition table L{_NEXT}.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Dict, FrozenSet, Optional, Protocol, Tuple

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from nutshim.drivers.heartbeat import DEFAULT_INTERVAL, INTERVAL_VARIABLE, MAX_INTERVAL

__all__ = ["Beat", "Input", "HeartbeatWatch", "MonitorHeartbeat", "beat_token", "reconfigured"]


class Beat(enum.Enum):
    """Where a heartbeat stands."""

    WAITING = "waiting for the first beat"
    BEATING = "beating"
    LOST = "lost"


class Input(enum.Enum):
    """What happens to it."""

    BEAT = "a TICK/TOCK change"
    EXPIRED = "the window expired"


_NEXT: Dict[Tuple[Beat, Input], Beat] = {
    (Beat.WAITING, Input.BEAT): Beat.BEATING,
    (Beat.WAITING, Input.EXPIRED): Beat.LOST,
    (Beat.BEATING, Input.BEAT): Beat.BEATING,
    (Beat.BEATING, Input.EXPIRED): Beat.LOST,
    (Beat.LOST, Input.BEAT): Beat.BEATING,
}


def beat_token(symbols: FrozenSet[str]) -> Optional[str]:
    """C{"TICK"} or C{"TOCK"} if the status has exactly one of them."""
    tick, tock = "TICK" in symbols, "TOCK" in symbols
    if tick == tock:
        return None
    return "TICK" if tick else "TOCK"


class HeartbeatWatch:
    """
    The window of one heartbeat, on the clock.

    @ivar state: the current L{Beat}.
    @ivar last: the last C{TICK}/C{TOCK} seen, or L{None}.
    """

    def __init__(self, clock: Any, window: Callable[[], float],
                 on_lost: Callable[[float], None], on_back: Callable[[], None]) -> None:
        """
        @param window: the window in seconds, asked afresh at each beat (a
            reload or a learnt interval changes it).
        @param on_lost: called with the seconds since the last beat (or
            since the watch began) when the window expires.
        @param on_back: called at the first beat after L{on_lost}.
        """
        self.clock = clock
        self.window = window
        self.on_lost = on_lost
        self.on_back = on_back
        self.state = Beat.WAITING
        self.last: Optional[str] = None
        self._since = clock.seconds()
        self._timer: Any = None
        self._active = False

    def _input(self, event: Input) -> Beat:
        new = _NEXT.get((self.state, event))
        if new is None:
            raise RuntimeError(f"heartbeat: {event.value} while {self.state.value}")
        self.state = new
        return new

    def start(self) -> None:
        """Start the window now."""
        self._active = True
        self._since = self.clock.seconds()
        self.rearm()

    def stop(self) -> None:
        """Cancel the window (a reply still in flight restarts nothing)."""
        self._active = False
        self._cancel()

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def rearm(self) -> None:
        """
        Schedule the end of the window again, from the last beat, with the
        current window (nothing to schedule once lost, or stopped).
        """
        self._cancel()
        if self.state is Beat.LOST or not self._active:
            return
        delay = max(0.0, self._since + self.window() - self.clock.seconds())
        self._timer = self.clock.callLater(delay, self._expired)

    def status(self, symbols: FrozenSet[str]) -> None:
        """A status arrived: a beat if its C{TICK}/C{TOCK} changed."""
        token = beat_token(symbols)
        if token is None or token == self.last:
            return
        self.last = token
        was = self.state
        self._input(Input.BEAT)
        self._since = self.clock.seconds()
        self.rearm()
        if was is Beat.LOST:
            self.on_back()

    def _expired(self) -> None:
        self._timer = None
        self._input(Input.EXPIRED)
        self.on_lost(self.clock.seconds() - self._since)


class _Monitor(Protocol):
    """What L{MonitorHeartbeat} uses of L{nutshim.upsmon.monitor.UPSMonitor}."""

    clock: Any
    conf: Any
    spec: Any
    listener: Any
    client: Any


class MonitorHeartbeat:
    """
    The heartbeat side of one monitor: its watch, the interval learnt from
    the UPS, and the notifications.

    @ivar interval: the heartbeat's interval in seconds, as far as known.
    """

    log = Logger()

    def __init__(self, monitor: _Monitor) -> None:
        self.monitor = monitor
        self.interval: float = DEFAULT_INTERVAL
        self.watch = HeartbeatWatch(monitor.clock, self.window, self._lost, self._back)

    @classmethod
    def begin(cls, monitor: _Monitor, running: bool) -> "MonitorHeartbeat":
        """Watch C{monitor}'s UPS from now on."""
        heartbeat = cls(monitor)
        if running:
            heartbeat.start()
        if monitor.client is not None:
            heartbeat.connected(monitor.client)
        return heartbeat

    def window(self) -> float:
        """C{HEARTBEAT}'s window, else 2 x interval + C{POLLFREQ}."""
        explicit: Optional[int] = self.monitor.spec.heartbeat_window
        if explicit is not None:
            return float(explicit)
        return 2 * self.interval + self.monitor.conf.pollfreq

    def start(self) -> None:
        self.watch.start()

    def stop(self) -> None:
        self.watch.stop()

    def connected(self, client: Any) -> None:
        """
        A new connection: ask for the interval (unless the window is set),
        as the driver may have been restarted with another one.
        """
        if self.monitor.spec.heartbeat_window is not None:
            return
        asked: Deferred[str] = client.get_var(self.monitor.spec.upsname, INTERVAL_VARIABLE)
        asked.addCallbacks(self._interval, lambda failure: None)

    def _interval(self, text: str) -> None:
        try:
            interval = float(text)
        except ValueError:
            return
        if not 0 < interval <= MAX_INTERVAL or interval == self.interval:
            return
        self.interval = interval
        self.log.info("Heartbeat UPS [{ups}]: interval {interval:g} s, window {window:g} s",
                      ups=self.monitor.spec.system, interval=interval, window=self.window())
        self.watch.rearm()

    def status(self, symbols: FrozenSet[str]) -> None:
        self.watch.status(symbols)

    def _lost(self, elapsed: float) -> None:
        monitor = self.monitor
        self.log.warn("Heartbeat UPS [{ups}]: no TICK/TOCK change for {elapsed:.0f} s "
                      "(window {window:g} s)", ups=monitor.spec.system, elapsed=elapsed,
                      window=self.window())
        monitor.listener.event(monitor, "HEARTBEATLOST")

    def _back(self) -> None:
        monitor = self.monitor
        self.log.info("Heartbeat UPS [{ups}]: beating again", ups=monitor.spec.system)
        monitor.listener.event(monitor, "HEARTBEATOK")


def reconfigured(monitor: _Monitor, heartbeat: Optional[MonitorHeartbeat],
                 running: bool) -> Optional[MonitorHeartbeat]:
    """
    The watch of a monitor a reload kept: a C{HEARTBEAT} line added starts
    one, a new window applies at once, a power value that is no longer 0
    ends it.
    """
    if monitor.spec.powervalue != 0:
        if heartbeat is not None:
            heartbeat.stop()
        return None
    if heartbeat is None:
        return MonitorHeartbeat.begin(monitor, running) if monitor.spec.heartbeat else None
    if running:
        heartbeat.watch.rearm()
    return heartbeat
