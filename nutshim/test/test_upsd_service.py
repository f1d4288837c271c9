"""
Tests for L{nutshim.upsd.service} and L{nutshim.upsd.tap}: configuration to
drivers and listeners, reload, all on a C{MemoryReactor}.
"""

from __future__ import annotations

import errno
import os
from typing import Any, List

from twisted.internet.error import CannotListenError
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from nutshim.config import Config, load_config
from nutshim.config.upsconf import UpsSection
from nutshim.testing import MemoryDriver
from nutshim.upsd import tap
from nutshim.upsd.registry import Session
from nutshim.upsd.listeners import StartupError, listen_endpoints
from nutshim.upsd.service import UpsdService, allow_no_device


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

    def test_reload_atomic_per_file(self) -> None:
        """
        A reload whose file would drop or change a user, a UPS or a setting
        keeps the whole running configuration and logs FILE:LINE: an
        unbalanced quote on line 8 of upsd.users (NUT: every later user
        denied), a section header missing its bracket (NUT: that user gone,
        its lines given to the user above), a broken ups.conf section, a
        bad upsd.conf value.
        """
        users = "".join(f"[u{i}]\n password = p{i}\n" for i in range(1, 4))
        self.write("upsd.users", "[u]\n password = p\n upsmon primary\n" + users)
        svc = self.service()
        log = EventLoggingObserver()
        globalLogPublisher.addObserver(log)
        self.addCleanup(globalLogPublisher.removeObserver, log)
        broken = [
            ("upsd.users", "[u]\n password = p\n[u1]\n password = p1\n"
                           '[u2]\n password = p2\n[u3]\n password = "p3\n[u4]\n password = p4\n', 8),
            ("upsd.users", "[u]\n password = p\n upsmon primary\n[u1\n password = x\n", 4),
            ("ups.conf", "[a]\n driver = nutshim-sim\n port = a.dev\n[b\n driver = dummy-ups\n", 4),
            ("upsd.conf", "LISTEN 127.0.0.1 3493\nMAXAGE soon\n", 2),
        ]
        good = {name: open(os.path.join(self.confdir, name)).read()
                for name in ("upsd.users", "ups.conf", "upsd.conf")}
        for name, text, lineno in broken:
            self.write(name, text)
            self.assertFalse(svc.reload(), name)
            self.write(name, good[name])
            for i in range(1, 4):
                self.assertIsNotNone(svc.config.users.authenticate(f"u{i}", f"p{i}"), (name, i))
            self.assertTrue(svc.engine.users.check_action("u", "p", "FSD"))
            self.assertEqual([e.name for e in svc.registry], ["a", "b"])
            self.assertEqual(svc.config.upsd.maxconn, 10)
            where = f"{os.path.join(self.confdir, name)}:{lineno}: "
            self.assertTrue(any(where in formatEvent(e) and "Reload failed" in formatEvent(e)
                                for e in log), (name, [formatEvent(e) for e in log]))
        # An unknown key is a warning NUT also tolerates: the rest applies.
        self.write("upsd.users", "[u]\n password = p\n colour = blue\n[u1]\n password = p1\n")
        self.assertTrue(svc.reload())
        self.assertIsNone(svc.config.users.authenticate("u2", "p2"))
        self.assertTrue(any("Unrecognized user setting colour" in formatEvent(e) for e in log))

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
        A broken configuration stops twistd with one line naming file and
        line (a SystemExit: no usage text).
        """
        confdir = self.mktemp()
        os.makedirs(confdir)
        with open(os.path.join(confdir, "upsd.conf"), "w") as f:
            f.write("MAXAGE 5\nLISTEN 127.0.0.1 notaport\n")
        opts = tap.Options()
        e = self.assertRaises(StartupError, opts.parseOptions, ["--confdir", confdir])
        self.assertEqual(
            str(e),
            f"nut-upsd: {confdir}/upsd.conf:2: LISTEN port must be a number from 0 to 65535,"
            " not 'notaport'",
        )

    def test_confdir(self) -> None:
        """
        An explicit directory (--confdir, NUT_CONFPATH) must exist; the
        default may be missing (a fresh machine: the demo); C{-c reload},
        NUT's habit, says how to reload nut-upsd.
        """
        missing = self.mktemp()
        e = self.assertRaises(SystemExit, tap.choose_confdir, missing, {})
        self.assertEqual(str(e), f"nut-upsd: {missing}: no such configuration directory (--confdir)")
        e = self.assertRaises(SystemExit, tap.choose_confdir, None, {"NUT_CONFPATH": missing})
        self.assertEqual(str(e), f"nut-upsd: {missing}: no such configuration directory (NUT_CONFPATH)")
        self.assertEqual(tap.choose_confdir(None, {}), "/etc/nut")
        self.assertEqual(tap.choose_confdir(None, {"NUT_CONFPATH": ""}), "/etc/nut")
        for command in ("reload", "stop"):
            e = self.assertRaises(SystemExit, tap.choose_confdir, command, {})
            self.assertIn(f"-c {command}: -c is --confdir for nut-upsd", str(e))
        self.assertIn("SIGHUP", str(self.assertRaises(SystemExit, tap.choose_confdir, "reload", {})))
        os.makedirs("reload")
        self.addCleanup(os.rmdir, "reload")
        self.assertEqual(tap.choose_confdir("reload", {}), "reload")

    def test_demo_only_without_sections(self) -> None:
        """
        The demo is served for a missing ups.conf or one without any
        section, and logged loudly; a ups.conf whose sections are all
        unusable stops the daemon instead.
        """
        confdir = self.mktemp()
        os.makedirs(confdir)
        for text in (None, "# all comments, like Debian's\n  maxretry = 3\n"):
            if text is not None:
                with open(os.path.join(confdir, "ups.conf"), "w") as f:
                    f.write(text)
            opts = tap.Options()
            opts.parseOptions(["--confdir", confdir, "--listen", "tcp:3493"])
            svc = tap.makeService(opts, MemoryReactorClock())
            assert isinstance(svc, UpsdService)
            self.assertTrue(svc.demo)
            log = EventLoggingObserver()
            globalLogPublisher.addObserver(log)
            self.addCleanup(globalLogPublisher.removeObserver, log)
            svc.startService()
            self.addCleanup(svc.stopService)
            [warning] = [e for e in log if "DEMO MODE" in formatEvent(e)]
            self.assertIn("SIMULATED UPS [demo]", formatEvent(warning))
            self.assertEqual(warning["log_level"].name, "warn")
        for text, line in (("[a]\n desc = x\n[b]\n driver = dummy-ups\n", 1),
                           ('[a]\n driver = dummy-ups\n port = "x\n', 3)):
            with open(os.path.join(confdir, "ups.conf"), "w") as f:
                f.write(text)
            e = self.assertRaises(StartupError, tap.Options().parseOptions, ["--confdir", confdir])
            self.assertIn(f"ups.conf:{line}: ", str(e))

    def test_signals(self) -> None:
        """
        The service installs nutshim.signals' handlers: SIGHUP reloads,
        SIGUSR1 and SIGUSR2 are logged and ignored (never left at their
        default, which would end the daemon); a handler twistd installed
        (log rotation) is kept.
        """
        from nutshim.test.test_signals import FakeReactor, FakeSignal

        confdir = self.mktemp()
        os.makedirs(confdir)
        sig = FakeSignal()
        rotate = lambda *a: None  # noqa: E731
        sig.handlers[sig.SIGUSR1] = rotate
        reactor = FakeReactor()
        memory = MemoryReactorClock()
        reactor.seconds = memory.seconds  # type: ignore[attr-defined]
        reactor.listenTCP = memory.listenTCP  # type: ignore[attr-defined]
        reactor.callLater = memory.callLater  # type: ignore[attr-defined]
        svc = UpsdService(load_config(confdir), reactor, listen_override=["tcp:3493"],
                          driver_builder=Builder(), signals=sig)  # type: ignore[arg-type]
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertIs(sig.handlers[sig.SIGUSR1], rotate)
        log = EventLoggingObserver()
        globalLogPublisher.addObserver(log)
        self.addCleanup(globalLogPublisher.removeObserver, log)
        with open(os.path.join(confdir, "ups.conf"), "w") as f:
            f.write("[new]\n driver = dummy-ups\n port = x\n")
        sig.deliver(sig.SIGHUP)
        sig.deliver(sig.SIGUSR2)
        reactor.run_calls()
        self.assertEqual([e.name for e in svc.registry], ["new"])
        self.assertTrue(any("SIGUSR2 received and ignored" in formatEvent(e) for e in log))

    def test_misused_option(self) -> None:
        """
        A misused option stays a usage error.
        """
        path = self.mktemp()
        self.assertRaises(usage.UsageError, tap.Options().parseOptions,
                          ["--confdir", self.mktemp(), "--statepath", path])


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
        e = self.assertRaises(StartupError, tap.Options().parseOptions, ["--confdir", path])
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
        e = self.assertRaises(StartupError, svc.startService)
        self.assertEqual(
            str(e),
            "nut-upsd: --listen tcp:3493:interface=192.0.2.1: cannot listen on"
            " tcp:3493:interface=192.0.2.1: address in use: giving up",
        )

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
                raise CannotListenError(interface, port, OSError(errno.EADDRNOTAVAIL, "no IPv6"))
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
