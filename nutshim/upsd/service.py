# -*- test-case-name: nutshim.test.test_upsd_service -*-
"""
The running daemon: configuration, drivers, listeners and reload.

Everything that outlives one connection is owned here.  A reload (SIGHUP)
reads all three files first and applies nothing unless all of them are
usable; then it updates UPSes in place (FSD latches and attach counts
survive), starts and stops drivers whose section changed, opens and closes
listeners whose LISTEN line changed (NUT ignores LISTEN on reload) and swaps
the users table, all without dropping a connected client whose UPS remains.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from nutshim.config import Config, ConfigError, load_config
from nutshim.config.upsconf import UpsSection
from nutshim.drivers.base import IDriver
from nutshim.tls import DEFAULT_HANDSHAKE_TIMEOUT, ServerTLSOptions, server_tls_options
from nutshim.upsd.engine import Engine
from nutshim.upsd.protocol import UpsdProtocol
from nutshim.upsd.registry import Registry, Session, UpsEntry
from nutshim.upsd.tracking import TrackingTable

__all__ = ["UpsdService", "UpsdFactory", "listen_endpoints", "DEMO_UPS"]

log = Logger()

DEMO_UPS = "demo"
#: Default of L{UpsdService}'s C{tls_options}: build them from the config.
LOAD_TLS: Any = object()
DEFAULT_PORT = 3493
#: The kernel caps this at net.core.somaxconn; NUT's 16 makes bursts of
#: connects wait for SYN retries.
BACKLOG = 1024


def _escape_interface(addr: str) -> str:
    return addr.replace(":", "\\:")


def listen_endpoints(listen: Sequence[Tuple[str, int]]) -> List[str]:
    """
    Endpoint strings for upsd.conf LISTEN lines, resolving host names the way
    NUT does (every address of the name).
    """
    if not listen:
        listen = [("127.0.0.1", DEFAULT_PORT), ("::1", DEFAULT_PORT)]
    out: List[str] = []
    for address, port in listen:
        if address == "*":
            out.append(f"tcp6:{port}:interface=\\:\\::backlog={BACKLOG}")
            continue
        try:
            infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise ConfigError("upsd.conf", None, f"LISTEN {address}: {e.strerror}")
        for family, _, _, _, sockaddr in infos:
            host = str(sockaddr[0])
            if family == socket.AF_INET6:
                ep = f"tcp6:{port}:interface={_escape_interface(host)}:backlog={BACKLOG}"
            else:
                ep = f"tcp:{port}:interface={host}:backlog={BACKLOG}"
            if ep not in out:
                out.append(ep)
    return out


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
        self.protocols: Dict[int, UpsdProtocol] = {}

    def buildProtocol(self, addr: Any) -> Optional[Protocol]:
        if self.maxconn is not None and len(self.protocols) >= self.maxconn:
            log.warn(
                "MAXCONN {maxconn} reached: refusing {addr}",
                maxconn=self.maxconn,
                addr=getattr(addr, "host", addr),
            )
            refused = _Refused()
            refused.factory = self
            return refused
        proto = super().buildProtocol(addr)
        assert isinstance(proto, UpsdProtocol)
        self.protocols[id(proto)] = proto
        return proto

    def connection_closed(self, proto: UpsdProtocol) -> None:
        self.protocols.pop(id(proto), None)

    def tls_required_for(self, session: Session) -> bool:
        """
        RFC 9271 section 6.2: the server, not the client, decides.
        """
        if self.tls_mode == "all":
            return True
        if self.tls_mode == "remote":
            return not session.loopback
        return False

    def tls_options(self) -> Any:
        return self.tls_context_factory


DriverBuilder = Callable[[UpsSection, Config, str, Any], IDriver]


def default_driver_builder(section: UpsSection, config: Config, statepath: str, reactor: Any) -> IDriver:
    """
    nutshim's own drivers run in-process, unless the section says
    C{nutshim-driver = external} (a C{nutshim-driver -a <ups>} process serves
    the socket, which NUT's upsd may share); any other driver name is one of
    NUT's, reached through its socket in STATEPATH.
    """
    assert section.driver is not None and section.port is not None
    external = section.options.get("nutshim-driver", "").lower() == "external"
    if section.driver == "nutshim-sim" and not external:
        from nutshim.drivers.sim import make_sim_driver

        return make_sim_driver(section.name, section.options, config.confdir, reactor)
    from nutshim.drivers.socketdriver import SocketDriver

    return SocketDriver(
        section.name, section.driver, statepath, reactor, maxage=config.upsd.maxage
    )


def _driver_settings(options: Mapping[str, str]) -> Dict[str, str]:
    """
    What a driver depends on: every key of the section but the description
    (a new desc must not reconnect the driver).
    """
    return {k: v for k, v in options.items() if k != "desc"}


def _is_loopback_endpoint(endpoint: str) -> bool:
    for marker in ("interface=127.", "interface=\\:\\:1:", "interface=localhost"):
        if marker in endpoint:
            return True
    return False


def check_sections(config: Config) -> None:
    """
    Refuse ups.conf sections naming a nutshim driver that does not exist
    (anything else is one of NUT's drivers, found through its socket).

    @raise ConfigError: naming ups.conf and the section's line.
    """
    from nutshim.drivers.runner import DRIVERS

    if config.ups is None:
        return
    for section in config.ups.sections:
        driver = section.driver or ""
        if driver.startswith("nutshim-") and driver not in DRIVERS:
            raise ConfigError(
                os.path.join(config.confdir, "ups.conf"),
                section.lineno,
                f"[{section.name}]: unknown nutshim driver {driver!r}"
                f" (known: {', '.join(sorted(DRIVERS))})",
            )


def demo_section() -> UpsSection:
    """
    The UPS served when there is no configuration at all.
    """
    return UpsSection(
        name=DEMO_UPS,
        driver="nutshim-sim",
        port="demo.seq",
        desc="nutshim demo UPS (simulated)",
        options={"driver": "nutshim-sim", "port": "demo.seq"},
        lineno=0,
    )


def allow_no_device(config: Config, environ: Optional[Dict[str, str]] = None) -> bool:
    """
    ALLOW_NO_DEVICE from upsd.conf, overridden by the environment as in NUT.
    """
    value = (os.environ if environ is None else environ).get("ALLOW_NO_DEVICE")
    if value is not None:
        word = value.strip().lower()
        if word in ("true", "on", "yes") or (word.isdigit() and int(word) != 0):
            return True
        if word in ("false", "off", "no") or word.isdigit():
            return False
    return config.upsd.allow_no_device


class UpsdService(MultiService):
    """
    nut-upsd: owns the registry, the engine, the drivers and the listeners.

    @param confdir: NUT's configuration directory.
    @param reactor: the reactor (injected for tests).
    @param listen_override: endpoint strings from C{--listen}; replace LISTEN.
    @param statepath_override: from C{--statepath}.
    @param tls_options: the TLS settings the tap already built from
        C{config} (so the certificate is read and checked once); by default
        they are built here.
    @raise ConfigError: if C{config}'s TLS settings are unusable.
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
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.config = config
        self.listen_override = list(listen_override)
        self.statepath_override = statepath_override
        self.cmdvartab_override = cmdvartab_override
        self.driver_builder = driver_builder
        self.registry = Registry()
        self.tracking = TrackingTable(reactor.seconds, float(config.upsd.trackingdelay))
        self.engine = Engine(self.registry, config.users, self.tracking, config.cmdvartab)
        self.factory = UpsdFactory(self.engine, reactor)
        self.ports: Dict[str, IListeningPort] = {}
        self.demo = False
        if tls_options is LOAD_TLS:
            tls_options = server_tls_options(config.upsd, config.confdir)
        self._apply_settings(config, tls_options)
        for section in self._sections(config):
            self._add_ups(section, first=False)

    # Configuration.

    def statepath(self, config: Config) -> str:
        from nutshim.config.paths import statepath

        return statepath(self.statepath_override, config.upsd.statepath)

    def _sections(self, config: Config) -> List[UpsSection]:
        sections = list(config.ups.sections) if config.ups is not None else []
        if not sections and not allow_no_device(config):
            self.demo = True
            return [demo_section()]
        self.demo = False
        return sections

    def _apply_settings(self, config: Config, tls: Optional[ServerTLSOptions]) -> None:
        upsd = config.upsd
        self.factory.idle_timeout = float(upsd.idle_timeout)
        self.factory.max_line = upsd.maxline
        self.factory.maxconn = upsd.maxconn
        self.tracking.delay = float(upsd.trackingdelay)
        self.engine.users = config.users
        self.engine.descriptions = config.cmdvartab
        # TLS: new STARTTLS handshakes use the new context; sessions already
        # on TLS keep theirs.  The TLS requirement and the certificate-to-
        # user mapping are re-evaluated for every open session, so a
        # stricter TLS_REQUIRED or a removed certificate line applies now.
        self.engine.tls_available = tls is not None
        self.factory.tls_context_factory = tls
        self.factory.tls_mode = upsd.effective_tls_required
        self.factory.tls_handshake_timeout = float(upsd.tls_handshake_timeout)
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

    def _endpoints(self, config: Config) -> List[str]:
        if self.listen_override:
            return list(self.listen_override)
        return listen_endpoints([(l.address, l.port) for l in config.upsd.listen])

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

    # Service life.

    def startService(self) -> None:
        super().startService()
        for warning in self.config.warnings:
            log.warn("{problem}", problem=str(warning))
        if self.demo:
            log.info(
                "No UPS configured in {confdir}: serving the simulated demo UPS"
                " [{ups}] (see README to configure real ones)",
                confdir=self.config.confdir,
                ups=DEMO_UPS,
            )
        self._log_tls()
        for entry in self.registry:
            self._start_driver(entry)
        failed = [e for e in self._endpoints(self.config) if not self._listen(e)]
        self._check_listeners(failed)
        self._install_sighup()

    def _check_listeners(self, failed: List[str]) -> None:
        """
        As NUT: no listener at all is fatal; so is a failed one, unless it is
        a loopback address (::1 on a host without IPv6) or upsd.conf says
        ALLOW_NOT_ALL_LISTENERS.  TCP listens fail synchronously, so this
        runs before twistd reports the daemon started.
        """
        if not failed:
            return
        if not self.ports:
            raise SystemExit(f"nut-upsd: cannot listen on {', '.join(failed)}: giving up")
        serious = [e for e in failed if not _is_loopback_endpoint(e)]
        if serious and not self.config.upsd.allow_not_all_listeners:
            raise SystemExit(
                f"nut-upsd: cannot listen on {', '.join(serious)}"
                " (set ALLOW_NOT_ALL_LISTENERS in upsd.conf to start anyway)"
            )

    def stopService(self) -> Deferred[Any]:
        for entry in self.registry:
            self._stop_driver(entry)
        ports, self.ports = self.ports, {}
        waits = [d for d in (p.stopListening() for p in ports.values()) if d is not None]
        for proto in list(self.factory.protocols.values()):
            if proto.transport is not None:
                proto.transport.loseConnection()
        d: Deferred[Any] = DeferredList(waits) if waits else Deferred()
        if not waits:
            d.callback(None)
        d.addCallback(lambda _: super(UpsdService, self).stopService())
        return d

    def _listen(self, endpoint: str) -> bool:
        """
        Listen on C{endpoint}; L{False} if that failed (or has not finished).
        """
        ok: List[bool] = []

        def listening(port: IListeningPort) -> None:
            self.ports[endpoint] = port
            ok.append(True)
            log.info("Listening on {endpoint}", endpoint=endpoint)

        def failed(f: Any) -> None:
            log.error(
                "Cannot listen on {endpoint}: {error}",
                endpoint=endpoint,
                error=f.getErrorMessage(),
            )

        try:
            d = serverFromString(self.reactor, endpoint).listen(self.factory)
        except Exception as e:
            log.error("Cannot listen on {endpoint}: {error}", endpoint=endpoint, error=str(e))
            return False
        d.addCallbacks(listening, failed)
        return bool(ok)

    def _install_sighup(self) -> None:
        if not hasattr(signal, "SIGHUP") or not hasattr(self.reactor, "callFromThread"):
            return
        try:
            signal.signal(signal.SIGHUP, lambda *a: self.reactor.callFromThread(self.reload))
        except ValueError:
            pass  # not the main thread (tests)

    # Reload.

    def reload(self) -> bool:
        """
        Re-read ups.conf, upsd.conf and upsd.users and apply them.

        @return: whether the new configuration was applied.
        """
        log.info("Reloading configuration from {confdir}", confdir=self.config.confdir)
        try:
            new = load_config(self.config.confdir, self.cmdvartab_override)
            check_sections(new)
            sections = self._sections(new)
            endpoints = self._endpoints(new)
            tls = server_tls_options(new.upsd, new.confdir)
        except ConfigError as e:
            log.error("Reload failed, keeping the running configuration: {error}", error=str(e))
            return False
        for warning in new.warnings:
            log.warn("{problem}", problem=str(warning))
        self.config = new
        self._apply_settings(new, tls)
        self._log_tls()
        wanted = {s.name.lower(): s for s in sections}
        for entry in list(self.registry):
            section = wanted.get(entry.name.lower())
            if section is None:
                self._remove_ups(entry)
                continue
            entry.desc = section.desc
            if _driver_settings(section.options) != _driver_settings(entry.options):
                self._replace_driver(entry, section)
        for key, section in wanted.items():
            if self.registry.get(key) is None:
                self._add_ups(section, first=True)
        if self.running:
            for endpoint in list(self.ports):
                if endpoint not in endpoints:
                    port = self.ports.pop(endpoint)
                    port.stopListening()
                    log.info("No longer listening on {endpoint}", endpoint=endpoint)
            for endpoint in endpoints:
                if endpoint not in self.ports:
                    self._listen(endpoint)
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
