# -*- test-case-name: nutshim.test.test_dstate -*-
"""
Tests for NUT's driver socket protocol: L{nutshim.drivers.dstate} (messages),
L{nutshim.drivers.socketdriver} (upsd's side), L{nutshim.drivers.socketserver}
(a driver's side), L{nutshim.drivers.runner} and the observer hook of
L{nutshim.state.DeviceState}.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from nutshim.drivers import dstate, runner
from nutshim.drivers.base import DriverBase
from nutshim.drivers.dstate import (AddCmd, AddEnum, AddRange, DataOK, DataStale, DelCmd,
                                    DelEnum, DelInfo, DelRange, DumpAll, DumpDone, InstCmd,
                                    Ping, Pong, SetAux, SetFlags, SetInfo, SetVar, Tracking)
from nutshim.drivers.socketdriver import SocketDriver
from nutshim.drivers.socketserver import DriverSocketFactory
from nutshim.protocol._tokenizer import RequestTokenizer
from nutshim.state import DeviceState, Flags


def tokenize(line: bytes) -> List[str]:
    words = RequestTokenizer().line(line.rstrip(b"\n"))
    assert isinstance(words, list), words
    return words


class ParseDriverLineTests(SynchronousTestCase):
    """
    L{dstate.parse_driver_line} reads what C{server/sstate.c:parse_args} reads.
    """

    TABLE: List[Tuple[List[str], Any]] = [
        (["PONG"], Pong()),
        (["pong", "extra"], Pong()),
        (["DumpDone"], DumpDone()),
        (["DATASTALE"], DataStale()),
        (["dataok"], DataOK()),
        (["PING"], Ping()),
        (["ADDCMD", "load.off"], AddCmd("load.off")),
        (["ADDCMD"], None),
        (["delcmd", "x"], DelCmd("x")),
        (["DELINFO", "ups.load"], DelInfo("ups.load")),
        (["SETFLAGS", "v", "RW", "STRING"], SetFlags("v", ("RW", "STRING"))),
        (["SETFLAGS", "v"], None),
        (["SETINFO", "ups.status", "OL CHRG"], SetInfo("ups.status", "OL CHRG")),
        (["SETINFO", "ups.status", "OL", "junk"], SetInfo("ups.status", "OL")),
        (["SETINFO", "ups.status"], None),
        (["ADDENUM", "v", "a b"], AddEnum("v", "a b")),
        (["DELENUM", "v", "a"], DelEnum("v", "a")),
        (["SETAUX", "v", "12x"], SetAux("v", 12)),
        (["SETAUX", "v", "junk"], SetAux("v", 0)),
        (["TRACKING", "ABC-1", "0"], Tracking("ABC-1", 0)),
        (["TRACKING", "ABC-1", "3z"], Tracking("ABC-1", 3)),
        (["TRACKING", "ABC-1"], None),
        (["ADDRANGE", "v", "10", "20"], AddRange("v", 10, 20)),
        (["DELRANGE", "v", "-5", "5x"], DelRange("v", -5, 5)),
        (["ADDRANGE", "v", "10"], None),
        (["PID", "1234"], None),
        (["OK", "Goodbye"], None),
        (["FROB", "a", "b", "c"], None),
        ([], None),
    ]

    def test_table(self) -> None:
        """
        Each line gives its message, or L{None} when upsd would ignore it;
        verbs are case-insensitive, the minimum word count is per verb and
        extra words are ignored.
        """
        for words, expected in self.TABLE:
            self.assertEqual(dstate.parse_driver_line(words), expected, words)

    def test_formatRoundTrip(self) -> None:
        """
        L{dstate.format_driver_message} writes a line that tokenizes and
        parses back to the same message.
        """
        for words, expected in self.TABLE:
            if expected is None or words[-1:] == ["junk"]:
                continue
            line = dstate.format_driver_message(expected)
            self.assertTrue(line.endswith(b"\n"))
            self.assertEqual(dstate.parse_driver_line(tokenize(line)), expected)

    @given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120),
           st.sampled_from(["SETINFO", "ADDENUM", "DELENUM"]))
    def test_valueRoundTrip(self, value: str, verb: str) -> None:
        """
        Any printable value survives quoting and escaping.
        """
        line = dstate.format_driver_words((verb, "ups.test", value))
        self.assertEqual(tokenize(line), [verb, "ups.test", value])


class ParseUpsdLineTests(SynchronousTestCase):
    """
    L{dstate.parse_upsd_line} reads what a 2.8.0 driver's C{sock_arg} reads.
    """

    def test_table(self) -> None:
        """
        DUMPALL, PING, SET and INSTCMD with NUT's word counts; everything a
        2.8.0 driver ignores gives L{None}.
        """
        table: List[Tuple[List[str], Any]] = [
            (["dumpall"], DumpAll()),
            (["PING"], Ping()),
            (["SET", "v", "1"], SetVar("v", "1")),
            (["SET", "v", "1", "x"], SetVar("v", "1")),
            (["SET", "v", "1", "TRACKING", "id"], SetVar("v", "1", "id")),
            (["SET", "v", "1", "FOO", "id"], None),
            (["SET", "v"], None),
            (["INSTCMD", "c"], InstCmd("c")),
            (["INSTCMD", "c", "p"], InstCmd("c", "p")),
            (["INSTCMD", "c", "tracking", "id"], InstCmd("c", None, "id")),
            (["INSTCMD", "c", "p", "TRACKING", "id"], InstCmd("c", "p", "id")),
            (["INSTCMD", "c", "p", "q"], None),
            (["INSTCMD", "c", "p", "q", "r", "s"], None),
            (["INSTCMD"], None),
            (["GETPID"], None),
            (["DUMPVALUE", "ups.status"], None),
            (["LOGOUT"], None),
            ([], None),
        ]
        for words, expected in table:
            self.assertEqual(dstate.parse_upsd_line(words), expected, words)


class ApplyTests(SynchronousTestCase):
    """
    L{dstate.apply} changes a L{DeviceState} as upsd does.
    """

    def test_everyKind(self) -> None:
        """
        Every tree message is applied; the others change nothing.
        """
        state = DeviceState()
        msgs: List[dstate.DriverMessage] = [SetInfo("input.voltage", "230"), SetFlags("input.voltage", ("RW", "x")),
                    SetAux("input.voltage", 5), AddEnum("input.voltage", "230"),
                    AddEnum("input.voltage", "240"), AddRange("input.voltage", 1, 9),
                    AddRange("input.voltage", 10, 20), AddCmd("load.on"), AddCmd("load.off")]
        for msg in msgs:
            self.assertTrue(dstate.apply(state, msg), msg)
        var = state.get("INPUT.VOLTAGE")
        assert var is not None
        self.assertEqual((var.value, var.flags, var.aux, var.enums, var.ranges),
                         ("230", Flags.RW, 5, ["230", "240"], [(1, 9), (10, 20)]))
        msgs = [DelEnum("input.voltage", "230"), DelRange("input.voltage", 1, 9),
                DelCmd("LOAD.ON"), DelInfo("input.voltage")]
        for msg in msgs:
            self.assertTrue(dstate.apply(state, msg), msg)
        self.assertEqual((len(state), state.commands()), (0, ["load.off"]))
        msgs = [Pong(), DataOK(), DataStale(), DumpDone(), Tracking("a", 1), Ping()]
        for msg in msgs:
            self.assertFalse(dstate.apply(state, msg))

    def test_caseOnlyChangeIgnored(self) -> None:
        """
        A SETINFO differing only in letter case is ignored, as in NUT.
        """
        state = DeviceState()
        dstate.apply(state, SetInfo("ups.status", "OL"))
        self.assertFalse(dstate.apply(state, SetInfo("UPS.STATUS", "ol")))
        var = state.get("ups.status")
        assert var is not None
        self.assertEqual((var.name, var.value), ("ups.status", "OL"))


class FormatTests(SynchronousTestCase):
    """
    The lines each side writes.
    """

    def test_upsdToDriver(self) -> None:
        """
        SET quotes and escapes the value; INSTCMD writes the parameter escaped
        and bare (quoted only when it would not survive); TRACKING comes last.
        """
        self.assertEqual(dstate.DUMPALL, b"DUMPALL\n")
        self.assertEqual(dstate.PING, b"PING\n")
        self.assertEqual(dstate.format_set("ups.id", 'a "b"'), b'SET ups.id "a \\"b\\""\n')
        self.assertEqual(dstate.format_set("ups.id", "x", "ID-1"),
                         b'SET ups.id "x" TRACKING ID-1\n')
        self.assertEqual(dstate.format_instcmd("load.off"), b"INSTCMD load.off\n")
        self.assertEqual(dstate.format_instcmd("load.off", "", "T"),
                         b"INSTCMD load.off TRACKING T\n")
        self.assertEqual(dstate.format_instcmd("test.panel.start", "5", "T"),
                         b"INSTCMD test.panel.start 5 TRACKING T\n")
        self.assertEqual(dstate.format_instcmd("x", "a b"), b'INSTCMD x "a b"\n')
        self.assertEqual(tokenize(dstate.format_instcmd("x", 'q"#')), ["INSTCMD", "x", 'q"#'])

    def test_driverToUpsd(self) -> None:
        """
        SETINFO/ADDENUM values are quoted and escaped, control characters
        dropped, SETINFO values cut at 255 escaped bytes; a SETFLAGS without
        flags says NONE; TRACKING is C{TRACKING <id> <n>}.
        """
        fmt = dstate.format_driver_words
        self.assertEqual(fmt(("SETINFO", "ups.status", "OL")), b'SETINFO ups.status "OL"\n')
        self.assertEqual(fmt(("SETINFO", "d", 'a\\b"c#\nd')), b'SETINFO d "a\\\\b\\"c\\#d"\n')
        self.assertEqual(len(fmt(("SETINFO", "d", "x" * 400))), len(b'SETINFO d ""\n') + 255)
        self.assertEqual(fmt(("ADDENUM", "v", "a b")), b'ADDENUM v "a b"\n')
        self.assertEqual(fmt(("ADDRANGE", "v", "1", "2")), b"ADDRANGE v 1 2\n")
        self.assertEqual(fmt(("SETFLAGS", "v", "RW", "STRING")), b"SETFLAGS v RW STRING\n")
        self.assertEqual(fmt(("SETFLAGS", "v")), b"SETFLAGS v NONE\n")
        self.assertEqual(fmt(("ADDCMD", "load.off")), b"ADDCMD load.off\n")
        self.assertEqual(dstate.format_tracking("ABC", 2), b"TRACKING ABC 2\n")


def sample_state() -> DeviceState:
    """
    A tree shaped like reference §10.4's dummy-ups dump.
    """
    state = DeviceState()
    state.set_info("ups.test.result", "Done and passed")
    state.set_aux("ups.test.result", 16)
    state.set_flags("ups.test.result", ["RW", "STRING"])
    state.set_info("battery.charge", "90")
    state.set_flags("battery.charge", ["RW"])
    state.set_info("device.mfr", "MGE UPS SYSTEMS")
    state.set_info("outlet.1.desc", "PowerShare Outlet 1")
    state.set_aux("outlet.1.desc", 32)
    state.set_flags("outlet.1.desc", ["RW", "STRING"])
    state.set_info("input.transfer.low", "160")
    state.add_enum("input.transfer.low", "160")
    state.add_range("input.transfer.low", 150, 170)
    state.add_command("load.off")
    return state


SAMPLE_DUMP = (
    b'SETINFO battery.charge "90"\n'
    b"SETFLAGS battery.charge RW\n"
    b'SETINFO device.mfr "MGE UPS SYSTEMS"\n'
    b'SETINFO input.transfer.low "160"\n'
    b'ADDENUM input.transfer.low "160"\n'
    b"ADDRANGE input.transfer.low 150 170\n"
    b'SETINFO outlet.1.desc "PowerShare Outlet 1"\n'
    b"SETAUX outlet.1.desc 32\n"
    b"SETFLAGS outlet.1.desc RW STRING\n"
    b'SETINFO ups.test.result "Done and passed"\n'
    b"SETAUX ups.test.result 16\n"
    b"SETFLAGS ups.test.result RW STRING\n"
    b"ADDCMD load.off\n"
)


class DumpTests(SynchronousTestCase):
    """
    L{dstate.dump_lines} answers DUMPALL as C{drivers/dstate.c} does.
    """

    def test_fresh(self) -> None:
        """
        Sorted variables with their enums, ranges, aux and flags, the
        commands, C{DATAOK}, C{DUMPDONE}: byte for byte the shape of the real
        2.8.0 dump in reference §10.4.
        """
        self.assertEqual(b"".join(dstate.dump_lines(sample_state(), False)),
                         SAMPLE_DUMP + b"DATAOK\nDUMPDONE\n")

    def test_stale(self) -> None:
        """
        A stale driver says C{DATASTALE} first and no C{DATAOK}.
        """
        self.assertEqual(b"".join(dstate.dump_lines(sample_state(), True)),
                         b"DATASTALE\n" + SAMPLE_DUMP + b"DUMPDONE\n")


class ObserverTests(SynchronousTestCase):
    """
    L{DeviceState.subscribe} reports changes as driver-protocol messages.
    """

    def test_changes(self) -> None:
        """
        Every real change is reported once, after it is made; no-op updates
        (same value, same flags, same aux, duplicates) are not.
        """
        state = DeviceState()
        seen: List[Tuple[str, ...]] = []
        state.subscribe(seen.append)
        state.set_info("ups.status", "OL")
        state.set_info("ups.status", "ol")
        state.set_info("ups.status", "OB")
        state.set_flags("ups.status", ["RW", "STRING"])
        state.set_flags("ups.status", ["STRING", "RW"])
        state.set_aux("ups.status", 32)
        state.set_aux("ups.status", 32)
        state.add_enum("ups.status", "OL")
        state.add_enum("ups.status", "OL")
        state.del_enum("ups.status", "ol")
        state.add_range("ups.status", 1, 2)
        state.del_range("ups.status", 1, 2)
        state.set_flags("ups.status", [])
        state.add_command("load.off")
        state.add_command("LOAD.OFF")
        state.del_command("LOAD.OFF")
        state.del_info("UPS.STATUS")
        state.del_info("nothing")
        self.assertEqual(seen, [
            ("SETINFO", "ups.status", "OL"), ("SETINFO", "ups.status", "OB"),
            ("SETFLAGS", "ups.status", "RW", "STRING"), ("SETAUX", "ups.status", "32"),
            ("ADDENUM", "ups.status", "OL"), ("DELENUM", "ups.status", "OL"),
            ("ADDRANGE", "ups.status", "1", "2"), ("DELRANGE", "ups.status", "1", "2"),
            ("SETFLAGS", "ups.status"), ("ADDCMD", "load.off"), ("DELCMD", "load.off"),
            ("DELINFO", "ups.status"),
        ])

    def test_clearAndUnsubscribe(self) -> None:
        """
        L{DeviceState.clear} reports each variable and command deleted; an
        unsubscribed observer hears nothing more.
        """
        state = sample_state()
        seen: List[Tuple[str, ...]] = []
        state.subscribe(seen.append)
        state.clear()
        self.assertEqual(seen[0], ("DELINFO", "battery.charge"))
        self.assertEqual(seen[-1], ("DELCMD", "load.off"))
        self.assertEqual(len(seen), 6)
        state.unsubscribe(seen.append)
        state.unsubscribe(print)
        state.set_info("a", "b")
        self.assertEqual(len(seen), 6)


class SocketDriverTests(SynchronousTestCase):
    """
    L{SocketDriver} does with a driver socket what NUT's upsd does.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.driver = SocketDriver("myups", "dummy-ups", "/run/nut", self.reactor, maxage=15)
        self.results: List[Tuple[str, int]] = []
        self.driver.tracking_listener = lambda i, r: self.results.append((i, r))
        self.events = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher)  # type: ignore[arg-type]

    def connect(self) -> Tuple[Protocol, StringTransport]:
        """
        Complete the latest connection attempt.
        """
        path, factory, _, _ = self.reactor.unixClients[-1]
        self.assertEqual(path, "/run/nut/dummy-ups-myups")
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def started(self) -> Tuple[Protocol, StringTransport]:
        self.driver.start()
        return self.connect()

    def feed(self, proto: Protocol, data: bytes) -> None:
        proto.dataReceived(data)

    def test_waitUntilDump(self) -> None:
        """
        On connect upsd sends DUMPALL and shows only C{ups.status "WAIT"}
        until the dump replaces it; the data are not stale meanwhile.
        """
        self.assertFalse(self.driver.connected)
        proto, transport = self.started()
        self.assertEqual(transport.value(), b"DUMPALL\n")
        self.assertTrue(self.driver.connected)
        self.assertFalse(self.driver.stale)
        self.assertEqual([(v.name, v.value) for v in self.driver.state.variables()],
                         [("ups.status", "WAIT")])
        self.feed(proto, SAMPLE_DUMP + b'SETINFO ups.status "OL"\nDATAOK\nDUMPDONE\n')
        self.assertEqual([list(m) for m in self.driver.state.dump()],
                         [tokenize(line) for line in
                          dstate.dump_lines(self.driverTree(), True)][1:-1])
        self.assertFalse(self.driver.stale)

    def driverTree(self) -> DeviceState:
        state = sample_state()
        state.set_info("ups.status", "OL")
        return state

    def test_everyMessage(self) -> None:
        """
        Each kind of line changes the mirrored tree.
        """
        proto, _ = self.started()
        self.feed(proto, b'SETINFO x.y "1"\nsetflags x.y RW STRING\nSETAUX x.y 12x\n'
                         b'ADDENUM x.y "1"\nADDENUM x.y "2"\nDELENUM x.y "1"\n'
                         b"ADDRANGE x.y 1 5\nADDRANGE x.y 6 9\nDELRANGE x.y 1 5\n"
                         b"ADDCMD a.b\nADDCMD c.d\nDELCMD a.b\nDELINFO ups.status\n"
                         b'SETINFO x.y "2 \\"q\\""\r\n')
        var = self.driver.state.get("x.y")
        assert var is not None
        self.assertEqual((var.value, var.flags, var.aux, var.enums, var.ranges),
                         ('2 "q"', Flags.RW | Flags.STRING, 12, ["2"], [(6, 9)]))
        self.assertEqual(self.driver.state.commands(), ["c.d"])
        self.assertIsNone(self.driver.state.get("ups.status"))

    def test_ping(self) -> None:
        """
        After more than MAXAGE/3 (5) seconds of silence upsd sends PING, at
        most every 5 seconds; a PONG counts as a sign of life.
        """
        proto, transport = self.started()
        transport.clear()
        self.reactor.advance(5)
        self.assertEqual(transport.value(), b"")
        self.reactor.advance(1)
        self.assertEqual(transport.value(), b"PING\n")
        self.reactor.advance(5)
        self.assertEqual(transport.value(), b"PING\n")
        self.reactor.advance(1)
        self.assertEqual(transport.value(), b"PING\nPING\n")
        self.feed(proto, b"PONG\n")
        transport.clear()
        self.reactor.pump([1] * 5)
        self.assertEqual(transport.value(), b"")
        self.reactor.advance(1)
        self.assertEqual(transport.value(), b"PING\n")

    def test_staleAfterMaxage(self) -> None:
        """
        Data are stale once more than MAXAGE seconds passed without a
        recognised line (unknown lines do not count); any recognised line
        makes them fresh again.
        """
        proto, _ = self.started()
        self.feed(proto, b"DATAOK\nDUMPDONE\n")
        self.reactor.pump([1] * 10)
        self.feed(proto, b"PID 99\nFROB\n")
        self.reactor.pump([1] * 5)
        self.assertFalse(self.driver.stale)
        self.reactor.advance(1)
        self.assertTrue(self.driver.stale)
        self.assertIn("is stale", self.events[-1]["log_format"])
        self.feed(proto, b"PONG\n")
        self.assertFalse(self.driver.stale)

    def test_dataStaleAfterDumpDoneOnly(self) -> None:
        """
        DATASTALE/DATAOK count only once DUMPDONE arrived; the last one said
        before then takes effect with DUMPDONE.
        """
        proto, _ = self.started()
        self.feed(proto, b"DATASTALE\n")
        self.assertFalse(self.driver.stale)
        self.feed(proto, b"DUMPDONE\n")
        self.assertTrue(self.driver.stale)
        self.feed(proto, b"DATAOK\n")
        self.assertFalse(self.driver.stale)
        self.feed(proto, b"DATASTALE\n")
        self.assertTrue(self.driver.stale)

    def test_disconnect(self) -> None:
        """
        When the socket goes away the tree is emptied and the driver is not
        connected (DRIVER-NOT-CONNECTED); upsd tries again 2 seconds later and
        starts over with a fresh dump.
        """
        proto, _ = self.started()
        self.feed(proto, SAMPLE_DUMP + b"DATAOK\nDUMPDONE\n")
        proto.connectionLost(Failure(ConnectionRefusedError()))
        self.assertFalse(self.driver.connected)
        self.assertTrue(self.driver.stale)
        self.assertEqual(len(self.driver.state), 0)
        self.assertEqual(self.driver.state.commands(), [])
        self.assertEqual(len(self.reactor.unixClients), 1)
        self.reactor.advance(2)
        self.assertEqual(len(self.reactor.unixClients), 2)
        proto, transport = self.connect()
        self.assertEqual(transport.value(), b"DUMPALL\n")
        self.assertEqual(len(self.driver.state), 1)

    def test_connectFailures(self) -> None:
        """
        A failed connection is retried every 2 seconds and logged at most
        once every 300 seconds.
        """
        self.driver.start()
        for i in range(200):
            factory = self.reactor.unixClients[-1][1]
            factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
            self.reactor.advance(2)
        self.assertEqual(len(self.reactor.unixClients), 201)
        logged = [e for e in self.events if "Can't connect" in e["log_format"]]
        self.assertEqual(len(logged), 2)

    def test_requests(self) -> None:
        """
        instcmd/setvar write INSTCMD/SET with their tracking ids, or return
        C{False} when the driver is not connected; TRACKING lines from the
        driver reach the tracking listener.
        """
        self.assertFalse(self.driver.instcmd("load.off", None, "T1"))
        self.assertFalse(self.driver.setvar("ups.id", "x", None))
        proto, transport = self.started()
        transport.clear()
        self.assertTrue(self.driver.instcmd("load.off", None, "T1"))
        self.assertTrue(self.driver.instcmd("test.panel.start", "5", None))
        self.assertTrue(self.driver.setvar("ups.id", "a b", "T2"))
        self.assertEqual(transport.value(), b"INSTCMD load.off TRACKING T1\n"
                                            b"INSTCMD test.panel.start 5\n"
                                            b'SET ups.id "a b" TRACKING T2\n')
        self.feed(proto, b"TRACKING T1 1\ntracking T2 0\n")
        self.assertEqual(self.results, [("T1", 1), ("T2", 0)])

    def test_longLine(self) -> None:
        """
        A line over MAX_LENGTH (with or without its newline) drops the
        connection; it is retried later.
        """
        proto, transport = self.started()
        self.feed(proto, b"SETINFO a " + b"x" * 5000)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(self.driver.connected)
        self.assertEqual(len(self.driver.state), 0)
        self.reactor.advance(2)
        proto, transport = self.connect()
        self.feed(proto, b"x" * 5000 + b'\nSETINFO a "b"\n')
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(self.driver.state.get("a"))

    def test_flood(self) -> None:
        """
        A driver that sends more lines than the flood limit is cut off
        without its remaining lines being applied.
        """
        self.driver.FLOOD_BURST = 100
        proto, transport = self.started()
        self.feed(proto, b"".join(b'SETINFO v%d "1"\n' % i for i in range(150)))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(self.driver.connected)
        self.assertEqual(len(self.driver.state), 0)

    def test_sizeLimits(self) -> None:
        """
        A driver publishing more variables than allowed (C{ups.status "WAIT"}
        counts) is cut off.
        """
        self.driver.MAX_VARIABLES = 4
        proto, transport = self.started()
        self.feed(proto, b'SETINFO a "1"\nSETINFO b "1"\nSETINFO b "2"\nSETINFO c "1"\n')
        self.assertFalse(transport.disconnecting)
        self.feed(proto, b'SETINFO d "1"\n')
        self.assertTrue(transport.disconnecting)

    def test_garbage(self) -> None:
        """
        Parse errors, binary junk and continued lines do not crash anything.
        """
        proto, transport = self.started()
        self.feed(proto, b'SETINFO a "open\n\x00\xff\x80 junk\nSETINFO b "#"\nSETINFO c \\\n"1"\n')
        self.feed(proto, b'SETINFO d "ok"\n')
        self.assertEqual(sorted(v.name for v in self.driver.state.variables()),
                         ["c", "d", "ups.status"])
        self.assertTrue(self.driver.connected)

    def test_stop(self) -> None:
        """
        L{SocketDriver.stop} disconnects, empties the tree and never retries.
        """
        proto, transport = self.started()
        self.driver.stop()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(self.driver.connected)
        proto.connectionLost(Failure(ConnectionRefusedError()))
        self.reactor.advance(10)
        self.assertEqual(len(self.reactor.unixClients), 1)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stopWhileConnecting(self) -> None:
        """
        Stopping during a connection attempt cancels it quietly.
        """
        self.driver.start()
        self.driver.stop()
        self.assertEqual([e for e in self.events if "Can't connect" in e["log_format"]], [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class FakeDriver(DriverBase):
    """
    A driver that records requests and answers them as told.
    """

    def __init__(self) -> None:
        super().__init__()
        self.connected = True
        self.stale = False
        self.calls: List[Tuple[Any, ...]] = []
        self.answer: Optional[int] = 0
        self.delivered = True

    def instcmd(self, cmd: str, param: Optional[str], tracking_id: Optional[str]) -> bool:
        self.calls.append(("instcmd", cmd, param, tracking_id))
        return self._answer(tracking_id)

    def setvar(self, name: str, value: str, tracking_id: Optional[str]) -> bool:
        self.calls.append(("setvar", name, value, tracking_id))
        if name == "boom":
            raise RuntimeError("boom")
        return self._answer(tracking_id)

    def _answer(self, tracking_id: Optional[str]) -> bool:
        if self.answer is not None and self.delivered:
            self.report(tracking_id, self.answer)
        return self.delivered


class DriverSocketFactoryTests(SynchronousTestCase):
    """
    L{DriverSocketFactory} answers like a NUT 2.8.0 C driver.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.driver = FakeDriver()
        self.driver.state = sample_state()
        self.factory = DriverSocketFactory(self.driver, self.clock)

    def client(self) -> Tuple[Protocol, StringTransport]:
        proto = self.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_dumpAll(self) -> None:
        """
        DUMPALL gets the whole tree, DATAOK and DUMPDONE; a stale driver's
        dump starts with DATASTALE.
        """
        proto, transport = self.client()
        proto.dataReceived(b"DUMPALL\n")
        self.assertEqual(transport.value(), SAMPLE_DUMP + b"DATAOK\nDUMPDONE\n")
        transport.clear()
        self.driver.stale = True
        proto.dataReceived(b"dumpall\n")
        self.assertEqual(transport.value(),
                         b"DATASTALE\nDATASTALE\n" + SAMPLE_DUMP + b"DUMPDONE\n")

    def test_pingAndIgnored(self) -> None:
        """
        PING gets PONG; what 2.8.0 drivers do not know gets nothing.
        """
        proto, transport = self.client()
        proto.dataReceived(b"GETPID\nDUMPVALUE ups.status\nLOGOUT\nFOO\n\n"
                           b'"unbalanced\nINSTCMD a b c\nPING\n')
        self.assertEqual(transport.value(), b"PONG\n")
        self.assertFalse(transport.disconnecting)

    def test_broadcast(self) -> None:
        """
        Changes go to every connection as they happen; a SETINFO that changes
        nothing is not sent; DATASTALE/DATAOK transitions are sent too.
        """
        (p1, t1), (p2, t2) = self.client(), self.client()
        state = self.driver.state
        state.set_info("battery.charge", "90")
        state.set_info("battery.charge", "80")
        state.set_info("ups.new", "x")
        state.set_flags("ups.new", ["RW", "STRING"])
        state.set_aux("ups.new", 32)
        state.del_info("ups.new")
        state.add_command("beeper.on")
        self.driver.stale = True
        self.clock.advance(1)
        self.driver.stale = False
        state.set_info("battery.charge", "70")
        expected = (b'SETINFO battery.charge "80"\nSETINFO ups.new "x"\n'
                    b"SETFLAGS ups.new RW STRING\nSETAUX ups.new 32\nDELINFO ups.new\n"
                    b'ADDCMD beeper.on\nDATASTALE\nDATAOK\nSETINFO battery.charge "70"\n')
        self.assertEqual(t1.value(), expected)
        self.assertEqual(t2.value(), expected)
        p1.connectionLost(Failure(ConnectionRefusedError()))
        p2.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        state.set_info("battery.charge", "60")
        self.assertEqual(t1.value(), expected)

    def test_tracking(self) -> None:
        """
        SET/INSTCMD reach the driver; a tracked result goes back only to the
        connection that asked; an undelivered or failing request is FAILED.
        """
        (p1, t1), (_, t2) = self.client(), self.client()
        p1.dataReceived(b'SET battery.charge "50" TRACKING id-1\n'
                        b"INSTCMD load.off 5 TRACKING id-2\nINSTCMD beeper.off\n")
        self.driver.answer = None
        self.driver.delivered = False
        p1.dataReceived(b"INSTCMD load.off TRACKING id-3\nSET ups.id 1\n")
        self.driver.delivered = True
        p1.dataReceived(b'SET boom "1" TRACKING id-4\n')
        self.assertEqual(self.driver.calls, [
            ("setvar", "battery.charge", "50", "id-1"), ("instcmd", "load.off", "5", "id-2"),
            ("instcmd", "beeper.off", None, None), ("instcmd", "load.off", None, "id-3"),
            ("setvar", "ups.id", "1", None), ("setvar", "boom", "1", "id-4")])
        self.assertEqual(t1.value(), b"TRACKING id-1 0\nTRACKING id-2 0\n"
                                     b"TRACKING id-3 3\nTRACKING id-4 3\n")
        self.assertEqual(t2.value(), b"")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_lateTracking(self) -> None:
        """
        A result reported later still reaches its connection; one for a
        connection that is gone is dropped.
        """
        (p1, t1), (p2, t2) = self.client(), self.client()
        self.driver.answer = None
        p1.dataReceived(b"INSTCMD a TRACKING x\n")
        p2.dataReceived(b"INSTCMD a TRACKING y\n")
        p2.connectionLost(Failure(ConnectionRefusedError()))
        self.driver.report("y", 0)
        self.driver.report("x", 1)
        self.assertEqual((t1.value(), t2.value()), (b"TRACKING x 1\n", b""))

    def test_abuse(self) -> None:
        """
        A client sending an overlong line or a flood is disconnected.
        """
        proto, transport = self.client()
        proto.dataReceived(b"x" * 5000)
        self.assertTrue(transport.disconnecting)
        self.factory.FLOOD_BURST = 10
        proto, transport = self.client()
        proto.dataReceived(b"PING\n" * 20)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"PONG\n" * 10)


class EndToEndTests(SynchronousTestCase):
    """
    L{SocketDriver} against L{DriverSocketFactory} over an in-memory socket.
    """

    def test_mirror(self) -> None:
        """
        The daemon side mirrors the driver's tree and its changes, and SET
        with a tracking id comes back with the driver's result.
        """
        reactor = MemoryReactorClock()
        served = FakeDriver()
        served.state = sample_state()
        served.state.set_info("ups.status", "OL")
        server = DriverSocketFactory(served, reactor)
        client = SocketDriver("u", "nutshim-sim", "/s", reactor)
        results: List[Tuple[str, int]] = []
        client.tracking_listener = lambda i, r: results.append((i, r))
        client.start()
        cproto = reactor.unixClients[0][1].buildProtocol(None)
        sproto = server.buildProtocol(None)
        pump = iosim.connect(sproto, iosim.makeFakeServer(sproto),
                             cproto, iosim.makeFakeClient(cproto))
        pump.flush()
        self.assertEqual(list(client.state.dump()), list(served.state.dump()))
        served.state.set_info("ups.status", "OB")
        served.state.del_command("load.off")
        client.setvar("battery.charge", "10", "T")
        pump.flush()
        self.assertEqual(list(client.state.dump()), list(served.state.dump()))
        self.assertEqual(results, [("T", 0)])
        self.assertFalse(client.stale)


class RunnerTests(SynchronousTestCase):
    """
    L{runner} chooses sections and serves them like a NUT driver.
    """

    def conf(self, text: str) -> str:
        confdir = str(self.mktemp())
        os.makedirs(confdir)
        with open(os.path.join(confdir, "ups.conf"), "w") as f:
            f.write(text)
        return confdir

    def test_parseArgs(self) -> None:
        """
        C{-a NAME} or C{--all}, with NUT's C{-F -D -u -x} accepted.
        """
        args = runner.parse_args(["-a", "sim", "-F", "-D", "-D", "-u", "nut", "-x", "k=v",
                                  "-c", "/etc/x", "--statepath", "/s"])
        self.assertEqual((args.ups, args.all, args.debug, args.extra, args.confdir,
                          args.statepath), ("sim", False, 2, ["k=v"], "/etc/x", "/s"))
        self.assertTrue(runner.parse_args(["--all"]).all)

    def test_selectSections(self) -> None:
        """
        C{-a} picks one section case-insensitively (C{-x} overriding its
        options); C{--all} picks every C{nutshim-*} section; other drivers
        and missing names are errors.
        """
        from nutshim.config import parse_ups_conf

        conf = parse_ups_conf(b"[Sim]\ndriver = nutshim-sim\nport = a.dev\n"
                              b"[real]\ndriver = dummy-ups\nport = b.dev\n"
                              b"[sim2]\ndriver = nutshim-sim\nport = c.seq\n", "ups.conf")
        chosen = runner.select_sections(conf.sections, "sim", ["port=z.dev"])
        self.assertEqual([(s.name, s.port, s.options["port"]) for s in chosen],
                         [("Sim", "z.dev", "z.dev")])
        self.assertEqual([s.name for s in runner.select_sections(conf.sections, None)],
                         ["Sim", "sim2"])
        self.assertRaises(runner.UsageError, runner.select_sections, conf.sections, "real")
        self.assertRaises(runner.UsageError, runner.select_sections, conf.sections, "nope")
        self.assertRaises(runner.UsageError, runner.select_sections, conf.sections, "sim",
                          ["novalue"])
        self.assertRaises(runner.UsageError, runner.select_sections, conf.sections[1:2], None)

    def test_prepareSocket(self) -> None:
        """
        A missing path is fine; a path that is not a socket is refused.
        """
        path = self.mktemp()
        runner.prepare_socket(path)
        with open(path, "w"):
            pass
        self.assertRaises(runner.UsageError, runner.prepare_socket, path)

    def test_run(self) -> None:
        """
        L{runner.run} serves each section on C{<statepath>/<driver>-<name>}
        with mode 0660, starts its driver and stops it at shutdown.
        """
        confdir = self.conf("[sim]\ndriver = nutshim-sim\nport = demo.seq\n")
        reactor = MemoryReactorClock()
        args = runner.parse_args(["--all"])
        d = Deferred.fromCoroutine(runner.run(
            reactor, args, {"NUT_CONFPATH": confdir, "NUT_STATEPATH": "/nonexistent"}))
        self.assertNoResult(d)
        [(path, factory, _, mode, _)] = reactor.unixServers
        self.assertEqual((path, mode), ("/nonexistent/nutshim-sim-sim", 0o660))
        self.assertTrue(factory.driver.connected)
        proto, transport = factory.buildProtocol(None), StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"DUMPALL\n")
        self.assertIn(b'SETINFO driver.name "nutshim-sim"\n', transport.value())
        [(shutdown, a, kw)] = reactor.triggers["before"]["shutdown"]
        shutdown(*a, **kw)
        self.assertFalse(factory.driver.connected)

    def test_runErrors(self) -> None:
        """
        A missing ups.conf or section is a L{runner.UsageError}.
        """
        reactor = MemoryReactorClock()
        d = Deferred.fromCoroutine(runner.run(reactor, runner.parse_args(["-a", "x"]),
                                              {"NUT_CONFPATH": self.mktemp()}))
        self.failureResultOf(d, runner.UsageError)
        confdir = self.conf("[y]\ndriver = nutshim-sim\nport = demo.seq\n")
        d = Deferred.fromCoroutine(runner.run(reactor, runner.parse_args(["-a", "x"]),
                                              {"NUT_CONFPATH": confdir}))
        self.failureResultOf(d, runner.UsageError)
