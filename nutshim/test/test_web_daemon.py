"""
Tests for L{nutshim.web.daemon} wired into nut-upsd: C{HTTP_LISTEN} and
C{--http}, the counters the daemon bumps, reload and readiness told to
systemd -- on a C{MemoryReactorClock}, with a fake notify socket.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nutshim.config import Config, ConfigError, load_config, parse_upsd_conf
from nutshim.config.upsconf import UpsSection
from nutshim.protocol import commands as c
from nutshim.sdnotify import Notifier, ServiceNotifier
from nutshim.testing import MemoryDriver
from nutshim.upsd import tap
from nutshim.upsd.link import Link
from nutshim.upsd.registry import Registry, Session, UpsEntry
from nutshim.upsd.service import UpsdService
from nutshim.web.counters import Handshake
from nutshim.web.daemon import check_http, status_line


class Sent:
    """
    A fake datagram socket factory: every notification, as fields.
    """

    def __init__(self) -> None:
        self.messages: List[List[str]] = []

    def __call__(self) -> "Sent":
        return self

    def sendto(self, data: bytes, address: Any) -> int:
        self.messages.append(data.decode().split("\n"))
        return len(data)

    def close(self) -> None:
        pass

    def kinds(self) -> List[str]:
        return [m[0] for m in self.messages if m != ["WATCHDOG=1"]]


class Builder:
    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.built: List[MemoryDriver] = []

    def __call__(self, section: UpsSection, config: Config, statepath: str, reactor: Any) -> MemoryDriver:
        driver = MemoryDriver(connected=self.ready)
        driver.state.set_info("ups.status", "OL")
        self.built.append(driver)
        return driver


class ConfigKeyTests(SynchronousTestCase):
    def test_http_listen(self) -> None:
        """
        A port, an address and a port (as LISTEN, TLS optional), or an
        endpoint string (the tokenizer's "=" words joined back).
        """
        conf = parse_upsd_conf(b"HTTP_LISTEN 9199\nHTTP_LISTEN tcp:9200:interface=0.0.0.0\n"
                               b"HTTP_LISTEN tls:9201\nHTTP_LISTEN ::1 9202\n"
                               b"HTTP_LISTEN 192.0.2.1 9203 TLS\n", "upsd.conf")
        self.assertEqual(conf.http_listen, (("9199", 1), ("tcp:9200:interface=0.0.0.0", 2),
                                            ("tls:9201", 3), ("tcp6:9202:interface=\\:\\:1", 4),
                                            ("tls:tcp:9203:interface=192.0.2.1", 5)))
        self.assertEqual(parse_upsd_conf(b"", "upsd.conf").http_listen, ())

    def test_bad(self) -> None:
        for line, why in ((b"HTTP_LISTEN frob:1", "expected a port"),
                          (b"HTTP_LISTEN tcp:x", "the port must be a number"),
                          (b"HTTP_LISTEN 70000", "port out of range"),
                          (b"HTTP_LISTEN 192.0.2.1 9199 SSL", "expected a port"),
                          (b"HTTP_LISTEN", "needs a port")):
            e = self.assertRaises(ConfigError, parse_upsd_conf, b"MAXAGE 15\n" + line + b"\n",
                                  "/etc/nut/upsd.conf")
            self.assertTrue(str(e).startswith("/etc/nut/upsd.conf:2: "), str(e))
            self.assertIn(why, str(e))


class CheckHttpTests(SynchronousTestCase):
    def config(self, text: str) -> Config:
        confdir = self.mktemp()
        os.makedirs(confdir)
        with open(os.path.join(confdir, "upsd.conf"), "w") as f:
            f.write(text)
        return load_config(confdir)

    def test_tls_needs_certificate(self) -> None:
        config = self.config("MAXAGE 15\nHTTP_LISTEN tls:9199\n")
        e = self.assertRaises(ConfigError, check_http, config, [], None)
        self.assertIn("upsd.conf:2: HTTP_LISTEN tls:9199: tls: needs CERTFILE", str(e))
        check_http(config, [], object())
        # --http replaces the lines.
        check_http(config, ["9199"], None)

    def test_tap(self) -> None:
        """
        A bad --http is a usage error; a tls: line without CERTFILE stops
        twistd with the file and line.
        """
        confdir = self.mktemp()
        os.makedirs(confdir)
        self.assertRaises(usage.UsageError, tap.Options().parseOptions,
                          ["--confdir", confdir, "--http", "frob:1"])
        with open(os.path.join(confdir, "upsd.conf"), "w") as f:
            f.write("HTTP_LISTEN tls:9199\n")
        e = self.assertRaises(SystemExit, tap.Options().parseOptions, ["--confdir", confdir])
        self.assertIn("upsd.conf:1: HTTP_LISTEN tls:9199", str(e))
        options = tap.Options()
        options.parseOptions(["--confdir", confdir, "--http", "9300", "--http", "9301"])
        self.assertEqual(options["http"], ["9300", "9301"])


class StatusLineTests(SynchronousTestCase):
    def test_words(self) -> None:
        registry = Registry()
        self.assertEqual(status_line(registry), "0 UPS, 0 clients")
        for name, status in (("a", "OL"), ("b", "OB DISCHRG"), ("c", "OB")):
            driver = MemoryDriver()
            driver.state.set_info("ups.status", status)
            registry.add(UpsEntry(name, None, driver, "x", "y"))
        registry.add(UpsEntry("d", None, MemoryDriver(connected=False), "x", "y"))
        registry.open(Session("127.0.0.1"))
        self.assertEqual(status_line(registry), "4 UPS (2 on battery), 1 without data, 1 client")


class DaemonTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.confdir = self.mktemp()
        os.makedirs(self.confdir)
        self.write("ups.conf", "[a]\n driver = dummy-ups\n port = a.dev\n")
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\nHTTP_LISTEN 9199\nMAXAGE 5\n")
        self.write("upsd.users", "[u]\n password = p\n upsmon primary\n")
        self.reactor = MemoryReactorClock()
        self.sent = Sent()

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.confdir, name), "w") as f:
            f.write(text)

    def service(self, builder: Optional[Builder] = None, http: List[str] = []) -> UpsdService:
        notifier = ServiceNotifier(Notifier("/n", self.sent), self.reactor,
                                   lambda: "status", watchdog=None)
        svc = UpsdService(load_config(self.confdir), self.reactor, driver_builder=builder or Builder(),
                          http_override=http, notifier=notifier)
        svc.privilegedStartService()
        svc.startService()
        self.addCleanup(svc.stopService)
        return svc

    def ports(self) -> List[tuple[int, str]]:
        return sorted((p[0], p[3]) for p in self.reactor.tcpServers)

    def test_http_listen(self) -> None:
        """
        HTTP_LISTEN opens with the NUT listeners; --http replaces it.
        """
        self.service()
        self.assertEqual(self.ports(), [(3493, "127.0.0.1"), (9199, "127.0.0.1")])

    def test_override(self) -> None:
        self.service(http=["tcp:9300:interface=127.0.0.2"])
        self.assertEqual(self.ports(), [(3493, "127.0.0.1"), (9300, "127.0.0.2")])

    def test_ready(self) -> None:
        """
        READY=1 once the reactor runs and the drivers delivered.
        """
        builder = Builder(ready=False)
        self.service(builder)
        self.reactor.advance(0)
        self.reactor.advance(1)
        self.assertEqual(self.sent.kinds(), [])
        builder.built[0].connected = True
        self.reactor.advance(0.1)
        self.assertEqual(self.sent.messages, [["READY=1", "STATUS=1 UPS, 0 clients"]])

    def test_reload(self) -> None:
        """
        SIGHUP's action: RELOADING=1, the reload, READY=1, counted; the
        HTTP listeners follow HTTP_LISTEN; a refused reload keeps them.
        """
        svc = self.service()
        self.reactor.advance(0)
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\nHTTP_LISTEN 9201\n")
        self.assertTrue(svc.operability.reload())
        self.assertEqual(sorted(e.text for e in svc.operability.web.ports), ["9201"])
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\nHTTP_LISTEN frob:1\n")
        self.assertFalse(svc.operability.reload())
        self.assertEqual(sorted(e.text for e in svc.operability.web.ports), ["9201"])
        self.assertEqual(self.sent.kinds(), ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1",
                                             "READY=1"])
        self.assertEqual((svc.counters.reloads, svc.counters.reload_failures), (2, 1))
        self.flushLoggedErrors()

    def test_stop(self) -> None:
        svc = self.service()
        self.reactor.advance(0)
        svc.stopService()
        self.assertEqual(self.sent.kinds(), ["READY=1", "STOPPING=1"])
        self.assertEqual(svc.operability.web.ports, {})

    def test_counts_requests(self) -> None:
        """
        The daemon's engine counts what it answers.
        """
        svc = self.service()
        session = Session("127.0.0.1")
        svc.engine.handle(session, c.GetVar("a", "ups.status"))
        svc.engine.handle(session, c.GetVar("zz", "ups.status"))
        self.assertEqual(svc.counters.requests[c.GetVar], 2)
        self.assertEqual(svc.counters.errors[(c.GetVar, b"ERR UNKNOWN-UPS\n")], 1)

    def test_counts_connections(self) -> None:
        """
        Connections by listener, their TLS handshakes, MAXCONN refusals.
        """
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\nMAXCONN 1\n")
        svc = self.service()
        factory = svc.factory
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        assert proto is not None
        proto.makeConnection(StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 3493)))
        counters = svc.counters
        self.assertEqual((counters.accepted, counters.open_plain), ({"127.0.0.1:3493": 1},
                                                                    {"127.0.0.1:3493": 1}))
        refused = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
        assert refused is not None
        refused.makeConnection(StringTransport())
        self.assertEqual(counters.refused, 1)
        factory.link_moved(proto, Link.PLAIN, Link.HANDSHAKING)  # type: ignore[arg-type]
        factory.link_moved(proto, Link.HANDSHAKING, Link.TLS)  # type: ignore[arg-type]
        self.assertEqual(counters.open_tls, {"127.0.0.1:3493": 1})
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual((counters.open_plain["127.0.0.1:3493"], counters.open_tls["127.0.0.1:3493"]),
                         (0, 0))
        self.assertEqual(counters.handshakes, {("127.0.0.1:3493", Handshake.OK): 1})

    def test_handshake_outcomes(self) -> None:
        """
        A timeout, plaintext refused at STARTTLS, a connection lost during
        the handshake.
        """
        svc = self.service()
        counters = svc.counters
        for n, moves in enumerate([[(Link.PLAIN, Link.HANDSHAKING), (Link.HANDSHAKING, Link.FAILED)],
                                   [(Link.PLAIN, Link.FAILED)],
                                   [(Link.PLAIN, Link.HANDSHAKING)]]):
            proto = svc.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000 + n))
            assert proto is not None
            proto.makeConnection(StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 3493)))
            for old, new in moves:
                svc.factory.link_moved(proto, old, new)  # type: ignore[arg-type]
            proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(counters.handshakes, {("127.0.0.1:3493", Handshake.TIMEOUT): 1,
                                               ("127.0.0.1:3493", Handshake.ERROR): 2})
