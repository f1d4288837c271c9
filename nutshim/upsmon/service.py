# -*- test-case-name: nutshim.test.test_upsmon -*-
"""
The upsmon service: one L{UPSMonitor} per C{MONITOR} line, the power
accounting that decides a shutdown, and the wiring of notifications.

Power accounting is NUT's (C{recalc} in upsmon.c): every UPS that is not
critical counts its C{POWERVALUE}; when the sum falls below C{MINSUPPLIES}
the shutdown begins.  It is evaluated after every poll of any UPS, so a
server that stops answering is judged on the clock (C{DEADTIME}) even
while its requests hang.

Everything external is injected: the clock, the sessions (production:
L{NUTClientService}; tests: fakes), the command runner, what to do once
C{SHUTDOWNCMD} has run (production: stop the reactor, as upsmon exits) and
how to re-read C{upsmon.conf} for a reload.

Signals are NUT upsmon's C{-c} commands, installed by
L{nutshim.signals.install_signal_handlers}: SIGHUP reloads the configuration
(C{upsmon -c reload}), SIGUSR1 forces the shutdown (C{upsmon -c fsd}) unless
twistd rotates a C{--logfile} on it, SIGUSR2 forces the shutdown too (the
way left when SIGUSR1 rotates the log), SIGTERM stops (C{upsmon -c stop},
twistd's own).  None of them ever kills the daemon.
"""

from __future__ import annotations

import signal
from types import ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional

from twisted.application.internet import backoffPolicy
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from nutshim.config.upsmonconf import Monitor, UpsmonConf
from nutshim.sdnotify import ServiceNotifier, reload_told
from nutshim.signals import KEPT, OURS, install_signal_handlers
from nutshim.upsmon.monitor import NET_TIMEOUT, SessionFactory, UPSMonitor
from nutshim.upsmon.notify import Notifier
from nutshim.upsmon.runner import IRunner, ProcessRunner
from nutshim.upsmon.shutdown import ShutdownSequence

__all__ = ["UpsmonService", "nut_sessions"]

log = Logger()


def nut_sessions(reactor: Any, conf: UpsmonConf,
                 timeout: float = NET_TIMEOUT) -> SessionFactory:
    """
    Sessions on L{NUTClientService}: reconnecting, with the TLS policy of
    C{upsmon.conf}, retried at most every C{POLLFREQ} seconds (NUT's
    upsmon retries on every poll).
    """
    from nutshim.client.service import NUTClientService
    from nutshim.upsmon.tls import tls_settings

    class Session(NUTClientService):
        """
        Say why a connection was rejected (TLS, login): L{ClientService}
        only says that it will retry.
        """

        system = ""

        def _prepare(self, proxy: Any) -> Deferred[None]:
            def failed(failure: Failure) -> Failure:
                log.warn("Connection to UPS [{ups}] failed: {error}", ups=self.system,
                         error=failure.getErrorMessage())
                return failure

            return super()._prepare(proxy).addErrback(failed)

    retry = backoffPolicy(initialDelay=1.0, maxDelay=float(max(conf.pollfreq, 1)))

    def make(spec: Monitor, prepare: Callable[[Any], Deferred[None]]) -> IService:
        session = Session(
            reactor, spec.host, spec.port, tls=tls_settings(conf, spec.host),
            timeout=timeout, prepare=prepare, retry_policy=retry,
        )
        session.system = spec.system
        return session

    return make


class UpsmonService(MultiService):
    """
    Monitor every UPS of C{upsmon.conf} and shut down when power runs out.

    @ivar monitors: one per C{MONITOR} line, in order.
    @ivar shutdown: the shutdown sequence.
    @ivar notifier: gives the notifications.
    """

    log = Logger()

    def __init__(
        self,
        conf: UpsmonConf,
        clock: Any,
        sessions: SessionFactory,
        runner: IRunner,
        on_done: Optional[Callable[[], None]] = None,
        environ: Optional[Mapping[str, str]] = None,
        reader: Optional[Callable[[], UpsmonConf]] = None,
        sessions_for: Optional[Callable[[UpsmonConf], SessionFactory]] = None,
        reactor: Any = None,
        sig: ModuleType = signal,
        notifier: Optional[ServiceNotifier] = None,
    ) -> None:
        """
        @param reader: re-reads and checks C{upsmon.conf} for a reload,
            raising L{ConfigError} (or the TLS settings' error) when it
            cannot be used.
        @param sessions_for: the session factory for a reloaded
            configuration (its TLS settings and retry policy).
        @param reactor: where the signal handlers run their actions
            (production); without one no handler is installed.
        @param sig: the C{signal} module (tests pass a fake).
        @param notifier: tells systemd (C{Type=notify}) when monitoring
            runs, around reloads and when stopping; L{None}: nobody to tell.
        """
        super().__init__()
        self.conf = conf
        self.clock = clock
        self.sessions = sessions
        self.notifier = Notifier(conf, runner, environ)
        self.monitors: List[UPSMonitor] = [
            UPSMonitor(clock, conf, spec, sessions, self) for spec in conf.monitors
        ]
        self.shutdown = ShutdownSequence(clock, conf, self.monitors, self.notifier, runner,
                                         on_done)
        self._reader = reader
        self._sessions_for = sessions_for
        self._reactor = reactor
        self._sig = sig
        self._systemd = notifier
        #: What each signal does, by name, once installed (for the log and tests).
        self.signals: Dict[str, str] = {}
        #: Monitors dropped by a reload and still saying goodbye.
        self._leaving: List[Deferred[None]] = []

    @classmethod
    def for_reactor(cls, conf: UpsmonConf, reactor: Any,
                    reader: Optional[Callable[[], UpsmonConf]] = None,
                    notifier: Optional[ServiceNotifier] = None) -> "UpsmonService":
        """
        The production service: real sessions and processes, the reactor
        stopped once C{SHUTDOWNCMD} has run, NUT's signals and systemd's
        readiness protocol.
        """
        return cls(conf, reactor, nut_sessions(reactor, conf), ProcessRunner(reactor),
                   on_done=reactor.stop, reader=reader,
                   sessions_for=lambda c: nut_sessions(reactor, c), reactor=reactor,
                   notifier=notifier)

    def startService(self) -> None:
        super().startService()
        for spec in self.conf.monitors:
            self._log_monitor(spec)
        self.log.info("Using power down flag file {path}", path=self.conf.powerdownflag)
        for monitor in self.monitors:
            monitor.start()
        self._install_signals()
        self._tell_systemd()

    # -- systemd (Type=notify) ----------------------------------------------

    def _tell_systemd(self) -> None:
        """
        READY=1 once every UPS has answered its first poll, or after
        DEADTIME (a server that is down must not hold the boot: upsmon
        runs, and will report COMMBAD/NOCOMM as NUT's does); watchdog
        pings from the clock.
        """
        if self._systemd is None:
            return
        self._systemd.status = self.status_line
        self._systemd.start()
        self._systemd.wait_ready(
            lambda: [m.spec.system for m in self.monitors if m.last_ok is None],
            float(self.conf.deadtime))

    def status_line(self) -> str:
        """
        One line for C{systemctl status}: how many UPSes, and how they are.
        """
        counts: Dict[str, int] = {}
        for monitor in self.monitors:
            if monitor.last_ok is None or not monitor.alive:
                state = "no contact"
            elif monitor.symbols is not None and "OB" in monitor.symbols:
                state = "on battery"
            else:
                state = "online"
            counts[state] = counts.get(state, 0) + 1
        detail = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        text = f"{len(self.monitors)} UPS monitored" + (f" ({detail})" if detail else "")
        if self.shutdown.begun:
            text += "; shutting down"
        return text

    def _log_monitor(self, spec: Monitor) -> None:
        if spec.powervalue == 0:
            self.log.info("UPS: {ups} (monitoring only{heartbeat})", ups=spec.system,
                          heartbeat=", heartbeat" if spec.heartbeat else "")
            return
        self.log.info("UPS: {ups} ({role}) (power value {value})", ups=spec.system,
                      role="primary" if spec.primary else "secondary", value=spec.powervalue)

    def stopService(self) -> Deferred[Any]:
        if self._systemd is not None:
            self._systemd.stopping()
        stops = [m.stop() for m in self.monitors] + self._leaving
        d: Deferred[Any] = gatherResults(stops)
        d.addBoth(lambda _: super(UpsmonService, self).stopService())
        return d

    # -- signals (upsmon -c reload|fsd|stop) ----------------------------------

    def _install_signals(self) -> None:
        """
        SIGHUP reloads; SIGUSR1 (NUT's C{upsmon -c fsd}) and SIGUSR2 force
        the shutdown.  twistd's own SIGUSR1 handler, which rotates a
        C{--logfile}, is kept: then SIGUSR1 only rotates the log (a
        logrotate job must never power the machine off) and SIGUSR2 is
        the forced shutdown.  Either way no signal is left at its default
        action, which would kill the daemon.  The log says which is which.
        """
        reactor = self._reactor
        if reactor is None or not hasattr(reactor, "callFromThread"):
            return
        actions = {"SIGHUP": self._signalled_reload, "SIGUSR1": self.user_fsd,
                   "SIGUSR2": self.user_fsd}
        done = install_signal_handlers(reactor, actions, "nut-upsmon", self.log, self._sig)
        if not done:
            self.log.warn("Signal handlers not installed (not the main thread)")
            return
        self.signals = {name: _ROLES[name] if outcome == OURS else _KEPT_ROLES[name]
                        for name, outcome in done.items()}
        self.log.info(
            "Signals: {roles}; SIGTERM stops (upsmon -c stop)",
            roles="; ".join(f"{name} {role}" for name, role in self.signals.items()),
        )
        if done.get("SIGUSR1") == KEPT:
            self.log.warn("SIGUSR1 (upsmon -c fsd) only rotates the log file here (twistd "
                          "--logfile): send SIGUSR2 to force the shutdown")

    def user_fsd(self) -> None:
        """
        C{upsmon -c fsd}: the administrator asks for the forced shutdown
        now, as if power had run out (a Primary sets FSD and waits for its
        Secondaries first).
        """
        if self.shutdown.begun:
            self.log.info("Forced shutdown requested: already shutting down")
            return
        self.log.critical("Forced shutdown requested by the administrator (signal)")
        self.shutdown.begin()

    # -- reload (upsmon -c reload) -------------------------------------------

    def _signalled_reload(self) -> None:
        """
        SIGHUP: the reload, told to systemd (RELOADING=1, then READY=1
        whether or not the new file was used).
        """
        reload_told(self._systemd, self.reload)

    def reload(self) -> bool:
        """
        Re-read C{upsmon.conf} and apply it; a file that cannot be used is
        logged and the running configuration stays (NUT's upsmon exits).

        @return: whether the new configuration is in use.
        """
        if self._reader is None:
            self.log.warn("Reload requested, but this upsmon has no configuration file")
            return False
        self.log.info("Reloading configuration")
        try:
            conf = self._reader()
        except Exception as e:
            self.log.error("Reload failed, keeping the running configuration: {error}",
                           error=str(e))
            return False
        for warning in conf.warnings:
            self.log.warn("{problem}", problem=str(warning))
        return self.apply(conf)

    def apply(self, conf: UpsmonConf) -> bool:
        """
        Use a new configuration as NUT's upsmon does on reload: monitors are
        matched by their C{MONITOR} name; new ones start, missing ones say
        goodbye, kept ones keep what they know of their UPS and take the new
        power value at once, and log in again when their user, password or
        role (or the TLS settings) changed.  Everything else applies from
        the next poll or notification.  Not during a shutdown.
        """
        if self.shutdown.begun:
            self.log.warn("Reload ignored: the shutdown has begun")
            return False
        if self._sessions_for is not None:
            self.sessions = self._sessions_for(conf)
        relogin = _tls_settings(self.conf) != _tls_settings(conf)
        old: Dict[str, UPSMonitor] = {m.spec.system: m for m in self.monitors}
        monitors: List[UPSMonitor] = []
        started: List[UPSMonitor] = []
        for spec in conf.monitors:
            monitor = old.pop(spec.system, None)
            if monitor is None:
                monitor = UPSMonitor(self.clock, conf, spec, self.sessions, self)
                self._log_monitor(spec)
                started.append(monitor)
            else:
                for what in _redefined(monitor.spec, spec):
                    self.log.info("UPS [{ups}]: redefined {what}", ups=spec.system, what=what)
                login_changed = (monitor.spec.username, monitor.spec.password,
                                 monitor.spec.primary) != (spec.username, spec.password,
                                                           spec.primary)
                monitor.reconfigure(conf, spec)
                if relogin or login_changed:
                    self._goodbye(monitor.reconnect(self.sessions))
            monitors.append(monitor)
        for monitor in old.values():
            self.log.info("Deleting UPS [{ups}]", ups=monitor.spec.system)
            self._goodbye(monitor.stop())
        self.conf = conf
        self.monitors[:] = monitors
        self.notifier.reconfigure(conf)
        self.shutdown.conf = conf
        self.shutdown.monitors = list(monitors)
        if self.running:
            for monitor in started:
                monitor.start()
        self.log.info("Configuration reloaded: {n} UPS(es), MINSUPPLIES {minimum}",
                      n=len(monitors), minimum=conf.minsupplies)
        self.recalc()
        return True

    def _goodbye(self, closing: Deferred[None]) -> None:
        """Wait for a dropped session's goodbye when stopping, until it is said."""
        self._leaving.append(closing)
        closing.addBoth(lambda _: self._leaving.remove(closing))

    # -- MonitorListener ----------------------------------------------------

    def event(self, monitor: UPSMonitor, notify_type: str) -> None:
        """Notify, and say when a UPS recovers too late to matter."""
        self.notifier.notify(notify_type, monitor.spec.system, monitor.spec.group)
        if notify_type == "ONLINE" and self.shutdown.begun:
            self.log.warn(
                "UPS [{ups}] is back on line power, but the shutdown already begun goes on",
                ups=monitor.spec.system,
            )

    def polled(self, monitor: UPSMonitor) -> None:
        """After every poll: count the power left."""
        self.recalc()

    def power_value(self) -> int:
        """The power values of the UPSes that are not critical."""
        now = self.clock.seconds()
        return sum(m.spec.powervalue for m in self.monitors if not m.is_critical(now))

    def recalc(self) -> None:
        """
        Begin the shutdown when fewer than C{MINSUPPLIES} supplies are left.
        """
        if self.shutdown.begun:
            return
        value = self.power_value()
        if value < self.conf.minsupplies:
            self.log.critical(
                "Power value {value} below MINSUPPLIES {minimum}: shutting down",
                value=value, minimum=self.conf.minsupplies,
            )
            self.shutdown.begin()


#: What a signal does when nut-upsmon owns it.
_ROLES = {
    "SIGHUP": "reloads upsmon.conf (upsmon -c reload)",
    "SIGUSR1": "forces the shutdown (upsmon -c fsd)",
    "SIGUSR2": "forces the shutdown",
}
#: ... and when an earlier handler was kept (twistd's).
_KEPT_ROLES = {
    "SIGHUP": "kept by its earlier handler",
    "SIGUSR1": "rotates the log file (twistd --logfile)",
    "SIGUSR2": "kept by its earlier handler (twistd --debug)",
}


def _tls_settings(conf: UpsmonConf) -> tuple[object, ...]:
    """What a session's TLS depends on."""
    return (conf.certpath, conf.certverify, conf.forcessl, conf.certhosts, conf.certpins,
            conf.certfile, conf.tls_min_version)


def _redefined(old: Monitor, new: Monitor) -> List[str]:
    """What a reload changed in one C{MONITOR} line, in NUT's words."""
    changed = []
    if old.powervalue != new.powervalue:
        changed.append(f"power value to {new.powervalue}")
    if old.username != new.username:
        changed.append("username")
    if old.password != new.password:
        changed.append("password")
    if old.primary != new.primary:
        changed.append("as a primary" if new.primary else "as a secondary")
    return changed
