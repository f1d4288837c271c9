"""
Tests for L{nutshim.upsd.listeners} and the listeners of
L{nutshim.upsd.service}: the plan from LISTEN/LISTEN_TLS and the command
line, per-listener TLS policy, the plaintext-on-the-network warning, what
a failure to listen means, at start and on reload.  No sockets: a
C{MemoryReactorClock} and C{StringTransport}s.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any, List, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock, StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from nutshim.config import ConfigError, load_config, parse_upsd_conf
from nutshim.config.upsconf import UpsSection
from nutshim.test.test_tls import pki
from nutshim.testing import MemoryDriver
from nutshim.upsd.listeners import (
    ListenerFactory,
    PlannedListener,
    StartupError,
    endpoint_host,
    is_loopback_host,
    plaintext_warning,
    plan_listeners,
    tolerated,
)
from nutshim.upsd.protocol import UpsdProtocol
from nutshim.upsd.service import UpsdService

PATH = "/etc/nut/upsd.conf"


def resolver(host: str, port: int, type: int = 0) -> List[Tuple[Any, ...]]:
    """
    A getaddrinfo for tests: C{localhost} has both loopback addresses,
    literals are themselves, anything else does not exist.
    """
    table = {
        "localhost": [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")],
    }
    if host in table:
        entries = table[host]
    elif ":" in host:
        entries = [(socket.AF_INET6, host)]
    elif host.replace(".", "").isdigit():
        entries = [(socket.AF_INET, host)]
    else:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(family, type, 6, "", (address, port)) for family, address in entries]


def plan(text: bytes, listen: Tuple[str, ...] = (), listen_tls: Tuple[str, ...] = ()
         ) -> Tuple[PlannedListener, ...]:
    return plan_listeners(parse_upsd_conf(text, PATH), PATH, listen, listen_tls, resolver)


class PlanTests(SynchronousTestCase):
    """
    L{plan_listeners}: what nut-upsd will listen on, with which policy.
    """

    def test_lines(self) -> None:
        """
        Each LISTEN and LISTEN_TLS line becomes one endpoint per address,
        named by its file and line.
        """
        got = plan(b"CERTFILE server.pem\nLISTEN localhost 3493\nLISTEN_TLS 0.0.0.0\nLISTEN_TLS * 4401\n")
        self.assertEqual(
            [(p.endpoint, p.tls_only, p.origin, p.host) for p in got],
            [
                ("tcp:3493:interface=127.0.0.1:backlog=1024", False,
                 PATH + ":2: LISTEN localhost 3493", "127.0.0.1"),
                ("tcp6:3493:interface=\\:\\:1:backlog=1024", False,
                 PATH + ":2: LISTEN localhost 3493", "::1"),
                ("tcp:401:interface=0.0.0.0:backlog=1024", True,
                 PATH + ":3: LISTEN_TLS 0.0.0.0 401", "0.0.0.0"),
                ("tcp6:4401:interface=\\:\\::backlog=1024", True,
                 PATH + ":4: LISTEN_TLS * 4401", "::"),
            ],
        )

    def test_default(self) -> None:
        """
        Without LISTEN lines, NUT's loopback default, still beside the
        LISTEN_TLS lines.
        """
        got = plan(b"CERTFILE server.pem\nLISTEN_TLS 0.0.0.0 4401\n")
        self.assertEqual([(p.origin, p.tls_only) for p in got], [
            ("default LISTEN 127.0.0.1 3493", False),
            ("default LISTEN ::1 3493", False),
            (PATH + ":2: LISTEN_TLS 0.0.0.0 4401", True),
        ])

    def test_command_line(self) -> None:
        """
        --listen and --listen-tls replace every LISTEN and LISTEN_TLS line;
        --listen-tls needs CERTFILE.
        """
        got = plan(b"CERTFILE server.pem\nLISTEN 0.0.0.0\nLISTEN_TLS 0.0.0.0\n",
                   ("tcp:3493:interface=127.0.0.1",), ("tcp6:401",))
        self.assertEqual([(p.endpoint, p.tls_only, p.origin, p.host) for p in got], [
            ("tcp:3493:interface=127.0.0.1", False, "--listen tcp:3493:interface=127.0.0.1",
             "127.0.0.1"),
            ("tcp6:401", True, "--listen-tls tcp6:401", ""),
        ])
        error = self.assertRaises(ConfigError, plan, b"", (), ("tcp:401",))
        self.assertIn("--listen-tls needs CERTFILE", str(error))

    def test_unresolvable(self) -> None:
        """
        A LISTEN host that does not resolve is a ConfigError naming its
        line (NUT exits with "getaddrinfo: ..."), decided before anything
        listens.
        """
        error = self.assertRaises(ConfigError, plan, b"LISTEN 127.0.0.1\nLISTEN nohost.invalid 3493\n")
        self.assertEqual(
            str(error),
            PATH + ":2: LISTEN nohost.invalid 3493: cannot resolve nohost.invalid:"
            " Name or service not known",
        )

    def test_same_endpoint_two_policies(self) -> None:
        """
        Two lines that resolve to one address and port with different
        policies are refused.
        """
        error = self.assertRaises(
            ConfigError, plan, b"CERTFILE c\nLISTEN localhost 4401\nLISTEN_TLS ::1 4401\n")
        self.assertIn("different TLS policies", str(error))

    def test_endpoint_host(self) -> None:
        """
        The address an endpoint description binds, when it says.
        """
        for description, host in [
            ("tcp:3493", ""),
            ("tcp:3493:interface=127.0.0.1", "127.0.0.1"),
            ("tcp:3493:192.0.2.1", "192.0.2.1"),
            ("tcp6:3493:interface=\\:\\:1:backlog=9", "::1"),
            ("tcp6:port=3493:interface=\\:\\:", "::"),
            ("unix:/run/nut/sock", "unix"),
            ("systemd:domain=INET6:index=0", None),
        ]:
            self.assertEqual(endpoint_host(description), host, description)

    def test_loopback_host(self) -> None:
        for host in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "localhost", "unix"):
            self.assertTrue(is_loopback_host(host), host)
        for host in ("", "0.0.0.0", "::", "192.0.2.1", "fe80::1%eth0", "host.example"):
            self.assertFalse(is_loopback_host(host), host)

    def test_tolerated(self) -> None:
        """
        Only a loopback address this host lacks may fail: not a port in
        use, not a network address.
        """
        absent = CannotListenError("::1", 3493, OSError(errno.EADDRNOTAVAIL, "no"))
        in_use = CannotListenError("::1", 3493, OSError(errno.EADDRINUSE, "in use"))
        loopback = PlannedListener("tcp6:3493:interface=\\:\\:1", False, "x", "::1")
        network = PlannedListener("tcp:3493:interface=192.0.2.1", False, "x", "192.0.2.1")
        self.assertTrue(tolerated(loopback, absent))
        self.assertFalse(tolerated(loopback, in_use))
        self.assertFalse(tolerated(network, absent))


class PlaintextWarningTests(SynchronousTestCase):
    """
    RFC 9271 section 6.2: a plaintext listener on a network address is
    never silent.
    """

    def test_network(self) -> None:
        """
        Plaintext on 0.0.0.0, ::, or a network address without a TLS
        requirement: the warning names the listener and says passwords
        cross the network in clear.
        """
        for host in ("0.0.0.0", "::", "", "192.0.2.10"):
            item = PlannedListener("tcp:3493", False, PATH + ":1: LISTEN x 3493", host)
            warning = plaintext_warning(item, None, "off")
            assert warning is not None
            self.assertIn(PATH + ":1: LISTEN x 3493", warning)
            self.assertIn("passwords", warning)
            self.assertIn("in clear", warning)

    def test_quiet(self) -> None:
        """
        No warning on loopback, on a TLS-only listener, or when TLS is
        required from remote clients (TLS_REQUIRED remote, CERTFILE's
        default).
        """
        loopback = PlannedListener("tcp:3493", False, "x", "127.0.0.1")
        network = PlannedListener("tcp:3493", False, "x", "0.0.0.0")
        tls_only = PlannedListener("tcp:401", True, "x", "0.0.0.0")
        self.assertIsNone(plaintext_warning(loopback, None, "off"))
        self.assertIsNone(plaintext_warning(tls_only, None, "off"))
        self.assertIsNone(plaintext_warning(network, None, "remote"))
        self.assertIsNone(plaintext_warning(network, None, "all"))

    def test_unknown_address(self) -> None:
        """
        A systemd socket's address comes from the bound port.
        """
        item = PlannedListener("systemd:domain=INET:index=0", False, "x", None)
        self.assertIsNotNone(plaintext_warning(item, "0.0.0.0", "off"))
        self.assertIsNone(plaintext_warning(item, "127.0.0.1", "off"))


def builder(section: UpsSection, config: Any, statepath: str, reactor: Any) -> MemoryDriver:
    driver = MemoryDriver()
    driver.state.set_info("ups.status", "OL")
    return driver


class ServiceListenerTests(SynchronousTestCase):
    """
    The listeners of a running L{UpsdService}.
    """

    def setUp(self) -> None:
        self.confdir = self.mktemp()
        pki().write(self.confdir)
        self.write("ups.conf", "[ups]\n driver = dummy-ups\n port = x.dev\n")
        self.write("upsd.users", "[u]\n password = p\n upsmon primary\n")
        self.reactor = MemoryReactorClock()
        self.log = EventLoggingObserver()
        globalLogPublisher.addObserver(self.log)
        self.addCleanup(globalLogPublisher.removeObserver, self.log)

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.confdir, name), "w") as f:
            f.write(text)

    def service(self, start: bool = True, **kwargs: Any) -> UpsdService:
        svc = UpsdService(load_config(self.confdir), self.reactor, driver_builder=builder,
                          tls_options=None, **kwargs)
        if start:
            svc.startService()
            self.addCleanup(svc.stopService)
        return svc

    def messages(self) -> List[str]:
        return [formatEvent(e) for e in self.log]

    def connect(self, svc: UpsdService, endpoint: str, host: str = "127.0.0.1"
                ) -> Tuple[UpsdProtocol, StringTransport]:
        """
        A client accepted by the listener of C{endpoint}.
        """
        factories = [p[1] for p in self.reactor.tcpServers if isinstance(p[1], ListenerFactory)]
        factory = [f for f in factories if f.endpoint == endpoint][-1]
        proto = factory.buildProtocol(IPv4Address("TCP", host, 40000))
        assert isinstance(proto, UpsdProtocol)
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        proto.makeConnection(transport)
        return proto, transport

    def ask(self, proto: UpsdProtocol, transport: StringTransport, request: bytes) -> bytes:
        transport.clear()
        proto.dataReceived(request)
        return transport.value()

    def test_tls_only_listener(self) -> None:
        """
        On the TLS-only listener a loopback client gets TLS-NOT-ENABLED for
        everything but STARTTLS and the discovery commands; on the
        plaintext listener beside it, the same client is served.
        """
        self.write("upsd.conf", "CERTFILE server.pem\nLISTEN 127.0.0.1 3493\nLISTEN_TLS 127.0.0.1 4401\n")
        svc = self.service()
        tls = "tcp:4401:interface=127.0.0.1:backlog=1024"
        plain = "tcp:3493:interface=127.0.0.1:backlog=1024"
        self.assertEqual(sorted(svc.ports), sorted([plain, tls]))
        proto, transport = self.connect(svc, tls)
        self.assertEqual(proto.session.listener, tls)
        self.assertTrue(proto.session.tls_required)
        for request in (b"GET VAR ups ups.status\n", b"USERNAME u\n", b"LIST UPS\n", b"VER\n"):
            self.assertEqual(self.ask(proto, transport, request), b"ERR TLS-NOT-ENABLED\n")
        self.assertEqual(self.ask(proto, transport, b"PROTVER\n"), b"1.3\n")
        proto, transport = self.connect(svc, plain)
        self.assertFalse(proto.session.tls_required)
        self.assertEqual(self.ask(proto, transport, b"GET VAR ups ups.status\n"),
                         b'VAR ups ups.status "OL"\n')

    def test_policy_change_on_reload(self) -> None:
        """
        A reload that turns a LISTEN into a LISTEN_TLS on the same address
        keeps the port and applies the policy to its open sessions at once.
        """
        self.write("upsd.conf", "CERTFILE server.pem\nLISTEN 127.0.0.1 4401\n")
        svc = self.service()
        endpoint = "tcp:4401:interface=127.0.0.1:backlog=1024"
        proto, transport = self.connect(svc, endpoint)
        port = svc.ports[endpoint]
        self.assertFalse(proto.session.tls_required)
        self.write("upsd.conf", "CERTFILE server.pem\nLISTEN_TLS 127.0.0.1 4401\n")
        self.assertTrue(svc.reload())
        self.assertIs(svc.ports[endpoint], port)
        self.assertTrue(proto.session.tls_required)
        self.assertEqual(self.ask(proto, transport, b"LIST UPS\n"), b"ERR TLS-NOT-ENABLED\n")

    def test_plaintext_network_warning(self) -> None:
        """
        A plaintext listener on every address logs a warning naming it at
        start and again on reload; loopback listeners do not.
        """
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\nLISTEN 0.0.0.0 3493\n")
        svc = self.service()
        path = os.path.join(self.confdir, "upsd.conf")

        def warnings() -> List[str]:
            return [m for m in self.messages() if "cross the network in clear" in m]

        [warning] = warnings()
        self.assertIn(path + ":2: LISTEN 0.0.0.0 3493", warning)
        self.assertTrue(svc.reload())
        self.assertEqual(len(warnings()), 2)

    def test_bind_failure_at_start(self) -> None:
        """
        A LISTEN that cannot be bound stops the daemon with one line naming
        its line and the reason, unless ALLOW_NOT_ALL_LISTENERS.
        """
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\nLISTEN 192.0.2.1 3493\n")
        real = self.reactor.listenTCP

        def listen(port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
            if interface == "192.0.2.1":
                raise CannotListenError(interface, port, OSError(errno.EADDRNOTAVAIL,
                                                                 "Cannot assign requested address"))
            return real(port, factory, backlog, interface)

        self.reactor.listenTCP = listen  # type: ignore[method-assign]
        svc = self.service(start=False)
        error = self.assertRaises(StartupError, svc.bind)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(
            "nut-upsd: " + os.path.join(self.confdir, "upsd.conf") + ":2: LISTEN 192.0.2.1 3493:"
            " cannot listen on tcp:3493:interface=192.0.2.1:backlog=1024:"
            " Cannot assign requested address"), message)
        self.assertIn("ALLOW_NOT_ALL_LISTENERS", message)
        self.write("upsd.conf", "ALLOW_NOT_ALL_LISTENERS 1\nLISTEN 127.0.0.1 3493\nLISTEN 192.0.2.1 3493\n")
        svc = self.service(start=False)
        svc.bind()
        self.assertEqual(list(svc.ports), ["tcp:3493:interface=127.0.0.1:backlog=1024"])

    def test_bind_failure_on_reload(self) -> None:
        """
        A reload whose new listener cannot be bound keeps the whole running
        configuration: no new users, no new listener, the other new
        listener it opened closed again.
        """
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\n")
        svc = self.service()
        real = self.reactor.listenTCP

        def listen(port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
            if port == 3495:
                raise CannotListenError(interface, port, OSError(errno.EADDRINUSE,
                                                                 "Address already in use"))
            return real(port, factory, backlog, interface)

        self.reactor.listenTCP = listen  # type: ignore[method-assign]
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\nLISTEN 127.0.0.1 3494\nLISTEN 127.0.0.1 3495\n")
        self.write("upsd.users", "[u]\n password = p\n upsmon primary\n[new]\n password = n\n")
        self.assertFalse(svc.reload())
        self.assertEqual(list(svc.ports), ["tcp:3493:interface=127.0.0.1:backlog=1024"])
        self.assertIsNone(svc.config.users.authenticate("new", "n"))
        self.assertTrue(any("Reload failed" in m and ":3: LISTEN 127.0.0.1 3495" in m
                            for m in self.messages()))

    def test_bound_once(self) -> None:
        """
        The tap binds before twistd starts the service; starting does not
        bind again.
        """
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\n")
        svc = self.service(start=False)
        svc.bind()
        svc.privilegedStartService()
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertEqual(len(self.reactor.tcpServers), 1)


class StartupErrorTests(SynchronousTestCase):
    def test_one_line(self) -> None:
        """
        A StartupError is a SystemExit whose text is the line printed.
        """
        error = StartupError("x.conf:3: broken")
        self.assertIsInstance(error, SystemExit)
        self.assertEqual(str(error), "nut-upsd: x.conf:3: broken")
