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
L{NUTClientService}; tests: fakes), the command runner and what to do once
C{SHUTDOWNCMD} has run (production: stop the reactor, as upsmon exits).
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional

from twisted.application.internet import backoffPolicy
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from nutshim.config.upsmonconf import Monitor, UpsmonConf
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
    ) -> None:
        super().__init__()
        self.conf = conf
        self.clock = clock
        self.notifier = Notifier(conf, runner, environ)
        self.monitors: List[UPSMonitor] = [
            UPSMonitor(clock, conf, spec, sessions, self) for spec in conf.monitors
        ]
        self.shutdown = ShutdownSequence(clock, conf, self.monitors, self.notifier, runner,
                                         on_done)

    @classmethod
    def for_reactor(cls, conf: UpsmonConf, reactor: Any) -> "UpsmonService":
        """
        The production service: real sessions and processes, and the reactor
        stopped once C{SHUTDOWNCMD} has run.
        """
        return cls(conf, reactor, nut_sessions(reactor, conf), ProcessRunner(reactor),
                   on_done=reactor.stop)

    def startService(self) -> None:
        super().startService()
        for spec in self.conf.monitors:
            self.log.info("UPS: {ups} ({role}) (power value {value})", ups=spec.system,
                          role="primary" if spec.primary else "secondary",
                          value=spec.powervalue)
        self.log.info("Using power down flag file {path}", path=self.conf.powerdownflag)
        for monitor in self.monitors:
            monitor.start()

    def stopService(self) -> Deferred[Any]:
        stops = [m.stop() for m in self.monitors]
        d: Deferred[Any] = gatherResults(stops)
        d.addBoth(lambda _: super(UpsmonService, self).stopService())
        return d

    # -- MonitorListener ----------------------------------------------------

    def event(self, monitor: UPSMonitor, notify_type: str) -> None:
        """Notify, and say when a UPS recovers too late to matter."""
        self.notifier.notify(notify_type, monitor.spec.system)
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
