# -*- test-case-name: nutshim.test.test_upsmon -*-
"""
Tests for L{nutshim.upsmon}: events, notifications, monitors, the shutdown
sequence and the power accounting, on a L{Clock} with fake sessions, fake
connections and a fake command runner.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from nutshim.client.errors import NUTError, RequestTimeout
from nutshim.config import Monitor, parse_upsmon_conf
from nutshim.upsmon.events import (
    NUT_NOTIFY_TYPES,
    SYMBOL_EVENTS,
    SYMBOLS,
    StatusEvent,
    parse_status,
    status_events,
)
from nutshim.upsmon.notify import Notifier, format_message
from nutshim.upsmon.runner import ProcessRunner, shell
from nutshim.upsmon.monitor import NET_TIMEOUT
from nutshim.upsmon.service import UpsmonService
from nutshim.upsmon.shutdown import SDMAGIC, Phase
from nutshim.test.test_signals import FakeReactor, FakeSignal

Reply = Union[str, int, Exception, Deferred[Any]]


class FakeClient:
    """
    A logged-in-able connection: each request is recorded in L{calls} and
    answered from L{replies} (an exception fails it, a Deferred is returned
    as it is); C{GET VAR} answers L{status}.
    """

    def __init__(self, status: Reply = "OL") -> None:
        self.status: Reply = status
        self.replies: Dict[str, Reply] = {}
        self.numattach: List[int] = [1]
        self.calls: List[str] = []
        self._closed: Deferred[None] = Deferred()

    def _answer(self, line: str, default: Reply) -> Deferred[Any]:
        self.calls.append(line)
        reply = self.replies.get(line.split()[0], default)
        if isinstance(reply, Deferred):
            return reply
        if isinstance(reply, Exception):
            return fail(reply)
        return succeed(reply)

    def username(self, name: str) -> Deferred[None]:
        return self._answer("USERNAME " + name, "OK")

    def password(self, password: str) -> Deferred[None]:
        return self._answer("PASSWORD " + password, "OK")

    def attach(self, ups: str) -> Deferred[None]:
        return self._answer("ATTACH " + ups, "OK")

    def primary(self, ups: str) -> Deferred[str]:
        return self._answer("PRIMARY " + ups, "PRIMARY-GRANTED")

    def get_var(self, ups: str, var: str) -> Deferred[str]:
        return self._answer(f"GET VAR {ups} {var}", self.status)

    def fsd(self, ups: str) -> Deferred[None]:
        return self._answer("FSD " + ups, "OK")

    def num_attach(self, ups: str) -> Deferred[int]:
        count = self.numattach.pop(0) if len(self.numattach) > 1 else self.numattach[0]
        return self._answer("NUMATTACH " + ups, count)

    def detach(self) -> Deferred[None]:
        d = self._answer("DETACH", "OK")
        self.lose()
        return d

    def when_closed(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._closed.addCallback(lambda _: d.callback(None))
        return d

    def lose(self) -> None:
        if not self._closed.called:
            self._closed.callback(None)


class HungClient(FakeClient):
    """
    A connection to a server that stops answering at L{hang}, as a
    SIGSTOPped upsd: requests stay unanswered until the first of them has
    waited NET_TIMEOUT, then every pending one fails and the connection is
    dropped (what L{NUTClientProtocol} does).
    """

    def __init__(self, clock: Clock, status: Reply = "OL") -> None:
        super().__init__(status)
        self.clock = clock
        self.hung = False
        self.pending: List[Deferred[Any]] = []
        self.timer: Any = None
        self.transport = StringTransport()

    def hang(self) -> None:
        self.hung = True

    def _answer(self, line: str, default: Reply) -> Deferred[Any]:
        if not self.hung:
            return super()._answer(line, default)
        self.calls.append(line)
        if self._closed.called:
            return fail(ConnectionLost())
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        if self.timer is None:
            self.timer = self.clock.callLater(NET_TIMEOUT, self._abort)
        return d

    def _abort(self) -> None:
        pending, self.pending = self.pending, []
        for d in pending:
            if not d.called:
                d.errback(RequestTimeout(f"no reply within {NET_TIMEOUT} s"))
        self.lose()


class FakeSession(Service):
    """
    Stands for L{NUTClientService}: the test hands it connections.
    """

    def __init__(self, spec: Monitor, prepare: Callable[[Any], Deferred[None]]) -> None:
        self.spec = spec
        self.prepare = prepare

    def connect(self, client: FakeClient) -> Deferred[None]:
        return self.prepare(client)


class FakeRunner:
    """
    Records commands; each ends at once with L{status}, or when the test
    fires the Deferred in L{pending}.
    """

    def __init__(self, status: Optional[int] = 0) -> None:
        self.status = status
        self.runs: List[Tuple[List[str], Optional[Mapping[str, str]], Optional[bytes]]] = []
        self.pending: List[Deferred[int]] = []

    def run(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
            stdin: Optional[bytes] = None) -> Deferred[int]:
        self.runs.append((list(argv), env, stdin))
        if self.status is None:
            d: Deferred[int] = Deferred()
            self.pending.append(d)
            return d
        return succeed(self.status)

    def commands(self) -> List[str]:
        return [argv[2] for argv, _, _ in self.runs if argv[:2] == ["/bin/sh", "-c"]]

    def notified(self) -> List[Tuple[str, Optional[str], str]]:
        """(NOTIFYTYPE, UPSNAME, message) of each NOTIFYCMD run."""
        return [
            (env["NOTIFYTYPE"], env.get("UPSNAME"), argv[4])
            for argv, env, _ in self.runs if env is not None and "NOTIFYTYPE" in env
        ]


BASE = """
NOTIFYCMD /bin/notify
SHUTDOWNCMD "/sbin/shutdown -h now"
POLLFREQ 5
POLLFREQALERT 2
HOSTSYNC 15
DEADTIME 15
FINALDELAY 5
NOCOMMWARNTIME 300
"""

ALL_EXEC = "".join(f"NOTIFYFLAG {name} SYSLOG+EXEC\n" for name in NUT_NOTIFY_TYPES)


class Harness:
    """
    A service on a clock with fake sessions; C{connect(i)} logs monitor
    C{i} in with a fresh L{FakeClient}.
    """

    def __init__(self, testcase: SynchronousTestCase, text: str,
                 runner: Optional[FakeRunner] = None) -> None:
        self.clock = Clock()
        self.conf = parse_upsmon_conf((BASE + ALL_EXEC + text).encode(), "upsmon.conf")
        self.sessions: List[FakeSession] = []
        self.runner = runner or FakeRunner()
        self.done: List[bool] = []

        def sessions(spec: Monitor, prepare: Callable[[Any], Deferred[None]]) -> FakeSession:
            session = FakeSession(spec, prepare)
            self.sessions.append(session)
            return session

        self.service = UpsmonService(self.conf, self.clock, sessions, self.runner,
                                     on_done=lambda: self.done.append(True),
                                     environ={"PATH": "/bin"})
        self.service.startService()
        testcase.addCleanup(self.service.stopService)
        self.clients: List[FakeClient] = []

    def connect(self, index: int = 0, status: Reply = "OL", numattach: Sequence[int] = (1,),
                replies: Optional[Dict[str, Reply]] = None) -> FakeClient:
        client = FakeClient(status)
        client.numattach = list(numattach)
        client.replies.update(replies or {})
        self.clients.append(client)
        self.sessions[index].connect(client)
        return client

    def advance(self, seconds: float, step: float = 0.25) -> None:
        for _ in range(int(seconds / step)):
            self.clock.advance(step)

    def types(self) -> List[Tuple[str, Optional[str]]]:
        return [(t, u) for t, u, _ in self.runner.notified()]


class EventTests(SynchronousTestCase):
    """
    RFC 9271 section 5.2: status changes as events.
    """

    def test_every_symbol_both_ways(self) -> None:
        """
        Each of the table's symbols gives an event when it appears and when
        it disappears (COMM/NOCOMM: see the contact tests).
        """
        for symbol, (on, off) in SYMBOL_EVENTS.items():
            if symbol in ("OL", "OB"):
                continue
            self.assertEqual(status_events(frozenset(["OL"]), frozenset(["OL", symbol]), "OL"),
                             [StatusEvent(on, symbol, True)], symbol)
            self.assertEqual(status_events(frozenset(["OL", symbol]), frozenset(["OL"]), "OL"),
                             [StatusEvent(off, symbol, False)], symbol)
        self.assertEqual(set(SYMBOL_EVENTS) | {"NOCOMM"}, set(SYMBOLS))

    def test_nut_names(self) -> None:
        """
        The changes NUT names carry NUT's names.
        """
        self.assertEqual(SYMBOL_EVENTS["LB"], ("LOWBATT", "NOTLB"))
        self.assertEqual(SYMBOL_EVENTS["RB"], ("REPLBATT", "NOTRB"))
        self.assertEqual(SYMBOL_EVENTS["FSD"][0], "FSD")
        self.assertEqual(NUT_NOTIFY_TYPES["ONBATT"], "UPS %s on battery")
        self.assertEqual(NUT_NOTIFY_TYPES["SHUTDOWN"], "Auto logout and shutdown proceeding")

    def test_line(self) -> None:
        """
        OL to OB is ONBATT and back is ONLINE; OL at startup is no event but
        OB is; the line state outlives statuses without OL or OB.
        """
        names = lambda old, new, line: [e.name for e in status_events(  # noqa: E731
            None if old is None else parse_status(old), parse_status(new), line)]
        self.assertEqual(names(None, "OL CHRG", None), ["CHRG"])
        self.assertEqual(names(None, "OB", None), ["ONBATT"])
        self.assertEqual(names("OL CHRG", "OB DISCHRG", "OL"), ["ONBATT", "NOTCHRG", "DISCHRG"])
        self.assertEqual(names("OB LB", "OL LB", "OB"), ["ONLINE"])
        self.assertEqual(names("OB", "OFF", "OB"), ["OFF"])
        self.assertEqual(names("OFF", "OL", "OB"), ["ONLINE", "NOTOFF"])

    def test_parse(self) -> None:
        """
        Symbols are compared without regard to case or spacing.
        """
        self.assertEqual(parse_status(" ob  lb "), frozenset(["OB", "LB"]))


class NotifyTests(SynchronousTestCase):
    """
    NOTIFYCMD, NOTIFYFLAG and NOTIFYMSG.
    """

    def notifier(self, text: str) -> Tuple[Notifier, FakeRunner]:
        runner = FakeRunner()
        conf = parse_upsmon_conf(text.encode(), "upsmon.conf")
        return Notifier(conf, runner, {"PATH": "/bin", "UPSNAME": "stale"}), runner

    def test_format(self) -> None:
        """
        The first %s is the UPS, %% a percent sign, others stay.
        """
        self.assertEqual(format_message("UPS %s at 50%% %s", "u@h"), "UPS u@h at 50% %s")
        self.assertEqual(format_message("Auto logout", None), "Auto logout")

    def test_exec(self) -> None:
        """
        EXEC runs NOTIFYCMD through the shell with the message as $1 and
        NOTIFYTYPE and UPSNAME in the environment, and UPSGROUP (empty
        for a name without a group).
        """
        notifier, runner = self.notifier("NOTIFYCMD /bin/notify\nNOTIFYFLAG ONBATT EXEC\n")
        self.assertEqual(notifier.notify("ONBATT", "ups@host"), "UPS ups@host on battery")
        [(argv, env, stdin)] = runner.runs
        self.assertEqual(argv, ["/bin/sh", "-c", '/bin/notify "$1"', "sh",
                                "UPS ups@host on battery"])
        self.assertEqual(env, {"PATH": "/bin", "UPSNAME": "ups@host", "NOTIFYTYPE": "ONBATT",
                               "UPSGROUP": ""})
        notifier.notify("ONBATT", "HB:ups@host", "HB")
        self.assertEqual(runner.runs[-1][1], {"PATH": "/bin", "UPSNAME": "HB:ups@host",
                                              "NOTIFYTYPE": "ONBATT", "UPSGROUP": "HB"})

    def test_shutdown_has_empty_upsname(self) -> None:
        """
        SHUTDOWN concerns no UPS: UPSNAME is set and empty for it, as NUT's
        upsmon sets it (upssched exits with "UPSNAME and NOTIFYTYPE must be
        set" without it, so C{AT SHUTDOWN * ...} would never run); an
        UPSNAME of the daemon's own environment never leaks through.
        """
        notifier, runner = self.notifier("NOTIFYCMD n\nNOTIFYFLAG SHUTDOWN EXEC\n")
        notifier.notify("SHUTDOWN", None)
        self.assertEqual(runner.notified(), [("SHUTDOWN", "", "Auto logout and shutdown proceeding")])
        env = runner.runs[0][1]
        assert env is not None
        self.assertEqual((env["UPSNAME"], env["UPSGROUP"]), ("", ""))

    def test_wall_syslog_ignore(self) -> None:
        """
        WALL writes the message to wall; SYSLOG logs it; IGNORE and EXEC
        without NOTIFYCMD run nothing.
        """
        notifier, runner = self.notifier(
            'NOTIFYFLAG ONBATT WALL+SYSLOG\nNOTIFYFLAG LOWBATT IGNORE\nNOTIFYFLAG FSD EXEC\n'
            'NOTIFYMSG ONBATT "power cut on %s"\n'
        )
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        notifier.notify("ONBATT", "u")
        notifier.notify("LOWBATT", "u")
        notifier.notify("FSD", "u")
        self.assertEqual(runner.runs, [(["/usr/bin/wall"], {"PATH": "/bin", "UPSNAME": "stale"},
                                        b"power cut on u\n")])
        self.assertIn("power cut on u", [e.get("text") for e in events
                                         if e["log_level"] == LogLevel.warn])

    def test_flush(self) -> None:
        """
        flush fires when the commands started have ended.
        """
        notifier, runner = self.notifier("NOTIFYCMD n\nNOTIFYFLAG ONBATT EXEC\n")
        runner.status = None
        notifier.notify("ONBATT", "u")
        flushed = notifier.flush()
        self.assertNoResult(flushed)
        runner.pending[0].callback(1)
        self.assertEqual(self.successResultOf(flushed), [1])
        self.assertEqual(notifier.pending, [])


class FakeProcessReactor:
    """Records spawnProcess calls."""

    def __init__(self, error: Optional[OSError] = None) -> None:
        self.spawned: List[Tuple[Any, str, List[str], Dict[str, str]]] = []
        self.error = error

    def spawnProcess(self, protocol: Any, executable: str, args: List[str],
                     env: Dict[str, str]) -> None:
        if self.error:
            raise self.error
        self.spawned.append((protocol, executable, args, env))


class RunnerTests(SynchronousTestCase):
    """
    Commands through IReactorProcess.
    """

    def test_shell(self) -> None:
        """
        A command line runs under /bin/sh -c with its arguments as $1...
        """
        self.assertEqual(shell("cmd -x"), ["/bin/sh", "-c", "cmd -x", "sh"])
        self.assertEqual(shell("cmd", "a b", "c"),
                         ["/bin/sh", "-c", 'cmd "$1" "$2"', "sh", "a b", "c"])

    def test_exit_status(self) -> None:
        """
        The Deferred fires with the exit status, 128+signal when killed, and
        the stdin bytes are written then closed.
        """
        from twisted.internet.testing import StringTransport

        reactor = FakeProcessReactor()
        runner = ProcessRunner(reactor)
        results = []
        for reason in (ProcessDone(0), ProcessTerminated(3), ProcessTerminated(signal=9)):
            d = runner.run(["/bin/x", "a"], {"A": "1"}, stdin=b"hi")
            protocol, executable, args, env = reactor.spawned[-1]
            transport = StringTransport()
            transport.closeStdin = lambda: None  # type: ignore[attr-defined]
            protocol.makeConnection(transport)
            self.assertEqual(transport.value(), b"hi")
            protocol.outReceived(b"some output\n")
            protocol.processEnded(Failure(reason))
            results.append(self.successResultOf(d))
        self.assertEqual(results, [0, 3, 137])
        self.assertEqual((executable, args, env), ("/bin/x", ["/bin/x", "a"], {"A": "1"}))

    def test_cannot_start(self) -> None:
        """
        A command that cannot start ends with status 127.
        """
        runner = ProcessRunner(FakeProcessReactor(OSError(2, "No such file")))
        self.assertEqual(self.successResultOf(runner.run(["/nonexistent"])), 127)


PRIMARY = "MONITOR ups@upsd 1 monuser monpass primary\n"
SECONDARY = "MONITOR ups@upsd 1 monuser monpass secondary\n"


class LoginTests(SynchronousTestCase):
    """
    The session's preparation: NUT upsmon's login sequence.
    """

    def test_primary(self) -> None:
        """
        A Primary says USERNAME, PASSWORD, ATTACH, PRIMARY, then polls.
        """
        h = Harness(self, PRIMARY)
        client = h.connect()
        self.assertEqual(client.calls, ["USERNAME monuser", "PASSWORD monpass", "ATTACH ups",
                                        "PRIMARY ups", "GET VAR ups ups.status"])

    def test_secondary(self) -> None:
        """
        A Secondary does not ask for PRIMARY.
        """
        h = Harness(self, SECONDARY)
        client = FakeClient()
        h.sessions[0].connect(client)
        self.assertNotIn("PRIMARY ups", client.calls)
        self.assertEqual(client.calls[-1], "GET VAR ups ups.status")

    def test_refusals_keep_polling(self) -> None:
        """
        A refused login or PRIMARY is logged and polling goes on, as NUT's
        upsmon does.
        """
        h = Harness(self, PRIMARY)
        client = FakeClient()
        client.replies["USERNAME"] = NUTError("INVALID-USERNAME")
        h.sessions[0].connect(client)
        self.assertEqual(client.calls, ["USERNAME monuser", "PASSWORD monpass",
                                        "GET VAR ups ups.status"])
        client = FakeClient()
        client.replies["PRIMARY"] = NUTError("ACCESS-DENIED")
        h.sessions[0].connect(client)
        self.assertEqual(client.calls[-2:], ["PRIMARY ups", "GET VAR ups ups.status"])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_connection_lost_rejects(self) -> None:
        """
        A connection lost during the login fails the preparation, so the
        session retries.
        """
        h = Harness(self, PRIMARY)
        client = FakeClient()
        client.replies["ATTACH"] = ConnectionLost()
        self.failureResultOf(h.sessions[0].connect(client), ConnectionLost)
        self.assertIsNone(h.service.monitors[0].client)


class PollTests(SynchronousTestCase):
    """
    Polling ups.status on the clock.
    """

    def test_intervals(self) -> None:
        """
        Every POLLFREQ seconds, every POLLFREQALERT while on battery.
        """
        h = Harness(self, SECONDARY)
        client = h.connect()
        h.clock.advance(5)
        self.assertEqual(client.calls.count("GET VAR ups ups.status"), 2)
        client.status = "OB"
        h.clock.advance(5)
        h.clock.advance(2)
        h.clock.advance(2)
        self.assertEqual(client.calls.count("GET VAR ups ups.status"), 5)

    def test_no_overlap(self) -> None:
        """
        A poll still waiting for its reply is not repeated.
        """
        h = Harness(self, SECONDARY)
        client = h.connect(status=Deferred())
        h.clock.advance(5)
        h.clock.advance(5)
        self.assertEqual(client.calls.count("GET VAR ups ups.status"), 1)

    def test_notifications(self) -> None:
        """
        OB, OB LB, then OL again: ONBATT, LOWBATT, ONLINE and the rest.
        """
        h = Harness(self, "MONITOR ups@upsd 1 u p secondary\nMINSUPPLIES 0\n")
        client = h.connect(status="OL CHRG")
        client.status = "OB DISCHRG"
        h.clock.advance(5)
        client.status = "OB DISCHRG LB"
        h.clock.advance(2)
        client.status = "OL CHRG"
        h.clock.advance(2)
        self.assertEqual(h.types(), [("ONBATT", "ups@upsd"), ("LOWBATT", "ups@upsd"),
                                     ("ONLINE", "ups@upsd")])
        self.assertEqual(h.runner.notified()[0][2], "UPS ups@upsd on battery")

    def test_replbatt_repeats(self) -> None:
        """
        REPLBATT at once, then every RBWARNTIME while RB stays.
        """
        h = Harness(self, SECONDARY + "RBWARNTIME 20\n")
        client = h.connect(status="OL RB")
        h.advance(20)
        self.assertEqual(h.types(), [("REPLBATT", "ups@upsd")])
        h.clock.advance(5)
        self.assertEqual(h.types().count(("REPLBATT", "ups@upsd")), 2)
        client.status = "OL"
        h.clock.advance(5)
        client.status = "OL RB"
        h.clock.advance(5)
        self.assertEqual(h.types().count(("REPLBATT", "ups@upsd")), 3)


class ContactTests(SynchronousTestCase):
    """
    COMMOK, COMMBAD and NOCOMM.
    """

    def test_commbad_nocomm_commok(self) -> None:
        """
        The first failed poll is COMMBAD; after that NOCOMM comes every
        NOCOMMWARNTIME seconds; a good poll again is COMMOK.
        """
        h = Harness(self, SECONDARY + "NOCOMMWARNTIME 12\n")
        client = h.connect()
        client.status = NUTError("DATA-STALE")
        h.clock.advance(5)
        self.assertEqual(h.types(), [("COMMBAD", "ups@upsd")])
        h.clock.advance(5)
        h.clock.advance(5)
        h.clock.advance(5)
        self.assertEqual(h.types(), [("COMMBAD", "ups@upsd")])
        h.clock.advance(5)
        self.assertEqual(h.types()[-1], ("NOCOMM", "ups@upsd"))
        h.advance(15, 5)
        self.assertEqual(h.types().count(("NOCOMM", "ups@upsd")), 2)
        client.status = "OL"
        h.clock.advance(5)
        self.assertEqual(h.types()[-1], ("COMMOK", "ups@upsd"))

    def test_first_contact(self) -> None:
        """
        The first contact is not COMMOK, unless polls had failed before.
        """
        h = Harness(self, SECONDARY)
        h.clock.advance(5)
        h.connect()
        self.assertEqual(h.types(), [("COMMOK", "ups@upsd")])
        h = Harness(self, SECONDARY)
        h.connect()
        self.assertEqual(h.types(), [])

    def test_nocomm_status_and_lost_connection(self) -> None:
        """
        A status saying NOCOMM, or a lost connection, is a failed poll.
        """
        h = Harness(self, SECONDARY)
        client = h.connect(status="NOCOMM")
        self.assertEqual(h.types(), [])
        self.assertFalse(h.service.monitors[0].alive)
        client.status = "OL"
        h.clock.advance(5)
        client.lose()
        h.clock.advance(5)
        self.assertEqual(h.types(), [("COMMOK", "ups@upsd"), ("COMMBAD", "ups@upsd")])


class CriticalTests(SynchronousTestCase):
    """
    When a UPS counts as critical.
    """

    def monitor(self, text: str, status: str) -> Tuple[Harness, Any]:
        h = Harness(self, text + "MINSUPPLIES 0\n")
        h.connect(status=status)
        return h, h.service.monitors[0]

    def test_primary_ob_lb(self) -> None:
        """
        OB LB is critical at once for a Primary; OL LB, OB are not.
        """
        for status, critical in (("OB LB", True), ("OL LB", False), ("OB", False),
                                 ("OL FSD", True), ("OB LB CAL", False)):
            h, m = self.monitor(PRIMARY, status)
            self.assertEqual(m.is_critical(h.clock.seconds()), critical, status)

    def test_secondary_waits_hostsync(self) -> None:
        """
        A Secondary gives the Primary HOSTSYNC seconds to set FSD after the
        UPS was last seen non-critical.
        """
        h, m = self.monitor(SECONDARY, "OB")
        h.service.monitors[0].client.status = "OB LB"  # type: ignore[union-attr]
        h.clock.advance(5)
        self.assertEqual(m.symbols, frozenset(["OB", "LB"]))
        self.assertFalse(m.is_critical(h.clock.seconds()))
        h.clock.advance(10)
        self.assertFalse(m.is_critical(h.clock.seconds()))
        h.clock.advance(1)
        self.assertTrue(m.is_critical(h.clock.seconds()))

    def test_dead_on_battery(self) -> None:
        """
        No status for more than DEADTIME while last known OB is critical;
        while last known OL it is not.
        """
        for status, critical in (("OB", True), ("OL", False)):
            h, m = self.monitor(PRIMARY, status)
            m.client.status = Deferred()
            h.clock.advance(15)
            self.assertFalse(m.is_critical(h.clock.seconds()))
            h.clock.advance(1)
            self.assertEqual(m.is_critical(h.clock.seconds()), critical)


class ShutdownTests(SynchronousTestCase):
    """
    The shutdown story of RFC 9271 Appendix B, on the clock.
    """

    def harness(self, text: str, flag: bool = True) -> Harness:
        extra = ""
        if flag:
            self.flag = os.path.abspath(self.mktemp())
            extra = f"POWERDOWNFLAG {self.flag}\n"
        return Harness(self, text + extra)

    def test_primary_story(self) -> None:
        """
        OB LB on a Primary: FSD, NUMATTACH every 250 ms until only the
        Primary is left, SHUTDOWN, FINALDELAY, POWERDOWNFLAG, DETACH,
        SHUTDOWNCMD, then the daemon is done.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB")
        client.numattach = [3, 2, 2, 1]
        client.status = "OB LB"
        h.clock.advance(5)
        self.assertEqual(h.service.shutdown.phase, Phase.HOSTSYNC)
        self.assertIn("FSD ups", client.calls)
        self.assertEqual(client.calls.count("NUMATTACH ups"), 1)
        h.clock.advance(0.25)
        h.clock.advance(0.25)
        self.assertEqual(h.service.shutdown.phase, Phase.HOSTSYNC)
        h.clock.advance(0.25)
        self.assertEqual(client.calls.count("NUMATTACH ups"), 4)
        self.assertEqual(h.service.shutdown.phase, Phase.FINAL_DELAY)
        self.assertEqual(h.types()[-1], ("SHUTDOWN", ""))
        self.assertFalse(os.path.exists(self.flag))
        client.status = "OB LB FSD"
        h.clock.advance(2)
        self.assertIn(("FSD", "ups@upsd"), h.types())
        self.assertEqual(h.runner.commands()[-1:], ['/bin/notify "$1"'])
        h.clock.advance(3)
        self.assertEqual(h.service.shutdown.phase, Phase.DONE)
        with open(self.flag) as f:
            self.assertEqual(f.read(), SDMAGIC + "\n")
        self.assertEqual(client.calls[-1], "DETACH")
        self.assertEqual(h.runner.commands()[-1], "/sbin/shutdown -h now")
        self.assertEqual(h.done, [True])
        polls = client.calls.count("GET VAR ups ups.status")
        h.clock.advance(10)
        self.assertEqual(client.calls.count("GET VAR ups ups.status"), polls)

    def test_hostsync_expires(self) -> None:
        """
        Secondaries that never leave are given up on after HOSTSYNC.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB LB", numattach=[2])
        h.advance(14.75)
        self.assertEqual(h.service.shutdown.phase, Phase.HOSTSYNC)
        h.clock.advance(0.25)
        self.assertEqual(h.service.shutdown.phase, Phase.FINAL_DELAY)
        self.assertEqual(client.calls.count("NUMATTACH ups"), 60)

    def test_hung_query(self) -> None:
        """
        A NUMATTACH query that never returns does not count, after NUT's
        read timeout (5 s), as in NUT's C{sync_secondaries}: with no other
        count known, the Primary shuts down.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB LB", replies={"NUMATTACH": Deferred()})
        h.clock.advance(4.9)
        self.assertEqual(h.service.shutdown.phase, Phase.HOSTSYNC)
        h.clock.advance(0.1)
        self.assertEqual(h.service.shutdown.phase, Phase.FINAL_DELAY)
        self.assertEqual(client.calls.count("NUMATTACH ups"), 1)

    def test_secondary_story(self) -> None:
        """
        FSD seen by a Secondary: no FSD sent, SHUTDOWN, FINALDELAY, DETACH,
        SHUTDOWNCMD; no POWERDOWNFLAG.
        """
        h = self.harness(SECONDARY)
        client = h.connect(status="OB LB FSD")
        self.assertNotIn("FSD ups", client.calls)
        self.assertNotIn("NUMATTACH ups", client.calls)
        self.assertEqual(h.types(), [("ONBATT", "ups@upsd"), ("FSD", "ups@upsd"),
                                     ("LOWBATT", "ups@upsd"), ("SHUTDOWN", "")])
        h.clock.advance(4.9)
        self.assertEqual(h.runner.commands()[-1], '/bin/notify "$1"')
        h.clock.advance(0.1)
        self.assertEqual(client.calls[-1], "DETACH")
        self.assertEqual(h.runner.commands()[-1], "/sbin/shutdown -h now")
        self.assertFalse(os.path.exists(self.flag))

    def test_secondary_gives_up_on_primary(self) -> None:
        """
        OB LB without FSD: a Secondary shuts down HOSTSYNC seconds later.
        """
        h = self.harness(SECONDARY)
        h.connect(status="OB LB")
        h.clock.advance(14)
        self.assertFalse(h.service.shutdown.begun)
        h.clock.advance(2)
        self.assertEqual(h.service.shutdown.phase, Phase.FINAL_DELAY)

    def test_online_too_late(self) -> None:
        """
        A UPS back on line power after the shutdown began is logged; the
        shutdown goes on.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB LB", numattach=[2])
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        client.status = "OL"
        h.clock.advance(5)
        self.assertIn(("ONLINE", "ups@upsd"), h.types())
        self.assertIn("the shutdown already begun goes on",
                      " ".join(e["log_format"] for e in events))
        h.advance(20)
        self.assertEqual(h.service.shutdown.phase, Phase.DONE)

    def test_dead_primary_ups(self) -> None:
        """
        Contact lost while on battery: critical after DEADTIME, shutdown.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB")
        client.status = NUTError("DRIVER-NOT-CONNECTED")
        h.clock.advance(14)
        self.assertFalse(h.service.shutdown.begun)
        h.clock.advance(2)
        self.assertTrue(h.service.shutdown.begun)
        self.assertEqual(h.types()[:2], [("ONBATT", "ups@upsd"), ("COMMBAD", "ups@upsd")])

    def test_hung_server(self) -> None:
        """
        A server that stops answering while on battery is judged on the
        clock: critical once DEADTIME has passed, whatever the request
        timeout.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB")
        client.status = Deferred()
        h.advance(15)
        self.assertFalse(h.service.shutdown.begun)
        h.clock.advance(2)
        self.assertTrue(h.service.shutdown.begun)

    def test_hung_server_shutdown_bound(self) -> None:
        """
        Issue 10 item 7, the exact scenario: the UPS last seen on battery,
        then upsd stopped (SIGSTOP: the connection stays open, nothing is
        answered; the client drops it after NET_TIMEOUT).  The Primary
        neither sends FSD to the server it has declared dead nor waits for
        NUMATTACH or DETACH there: SHUTDOWNCMD runs DEADTIME + POLLFREQALERT
        + FINALDELAY after the hang at the latest (8 s here), before NUT's
        upsmon in the same scenario (about 11 s: DEADTIME plus its 5 s read
        timeout) and not after the 10 s request timeout.
        """
        h = self.harness(PRIMARY + "POLLFREQ 1\nPOLLFREQALERT 1\nDEADTIME 6\nFINALDELAY 1\n")
        client = HungClient(h.clock, "OB")
        h.clients.append(client)
        h.sessions[0].connect(client)
        h.advance(3)
        self.assertEqual(h.types(), [("ONBATT", "ups@upsd")])
        hung = h.clock.seconds()
        client.hang()
        while not h.runner.commands()[-1:] == ["/sbin/shutdown -h now"]:
            self.assertLess(h.clock.seconds() - hung, 30, "no SHUTDOWNCMD")
            h.clock.advance(0.25)
        self.assertLessEqual(h.clock.seconds() - hung, 6 + 1 + 1)
        self.assertNotIn("FSD ups", client.calls)
        self.assertNotIn("NUMATTACH ups", client.calls)
        self.assertNotIn("DETACH", client.calls)
        self.assertTrue(client.transport.disconnected, "the hung connection is aborted")
        self.assertEqual(h.service.shutdown.phase, Phase.DONE)

    def test_fsd_bounded(self) -> None:
        """
        A server that answers the polls but not FSD holds the sequence up
        for NUT's read timeout (5 s), not for the request timeout.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB", replies={"FSD": Deferred()}, numattach=[2])
        client.status = "OB LB"
        h.clock.advance(5)
        self.assertEqual(h.service.shutdown.phase, Phase.SETTING_FSD)
        h.clock.advance(4.9)
        self.assertEqual(h.service.shutdown.phase, Phase.SETTING_FSD)
        h.clock.advance(0.1)
        self.assertEqual(h.service.shutdown.phase, Phase.HOSTSYNC)

    def test_dead_driver_still_gets_fsd(self) -> None:
        """
        A server that answers, if only with errors (a dead driver), is not
        given up on: it gets FSD; so does one polled less often than
        DEADTIME, between two polls.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB")
        client.status = NUTError("DATA-STALE")
        h.advance(17)
        self.assertTrue(h.service.shutdown.begun)
        self.assertIn("FSD ups", client.calls)
        h = self.harness(PRIMARY + "POLLFREQ 30\nDEADTIME 10\n")
        client = h.connect(status="OL")
        h.clock.advance(25)
        h.service.user_fsd()
        self.assertIn("FSD ups", client.calls)

    def test_no_shutdowncmd(self) -> None:
        """
        Without SHUTDOWNCMD the sequence ends with an error logged.
        """
        h = Harness(self, SECONDARY + 'SHUTDOWNCMD ""\n')
        h.connect(status="FSD OB")
        h.clock.advance(5)
        self.assertEqual(h.service.shutdown.phase, Phase.DONE)
        self.assertEqual(h.runner.commands(), ['/bin/notify "$1"'] * 3)

    def test_failed_fsd(self) -> None:
        """
        A refused FSD is logged and the sequence goes on.
        """
        h = self.harness(PRIMARY)
        client = h.connect(status="OB")
        client.replies["FSD"] = NUTError("ACCESS-DENIED")
        client.status = "OB LB"
        h.clock.advance(2)
        h.clock.advance(3)
        self.assertEqual(h.service.shutdown.phase, Phase.FINAL_DELAY)


class PowerTests(SynchronousTestCase):
    """
    POWERVALUE and MINSUPPLIES over several UPSes.
    """

    TWO = ("MONITOR a@upsd 1 u p primary\nMONITOR b@upsd 1 u p primary\n"
           "MONITOR c@upsd 0 u p secondary\n")

    def test_minsupplies(self) -> None:
        """
        With MINSUPPLIES 2 one critical UPS of two is enough to shut down;
        with 1 it is not; a power value 0 UPS never counts.
        """
        for minimum, begun in ((1, False), (2, True)):
            h = Harness(self, self.TWO + f"MINSUPPLIES {minimum}\n")
            h.connect(0, "OL")
            h.connect(1, "OB LB")
            h.connect(2, "OL")
            self.assertEqual(h.service.shutdown.begun, begun)
            self.assertEqual(h.service.power_value(), 1)

    def test_fsd_on_every_primary(self) -> None:
        """
        The Primary sets FSD on every UPS it is Primary for, and waits for
        all of them.
        """
        h = Harness(self, self.TWO + "MINSUPPLIES 2\n")
        a = h.connect(0, "OL")
        h.connect(2, "OL")
        b = h.connect(1, "OB LB")
        self.assertIn("FSD a", a.calls)
        self.assertIn("FSD b", b.calls)
        self.assertEqual(h.clients[1].calls.count("FSD c"), 0)

    def test_stop_detaches(self) -> None:
        """
        Stopping the service says DETACH on every session.
        """
        h = Harness(self, self.TWO)
        clients = [h.connect(i) for i in range(3)]
        self.successResultOf(h.service.stopService())
        self.assertEqual([c.calls[-1] for c in clients], ["DETACH"] * 3)
        self.assertFalse(any(s.running for s in h.sessions))

    def test_stop_bounded(self) -> None:
        """
        A server that never answers DETACH holds up the stop for
        DETACH_WAIT seconds only.
        """
        h = Harness(self, SECONDARY)
        h.connect(replies={"DETACH": Deferred()})
        stopping = h.service.stopService()
        self.assertNoResult(stopping)
        h.clock.advance(2)
        self.successResultOf(stopping)
        self.assertFalse(h.sessions[0].running)


class ReloadTests(SynchronousTestCase):
    """
    SIGHUP (C{upsmon -c reload}): a new C{upsmon.conf} is applied as NUT's
    upsmon applies it, without losing what is known of the UPSes.
    """

    ONE = "MONITOR a@upsd 1 u p primary\n"

    def setUp(self) -> None:
        self.observer = EventLoggingObserver()
        globalLogPublisher.addObserver(self.observer)
        self.addCleanup(globalLogPublisher.removeObserver, self.observer)

    def reloaded(self, h: Harness, text: str) -> bool:
        conf = parse_upsmon_conf((BASE + ALL_EXEC + text).encode(), "upsmon.conf")
        h.service._reader = lambda: conf
        return h.service.reload()

    def logged(self) -> List[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.observer]

    def test_add_and_delete(self) -> None:
        """
        A new MONITOR line starts a session that logs in and is polled; a
        missing one says DETACH and is no longer polled or counted.
        """
        h = Harness(self, self.ONE)
        a = h.connect(0, "OL")
        self.assertTrue(self.reloaded(h, "MONITOR b@upsd 1 u p secondary\n"))
        self.assertEqual(len(h.sessions), 2)
        self.assertTrue(h.sessions[1].running)
        self.assertFalse(h.sessions[0].running)
        self.assertEqual(a.calls[-1], "DETACH")
        b = h.connect(1, "OL")
        self.assertEqual(b.calls[:4], ["USERNAME u", "PASSWORD p", "ATTACH b",
                                       "GET VAR b ups.status"])
        polls = a.calls.count("GET VAR a ups.status")
        h.advance(10)
        self.assertEqual(a.calls.count("GET VAR a ups.status"), polls)
        self.assertEqual(b.calls.count("GET VAR b ups.status"), 3)
        self.assertEqual([m.spec.system for m in h.service.shutdown.monitors], ["b@upsd"])
        self.assertIn("Deleting UPS [a@upsd]", self.logged())

    def test_power_value(self) -> None:
        """
        A new power value counts at once, on the same connection; with
        MINSUPPLIES now out of reach of the UPSes left, the shutdown begins.
        """
        h = Harness(self, "MONITOR a@upsd 1 u p primary\nMONITOR b@upsd 1 u p primary\n")
        a = h.connect(0, "OL")
        h.connect(1, "OB LB")
        self.assertFalse(h.service.shutdown.begun)
        self.assertTrue(self.reloaded(
            h, "MONITOR a@upsd 1 u p primary\nMONITOR b@upsd 2 u p primary\nMINSUPPLIES 2\n"))
        self.assertEqual(len(h.sessions), 2)
        self.assertNotIn("DETACH", a.calls)
        self.assertIn("UPS [b@upsd]: redefined power value to 2", self.logged())
        self.assertTrue(h.service.shutdown.begun)

    def test_relogin_keeps_state(self) -> None:
        """
        A changed password or role logs in again through a new session
        (PRIMARY now asked for), keeping the known status: no event repeats.
        """
        h = Harness(self, "MONITOR a@upsd 1 u p secondary\n")
        a = h.connect(0, "OB")
        events = h.types()
        self.assertTrue(self.reloaded(h, "MONITOR a@upsd 1 u p2 primary\n"))
        self.assertEqual(a.calls[-1], "DETACH")
        self.assertEqual(len(h.sessions), 2)
        again = h.connect(1, "OB")
        self.assertEqual(again.calls[:4], ["USERNAME u", "PASSWORD p2", "ATTACH a", "PRIMARY a"])
        self.assertEqual(h.types(), events)
        self.assertIn("UPS [a@upsd]: redefined password", self.logged())
        self.assertIn("UPS [a@upsd]: redefined as a primary", self.logged())
        # A connection the old session completes now is never polled.
        late = FakeClient("OL")
        h.sessions[0].connect(late)
        h.clock.advance(5)
        self.assertNotIn("GET VAR a ups.status", late.calls)
        self.assertEqual(again.calls.count("GET VAR a ups.status"), 2)

    def test_tls_change_relogs_everyone(self) -> None:
        """
        Changed TLS settings (CERTVERIFY here) need new connections for
        every UPS.
        """
        h = Harness(self, self.ONE)
        a = h.connect(0, "OL")
        self.assertTrue(self.reloaded(h, self.ONE + "CERTVERIFY 1\n"))
        self.assertEqual(a.calls[-1], "DETACH")
        self.assertEqual(len(h.sessions), 2)

    def test_other_settings(self) -> None:
        """
        NOTIFYMSG and POLLFREQ take effect without a new connection.
        """
        h = Harness(self, self.ONE)
        a = h.connect(0, "OL")
        self.assertTrue(self.reloaded(
            h, self.ONE + 'POLLFREQ 1\nNOTIFYMSG ONBATT "on battery: %s"\n'))
        self.assertEqual(len(h.sessions), 1)
        h.clock.advance(5)  # the poll scheduled before the reload
        h.clock.advance(1)
        self.assertEqual(a.calls.count("GET VAR a ups.status"), 3)
        a.status = "OB"
        h.clock.advance(1)
        self.assertIn(("ONBATT", "a@upsd", "on battery: a@upsd"), h.runner.notified())

    def test_bad_file_keeps_running_config(self) -> None:
        """
        A file that cannot be used is logged; nothing changes.
        """
        from nutshim.config import ConfigError

        h = Harness(self, self.ONE)
        a = h.connect(0, "OL")

        def broken() -> Any:
            raise ConfigError("/etc/nut/upsmon.conf", 3, "MINSUPPLIES: not a number")

        h.service._reader = broken
        self.assertFalse(h.service.reload())
        self.assertIn(
            "Reload failed, keeping the running configuration:"
            " /etc/nut/upsmon.conf:3: MINSUPPLIES: not a number", self.logged())
        self.assertNotIn("DETACH", a.calls)
        self.assertEqual(h.service.conf, h.conf)

    def test_not_during_shutdown(self) -> None:
        """
        Once the shutdown has begun a reload changes nothing.
        """
        h = Harness(self, self.ONE)
        h.connect(0, "OB LB")
        self.assertTrue(h.service.shutdown.begun)
        self.assertFalse(self.reloaded(h, "MONITOR b@upsd 1 u p secondary\n"))
        self.assertEqual([m.spec.system for m in h.service.monitors], ["a@upsd"])

    def test_stop_waits_for_goodbyes(self) -> None:
        """
        Stopping the daemon waits for a dropped UPS's DETACH too.
        """
        h = Harness(self, self.ONE)
        a = h.connect(0, "OL")
        a.replies["DETACH"] = Deferred()
        self.reloaded(h, "MONITOR b@upsd 1 u p secondary\n")
        stopped = h.service.stopService()
        self.assertNoResult(stopped)
        h.clock.advance(2)
        self.successResultOf(stopped)


class UserFSDTests(SynchronousTestCase):
    """
    SIGUSR2 (for C{upsmon -c fsd}): the administrator's forced shutdown.
    """

    def test_primary(self) -> None:
        """
        A Primary sets FSD and waits for its Secondaries, as when power runs
        out; asking again changes nothing.
        """
        h = Harness(self, "MONITOR a@upsd 1 u p primary\n")
        a = h.connect(0, "OL", numattach=[2])
        h.service.user_fsd()
        self.assertIn("FSD a", a.calls)
        self.assertEqual(h.service.shutdown.phase, Phase.HOSTSYNC)
        h.service.user_fsd()
        self.assertEqual(a.calls.count("FSD a"), 1)

    def test_secondary(self) -> None:
        """
        A Secondary shuts down its own system at once, FSD unsent.
        """
        h = Harness(self, "MONITOR a@upsd 1 u p secondary\n")
        a = h.connect(0, "OL")
        h.service.user_fsd()
        self.assertNotIn("FSD a", a.calls)
        h.clock.advance(5)
        self.assertEqual(h.runner.commands()[-1], "/sbin/shutdown -h now")


class SignalTests(SynchronousTestCase):
    """
    Which signal does what (issue 10 item 1): NUT's C{upsmon -c fsd} sends
    SIGUSR1, and no daemon signal may keep its default action (terminate).
    On a fake C{signal} module, as twistd leaves it in each way of running.
    """

    def service(self, sig: FakeSignal,
                role: str = "secondary") -> Tuple[UpsmonService, FakeReactor, FakeRunner, Clock]:
        conf = parse_upsmon_conf(
            f'MONITOR a@h 1 u p {role}\nSHUTDOWNCMD "/sbin/poweroff"\nFINALDELAY 1\n'.encode(),
            "upsmon.conf")
        reactor, runner, clock = FakeReactor(), FakeRunner(), Clock()
        made = UpsmonService(conf, clock, lambda spec, prepare: FakeSession(spec, prepare),
                             runner, reader=lambda: conf, reactor=reactor,
                             sig=sig)  # type: ignore[arg-type]
        made.startService()
        self.addCleanup(made.stopService)
        return made, reactor, runner, clock

    def test_no_logfile(self) -> None:
        """
        C{twistd -n} without C{--logfile}, C{--syslog}, the systemd unit:
        nobody handles SIGUSR1, so it is the forced shutdown, as in NUT
        (SHUTDOWNCMD runs); SIGUSR2 too; SIGHUP reloads.  The log says so.
        """
        sig = FakeSignal()
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        service, reactor, runner, clock = self.service(sig)
        self.assertEqual(service.signals, {
            "SIGHUP": "reloads upsmon.conf (upsmon -c reload)",
            "SIGUSR1": "forces the shutdown (upsmon -c fsd)",
            "SIGUSR2": "forces the shutdown",
        })
        text = [e["log_format"] for e in events]
        self.assertIn("Signals: {roles}; SIGTERM stops (upsmon -c stop)", text)
        sig.deliver(sig.SIGHUP)
        reactor.run_calls()
        self.assertFalse(service.shutdown.begun)
        self.assertIn("Configuration reloaded: {n} UPS(es), MINSUPPLIES {minimum}",
                      [e["log_format"] for e in events])
        sig.deliver(sig.SIGUSR1)
        self.assertFalse(service.shutdown.begun, "the handler must only queue the work")
        reactor.run_calls()
        self.assertTrue(service.shutdown.begun)
        clock.advance(1)
        self.assertEqual(runner.commands()[-1], "/sbin/poweroff")

    def test_sigusr2(self) -> None:
        """
        SIGUSR2 forces the shutdown: a Primary sets FSD first.
        """
        sig = FakeSignal()
        service, reactor, runner, clock = self.service(sig, "primary")
        client = FakeClient()
        service.monitors[0].session.connect(client)  # type: ignore[attr-defined]
        sig.deliver(sig.SIGUSR2)
        reactor.run_calls()
        self.assertIn("FSD a", client.calls)
        clock.advance(1)
        self.assertEqual(runner.commands()[-1], "/sbin/poweroff")

    def test_logfile(self) -> None:
        """
        C{twistd --logfile} (or daemonized): twistd's SIGUSR1 handler rotates
        the log and is kept -- a logrotate job never powers the machine off
        -- and the log says to use SIGUSR2, which still forces the shutdown.
        """
        sig = FakeSignal()
        rotated: List[int] = []
        sig.handlers[sig.SIGUSR1] = lambda signum, frame: rotated.append(signum)
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        service, reactor, runner, clock = self.service(sig)
        self.assertEqual(service.signals["SIGUSR1"], "rotates the log file (twistd --logfile)")
        self.assertTrue(any("send SIGUSR2 to force the shutdown" in e["log_format"]
                            for e in events))
        sig.deliver(sig.SIGUSR1)
        reactor.run_calls()
        self.assertEqual(rotated, [sig.SIGUSR1])
        self.assertFalse(service.shutdown.begun)
        sig.deliver(sig.SIGUSR2)
        reactor.run_calls()
        self.assertTrue(service.shutdown.begun)

    def test_nothing_left_at_default(self) -> None:
        """
        Whatever was there before, no daemon signal keeps SIG_DFL.
        """
        for before in (FakeSignal.SIG_DFL, FakeSignal.SIG_IGN):
            sig = FakeSignal()
            for signum in list(sig.handlers):
                sig.handlers[signum] = before
            self.service(sig)
            for signum, handler in sig.handlers.items():
                self.assertTrue(callable(handler), (before, signum))

    def test_no_reactor(self) -> None:
        """
        Without a reactor (unit tests, embedding) nothing is installed.
        """
        sig = FakeSignal()
        conf = parse_upsmon_conf(b"MONITOR a@h 1 u p primary\n", "upsmon.conf")
        made = UpsmonService(conf, Clock(), lambda spec, prepare: FakeSession(spec, prepare),
                             FakeRunner(), sig=sig)  # type: ignore[arg-type]
        made.startService()
        self.addCleanup(made.stopService)
        self.assertEqual(set(sig.handlers.values()), {sig.SIG_DFL})


class StartupTests(SynchronousTestCase):
    """
    Fail before start (C{twistd nut-upsmon} options): one line naming the
    file and line, exit status 1, no usage text.
    """

    def parse(self, *args: str) -> str:
        from nutshim.upsmon.tap import Options

        e = self.assertRaises(SystemExit, Options().parseOptions, list(args))
        self.assertNotIsInstance(e, UsageError)
        message = str(e.code)
        self.assertNotIn("\n", message)
        return message

    def test_line_of_the_fault(self) -> None:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("# a comment\nMONITOR ups 1 u\n")
        os.chmod(path, 0o600)
        self.assertTrue(self.parse("--config", path).startswith(f"nut-upsmon: {path}:2: "))

    def test_nut_command(self) -> None:
        """
        C{-c fsd|stop|reload} (NUT upsmon's habit, read as C{--config})
        says what does that for nut-upsmon.
        """
        self.assertIn("send SIGUSR2", self.parse("-c", "fsd"))
        self.assertIn("SIGTERM", self.parse("-c", "stop"))
        self.assertIn("SIGHUP", self.parse("-c", "reload"))


class SystemdTests(SynchronousTestCase):
    """
    nut-upsmon under C{Type=notify}: READY=1 once every UPS answered (or
    after DEADTIME), RELOADING=1/READY=1 around SIGHUP, STOPPING=1.
    """

    def setUp(self) -> None:
        from nutshim.sdnotify import Notifier, ServiceNotifier
        from nutshim.test.test_sdnotify import Sockets

        self.sockets = Sockets()
        self.clock = Clock()
        self.conf = parse_upsmon_conf(
            b'MONITOR a@h 1 u p primary\nMONITOR b@h 1 u p primary\nMINSUPPLIES 1\n'
            b'SHUTDOWNCMD "/sbin/poweroff"\nDEADTIME 15\n', "upsmon.conf")
        self.sessions: List[FakeSession] = []

        def sessions(spec: Monitor, prepare: Callable[[Any], Deferred[None]]) -> FakeSession:
            session = FakeSession(spec, prepare)
            self.sessions.append(session)
            return session

        notifier = ServiceNotifier(Notifier("/run/notify", self.sockets), self.clock, lambda: "")
        self.sig = FakeSignal()
        self.reactor = FakeReactor()
        self.service = UpsmonService(self.conf, self.clock, sessions, FakeRunner(),
                                     reader=lambda: self.conf, reactor=self.reactor,
                                     sig=self.sig, notifier=notifier)  # type: ignore[arg-type]
        self.service.startService()

    def messages(self) -> List[List[str]]:
        return self.sockets.messages()

    def test_ready_when_every_ups_answered(self) -> None:
        """
        READY=1 waits for the first status of every UPS, and says how they are.
        """
        self.sessions[0].connect(FakeClient("OL"))
        self.clock.advance(0.5)
        self.assertEqual(self.messages(), [])
        self.sessions[1].connect(FakeClient("OB DISCHRG"))
        self.clock.advance(0.5)
        self.assertEqual(self.messages(),
                         [["READY=1", "STATUS=2 UPS monitored (1 on battery, 1 online)"]])

    def test_ready_after_deadtime(self) -> None:
        """
        A server that never answers holds READY=1 for DEADTIME only, and
        the status names the UPS without contact.
        """
        self.sessions[0].connect(FakeClient("OL"))
        self.clock.advance(14.5)
        self.assertEqual(self.messages(), [])
        self.clock.advance(1)
        [ready] = self.messages()
        self.assertEqual(ready[0], "READY=1")
        self.assertIn("1 no contact", ready[1])
        self.assertIn("no data yet from b@h", ready[1])

    def test_reload_and_stop(self) -> None:
        """
        SIGHUP is told as RELOADING=1 then READY=1 (also when the new file
        is refused); stopping as STOPPING=1.
        """
        for session in self.sessions:
            session.connect(FakeClient("OL"))
        self.clock.advance(0.5)
        self.sig.deliver(self.sig.SIGHUP)
        self.reactor.run_calls()

        from nutshim.config import ConfigError, UpsmonConf

        def broken() -> UpsmonConf:
            raise ConfigError("upsmon.conf", 3, "broken")
        self.service._reader = broken
        self.sig.deliver(self.sig.SIGHUP)
        self.reactor.run_calls()
        self.service.stopService()
        kinds = [m[0] for m in self.messages()]
        self.assertEqual(kinds, ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1",
                                 "STOPPING=1"])
        self.assertIn("reload refused", self.messages()[4][-1])
