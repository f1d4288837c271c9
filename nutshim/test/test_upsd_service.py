"""
Tests for L{nutshim.upsd.service} and L{nutshim.upsd.tap}: configuration to
drivers and listeners, reload, all on a C{MemoryReactor}.
"""

from __future__ import annotations

import os
from typing import Any, List

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from nutshim.config import Config, load_config
from nutshim.config.upsconf import UpsSection
from nutshim.testing import MemoryDriver
from nutshim.upsd import tap
from nutshim.upsd.registry import Session
from nutshim.upsd.service import UpsdService, allow_no_device, listen_endpoints


class Builder:
    """
    A driver builder that records what it built.
    """

    def __init__(self) -> None:
        self.built: List[tuple[str, MemoryDriver]] = []

    def __call__(self, section: UpsSection, config: Config, statepath: str, reactor: Any) -> MemoryDriver:
        driver = MemoryDriver()
        driver.state.set_info("ups.status", "OL")
        self.built.append((section.name, driver))
        return driver


class ServiceTests(SynchronousTestCase):
    """
    The service built from a configuration directory.
    """

    def setUp(self) -> None:
        self.confdir = self.mktemp()
        os.makedirs(self.confdir)
        self.write("ups.conf", '[a]\n driver = nutshim-sim\n port = a.dev\n desc = "A"\n[b]\n driver = dummy-ups\n port = b.dev\n')
        self.write("upsd.conf", "LISTEN 127.0.0.1 3493\nMAXCONN 10\n")
        self.write("upsd.users", "[u]\n password = p\n upsmon primary\n")
        self.reactor = MemoryReactorClock()
        self.builder = Builder()

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.confdir, name), "w") as f:
            f.write(text)

    def service(self) -> UpsdService:
        svc = UpsdService(load_config(self.confdir), self.reactor, driver_builder=self.builder)
        svc.startService()
        self.addCleanup(svc.stopService)
        return svc

    def test_start(self) -> None:
        """
        Every section gets a started driver; LISTEN lines become listeners;
        MAXCONN reaches the factory.
        """
        svc = self.service()
        self.assertEqual([name for name, _ in self.builder.built], ["a", "b"])
        self.assertTrue(all(d.started for _, d in self.builder.built))
        self.assertEqual([(p[0], p[3]) for p in self.reactor.tcpServers], [(3493, "127.0.0.1")])
        self.assertEqual(svc.factory.maxconn, 10)
        self.assertFalse(svc.demo)

    def test_demo(self) -> None:
        """
        Without any UPS the demo UPS is served, unless ALLOW_NO_DEVICE.
        """
        self.write("ups.conf", "# nothing\n")
        svc = self.service()
        self.assertTrue(svc.demo)
        self.assertEqual(self.builder.built[0][0], "demo")
        self.write("upsd.conf", "ALLOW_NO_DEVICE true\n")
        config = load_config(self.confdir)
        self.assertTrue(allow_no_device(config, {}))
        self.assertFalse(allow_no_device(config, {"ALLOW_NO_DEVICE": "0"}))

    def test_reload(self) -> None:
        """
        Reload updates descriptions, adds new UPSes first, restarts changed
        drivers, removes gone UPSes (disconnecting their clients), keeps FSD
        latches and counts, and applies LISTEN changes.
        """
        svc = self.service()
        a = svc.registry.get("a")
        assert a is not None
        a.fsd = True
        a.numlogins = 1
        old_b = svc.registry.get("b")
        assert old_b is not None
        self.write(
            "ups.conf",
            '[A]\n driver = nutshim-sim\n port = a.dev\n desc = "A2"\n'
            "[c]\n driver = nutshim-sim\n port = c.dev\n",
        )
        self.write("upsd.conf", "LISTEN ::1 3494\n")
        self.assertTrue(svc.reload())
        self.assertEqual([e.name for e in svc.registry], ["c", "a"])
        self.assertIs(svc.registry.get("a"), a)
        self.assertEqual(a.desc, "A2")
        self.assertTrue(a.fsd)
        self.assertEqual(a.numlogins, 1)
        self.assertIsNone(svc.registry.get("b"))
        self.assertFalse(old_b.driver.started)  # type: ignore[attr-defined]
        self.assertEqual(self.reactor.tcpServers[-1][0], 3494)
        self.assertNotIn("tcp:3493:interface=127.0.0.1:backlog=1024", svc.ports)

    def test_reload_changed_driver(self) -> None:
        """
        A section whose options changed gets a new driver.
        """
        svc = self.service()
        a = svc.registry.get("a")
        assert a is not None
        first = a.driver
        self.write("ups.conf", "[a]\n driver = nutshim-sim\n port = other.dev\n")
        svc.reload()
        self.assertIsNot(a.driver, first)
        self.assertFalse(first.started)  # type: ignore[attr-defined]

    def test_reload_bad_config(self) -> None:
        """
        A broken file keeps the running configuration.
        """
        svc = self.service()
        self.write("upsd.conf", "LISTEN 127.0.0.1 notaport\n")
        self.assertFalse(svc.reload())
        self.assertIsNotNone(svc.registry.get("b"))

    def test_users_reloaded(self) -> None:
        """
        Sessions are checked against the new users table after a reload.
        """
        svc = self.service()
        session = Session("127.0.0.1")
        session.username, session.password = "u", "p"
        self.assertTrue(svc.engine.users.check_action("u", "p", "FSD"))
        self.write("upsd.users", "[u]\n password = p\n upsmon secondary\n")
        svc.reload()
        self.assertFalse(svc.engine.users.check_action("u", "p", "FSD"))

    def test_listen_endpoints(self) -> None:
        """
        LISTEN lines become endpoint strings; * listens on all addresses.
        """
        self.assertEqual(
            listen_endpoints([("127.0.0.1", 3493), ("::1", 4000), ("*", 5000)]),
            [
                "tcp:3493:interface=127.0.0.1:backlog=1024",
                "tcp6:4000:interface=\\:\\:1:backlog=1024",
                "tcp6:5000:interface=\\:\\::backlog=1024",
            ],
        )


class TapTests(SynchronousTestCase):
    """
    twistd nut-upsd options.
    """

    def test_options(self) -> None:
        """
        --listen accumulates; the configuration is loaded while parsing.
        """
        confdir = self.mktemp()
        os.makedirs(confdir)
        opts = tap.Options()
        opts.parseOptions(["--confdir", confdir, "--listen", "tcp:1", "--listen", "tcp:2"])
        self.assertEqual(opts["listen"], ["tcp:1", "tcp:2"])
        self.assertEqual(opts["config"].confdir, confdir)
        svc = tap.makeService(opts, MemoryReactorClock())
        self.assertIsInstance(svc, UpsdService)

    def test_bad_config(self) -> None:
        """
        A broken configuration is a usage error naming file and line.
        """
        confdir = self.mktemp()
        os.makedirs(confdir)
        with open(os.path.join(confdir, "upsd.conf"), "w") as f:
            f.write("MAXAGE 5\nLISTEN 127.0.0.1 notaport\n")
        opts = tap.Options()
        e = self.assertRaises(usage.UsageError, opts.parseOptions, ["--confdir", confdir])
        self.assertIn("upsd.conf:2", str(e))


class StartupChecksTests(SynchronousTestCase):
    """
    What stops nut-upsd before it serves.
    """

    def confdir(self, ups_conf: str) -> str:
        path = self.mktemp()
        os.makedirs(path)
        with open(os.path.join(path, "ups.conf"), "w") as f:
            f.write(ups_conf)
        return path

    def test_unknown_nutshim_driver(self) -> None:
        """
        A nutshim-* driver that does not exist names ups.conf and its line.
        """
        path = self.confdir("[a]\n driver = nutshim-sim\n port = a.dev\n[b]\n driver = nutshim-nope\n port = x\n")
        e = self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--confdir", path])
        self.assertIn("ups.conf:4", str(e))
        self.assertIn("nutshim-nope", str(e))

    def test_no_listener(self) -> None:
        """
        When no address can be listened on, the daemon exits with a message.
        """
        path = self.confdir("[a]\n driver = nutshim-sim\n port = a.dev\n")
        reactor = MemoryReactorClock()

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise OSError("address in use")

        reactor.listenTCP = refuse  # type: ignore[method-assign]
        svc = UpsdService(load_config(path), reactor, listen_override=["tcp:3493:interface=192.0.2.1"],
                          driver_builder=Builder())
        e = self.assertRaises(SystemExit, svc.startService)
        self.assertIn("cannot listen", str(e))

    def test_loopback_v6_may_fail(self) -> None:
        """
        A failing ::1 listener (a host without IPv6) is not fatal when
        another listener works.
        """
        path = self.confdir("[a]\n driver = nutshim-sim\n port = a.dev\n")
        reactor = MemoryReactorClock()
        real = reactor.listenTCP

        def listen(port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
            if interface == "::1":
                raise OSError("no IPv6")
            return real(port, factory, backlog, interface)

        reactor.listenTCP = listen  # type: ignore[method-assign]
        svc = UpsdService(load_config(path), reactor, driver_builder=Builder())
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertEqual(list(svc.ports), ["tcp:3493:interface=127.0.0.1:backlog=1024"])

    def test_desc_change_keeps_driver(self) -> None:
        """
        A reload that only changes a description keeps the driver running.
        """
        path = self.confdir('[a]\n driver = nutshim-sim\n port = a.dev\n desc = "one"\n')
        svc = UpsdService(load_config(path), MemoryReactorClock(), driver_builder=Builder())
        entry = svc.registry.get("a")
        assert entry is not None
        driver = entry.driver
        with open(os.path.join(path, "ups.conf"), "w") as f:
            f.write('[a]\n driver = nutshim-sim\n port = a.dev\n desc = "two"\n')
        svc.reload()
        self.assertIs(entry.driver, driver)
        self.assertEqual(entry.desc, "two")
