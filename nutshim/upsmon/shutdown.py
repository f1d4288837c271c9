# -*- test-case-name: nutshim.test.test_upsmon -*-
"""
The shutdown sequence of RFC 9271, Appendix B, as NUT's upsmon runs it
(C{forceshutdown}, C{slavesync}, C{doshutdown}).

An explicit state machine, because each step waits on the network or on
the clock and none may be skipped or repeated:

  1. C{SETTING_FSD} (a Primary only): C{FSD} on every UPS this system is
     Primary for, which tells the Secondaries to shut down;
  2. C{HOSTSYNC} (a Primary only): C{GET NUMATTACH} every 250 ms until no
     such UPS has more than one attachment (the Primary's own), as far as
     is known, or C{HOSTSYNC} seconds have passed;
  3. C{FINAL_DELAY}: the C{SHUTDOWN} notification, then C{FINALDELAY}
     seconds;
  4. C{DETACHING}: C{POWERDOWNFLAG} written (a Primary only: it tells the
     system's halt scripts to power the UPS off), then every session says
     C{DETACH}, so that a Secondary no longer counts on its Primary's
     server;
  5. C{COMMAND}: C{SHUTDOWNCMD}; then C{DONE}, and the daemon stops, as
     NUT's upsmon exits.

Once begun, nothing cancels it: a UPS back on line power is only logged
(the battery may not survive another outage, and the Secondaries may
already be going down).

No step waits on a server that has gone silent (L{UPSMonitor.silent}: the
hung server a "dead" verdict is usually about): its C{FSD} and
C{NUMATTACH} fail at once and it gets no C{DETACH}, as NUT's upsmon finds
such a connection already closed.  On other servers each C{FSD} and
C{NUMATTACH} is bounded by L{REPLY_WAIT}, NUT's read timeout, and a query
that fails or times out does not count, as in NUT's C{sync_secondaries}.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence

from twisted.internet.defer import Deferred, TimeoutError, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from nutshim.config.upsmonconf import UpsmonConf
from nutshim.upsmon.monitor import UPSMonitor
from nutshim.upsmon.notify import Notifier
from nutshim.upsmon.runner import IRunner, shell

__all__ = ["Phase", "ShutdownSequence", "SDMAGIC", "SYNC_INTERVAL", "DETACH_TIMEOUT",
           "REPLY_WAIT"]

#: What NUT's upsmon writes into C{POWERDOWNFLAG} (and checks with C{-K}).
SDMAGIC = "upsmon-shutdown-file"
#: Seconds between C{NUMATTACH} queries while waiting for Secondaries.
SYNC_INTERVAL = 0.25
#: Seconds allowed for the sessions to close before C{SHUTDOWNCMD}.
DETACH_TIMEOUT = 5.0
#: Seconds to wait for each C{FSD} and C{NUMATTACH} reply: the read timeout
#: of NUT's upsclient (C{DEFAULT_NETWORK_TIMEOUT}), which is what bounds
#: upsmon's C{setfsd} and each query of its C{sync_secondaries}.
REPLY_WAIT = 5.0


class Phase(enum.Enum):
    """The steps of the sequence."""

    IDLE = "idle"
    SETTING_FSD = "setting FSD"
    HOSTSYNC = "waiting for Secondaries"
    FINAL_DELAY = "final delay"
    DETACHING = "detaching"
    COMMAND = "running SHUTDOWNCMD"
    DONE = "done"


_NEXT: Dict[Phase, FrozenSet[Phase]] = {
    Phase.IDLE: frozenset([Phase.SETTING_FSD, Phase.FINAL_DELAY]),
    Phase.SETTING_FSD: frozenset([Phase.HOSTSYNC]),
    Phase.HOSTSYNC: frozenset([Phase.FINAL_DELAY]),
    Phase.FINAL_DELAY: frozenset([Phase.DETACHING]),
    Phase.DETACHING: frozenset([Phase.COMMAND]),
    Phase.COMMAND: frozenset([Phase.DONE]),
    Phase.DONE: frozenset(),
}


class ShutdownSequence:
    """
    Run the shutdown once.

    @ivar phase: the current step.
    """

    log = Logger()

    def __init__(self, clock: Any, conf: UpsmonConf, monitors: Sequence[UPSMonitor],
                 notifier: Notifier, runner: IRunner,
                 on_done: Optional[Callable[[], None]] = None) -> None:
        self.clock = clock
        self.conf = conf
        self.monitors = list(monitors)
        self.notifier = notifier
        self.runner = runner
        self.on_done = on_done
        self.phase = Phase.IDLE
        self._sync_deadline: Any = None
        self._sync_timer: Any = None

    @property
    def begun(self) -> bool:
        """Whether the sequence has started."""
        return self.phase is not Phase.IDLE

    @property
    def primaries(self) -> List[UPSMonitor]:
        """The monitors of the UPSes this system is Primary for."""
        return [m for m in self.monitors if m.spec.primary]

    def _enter(self, phase: Phase) -> None:
        if phase not in _NEXT[self.phase]:
            raise RuntimeError(f"shutdown cannot go from {self.phase.value} to {phase.value}")
        self.log.debug("Shutdown: {phase}", phase=phase.value)
        self.phase = phase

    def begin(self) -> None:
        """
        Start the sequence (again: ignored).
        """
        if self.begun:
            return
        if not self.primaries:
            self._doshutdown()
            return
        self.log.info("Shutting down any UPSes in PRIMARY mode...")
        self._enter(Phase.SETTING_FSD)
        setting = gatherResults([set_fsd(m) for m in self.primaries])
        setting.addCallback(lambda _: self._hostsync())

    # -- HOSTSYNC -------------------------------------------------------------

    def _hostsync(self) -> None:
        self._enter(Phase.HOSTSYNC)
        self.log.info("This system is a primary... waiting for secondary logout...")
        self._sync_deadline = self.clock.callLater(self.conf.hostsync, self._sync_expired)
        self._sync_check()

    def _sync_check(self) -> None:
        self._sync_timer = None
        counts = gatherResults([num_attach(m) for m in self.primaries])
        counts.addCallback(self._sync_counts)

    def _sync_counts(self, counts: List[Optional[int]]) -> None:
        if self.phase is not Phase.HOSTSYNC:
            return
        known = [c for c in counts if c is not None]
        if max(known, default=0) <= 1:
            self.log.info("All secondaries have logged out")
            self._sync_deadline.cancel()
            self._doshutdown()
        else:
            self._sync_timer = self.clock.callLater(SYNC_INTERVAL, self._sync_check)

    def _sync_expired(self) -> None:
        if self.phase is not Phase.HOSTSYNC:
            return
        if self._sync_timer is not None and self._sync_timer.active():
            self._sync_timer.cancel()
        self.log.warn("Host sync timer expired, forcing shutdown")
        self._doshutdown()

    # -- the shutdown itself --------------------------------------------------

    def _doshutdown(self) -> None:
        self._enter(Phase.FINAL_DELAY)
        self.log.critical("Executing automatic power-fail shutdown")
        self.notifier.notify("SHUTDOWN", None)
        self.clock.callLater(self.conf.finaldelay, self._detach)

    def _detach(self) -> None:
        self._enter(Phase.DETACHING)
        if self.primaries:
            self._write_flag()
        now = self.clock.seconds()
        stops = gatherResults([m.stop(goodbye=not m.silent(now)) for m in self.monitors])
        timer = self.clock.callLater(DETACH_TIMEOUT, lambda: stops.cancel())

        def stopped(result: object) -> None:
            if timer.active():
                timer.cancel()
            self._command()

        stops.addBoth(stopped)

    def _write_flag(self) -> None:
        path = self.conf.powerdownflag
        if not path:
            return
        try:
            with open(path, "w") as f:
                f.write(SDMAGIC + "\n")
        except OSError as e:
            self.log.error("Failed to create power down flag {path}: {error}", path=path,
                           error=e.strerror or e)
        else:
            self.log.info("Created power down flag {path}", path=path)

    def _command(self) -> None:
        self._enter(Phase.COMMAND)
        command = self.conf.shutdowncmd
        if not command:
            self.log.error("Warning: no shutdown command defined!")
            self._done(0)
            return
        self.log.info("Running SHUTDOWNCMD: {command}", command=command)
        self.runner.run(shell(command)).addCallback(self._done)

    def _done(self, status: int) -> None:
        if status != 0:
            self.log.error("Unable to call shutdown command: {command} (status {status})",
                           command=self.conf.shutdowncmd, status=status)
        self._enter(Phase.DONE)
        if self.on_done is not None:
            self.on_done()


# -- a Primary's requests ------------------------------------------------------

log = Logger()


def _unusable(monitor: UPSMonitor) -> str:
    """Why C{monitor}'s server is not asked at all, or C{""}."""
    if monitor.client is None:
        return "not connected"
    if monitor.silent(monitor.clock.seconds()):
        return f"no reply from the server for more than {monitor.conf.deadtime} s"
    return ""


def set_fsd(monitor: UPSMonitor) -> Deferred[bool]:
    """
    C{FSD <ups>}; fires with whether the server accepted it within
    L{REPLY_WAIT} seconds (at once with C{False} for a silent server).
    """
    ups = monitor.spec.system
    log.info("Setting FSD on UPS {ups}", ups=ups)
    why, client = _unusable(monitor), monitor.client
    if why or client is None:
        log.error("FSD set on UPS {ups} failed: {error}", ups=ups, error=why)
        return succeed(False)

    def failed(failure: Failure) -> bool:
        error = failure.getErrorMessage()
        if failure.check(TimeoutError):
            error = f"no reply within {REPLY_WAIT:g} s"
        log.error("FSD set on UPS {ups} failed: {error}", ups=ups, error=error)
        return False

    d = client.fsd(monitor.spec.upsname).addTimeout(REPLY_WAIT, monitor.clock)
    return d.addCallbacks(lambda _: True, failed)


def num_attach(monitor: UPSMonitor) -> Deferred[Optional[int]]:
    """
    C{GET NUMATTACH} (C{NUMLOGINS}); fires with L{None} when unknown: at
    once for a silent server, after L{REPLY_WAIT} seconds without a reply.
    """
    client = monitor.client
    if client is None or _unusable(monitor):
        return succeed(None)
    d: Deferred[Any] = client.num_attach(monitor.spec.upsname)
    d.addTimeout(REPLY_WAIT, monitor.clock)
    return d.addErrback(lambda failure: None)
