# -*- test-case-name: nutshim.test.test_sim -*-
"""
Tests for L{nutshim.drivers.sim} and L{nutshim.drivers._simfile}.

Time is a L{Clock}; files are real temporary files, since noticing edits
(mtime) is part of the behaviour.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from nutshim import __version__
from nutshim.drivers._simfile import (CommandDecl, EnumDecl, RangeDecl, Set, Timer,
                                      TypeDecl, parse)
from nutshim.drivers.base import TRACKING_INVALID, TRACKING_SUCCESS, TRACKING_UNKNOWN
from nutshim.drivers.sim import (DEMO_SEQ, MAX_FILE_SIZE, SAMPLES, SimulatedUPS,
                                 make_sim_driver, resolve_port, sample_path)
from nutshim.testing import skip_or_fail


class ParseTests(SynchronousTestCase):
    """
    L{parse} reads files with C{dummy-ups}'s meaning, plus the extensions.
    """

    def statements(self, text: bytes) -> List[Any]:
        simfile = parse(text)
        self.assertEqual(simfile.problems, ())
        return list(simfile.statements)

    def test_assignment(self) -> None:
        """
        The first word is cut at its first colon (the rest of it is lost)
        and the value is the other words joined by single spaces.
        """
        self.assertEqual(
            self.statements(b'ups.load: 10\nfoo.bar:  "a  b"   c # note\n'
                            b"ups.load:10\nups.temperature : 10\n"),
            [Set("ups.load", "10"), Set("foo.bar", "a  b c"), Set("ups.load", ""),
             Set("ups.temperature", ": 10")])

    def test_driverSkippedAndTruncated(self) -> None:
        """
        C{driver.*} lines are skipped; values are cut to 127 characters but
        C{ups.status} is normalised to single spaces and cut at 255.
        """
        text = b"driver.name: x\nDRIVER.version: y\nv.long: " + b"a" * 300 + b"\n"
        text += b'ups.status: OB  "LB  X"\n'
        self.assertEqual(self.statements(text),
                         [Set("v.long", "a" * 127), Set("ups.status", "OB LB X")])

    def test_timer(self) -> None:
        """
        C{TIMER} is matched by prefix, like C{dummy-ups}; its argument must be
        a non-negative integer.
        """
        simfile = parse(b"TIMER 5\nTIMERS 7 extra\nTIMER\nTIMER -1\nTIMER x\ntimer: 3\n")
        self.assertEqual(list(simfile.statements), [Timer(5), Timer(7), Set("timer", "3")])
        self.assertEqual([s.lineno for s in simfile.statements], [1, 2, 6])
        self.assertEqual([p.lineno for p in simfile.problems], [3, 4, 5])

    def test_extensions(self) -> None:
        """
        TYPE, ENUM, RANGE and CMD are parsed into declarations.
        """
        self.assertEqual(
            self.statements(b"TYPE a.b RW STRING:12\nTYPE c.d\nTYPE e.f number rw\n"
                            b"ENUM a.b x 'y z'\nRANGE c.d -5 10\nCMD beeper.on\n"
                            b'CMD load.off ups.status: OFF "now"\n'),
            [TypeDecl("a.b", True, True, 12), TypeDecl("c.d", False, False, 0),
             TypeDecl("e.f", True, False, 0), EnumDecl("a.b", ("x", "'y", "z'")),
             RangeDecl("c.d", -5, 10), CommandDecl("beeper.on", None),
             CommandDecl("load.off", Set("ups.status", "OFF now"))])

    def test_badExtensions(self) -> None:
        """
        Malformed extension lines are problems with their line numbers.
        """
        simfile = parse(b"TYPE\nTYPE a STRING\nTYPE a STRING:0\nTYPE a RW RW\n"
                        b"TYPE a NUMBER STRING:3\nENUM a\nRANGE a 1\nRANGE a 5 1\n"
                        b"RANGE a x 2\nCMD\nCMD x driver.name: y\nCMD x :v\n"
                        b"ALARM fire\nFOO\njunk\n: value\n")
        self.assertEqual(simfile.statements, ())
        self.assertEqual([p.lineno for p in simfile.problems], list(range(1, 17)))

    def test_tokenizerErrors(self) -> None:
        """
        Tokenizer errors are problems on the right line; parsing goes on.
        """
        simfile = parse(b'a.b: 1\nc.d: "x #\ne.f: 2\ng.h: "open')
        self.assertEqual([(s.var, s.lineno) for s in simfile.statements
                          if isinstance(s, Set)], [("a.b", 1), ("e.f", 3)])
        self.assertEqual([p.lineno for p in simfile.problems], [2, 4])

    def test_declarations(self) -> None:
        """
        Declarations are collected per lower-cased name: TYPE last wins, ENUM,
        RANGE and CMD effects accumulate.
        """
        decls = parse(b"TYPE A.b RW\nTYPE a.b STRING:4\nENUM a.b x\nENUM A.B y\n"
                      b"RANGE n 1 2\nRANGE n 3 4\nCMD Go a.b: 1\nCMD go c.d: 2\n"
                      b"TIMER 1\na.b: v\n").declarations
        self.assertEqual(decls.type_of("a.B"), (False, True, 4))
        self.assertEqual(decls.enums["a.b"], ("x", "y"))
        self.assertEqual(decls.ranges["n"], ((1, 2), (3, 4)))
        self.assertEqual(decls.commands["go"][0], "Go")
        self.assertEqual([e.var for e in decls.commands["go"][1]], ["a.b", "c.d"])
        self.assertEqual(decls.type_of("ups.load"), (True, False, 0))
        self.assertEqual(decls.type_of("ups.time"), (True, True, 16))
        self.assertEqual(decls.type_of("input.sensitivity"), (True, True, 1))
        self.assertEqual(decls.type_of("whatever"), (True, True, 32))

    def test_samplesParseCleanly(self) -> None:
        """
        The bundled samples have no problems.
        """
        for name in SAMPLES:
            with open(sample_path(name), "rb") as f:
                self.assertEqual(parse(f.read()).problems, (), name)


class SimTestCase(SynchronousTestCase):
    """
    Helpers: files, a clock, a driver, tracking results and log events.

    L{Clock.advance} schedules calls made while advancing from the end of
    the step, so tests step through time with C{pump} where timers chain.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.results: List[Tuple[str, int]] = []
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]

    def write(self, text: str, suffix: str = ".seq", path: Optional[str] = None) -> str:
        path = path or self.mktemp() + suffix
        with open(path, "w") as f:
            f.write(text)
        return path

    def driver(self, path: str, options: Mapping[str, str] = {},
               pollinterval: float = 2.0) -> SimulatedUPS:
        driver = SimulatedUPS("sim", path, self.clock, options, pollinterval)
        driver.tracking_listener = lambda tid, result: self.results.append((tid, result))
        driver.start()
        self.addCleanup(driver.stop)
        return driver

    def value(self, driver: SimulatedUPS, name: str) -> Optional[str]:
        var = driver.state.get(name)
        return None if var is None else var.value

    def types(self, driver: SimulatedUPS) -> Dict[str, List[str]]:
        return {v.name: v.type_words() for v in driver.state.variables()}

    def logged(self, text: str) -> List[Dict[str, Any]]:
        return [e for e in self.events if text in formatEvent(e)]


class PublishTests(SimTestCase):
    """
    What the driver publishes, compared with C{dummy-ups} 2.8.0.
    """

    def test_initialVariables(self) -> None:
        """
        Driver variables, C{dummy-ups}'s defaults and the C{device.*} copies.
        """
        driver = self.driver(self.write("ups.serial: S1\n", ".dev"), {"port": "x.dev"})
        values = {v.name: v.value for v in driver.state.variables()}
        self.assertEqual(values, {
            "driver.name": "nutshim-sim", "driver.version": __version__,
            "driver.version.internal": __version__, "driver.parameter.port": "x.dev",
            "driver.parameter.mode": "dummy-once", "driver.parameter.pollinterval": "2",
            "device.type": "ups", "device.mfr": "Dummy Manufacturer",
            "device.model": "Dummy UPS", "device.serial": "S1",
            "ups.mfr": "Dummy Manufacturer", "ups.model": "Dummy UPS", "ups.status": "OL",
            "ups.serial": "S1"})
        self.assertEqual(driver.state.commands(), ["load.off"])
        self.assertTrue(driver.connected)
        self.assertFalse(driver.stale)

    def test_defaultFlags(self) -> None:
        """
        Like C{dummy-ups}: known numbers are RW, known strings have their
        length, unknown variables are RW STRING:32, driver.* have no flags,
        and a variable set by the file gets its flags even if it existed.
        """
        driver = self.driver(self.write(
            "ups.load: 5\nups.time: 12:00\ninput.sensitivity: normal\nfoo.bar: x\n"
            "device.type: pdu\n", ".dev"))
        types = self.types(driver)
        self.assertEqual(types["ups.load"], ["RW", "NUMBER"])
        self.assertEqual(types["ups.time"], ["RW", "STRING:16"])
        self.assertEqual(types["input.sensitivity"], ["RW", "STRING:1"])
        self.assertEqual(types["foo.bar"], ["RW", "STRING:32"])
        self.assertEqual(types["ups.status"], ["RW", "STRING:32"])
        self.assertEqual(types["device.type"], ["RW", "STRING:32"])
        self.assertEqual(types["driver.name"], ["NUMBER"])

    def test_deleteAndStatus(self) -> None:
        """
        An empty value deletes a variable; an empty C{ups.status} is kept.
        """
        driver = self.driver(self.write('ups.mfr: ""\nfoo: 1\nfoo:\nups.status:\n', ".dev"))
        self.assertIsNone(driver.state.get("ups.mfr"))
        self.assertIsNone(driver.state.get("foo"))
        self.assertEqual(self.value(driver, "ups.status"), "")

    def test_modes(self) -> None:
        """
        The mode follows the file name unless the C{mode} option says
        otherwise; other names loop as C{dummy}.
        """
        for port, options, mode in [
            ("a.dev", {}, "dummy-once"), ("a.seq", {}, "dummy-loop"),
            ("a.txt", {}, "dummy"), ("a.dev", {"mode": "dummy-loop"}, "dummy-loop"),
            ("a.seq", {"mode": "dummy-once"}, "dummy-once"),
            ("a.dev", {"mode": "dummy"}, "dummy-loop"),
            ("a.dev", {"mode": "repeater"}, "dummy-once"),
        ]:
            driver = SimulatedUPS("u", self.write("", path=self.mktemp() + port),
                                  self.clock, options)
            self.assertEqual(driver.mode, mode, (port, options))
        self.assertTrue(self.logged("'repeater' is not supported"))

    def test_extensions(self) -> None:
        """
        TYPE, ENUM and RANGE give GET TYPE words; CMD adds commands.
        """
        driver = self.driver(self.write(
            "TYPE ups.beeper.status RW STRING:8\nENUM ups.beeper.status enabled disabled\n"
            "TYPE input.transfer.low RW NUMBER\nRANGE input.transfer.low 160 200\n"
            "RANGE input.transfer.low 210 220\nTYPE ups.mfr STRING:20\n"
            "TYPE ups.load\nCMD beeper.enable ups.beeper.status: enabled\n"
            "ups.beeper.status: disabled\ninput.transfer.low: 180\nups.load: 3\n"
            "ups.mfr: ACME\n", ".dev"))
        types = self.types(driver)
        self.assertEqual(types["ups.beeper.status"], ["RW", "ENUM", "STRING:8"])
        self.assertEqual(types["input.transfer.low"], ["RW", "RANGE", "NUMBER"])
        self.assertEqual(types["ups.mfr"], ["STRING:20"])
        self.assertEqual(types["ups.load"], ["NUMBER"])
        var = driver.state.get("input.transfer.low")
        assert var is not None
        self.assertEqual(var.ranges, [(160, 200), (210, 220)])
        var = driver.state.get("ups.beeper.status")
        assert var is not None
        self.assertEqual(var.enums, ["enabled", "disabled"])
        self.assertEqual(driver.state.commands(), ["beeper.enable", "load.off"])

    def test_declarationsChange(self) -> None:
        """
        When the file's declarations change, variables are described again
        and commands that are no longer declared go away (not load.off).
        """
        path = self.write("TYPE a RW NUMBER\nENUM a 1 2\nCMD x\nCMD load.off\na: 1\n", ".dev")
        driver = self.driver(path)
        self.write("TYPE a STRING:5\nb: 2\na: 1\n", path=path)
        os.utime(path, (1, 1))
        self.clock.advance(2)
        self.assertEqual(self.types(driver)["a"], ["STRING:5"])
        self.assertEqual(driver.state.commands(), ["load.off"])

    def test_badLinesLogged(self) -> None:
        """
        Bad lines are logged with file and line number and skipped; the rest
        of the file is used; a file replayed unchanged is not logged again.
        """
        path = self.write("a: 1\nRANGE a 5\nb: 2\nTIMER 1\n")
        driver = self.driver(path)
        self.assertEqual((self.value(driver, "a"), self.value(driver, "b")), ("1", "2"))
        self.assertEqual(len(self.logged(f"{path}:2: RANGE needs")), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.logged(f"{path}:2: RANGE needs")), 1)


class PlayTests(SimTestCase):
    """
    Playing files over time.
    """

    def test_sequence(self) -> None:
        """
        A C{.seq} runs up to each TIMER, waits, goes on, and after a final
        TIMER starts again from the top at once.
        """
        driver = self.driver(self.write(
            "ups.status: OL\nTIMER 2\nups.status: OB\nTIMER 3\nups.status: OB LB\nTIMER 1\n"))
        seen = []
        for step in [0, 1.9, 0.1, 2.9, 0.1, 0.9, 0.1, 2]:
            self.clock.advance(step)
            seen.append(self.value(driver, "ups.status"))
        self.assertEqual(seen, ["OL", "OL", "OB", "OB", "OB LB", "OB LB", "OL", "OB"])

    def test_loopRereads(self) -> None:
        """
        Each pass re-reads the file, so edits apply at the next loop.
        """
        path = self.write("ups.load: 1\nTIMER 5\n")
        driver = self.driver(path)
        self.write("ups.load: 2\nTIMER 5\n", path=path)
        self.clock.advance(4)
        self.assertEqual(self.value(driver, "ups.load"), "1")
        self.clock.advance(1)
        self.assertEqual(self.value(driver, "ups.load"), "2")

    def test_noFinalTimer(self) -> None:
        """
        Without a final TIMER the last values stay until the next poll; a
        file without any TIMER is replayed every poll.
        """
        path = self.write("ups.load: 1\nTIMER 1\nups.load: 2\n")
        driver = self.driver(path, pollinterval=3)
        self.clock.advance(1)
        self.assertEqual(self.value(driver, "ups.load"), "2")
        self.clock.advance(2.9)
        self.assertEqual(self.value(driver, "ups.load"), "2")
        self.clock.advance(0.1)
        self.assertEqual(self.value(driver, "ups.load"), "1")
        self.write("ups.load: 7\n", path=path)
        self.clock.pump([1] * 4)
        self.assertEqual(self.value(driver, "ups.load"), "7")

    def test_replayWithoutChanges(self) -> None:
        """
        Replaying a file that sets the same values changes nothing, so
        readers caching on C{generation} are not disturbed.
        """
        driver = self.driver(self.write(
            "TYPE a RW STRING:4\nENUM a x y\nRANGE b 1 2\nCMD c a: x\na: x\nb: 1\n"
            "ups.status: OL\nTIMER 1\n"))
        generation = driver.state.generation
        self.clock.pump([1] * 3)
        self.assertEqual(driver.state.generation, generation)

    def test_devMtime(self) -> None:
        """
        A C{.dev} is read once and read again only when its modification
        time changes; meanwhile values set by clients stay.
        """
        path = self.write("ups.load: 1\n", ".dev")
        driver = self.driver(path)
        os.utime(path, (1000, 1000))
        self.clock.advance(2)
        self.assertTrue(driver.setvar("ups.load", "9", None))
        self.clock.advance(10)
        self.assertEqual(self.value(driver, "ups.load"), "9")
        os.utime(path, (2000, 2000))
        self.clock.advance(2)
        self.assertEqual(self.value(driver, "ups.load"), "1")

    def test_devTimer(self) -> None:
        """
        TIMER also pauses a C{.dev}, which then stays at its end.
        """
        driver = self.driver(self.write("ups.load: 1\nTIMER 4\nups.load: 2\n", ".dev"))
        self.clock.advance(4)
        self.assertEqual(self.value(driver, "ups.load"), "2")
        self.clock.advance(20)
        self.assertEqual(self.value(driver, "ups.load"), "2")

    def test_missingFile(self) -> None:
        """
        A missing file makes the data stale (once logged) and is retried
        every poll until it appears.
        """
        path = self.mktemp() + ".dev"
        driver = self.driver(path)
        self.assertTrue(driver.connected)
        self.assertTrue(driver.stale)
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertEqual(len(self.logged("cannot use")), 1)
        self.write("ups.load: 5\n", path=path)
        self.clock.advance(2)
        self.assertFalse(driver.stale)
        self.assertEqual(self.value(driver, "ups.load"), "5")
        self.assertEqual(self.value(driver, "device.mfr"), "Dummy Manufacturer")

    def test_fileVanishes(self) -> None:
        """
        A file that disappears makes the data stale, keeping the last
        values, in both modes; it recovers when the file is back.
        """
        for suffix in (".dev", ".seq"):
            path = self.write("ups.load: 5\nTIMER 1\n", suffix)
            driver = self.driver(path)
            os.unlink(path)
            self.clock.pump([1] * 3)
            self.assertTrue(driver.stale, suffix)
            self.assertEqual(self.value(driver, "ups.load"), "5")
            self.write("ups.load: 6\nTIMER 1\n", path=path)
            self.clock.pump([1] * 2)
            self.assertFalse(driver.stale, suffix)
            self.assertEqual(self.value(driver, "ups.load"), "6")
            driver.stop()

    def test_unreadable(self) -> None:
        """
        A path that cannot be read (a directory) or a huge file is stale.
        """
        self.assertTrue(self.driver(self.mktemp()).stale)
        path = self.mktemp()
        os.mkdir(path)
        self.assertTrue(self.driver(path).stale)
        path = self.write("#" * (MAX_FILE_SIZE + 1))
        self.assertTrue(self.driver(path).stale)

    def test_stop(self) -> None:
        """
        Stopping cancels every timer; the driver no longer accepts requests.
        """
        driver = self.driver(self.write("a: 1\nTIMER 100\n"))
        driver.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(driver.connected)
        self.assertFalse(driver.setvar("a", "2", None))
        self.assertFalse(driver.instcmd("load.off", None, None))


class RequestTests(SimTestCase):
    """
    SET VAR and INSTCMD.
    """

    def test_setvar(self) -> None:
        """
        Values are stored (status rebuilt, empty deletes); unknown and
        driver.* variables are INVALID.
        """
        driver = self.driver(self.write("ups.load: 1\n", ".dev"))
        for name, value, tid in [("ups.load", "2", "A"), ("UPS.STATUS", "OB   LB", "B"),
                                 ("nope", "1", "C"), ("driver.name", "x", "D"),
                                 ("ups.model", "", "E")]:
            self.assertTrue(driver.setvar(name, value, tid))
        self.assertEqual(self.results, [("A", TRACKING_SUCCESS), ("B", TRACKING_SUCCESS),
                                        ("C", TRACKING_INVALID), ("D", TRACKING_INVALID),
                                        ("E", TRACKING_SUCCESS)])
        self.assertEqual(self.value(driver, "ups.load"), "2")
        self.assertEqual(self.value(driver, "ups.status"), "OB LB")
        self.assertIsNone(driver.state.get("ups.model"))
        self.assertEqual(self.value(driver, "driver.name"), "nutshim-sim")

    def test_instcmd(self) -> None:
        """
        Declared commands apply their effects; an undeclared load.off and
        unknown commands are UNKNOWN (as in dummy-ups).
        """
        driver = self.driver(self.write(
            "CMD beeper.disable ups.beeper.status: disabled\nCMD beeper.disable x: 1\n"
            "CMD test.panel.start\nups.beeper.status: enabled\n", ".dev"))
        for cmd, tid in [("BEEPER.disable", "A"), ("test.panel.start", "B"),
                         ("load.off", "C"), ("nope", "D")]:
            self.assertTrue(driver.instcmd(cmd, None, tid))
        self.assertEqual(self.results, [("A", TRACKING_SUCCESS), ("B", TRACKING_SUCCESS),
                                        ("C", TRACKING_UNKNOWN), ("D", TRACKING_UNKNOWN)])
        self.assertEqual(self.value(driver, "ups.beeper.status"), "disabled")
        self.assertEqual(self.value(driver, "x"), "1")
        driver.instcmd("load.off", "p", None)
        self.assertEqual(self.results[-1], ("D", TRACKING_UNKNOWN))

    def test_declaredLoadOff(self) -> None:
        """
        A declared load.off runs its effects and succeeds.
        """
        driver = self.driver(self.write("CMD load.off ups.status: OFF\n", ".dev"))
        driver.instcmd("load.off", None, "A")
        self.assertEqual(self.results, [("A", TRACKING_SUCCESS)])
        self.assertEqual(self.value(driver, "ups.status"), "OFF")


class SampleTests(SimTestCase):
    """
    The bundled samples and the factory.
    """

    def test_demo(self) -> None:
        """
        The demo stays on line 5 minutes, on battery 2, low battery 1, loops.
        """
        driver = self.driver(DEMO_SEQ)
        seen = []
        for step in [0, 300, 120, 60]:
            self.clock.advance(step)
            seen.append(self.value(driver, "ups.status"))
        self.assertEqual(seen, ["OL CHRG", "OB DISCHRG", "OB DISCHRG LB", "OL CHRG"])
        self.assertEqual(self.value(driver, "ups.mfr"), "nutshim")
        self.assertEqual(self.value(driver, "ups.model"), "Demo UPS")
        self.assertEqual(driver.state.commands(), [
            "beeper.disable", "beeper.enable", "load.off", "load.on",
            "test.battery.start", "test.battery.stop"])
        types = self.types(driver)
        self.assertEqual(types["ups.beeper.status"], ["RW", "ENUM", "STRING:8"])
        self.assertEqual(types["input.transfer.low"], ["RW", "RANGE", "NUMBER"])
        self.assertEqual(types["battery.charge"], ["NUMBER"])

    def test_outage(self) -> None:
        """
        outage.seq: OL, OB, OB LB for 2 seconds each, looping.
        """
        driver = self.driver(sample_path("outage.seq"))
        seen = []
        for _ in range(4):
            seen.append(self.value(driver, "ups.status"))
            self.clock.advance(2)
        self.assertEqual(seen, ["OL", "OB", "OB LB", "OL"])

    def test_lab(self) -> None:
        """
        lab.dev is a static UPS on line.
        """
        driver = self.driver(sample_path("lab.dev"))
        self.assertEqual(driver.mode, "dummy-once")
        self.assertEqual(self.value(driver, "ups.status"), "OL")

    def test_samplesMatchSourceTree(self) -> None:
        """
        The packaged samples are the ones in the source tree's drivers/.
        """
        checkout = os.environ.get("NUTSHIM_CHECKOUT") or os.path.join(
            os.path.dirname(sample_path("demo.seq")), *[os.pardir] * 3)
        tree = os.path.join(checkout, "drivers")
        if not os.path.isdir(tree):
            skip_or_fail(self, "no source tree (set NUTSHIM_CHECKOUT)")
        for name in SAMPLES:
            with open(sample_path(name), "rb") as a, open(os.path.join(tree, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

    def test_samplePath(self) -> None:
        """
        Only shipped samples have a path.
        """
        self.assertTrue(os.path.isfile(DEMO_SEQ))
        self.assertRaises(LookupError, sample_path, "../sim.py")

    def test_resolvePort(self) -> None:
        """
        Ports resolve like dummy-ups: absolute, dot-relative to the current
        directory, else under the configuration directory.
        """
        self.assertEqual(resolve_port("/a/b.dev", "/etc/nut"), "/a/b.dev")
        self.assertEqual(resolve_port("b.dev", "/etc/nut"), "/etc/nut/b.dev")
        self.assertEqual(resolve_port("sub/b.dev", "/etc/nut"), "/etc/nut/sub/b.dev")
        self.assertEqual(resolve_port("./b.dev", "/etc/nut"),
                         os.path.join(os.getcwd(), "./b.dev"))

    def test_factory(self) -> None:
        """
        make_sim_driver prefers the configured file, falls back to a bundled
        sample of that name, and reads pollinterval.
        """
        confdir = self.mktemp()
        os.mkdir(confdir)
        self.write("ups.load: 1\n", path=os.path.join(confdir, "demo.seq"))
        driver = make_sim_driver("u", {"port": "demo.seq", "pollinterval": "5"},
                                 confdir, self.clock)
        self.assertEqual(driver.path, os.path.join(confdir, "demo.seq"))
        self.assertEqual(driver.pollinterval, 5.0)
        driver = make_sim_driver("u", {"port": "outage.seq", "pollinterval": "x"},
                                 confdir, self.clock)
        self.assertEqual(driver.path, sample_path("outage.seq"))
        self.assertEqual(driver.pollinterval, 2.0)
        self.assertTrue(self.logged("bad pollinterval"))
        driver = make_sim_driver("u", {"port": "other.dev"}, confdir, self.clock)
        self.assertEqual(driver.path, os.path.join(confdir, "other.dev"))
        self.assertRaises(ValueError, make_sim_driver, "u", {}, confdir, self.clock)
