# -*- test-case-name: nutshim.test.test_web_daemon -*-
"""
What issue 12 adds to a running nut-upsd, in one child service: the HTTP
side (metrics, JSON, status page), the history its charts draw, and the
systemd notifications.

Why one service owned by L{nutshim.upsd.service.UpsdService} rather than
code spread through it: the daemon's service is where configuration,
drivers and listeners live, and it changes often; this module only reads
what it holds (the registry, the engine's descriptions, the current TLS
options) and is told three things -- a reload begins and ends
(L{Operability.reload} is the SIGHUP action), the daemon stops.

The HTTP endpoints come from C{--http} (which replaces upsd.conf's
C{HTTP_LISTEN} lines) or from C{HTTP_LISTEN}; there are none by default.
They are opened in C{privilegedStartService}, with the NUT listeners, so
a port below 1024 works under C{--uid}, and a reload opens and closes them
as it does C{LISTEN}.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, List, Optional, Sequence

from twisted.application.service import Service
from twisted.logger import Logger

from nutshim.config import Config, ConfigError
from nutshim.sdnotify import Notifier, ServiceNotifier
from nutshim.upsd.registry import Registry
from nutshim.web.counters import DaemonCounters
from nutshim.web.history import History
from nutshim.web.process import ProcessMetrics
from nutshim.web.resources import WebContext, make_site
from nutshim.web.service import HttpEndpoint, WebService, parse_http_endpoint
from nutshim.web.snapshot import available, delivered, status_flags

__all__ = ["Operability", "status_line", "http_endpoints", "check_http"]

log = Logger()


def status_line(registry: Registry) -> str:
    """
    systemd's C{STATUS=}: e.g. C{"3 UPS, 12 clients"}, with what needs a
    look (on battery, without data) when there is any.
    """
    entries = list(registry)
    parts = [f"{len(entries)} UPS"]
    on_battery = sum(1 for e in entries if available(e) and "OB" in status_flags(e))
    unavailable = sum(1 for e in entries if not available(e))
    if on_battery:
        parts[0] += f" ({on_battery} on battery)"
    if unavailable:
        parts.append(f"{unavailable} without data")
    clients = registry.session_count
    parts.append(f"{clients} client{'s' if clients != 1 else ''}")
    return ", ".join(parts)


def http_endpoints(texts: Sequence[str]) -> List[HttpEndpoint]:
    """
    Parse C{--http}/C{HTTP_LISTEN} values (checked by L{check_http} at
    start; one that fails after a reload is logged and skipped).
    """
    out = []
    for text in texts:
        try:
            out.append(parse_http_endpoint(text))
        except ValueError as e:
            log.error("{problem}: not serving HTTP there", problem=str(e))
    return out


def check_http(config: Config, override: Sequence[str], tls: Any) -> None:
    """
    Check the HTTP endpoints before the daemon starts: C{--http} (checked
    as it is parsed) or else upsd.conf's C{HTTP_LISTEN} lines, and that
    C{tls:} ones have the certificate they need.

    @raise ConfigError: naming upsd.conf and the line.
    """
    path = os.path.join(config.confdir, "upsd.conf")
    lines = [(t, None) for t in override] if override else list(config.upsd.http_listen)
    for text, lineno in lines:
        where = "--http" if lineno is None else "HTTP_LISTEN"
        try:
            endpoint = parse_http_endpoint(text)
        except ValueError as e:
            raise ConfigError(path, lineno, f"{where}: {e}") from None
        if endpoint.tls and tls is None:
            raise ConfigError(path, lineno, f"{where} {text}: tls: needs CERTFILE in this file")


class Operability(Service):
    """
    The HTTP side and the systemd notifications of one nut-upsd.

    @param daemon: the L{UpsdService} (duck-typed: C{registry},
        C{counters}, C{engine}, C{factory}, C{config}, C{reload}).
    @param http_override: C{--http} endpoints; replace C{HTTP_LISTEN}.
    @param notifier: the systemd notifier (the tap's, from the environment);
        L{None}: nothing is told to systemd (tests, embedding).  Its
        C{STATUS=} text is set here.
    @param history_interval: seconds between the charts' samples.
    """

    def __init__(self, daemon: Any, reactor: Any, http_override: Sequence[str] = (),
                 notifier: Optional[ServiceNotifier] = None, host: Optional[str] = None,
                 history_interval: float = 30.0, process: Optional[ProcessMetrics] = None) -> None:
        self.daemon = daemon
        self.reactor = reactor
        self.http_override = list(http_override)
        registry: Registry = daemon.registry
        self.counters: DaemonCounters = daemon.counters
        self.history = History(registry, reactor, interval=history_interval)
        self.context = WebContext(
            registry, lambda: daemon.engine.descriptions, self.counters, reactor.seconds,
            self.history, host=host or socket.gethostname(),
            process=process if process is not None else ProcessMetrics())
        self.web = WebService(reactor, make_site(self.context, reactor), self._endpoints(),
                              tls_options=lambda: daemon.factory.tls_context_factory,
                              on_start=self.history.start, on_stop=self.history.stop)
        self.notifier = notifier if notifier is not None else ServiceNotifier(
            Notifier(None), reactor, lambda: "")
        self.notifier.status = lambda: status_line(registry)
        self._trigger: Any = None

    def _endpoints(self) -> List[HttpEndpoint]:
        lines = getattr(self.daemon.config.upsd, "http_listen", ())
        return http_endpoints(self.http_override or [text for text, _ in lines])

    # Service life.

    def bind(self) -> None:
        """
        Open the HTTP listeners now (the daemon does, with its own, from
        the tap's C{makeService}: before twistd daemonizes or drops
        privileges).

        @raise SystemExit: one line, when one cannot be opened.
        """
        if not self.web.running:
            self.web.startService()

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.bind()

    def startService(self) -> None:
        super().startService()
        self.bind()
        self.notifier.start()
        registry: Registry = self.daemon.registry
        timeout = float(getattr(self.daemon.config.upsd, "maxage", 15))

        def pending() -> List[str]:
            return [e.name for e in registry if not delivered(e)]

        # The first check once the reactor runs: by then every listener is
        # bound and every driver started.
        self.reactor.callLater(0, self.notifier.wait_ready, pending, timeout)
        trigger = getattr(self.reactor, "addSystemEventTrigger", None)
        if trigger is not None:
            # Runs before twistd's own stop, which stops the drivers first.
            self._trigger = trigger("before", "shutdown", self.notifier.stopping)

    def stopService(self) -> Any:
        self.notifier.stopping()
        if self._trigger is not None:
            self.reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        super().stopService()
        if self.web.running:
            self.web.stopService()
        self.notifier.close()
        return None

    # Reload (the SIGHUP action).

    def reload(self, reload: Optional[Callable[[], bool]] = None) -> bool:
        """
        Reload the daemon, telling systemd and counting it; on success
        the HTTP endpoints follow the new C{HTTP_LISTEN} lines.
        """
        self.notifier.reloading()
        ok = False
        try:
            ok = bool((reload or self.daemon.reload)())
        finally:
            self.counters.reloaded(ok, self.reactor.seconds())
            if ok:
                self.web.set_endpoints(self._endpoints())
            self.notifier.reloaded(ok)
        return ok
