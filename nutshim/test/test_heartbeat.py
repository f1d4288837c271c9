# -*- test-case-name: nutshim.test.test_heartbeat -*-
"""
Tests for the RFC 9271 heartbeat: the C{nutshim-heartbeat} driver, the
C{HEARTBEAT} line of upsmon.conf, and nut-upsmon's watch
(L{nutshim.upsmon.heartbeat}), on a L{Clock} with fake sessions.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from nutshim.config import ConfigError, load_config, parse_upsmon_conf
from nutshim.drivers.base import TRACKING_INVALID, TRACKING_UNKNOWN
from nutshim.drivers.heartbeat import (DEFAULT_INTERVAL, HeartbeatUPS, make_heartbeat_driver,
                                       parse_interval)
from nutshim.drivers.runner import DRIVERS
from nutshim.upsd.sections import check_sections
from nutshim.upsmon.events import default_flags
from nutshim.upsmon.heartbeat import Beat, HeartbeatWatch, beat_token
from nutshim.test.test_upsmon import BASE, FakeClient, Harness, HungClient, Reply


class DriverTests(SynchronousTestCase):
    """
    C{driver = nutshim-heartbeat}.
    """

    def value(self, driver: HeartbeatUPS, name: str) -> Optional[str]:
        var = driver.state.get(name)
        return None if var is None else var.value

    def test_beats(self) -> None:
        """
        C{OL TICK} at start, then C{OL TOCK}, C{OL TICK}... every interval;
        nothing changes in between; stopping stops it.
        """
        clock = Clock()
        driver = make_heartbeat_driver("hb", {"interval": "2", "port": "none"}, "/etc/nut", clock)
        driver.start()
        self.assertTrue(driver.connected)
        self.assertFalse(driver.stale)
        seen = [self.value(driver, "ups.status")]
        for _ in range(4):
            clock.advance(1.9)
            self.assertEqual(self.value(driver, "ups.status"), seen[-1])
            clock.advance(0.1)
            seen.append(self.value(driver, "ups.status"))
        self.assertEqual(seen, ["OL TICK", "OL TOCK", "OL TICK", "OL TOCK", "OL TICK"])
        driver.stop()
        self.assertFalse(driver.connected)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_variables(self) -> None:
        """
        The driver says what it is and publishes its interval (which
        nut-upsmon reads); no commands, nothing writable.
        """
        driver = make_heartbeat_driver("hb", {"port": "none"}, "/etc/nut", Clock())
        driver.start()
        self.addCleanup(driver.stop)
        self.assertEqual(
            {v.name: v.value for v in driver.state.variables()},
            {"driver.name": "nutshim-heartbeat", "driver.version": driver.state.get(
                "driver.version").value,  # type: ignore[union-attr]
             "driver.version.internal": driver.state.get(
                "driver.version.internal").value,  # type: ignore[union-attr]
             "driver.parameter.port": "none", "driver.parameter.interval": "300",
             "device.type": "ups", "device.mfr": "nutshim", "device.model": "Heartbeat",
             "ups.mfr": "nutshim", "ups.model": "Heartbeat", "ups.status": "OL TICK"})
        self.assertEqual(driver.state.commands(), [])
        results: List[Tuple[str, int]] = []
        driver.tracking_listener = lambda i, r: results.append((i, r))
        self.assertTrue(driver.instcmd("load.off", None, "t1"))
        self.assertTrue(driver.setvar("ups.status", "OB", "t2"))
        self.assertEqual(results, [("t1", TRACKING_UNKNOWN), ("t2", TRACKING_INVALID)])
        self.assertEqual(self.value(driver, "ups.status"), "OL TICK")

    def test_interval(self) -> None:
        """
        C{interval}: whole seconds from 1 to a day, 300 by default.
        """
        self.assertEqual(parse_interval(None), DEFAULT_INTERVAL)
        self.assertEqual(DEFAULT_INTERVAL, 300)
        self.assertEqual(parse_interval("86400"), 86400)
        for bad in ("0", "-1", "1.5", "5m", "", "86401"):
            self.assertRaises(ValueError, parse_interval, bad)
        self.assertIs(DRIVERS["nutshim-heartbeat"]("hb", {}, "/", Clock()).__class__, HeartbeatUPS)

    def test_bad_interval_refused_before_start(self) -> None:
        """
        nut-upsd refuses a bad C{interval} with ups.conf:LINE, like any
        configuration error.
        """
        confdir = self.mktemp()
        os.makedirs(confdir)
        with open(os.path.join(confdir, "ups.conf"), "w") as f:
            f.write("[ok]\n driver = nutshim-heartbeat\n port = none\n"
                    "[bad]\n driver = nutshim-heartbeat\n port = none\n interval = 5m\n")
        error = self.assertRaises(ConfigError, check_sections, load_config(confdir))
        self.assertIn("ups.conf:4: [bad]: interval must be a whole number of seconds",
                      str(error))


class WatchTests(SynchronousTestCase):
    """
    L{HeartbeatWatch}: the window, on the clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.window = 10.0
        self.calls: List[Any] = []
        self.watch = HeartbeatWatch(self.clock, lambda: self.window, self.calls.append,
                                    lambda: self.calls.append("back"))

    def test_tokens(self) -> None:
        self.assertEqual(beat_token(frozenset(["OL", "TICK"])), "TICK")
        self.assertEqual(beat_token(frozenset(["TOCK"])), "TOCK")
        self.assertIsNone(beat_token(frozenset(["OL"])))
        self.assertIsNone(beat_token(frozenset(["TICK", "TOCK"])))

    def test_never_beats(self) -> None:
        """
        Declared and never seen: lost once the window has passed since the
        start.
        """
        self.watch.start()
        self.clock.advance(9.9)
        self.assertEqual((self.watch.state, self.calls), (Beat.WAITING, []))
        self.clock.advance(0.1)
        self.assertEqual((self.watch.state, self.calls), (Beat.LOST, [10.0]))

    def test_beats_keep_it_alive(self) -> None:
        """
        Each change restarts the window; the same token again is not a
        change, so a stuck heartbeat is lost a window after its last change.
        """
        self.watch.start()
        tick, tock = frozenset(["OL", "TICK"]), frozenset(["OL", "TOCK"])
        for status in (tick, tock, tick, tock):
            self.clock.advance(8)
            self.watch.status(status)
        self.assertEqual((self.watch.state, self.calls), (Beat.BEATING, []))
        for _ in range(9):
            self.clock.advance(1)
            self.watch.status(tock)
        self.assertEqual(self.calls, [])
        self.clock.advance(1)
        self.assertEqual((self.watch.state, self.calls), (Beat.LOST, [10.0]))
        self.watch.status(tock)
        self.assertEqual(self.calls, [10.0])
        self.watch.status(tick)
        self.assertEqual((self.watch.state, self.calls), (Beat.BEATING, [10.0, "back"]))
        self.clock.advance(10)
        self.assertEqual(self.calls, [10.0, "back", 10.0])

    def test_rearm(self) -> None:
        """
        A new window applies from the last beat at once.
        """
        self.watch.start()
        self.watch.status(frozenset(["TICK"]))
        self.clock.advance(4)
        self.window = 5.0
        self.watch.rearm()
        self.clock.advance(0.9)
        self.assertEqual(self.calls, [])
        self.clock.advance(0.1)
        self.assertEqual(self.calls, [5.0])
        self.watch.rearm()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop(self) -> None:
        """
        Stopped, the watch schedules nothing, even for a reply still in
        flight.
        """
        self.watch.start()
        self.watch.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.watch.status(frozenset(["TICK"]))
        self.watch.rearm()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(self.calls, [])


class IntervalClient(FakeClient):
    """
    A connection to a nutshim-heartbeat UPS: C{driver.parameter.interval}
    answers L{interval} (an exception: fails).
    """

    def __init__(self, status: Reply = "OL TICK", interval: Reply = "2") -> None:
        super().__init__(status)
        self.interval = interval

    def get_var(self, ups: str, var: str) -> Deferred[str]:
        if var == "driver.parameter.interval":
            return self._answer(f"GET VAR {ups} {var}", self.interval)
        return super().get_var(ups, var)


HB_EXEC = "NOTIFYFLAG HEARTBEATLOST SYSLOG+EXEC\nNOTIFYFLAG HEARTBEATOK SYSLOG+EXEC\n"


class UpsmonHeartbeatTests(SynchronousTestCase):
    """
    nut-upsmon watching a heartbeat UPS (POLLFREQ 5 in L{Harness}).
    """

    def heartbeat_notes(self, h: Harness) -> List[Tuple[str, Optional[str]]]:
        return [t for t in h.types() if t[0].startswith("HEARTBEAT")]

    def beat(self, h: Harness, client: FakeClient, times: int, every: float) -> None:
        for _ in range(times):
            client.status = "OL TOCK" if client.status == "OL TICK" else "OL TICK"
            h.advance(every)

    def test_found_and_lost(self) -> None:
        """
        A power value 0 UPS showing TICK is a heartbeat: its interval is
        read from the UPS (2 s: window 2 x 2 + POLLFREQ 5 = 9 s); while it
        beats nothing is said; stopped, HEARTBEATLOST comes within the
        window of its last change; beating again, HEARTBEATOK.  No
        shutdown either way.
        """
        h = Harness(self, HB_EXEC + "MONITOR hb@host 0 u p secondary\n"
                               "MONITOR ups@host 1 u p secondary\n")
        client = IntervalClient()
        h.clients.append(client)
        h.sessions[0].connect(client)
        h.connect(1, "OL")
        self.assertIn("GET VAR hb driver.parameter.interval", client.calls)
        monitor = h.service.monitors[0]
        assert monitor.heartbeat is not None
        self.assertEqual(monitor.heartbeat.window(), 9)
        self.beat(h, client, 6, 5)
        self.assertEqual(self.heartbeat_notes(h), [])
        last_change = h.clock.seconds()
        h.advance(8.75)
        self.assertEqual(self.heartbeat_notes(h), [])
        h.advance(0.5)
        self.assertEqual(self.heartbeat_notes(h), [("HEARTBEATLOST", "hb@host")])
        self.assertLessEqual(h.clock.seconds() - last_change, 9.25)
        self.beat(h, client, 1, 5)
        self.assertEqual(self.heartbeat_notes(h),
                         [("HEARTBEATLOST", "hb@host"), ("HEARTBEATOK", "hb@host")])
        self.assertFalse(h.service.shutdown.begun)

    def test_hung_server(self) -> None:
        """
        The server hangs (SIGSTOP): the polls hang, and HEARTBEATLOST comes
        on the clock within the window all the same; the hung heartbeat
        shuts nothing down, even past DEADTIME, and even as the only UPS.
        """
        h = Harness(self, HB_EXEC + "MONITOR HB:hb@host 0 u p primary\nMINSUPPLIES 0\n")
        client = HungClient(h.clock, "OL TICK")
        h.clients.append(client)
        h.sessions[0].connect(client)
        self.beat(h, client, 3, 5)
        client.hang()
        hung = h.clock.seconds()
        h.advance(605 + 5)
        [(note, ups, message)] = [n for n in h.runner.notified() if n[0] == "HEARTBEATLOST"]
        self.assertEqual((ups, message),
                         ("HB:hb@host", "UPS HB:hb@host: heartbeat lost (no TICK/TOCK change "
                          "within the window)"))
        [(argv, env, _)] = [r for r in h.runner.runs
                            if r[1] is not None and r[1].get("NOTIFYTYPE") == "HEARTBEATLOST"]
        assert env is not None
        self.assertEqual(env["UPSGROUP"], "HB")
        self.assertLessEqual(h.clock.seconds() - hung, 605 + 5)
        h.advance(60)
        self.assertFalse(h.service.shutdown.begun)
        self.assertEqual(h.runner.commands()[-1:], ['/bin/notify "$1"'])

    def test_never_shuts_down(self) -> None:
        """
        A lost heartbeat (declared, never reached, its server gone) counts
        nothing in the power accounting: the real UPS on line keeps the
        system up.
        """
        h = Harness(self, HB_EXEC + "MONITOR hb@host 0 u p primary\nHEARTBEAT hb@host 30\n"
                               "MONITOR ups@host 1 u p primary\n")
        h.connect(1, "OL")
        h.advance(31)
        self.assertEqual(self.heartbeat_notes(h), [("HEARTBEATLOST", "hb@host")])
        h.advance(600)
        self.assertFalse(h.service.shutdown.begun)
        self.assertEqual(h.service.power_value(), 1)

    def test_declared_window(self) -> None:
        """
        C{HEARTBEAT <ups> <window>}: watched from the start with that window,
        and the interval is not asked for.
        """
        h = Harness(self, HB_EXEC + "MONITOR hb@host 0 u p secondary\nHEARTBEAT hb@host 20\n"
                               "MINSUPPLIES 0\n")
        client = IntervalClient("OL TICK", interval="2")
        h.clients.append(client)
        h.sessions[0].connect(client)
        self.assertNotIn("GET VAR hb driver.parameter.interval", client.calls)
        h.advance(19.75)
        self.assertEqual(self.heartbeat_notes(h), [])
        h.advance(0.5)
        self.assertEqual(self.heartbeat_notes(h), [("HEARTBEATLOST", "hb@host")])

    def test_default_interval(self) -> None:
        """
        A heartbeat without C{driver.parameter.interval} (NUT's dummy-ups
        playing a .seq) gets the default window: 2 x 300 + POLLFREQ.
        """
        from nutshim.client.errors import NUTError
        from nutshim.protocol import NutError

        h = Harness(self, HB_EXEC + "MONITOR hb@host 0 u p secondary\nMINSUPPLIES 0\n")
        client = IntervalClient("OL TICK", interval=NUTError(NutError.VAR_NOT_SUPPORTED))
        h.clients.append(client)
        h.sessions[0].connect(client)
        h.advance(604.75)
        self.assertEqual(self.heartbeat_notes(h), [])
        h.advance(0.5)
        self.assertEqual(self.heartbeat_notes(h), [("HEARTBEATLOST", "hb@host")])

    def test_not_a_heartbeat(self) -> None:
        """
        TICK on a UPS with power value 1 is no heartbeat watch (its
        HEARTBEAT line would be refused); a power value 0 UPS without
        TICK/TOCK is only watched.
        """
        h = Harness(self, HB_EXEC + "MONITOR a@host 1 u p secondary\n"
                               "MONITOR b@host 0 u p secondary\n")
        h.connect(0, "OL TICK")
        h.connect(1, "OL")
        h.advance(2000)
        self.assertEqual([m.heartbeat for m in h.service.monitors], [None, None])
        self.assertEqual(self.heartbeat_notes(h), [])

    def test_flips_are_quiet(self) -> None:
        """
        TICK/TOCK flips make only debug lines by default (a 5-minute
        heartbeat would log two warnings every 5 minutes); NOTIFYFLAG can
        still ask for them.
        """
        for name in ("TICK", "TOCK", "NOTTICK", "NOTTOCK"):
            self.assertEqual(default_flags(name), frozenset(), name)
        self.assertEqual(default_flags("HEARTBEATLOST"), frozenset(["SYSLOG"]))
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        h = Harness(self, "MONITOR hb@host 0 u p secondary\nNOTIFYFLAG TOCK EXEC\n"
                          "MINSUPPLIES 0\n")
        client = h.connect(0, "OL TICK")
        self.beat(h, client, 2, 5)
        self.assertEqual(h.types(), [("TOCK", "hb@host")])
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(warnings, [])

    def test_reload_adds_heartbeat(self) -> None:
        """
        A reload that adds a HEARTBEAT line starts the watch of a kept
        monitor; one that gives it power takes the watch away.
        """
        h = Harness(self, HB_EXEC + "MONITOR hb@host 0 u p secondary\nMONITOR u@h 1 u p primary\n")
        self.assertIsNone(h.service.monitors[0].heartbeat)
        conf = parse_upsmon_conf((BASE + HB_EXEC + "MONITOR hb@host 0 u p secondary\n"
                                  "HEARTBEAT hb@host 7\nMONITOR u@h 1 u p primary\n").encode(),
                                 "f")
        self.assertTrue(h.service.apply(conf))
        monitor = h.service.monitors[0]
        self.assertIsNotNone(monitor.heartbeat)
        h.advance(7.25)
        self.assertEqual(self.heartbeat_notes(h), [("HEARTBEATLOST", "hb@host")])
        conf = parse_upsmon_conf(b"MONITOR hb@host 1 u p secondary\n", "f")
        self.assertTrue(h.service.apply(conf))
        self.assertIsNone(h.service.monitors[0].heartbeat)


class HeartbeatLineTests(SynchronousTestCase):
    """
    upsmon.conf's C{HEARTBEAT <system> [<window>]}.
    """

    def test_parse(self) -> None:
        conf = parse_upsmon_conf(b"MONITOR HB:hb@h 0 u p primary\nHEARTBEAT HB:hb@h\n"
                                 b"MONITOR x@h 0 u p primary\nHEARTBEAT x@h 660\n"
                                 b"MONITOR y@h 0 u p primary\n", "f")
        self.assertEqual([(m.heartbeat, m.heartbeat_window) for m in conf.monitors],
                         [(True, None), (True, 660), (False, None)])

    def test_errors(self) -> None:
        """
        A HEARTBEAT line that cannot be applied is an error naming it.
        """
        for text, fragment in [
            ("HEARTBEAT hb\nMONITOR hb 0 u p primary\n", "no MONITOR line for hb above"),
            ("MONITOR hb 1 u p primary\nHEARTBEAT hb\n", "power value 1"),
            ("MONITOR hb 0 u p primary\nHEARTBEAT hb 0\n", "at least 1"),
            ("MONITOR hb 0 u p primary\nHEARTBEAT hb ten\n", "not 'ten'"),
            ("MONITOR hb 0 u p primary\nHEARTBEAT hb\nHEARTBEAT hb\n", "already declared"),
            ("MONITOR hb 0 u p primary\nHEARTBEAT\n", "HEARTBEAT needs <system>"),
        ]:
            error = self.assertRaises(ConfigError, parse_upsmon_conf, text.encode(), "f")
            self.assertIn(fragment, error.message, text)
            self.assertIsNotNone(error.lineno)

    def test_notify_names(self) -> None:
        """
        NOTIFYFLAG and NOTIFYMSG know the heartbeat's names.
        """
        conf = parse_upsmon_conf(b"MONITOR hb 0 u p primary\nNOTIFYFLAG HEARTBEATLOST EXEC\n"
                                 b'NOTIFYMSG HEARTBEATOK "%s ok"\n', "f")
        self.assertEqual(conf.flags("HEARTBEATLOST"), frozenset(["EXEC"]))
        self.assertEqual(conf.message("HEARTBEATOK"), "%s ok")
