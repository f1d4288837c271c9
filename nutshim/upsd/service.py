# -*- test-case-name: nutshim.test.test_upsd_service -*-
"""
The running daemon: configuration, drivers, listeners and reload.

Everything that outlives one connection is owned here.  The listeners are
opened before twistd starts the service (L{UpsdService.bind}, from the
tap's C{makeService}: before daemonizing and before C{--uid} drops
privileges, so port 401 can be bound and a failure is one line on the
terminal).  A reload (SIGHUP) reads all three files and opens the new
listeners first, and applies nothing unless all of that worked; then it
updates UPSes in place (FSD latches and attach counts survive), starts and
stops drivers whose section changed, closes listeners whose LISTEN line
went (NUT ignores LISTEN on reload), applies listener policies and swaps
the users table, all without dropping a connected client whose UPS remains.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from nutshim.config import Config, ConfigError, load_config
from nutshim.config.upsconf import UpsSection
from nutshim.signals import install_signal_handlers
from nutshim.tls import DEFAULT_HANDSHAKE_TIMEOUT, ServerTLSOptions, server_tls_options
from nutshim.upsd.engine import Engine
from nutshim.upsd.listeners import ListenerSet, PlannedListener, StartupError, plan_listeners
from nutshim.upsd.protocol import UpsdProtocol
from nutshim.upsd.registry import Registry, Session, UpsEntry
from nutshim.upsd.sections import (
    DEMO_UPS,
    DriverBuilder,
    allow_no_device,
    check_sections,
    default_driver_builder,
    demo_section,
    driver_settings,
)
from nutshim.upsd.tracking import TrackingTable
from nutshim.web.counters import DaemonCounters, MeteredEngine

__all__ = [
    "DEMO_UPS",
    "StartupError",
    "UpsdFactory",
    "UpsdService",
    "allow_no_device",
    "check_sections",
]

log = Logger()

#: Default of L{UpsdService}'s C{tls_options}: build them from the config.
LOAD_TLS: Any = object()


class _Refused(Protocol):
    """
    Past MAXCONN: close at once, so the client sees EOF instead of a hang.
    """

    transport: Any

    def connectionMade(self) -> None:
        self.transport.loseConnection()


class UpsdFactory(Factory):
    """
    Makes L{UpsdProtocol}s; holds the per-daemon settings they read.
    """

    protocol = UpsdProtocol

    def __init__(self, engine: Engine, clock: Any) -> None:
        self.engine = engine
        self.clock = clock
        self.idle_timeout: float = 60.0
        self.max_line = 4096
        self.maxconn: Optional[int] = None
        self.tls_mode = "off"
        self.tls_context_factory: Optional[ServerTLSOptions] = None
        self.tls_handshake_timeout: float = float(DEFAULT_HANDSHAKE_TIMEOUT)
        #: The endpoints of the TLS-only listeners (LISTEN_TLS).
        self.tls_only_listeners: FrozenSet[str] = frozenset()
        self.protocols: Dict[int, UpsdProtocol] = {}
        #: Connections and handshakes, for /metrics (L{nutshim.web}).
        self.counters = DaemonCounters()

    def buildProtocol(self, addr: Any) -> Optional[Protocol]:
        if self.maxconn is not None and len(self.protocols) >= self.maxconn:
            log.warn(
                "MAXCONN {maxconn} reached: refusing {addr}",
                maxconn=self.maxconn,
                addr=getattr(addr, "host", addr),
            )
            self.counters.refused += 1
            refused = _Refused()
            refused.factory = self
            return refused
        proto = super().buildProtocol(addr)
        assert isinstance(proto, UpsdProtocol)
        self.protocols[id(proto)] = proto
        return proto

    def connection_opened(self, proto: UpsdProtocol) -> None:
        host = proto.transport.getHost()
        address = getattr(host, "host", None)
        if address is None:
            listener = proto.listener or str(host)
        else:
            listener = f"[{address}]:{host.port}" if ":" in address else f"{address}:{host.port}"
        self.counters.opened(id(proto), listener)

    def link_moved(self, proto: UpsdProtocol, old: Any, new: Any) -> None:
        self.counters.moved(id(proto), old, new)

    def connection_closed(self, proto: UpsdProtocol) -> None:
        self.protocols.pop(id(proto), None)
        self.counters.closed(id(proto))

    def tls_required_for(self, session: Session) -> bool:
        """
        RFC 9271 section 6.2: the server, not the client, decides: always
        on a TLS-only listener, else as TLS_REQUIRED says.
        """
        if session.listener in self.tls_only_listeners:
            return True
        if self.tls_mode == "all":
            return True
        if self.tls_mode == "remote":
            return not session.loopback
        return False

    def tls_options(self) -> Any:
        return self.tls_context_factory


class UpsdService(MultiService):
    """
    nut-upsd: owns the registry, the engine, the drivers and the listeners.

    @param confdir: NUT's configuration directory.
    @param reactor: the reactor (injected for tests).
    @param listen_override: endpoint strings from C{--listen}; with
        C{listen_tls_override} they replace LISTEN and LISTEN_TLS.
    @param listen_tls_override: endpoint strings from C{--listen-tls}.
    @param statepath_override: from C{--statepath}.
    @param tls_options: the TLS settings the tap already built from
        C{config} (so the certificate is read and checked once); by default
        they are built here.
    @param plan: the listeners the tap already planned (resolved once).
    @param signals: the C{signal} module to install SIGHUP, SIGUSR1 and
        SIGUSR2 handlers with (L{nutshim.signals}); L{None} installs none
        (unit tests).
    @param http_override: C{--http} endpoints; replace HTTP_LISTEN
        (L{nutshim.web.daemon}).
    @param notifier: the systemd notifier (L{nutshim.sdnotify}), which the
        tap makes from C{$NOTIFY_SOCKET}; L{None} tells systemd nothing.
    @raise ConfigError: if C{config}'s TLS settings or listeners are
        unusable.
    """

    def __init__(
        self,
        config: Config,
        reactor: Any,
        listen_override: Sequence[str] = (),
        statepath_override: Optional[str] = None,
        driver_builder: DriverBuilder = default_driver_builder,
        cmdvartab_override: Optional[str] = None,
        tls_options: Any = LOAD_TLS,
        listen_tls_override: Sequence[str] = (),
        plan: Optional[Sequence[PlannedListener]] = None,
        signals: Optional[ModuleType] = None,
        http_override: Sequence[str] = (),
        notifier: Any = None,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.config = config
        self.listen_override = list(listen_override)
        self.listen_tls_override = list(listen_tls_override)
        self.statepath_override = statepath_override
        self.cmdvartab_override = cmdvartab_override
        self.driver_builder = driver_builder
        self.signals = signals
        self.registry = Registry()
        self.tracking = TrackingTable(reactor.seconds, float(config.upsd.trackingdelay))
        self.counters = DaemonCounters()
        self.engine: Engine = MeteredEngine(self.registry, config.users, self.tracking,
                                            config.cmdvartab, counters=self.counters)
        self.factory = UpsdFactory(self.engine, reactor)
        self.factory.counters = self.counters
        self.listeners = ListenerSet(reactor, self.factory)
        self.bound = False
        self.demo = False
        if tls_options is LOAD_TLS:
            tls_options = server_tls_options(config.upsd, config.confdir)
        self.plan = tuple(plan) if plan is not None else self._plan(config)
        self._apply_settings(config, tls_options, self.plan)
        for section in self._sections(config):
            self._add_ups(section, first=False)
        # The HTTP side and systemd's notifications (issue 12).
        from nutshim.web.daemon import Operability

        self.operability = Operability(self, reactor, http_override, notifier=notifier)
        self.operability.setServiceParent(self)

    # Configuration.

    def statepath(self, config: Config) -> str:
        from nutshim.config.paths import statepath

        return statepath(self.statepath_override, config.upsd.statepath)

    def _plan(self, config: Config) -> Tuple[PlannedListener, ...]:
        return plan_listeners(
            config.upsd, os.path.join(config.confdir, "upsd.conf"),
            self.listen_override, self.listen_tls_override,
        )

    def _sections(self, config: Config) -> List[UpsSection]:
        sections = list(config.ups.sections) if config.ups is not None else []
        if not sections and not allow_no_device(config):
            self.demo = True
            return [demo_section()]
        self.demo = False
        return sections

    def _apply_settings(
        self, config: Config, tls: Optional[ServerTLSOptions], plan: Sequence[PlannedListener]
    ) -> None:
        upsd = config.upsd
        self.factory.idle_timeout = float(upsd.idle_timeout)
        self.factory.max_line = upsd.maxline
        self.factory.maxconn = upsd.maxconn
        self.tracking.delay = float(upsd.trackingdelay)
        self.engine.users = config.users
        self.engine.descriptions = config.cmdvartab
        # TLS: new STARTTLS handshakes use the new context; sessions already
        # on TLS keep theirs.  The TLS requirement (TLS_REQUIRED and the
        # listeners' policies) and the certificate-to-user mapping are
        # re-evaluated for every open session, so a stricter policy or a
        # removed certificate line applies now.
        self.engine.tls_available = tls is not None
        self.factory.tls_context_factory = tls
        self.factory.tls_mode = upsd.effective_tls_required
        self.factory.tls_handshake_timeout = float(upsd.tls_handshake_timeout)
        self.factory.tls_only_listeners = frozenset(p.endpoint for p in plan if p.tls_only)
        for proto in list(self.factory.protocols.values()):
            session = getattr(proto, "session", None)
            if session is None:
                continue
            session.tls_required = self.factory.tls_required_for(session)
            proto.map_certificate()

    def _log_tls(self) -> None:
        tls = self.factory.tls_context_factory
        if tls is None:
            log.info("STARTTLS not configured (no CERTFILE): answered FEATURE-NOT-CONFIGURED")
            return
        log.info(
            "STARTTLS: {description}; TLS required for {mode} clients",
            description=tls.describe(),
            mode={"off": "no", "remote": "non-loopback", "all": "all"}[self.factory.tls_mode],
        )

    def _log_demo(self) -> None:
        """
        Say loudly that the UPS served is not real: a monitoring setup
        pointed at the demo by mistake would never see a power failure.
        """
        if not self.demo:
            return
        ups_conf = os.path.join(self.config.confdir, "ups.conf")
        log.warn(
            "DEMO MODE: no UPS is defined in {path}: serving the SIMULATED UPS [{ups}],"
            " whose data is not real power data. Define your UPSes in ups.conf"
            " (or set ALLOW_NO_DEVICE in upsd.conf to serve nothing)",
            path=ups_conf,
            ups=DEMO_UPS,
        )

    def _add_ups(self, section: UpsSection, first: bool) -> UpsEntry:
        driver = self.driver_builder(section, self.config, self.statepath(self.config), self.reactor)
        driver.tracking_listener = self.tracking.report
        assert section.driver is not None and section.port is not None
        entry = UpsEntry(section.name, section.desc, driver, section.driver, section.port)
        entry.options = dict(section.options)
        self.registry.add(entry, first=first)
        if self.running:
            self._start_driver(entry)
        return entry

    def _start_driver(self, entry: UpsEntry) -> None:
        try:
            entry.driver.start()
        except Exception:
            log.failure("Driver for UPS [{ups}] failed to start", ups=entry.name)

    def _stop_driver(self, entry: UpsEntry) -> None:
        try:
            entry.driver.stop()
        except Exception:
            log.failure("Driver for UPS [{ups}] failed to stop", ups=entry.name)

    @property
    def ports(self) -> Dict[str, IListeningPort]:
        """
        The open listening ports, by endpoint description.
        """
        return self.listeners.ports

    def bind(self) -> None:
        """
        Open every planned listener now (TCP and systemd endpoints listen
        synchronously).  The tap calls this from C{makeService}; the
        service calls it on start if nobody did.

        @raise StartupError: when NUT would not start (see
            L{ListenerSet.fatal}).
        """
        if self.bound:
            return
        self.bound = True
        fatal = self.listeners.fatal(self.listeners.open(self.plan), self.config.upsd)
        if fatal:
            raise StartupError(fatal)
        self.operability.bind()

    # Service life.

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.bind()

    def startService(self) -> None:
        super().startService()
        for warning in self.config.warnings:
            log.warn("{problem}", problem=str(warning))
        self._log_demo()
        self._log_tls()
        for entry in self.registry:
            self._start_driver(entry)
        self.bind()
        self.listeners.warn_plaintext(self.plan, self.factory.tls_mode)
        if self.signals is not None:
            install_signal_handlers(self.reactor, {"SIGHUP": self.operability.reload}, "nut-upsd",
                                    sig=self.signals)

    def stopService(self) -> Deferred[Any]:
        for entry in self.registry:
            self._stop_driver(entry)
        waits = self.listeners.close_all()
        for proto in list(self.factory.protocols.values()):
            if proto.transport is not None:
                proto.transport.loseConnection()
        d: Deferred[Any] = DeferredList(waits) if waits else Deferred()
        if not waits:
            d.callback(None)
        d.addCallback(lambda _: super(UpsdService, self).stopService())
        return d

    # Reload.

    def reload(self) -> bool:
        """
        Re-read ups.conf, upsd.conf and upsd.users and apply them, or
        nothing: a broken file, a certificate that cannot be used or a new
        listener that cannot be opened keeps the whole running
        configuration, with the reason (C{FILE:LINE: ...}) in the log.

        @return: whether the new configuration was applied.
        """
        log.info("Reloading configuration from {confdir}", confdir=self.config.confdir)
        try:
            new = load_config(self.config.confdir, self.cmdvartab_override)
            check_sections(new)
            plan = self._plan(new)
            tls = server_tls_options(new.upsd, new.confdir)
        except ConfigError as e:
            log.error("Reload failed, keeping the running configuration: {error}", error=str(e))
            return False
        if self.bound:
            before = set(self.ports)
            fatal = self.listeners.fatal(self.listeners.open(plan), new.upsd)
            if fatal is not None:
                self.listeners.close_except(before)
                log.error("Reload failed, keeping the running configuration: {error}",
                          error=fatal)
                return False
        for warning in new.warnings:
            log.warn("{problem}", problem=str(warning))
        self.config = new
        self.plan = plan
        sections = self._sections(new)
        self._apply_settings(new, tls, plan)
        self._log_tls()
        self._log_demo()
        wanted = {s.name.lower(): s for s in sections}
        for entry in list(self.registry):
            section = wanted.get(entry.name.lower())
            if section is None:
                self._remove_ups(entry)
                continue
            entry.desc = section.desc
            if driver_settings(section.options) != driver_settings(entry.options):
                self._replace_driver(entry, section)
        for key, section in wanted.items():
            if self.registry.get(key) is None:
                self._add_ups(section, first=True)
        self.listeners.close_except({item.endpoint for item in plan})
        self.listeners.warn_plaintext(plan, self.factory.tls_mode)
        return True

    def _replace_driver(self, entry: UpsEntry, section: UpsSection) -> None:
        log.info("UPS [{ups}]: driver settings changed, restarting it", ups=entry.name)
        self._stop_driver(entry)
        driver = self.driver_builder(section, self.config, self.statepath(self.config), self.reactor)
        driver.tracking_listener = self.tracking.report
        assert section.driver is not None and section.port is not None
        entry.driver = driver
        entry.driver_name = section.driver
        entry.port = section.port
        entry.options = dict(section.options)
        if self.running:
            self._start_driver(entry)

    def _remove_ups(self, entry: UpsEntry) -> None:
        """
        A UPS gone from ups.conf: stop its driver and disconnect the clients
        attached to it, as NUT does; its FSD latch goes with it.
        """
        log.info("UPS [{ups}] removed from ups.conf", ups=entry.name)
        self._stop_driver(entry)
        self.registry.remove(entry)
        for proto in list(self.factory.protocols.values()):
            if proto.session.login is entry and proto.transport is not None:
                proto.transport.loseConnection()
