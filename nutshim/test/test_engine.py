"""
Tests for L{nutshim.upsd.engine}: NUT 2.8.0's replies, byte for byte.

Expected bytes come from NUT 2.8.0's upsd as observed on the wire (see
shared/reference/nut-upsd-2.8.0.md); the differential test in tests/ checks
the same against the real binary.
"""

from __future__ import annotations

from typing import List, Tuple

from twisted.internet.task import Clock
from twisted.logger import LogEvent, Logger, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from nutshim.config.cmdvartab import parse_cmdvartab
from nutshim.config.users import parse_users
from nutshim.protocol import ParseError, RequestTokenizer, parse_request
from nutshim.testing import MemoryDriver
from nutshim.upsd.engine import Action, Engine
from nutshim.upsd.registry import Registry, Session, UpsEntry
from nutshim.upsd.tracking import TrackingTable

USERS = b"""
[admin]
  password = pw
  actions = SET FSD
  instcmds = ALL
[mon]
  password = mpw
  upsmon primary
[sec]
  password = spw
  upsmon secondary
[nobody]
  password = x
"""


def build() -> Tuple[Engine, MemoryDriver, Clock]:
    clock = Clock()
    registry = Registry()
    driver = MemoryDriver()
    st = driver.state
    st.set_info("ups.status", "OL CHRG")
    st.set_info("battery.charge", "90")
    st.set_info("ups.id", 'my "quoted" id')
    st.set_info("ups.beeper.status", "enabled")
    st.set_info("input.transfer.low", "160")
    st.set_info("device.model", "Test")
    for name in ("ups.id", "ups.beeper.status"):
        st.set_flags(name, ["RW", "STRING"])
        st.set_aux(name, 16)
    st.set_flags("input.transfer.low", ["RW"])
    st.add_enum("ups.beeper.status", "enabled")
    st.add_enum("ups.beeper.status", "disabled")
    st.add_range("input.transfer.low", 150, 170)
    st.add_range("input.transfer.low", 180, 190)
    for cmd in ("load.on", "beeper.toggle", "Zeta.cmd", "alpha.cmd"):
        st.add_command(cmd)
    registry.add(UpsEntry("fake", 'Test "quoted" UPS', driver, "memory", "x"))
    registry.add(UpsEntry("nodesc", None, MemoryDriver(connected=False), "memory", "y"))
    users = parse_users(USERS, "upsd.users")
    engine = Engine(registry, users, TrackingTable(clock.seconds, 3600.0))
    return engine, driver, clock


class Conversation:
    """
    One client connection's requests, answered by the engine.
    """

    def __init__(self, engine: Engine, address: str = "127.0.0.1") -> None:
        self.engine = engine
        self.session = Session(address)
        engine.registry.open(self.session)
        self.tokenizer = RequestTokenizer()
        self.actions: List[Action] = []

    def send(self, data: bytes) -> bytes:
        out = b""
        for line in data.split(b"\n")[:-1]:
            words = self.tokenizer.line(line)
            if words is None:
                continue
            if isinstance(words, ParseError):
                out += b"ERR INVALID-ARGUMENT\n"
                continue
            reply, action = self.engine.handle(self.session, parse_request(words))
            self.actions.append(action)
            out += reply
        return out

    def login(self, user: bytes = b"admin", pw: bytes = b"pw") -> None:
        self.send(b"USERNAME " + user + b"\nPASSWORD " + pw + b"\n")


class SimpleCommandTests(SynchronousTestCase):
    """
    Commands without a UPS.
    """

    def setUp(self) -> None:
        self.engine, self.driver, self.clock = build()
        self.c = Conversation(self.engine)

    def test_ver(self) -> None:
        """
        VER names nutshim; extra arguments are INVALID-ARGUMENT.
        """
        self.assertTrue(self.c.send(b"VER\n").startswith(b"nutshim upsd "))
        self.assertEqual(self.c.send(b"VER x\n"), b"ERR INVALID-ARGUMENT\n")

    def test_protver(self) -> None:
        """
        PROTVER and NETVER answer 1.3, case-insensitively.
        """
        self.assertEqual(self.c.send(b"PROTVER\nnetver\n"), b"1.3\n1.3\n")

    def test_help(self) -> None:
        """
        HELP gives the text of NUT 2.8.3 and later (2.8.5's
        C{server/netmisc.c}): PROTVER listed, NETVER, PRIMARY, MASTER and
        FSD not.
        """
        self.assertEqual(
            self.c.send(b"HELP\n"),
            b"Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n",
        )

    def test_unknown(self) -> None:
        """
        Empty, comment-only and unknown lines are UNKNOWN-COMMAND.
        """
        self.assertEqual(
            self.c.send(b"\n   \n# x\nREQ fake ups.status\nNUMLOGINS fake\n"),
            b"ERR UNKNOWN-COMMAND\n" * 5,
        )

    def test_starttls_unconfigured(self) -> None:
        """
        Without a certificate STARTTLS is FEATURE-NOT-CONFIGURED.
        """
        self.assertEqual(self.c.send(b"STARTTLS\n"), b"ERR FEATURE-NOT-CONFIGURED\n")

    def test_username_password(self) -> None:
        """
        USERNAME/PASSWORD accept anything once; a second is ALREADY-SET;
        `=` is a word of its own.
        """
        self.assertEqual(self.c.send(b"USERNAME a=b\n"), b"ERR INVALID-ARGUMENT\n")
        self.assertEqual(self.c.send(b'USERNAME "a=b"\n'), b"OK\n")
        self.assertEqual(self.c.send(b"USERNAME x\n"), b"ERR ALREADY-SET-USERNAME\n")
        self.assertEqual(self.c.send(b'PASSWORD ""\nPASSWORD y\n'), b"OK\nERR ALREADY-SET-PASSWORD\n")

    def test_parse_error(self) -> None:
        """
        An unescaped # in quotes answers INVALID-ARGUMENT and the next
        pipelined line still runs (NUT would lose both).
        """
        self.assertEqual(self.c.send(b'GET VAR "a#b"\nPROTVER\n'), b"ERR INVALID-ARGUMENT\n1.3\n")


class GetTests(SynchronousTestCase):
    """
    GET sub-commands.
    """

    def setUp(self) -> None:
        self.engine, self.driver, self.clock = build()
        self.c = Conversation(self.engine)

    def test_get_var_echo(self) -> None:
        """
        GET VAR echoes the client's spelling and escapes the value.
        """
        self.assertEqual(self.c.send(b"GET VAR FAKE UPS.STATUS\n"), b'VAR FAKE UPS.STATUS "OL CHRG"\n')
        self.assertEqual(self.c.send(b"get var fake ups.id\n"), b'VAR fake ups.id "my \\"quoted\\" id"\n')

    def test_get_var_errors(self) -> None:
        """
        Argument gate, then UNKNOWN-UPS, DRIVER-NOT-CONNECTED, DATA-STALE,
        VAR-NOT-SUPPORTED.
        """
        self.assertEqual(
            self.c.send(b"GET\nGET VAR\nGET VAR fake\nGET BOGUS a b c\n"), b"ERR INVALID-ARGUMENT\n" * 4
        )
        self.assertEqual(self.c.send(b"GET VAR nosuch ups.status\n"), b"ERR UNKNOWN-UPS\n")
        self.assertEqual(self.c.send(b"GET VAR nodesc ups.status\n"), b"ERR DRIVER-NOT-CONNECTED\n")
        self.driver.stale = True
        self.assertEqual(self.c.send(b"GET VAR fake ups.status\n"), b"ERR DATA-STALE\n")
        self.driver.stale = False
        self.assertEqual(self.c.send(b"GET VAR fake ups.bogus\n"), b"ERR VAR-NOT-SUPPORTED\n")

    def test_server_vars(self) -> None:
        """
        server.* never checks the UPS and answers in lower case.
        """
        out = self.c.send(b"GET VAR nosuch SERVER.VERSION\n")
        self.assertTrue(out.startswith(b'VAR nosuch server.version "'))
        self.assertEqual(self.c.send(b"GET VAR x server.bogus\n"), b"ERR VAR-NOT-SUPPORTED\n")

    def test_get_type(self) -> None:
        """
        GET TYPE composes RW, ENUM, RANGE and STRING:n or NUMBER.
        """
        self.assertEqual(
            self.c.send(b"GET TYPE fake ups.beeper.status\n"),
            b"TYPE fake ups.beeper.status RW ENUM STRING:16\n",
        )
        self.assertEqual(
            self.c.send(b"GET TYPE fake input.transfer.low\n"),
            b"TYPE fake input.transfer.low RW RANGE NUMBER\n",
        )
        self.assertEqual(self.c.send(b"GET TYPE fake device.model\n"), b"TYPE fake device.model NUMBER\n")

    def test_descs(self) -> None:
        """
        Without cmdvartab every description is "Description unavailable";
        UPSDESC defaults to "Unavailable".
        """
        self.assertEqual(
            self.c.send(b"GET DESC fake ups.status\nGET CMDDESC fake load.on\n"),
            b'DESC fake ups.status "Description unavailable"\n'
            b'CMDDESC fake load.on "Description unavailable"\n',
        )
        self.assertEqual(
            self.c.send(b"GET UPSDESC fake\nGET UPSDESC nodesc\n"),
            b'UPSDESC fake "Test \\"quoted\\" UPS"\nUPSDESC nodesc "Unavailable"\n',
        )


class ListTests(SynchronousTestCase):
    """
    LIST sub-commands.
    """

    def setUp(self) -> None:
        self.engine, self.driver, self.clock = build()
        self.c = Conversation(self.engine)

    def test_list_ups(self) -> None:
        """
        LIST UPS in config order with encoded descriptions.
        """
        self.assertEqual(
            self.c.send(b"LIST ups\n"),
            b'BEGIN LIST UPS\nUPS fake "Test \\"quoted\\" UPS"\n'
            b'UPS nodesc "Description unavailable"\nEND LIST UPS\n',
        )

    def test_list_var_order(self) -> None:
        """
        LIST VAR sorts by lower-cased name and echoes the UPS as typed.
        """
        out = self.c.send(b"list var FAKE\n").split(b"\n")
        self.assertEqual(out[0], b"BEGIN LIST VAR FAKE")
        names = [line.split(b" ")[2] for line in out[1:-2]]
        self.assertEqual(names, sorted(names, key=lambda n: n.lower()))
        self.assertEqual(out[-2], b"END LIST VAR FAKE")

    def test_list_rw_no_fsd(self) -> None:
        """
        FSD shows in LIST VAR and GET VAR, not in LIST RW.
        """
        self.driver.state.set_flags("ups.status", ["RW", "STRING"])
        self.c.login(b"admin", b"pw")
        self.assertEqual(self.c.send(b"FSD fake\n"), b"OK FSD-SET\n")
        self.assertIn(b'VAR fake ups.status "FSD OL CHRG"\n', self.c.send(b"LIST VAR fake\n"))
        self.assertEqual(self.c.send(b"GET VAR fake ups.status\n"), b'VAR fake ups.status "FSD OL CHRG"\n')
        self.assertIn(b'RW fake ups.status "OL CHRG"\n', self.c.send(b"LIST RW fake\n"))

    def test_list_cmd(self) -> None:
        """
        LIST CMD is sorted case-insensitively.
        """
        self.assertEqual(
            self.c.send(b"LIST CMD fake\n"),
            b"BEGIN LIST CMD fake\nCMD fake alpha.cmd\nCMD fake beeper.toggle\n"
            b"CMD fake load.on\nCMD fake Zeta.cmd\nEND LIST CMD fake\n",
        )

    def test_enum_range(self) -> None:
        """
        ENUM and RANGE keep insertion order; a var without them gives an
        empty list; a missing var is VAR-NOT-SUPPORTED.
        """
        self.assertEqual(
            self.c.send(b"LIST ENUM fake ups.beeper.status\n"),
            b"BEGIN LIST ENUM fake ups.beeper.status\n"
            b'ENUM fake ups.beeper.status "enabled"\nENUM fake ups.beeper.status "disabled"\n'
            b"END LIST ENUM fake ups.beeper.status\n",
        )
        self.assertEqual(
            self.c.send(b"LIST RANGE fake input.transfer.low\n"),
            b"BEGIN LIST RANGE fake input.transfer.low\n"
            b'RANGE fake input.transfer.low "150" "170"\nRANGE fake input.transfer.low "180" "190"\n'
            b"END LIST RANGE fake input.transfer.low\n",
        )
        self.assertEqual(
            self.c.send(b"LIST ENUM FAKE ups.status\n"),
            b"BEGIN LIST ENUM FAKE ups.status\nEND LIST ENUM FAKE ups.status\n",
        )
        self.assertEqual(self.c.send(b"LIST ENUM fake nope\n"), b"ERR VAR-NOT-SUPPORTED\n")

    def test_list_client(self) -> None:
        """
        LIST CLIENT shows logged-in connections, newest first, with the
        canonical UPS name, and needs no driver.
        """
        other = Conversation(self.engine, "::1")
        self.c.login(b"sec", b"spw")
        other.login(b"sec", b"spw")
        self.assertEqual(self.c.send(b"LOGIN fake\n"), b"OK\n")
        self.assertEqual(other.send(b"LOGIN FAKE\n"), b"OK\n")
        self.assertEqual(
            self.c.send(b"LIST CLIENT Fake\n"),
            b"BEGIN LIST CLIENT Fake\nCLIENT fake ::1\nCLIENT fake 127.0.0.1\nEND LIST CLIENT Fake\n",
        )
        self.assertEqual(self.c.send(b"LIST CLIENT nodesc\n"), b"BEGIN LIST CLIENT nodesc\nEND LIST CLIENT nodesc\n")


class RememberedListTests(SynchronousTestCase):
    """
    LIST VAR/RW/CMD replies are built once and reused; anything that could
    change them (the driver's data, the FSD latch, a new driver, the
    driver's availability) makes the next reply fresh.
    """

    def setUp(self) -> None:
        self.engine, self.driver, self.clock = build()
        self.c = Conversation(self.engine)

    def test_same_bytes_reused(self) -> None:
        """
        Asking twice without a change gives the very same reply object.
        """
        session = self.c.session
        request = parse_request(["LIST", "VAR", "fake"])
        first, _ = self.engine.handle(session, request)
        second, _ = self.engine.handle(session, parse_request(["LIST", "VAR", "fake"]))
        self.assertIs(first, second)

    def test_data_change(self) -> None:
        """
        A SETINFO, a new command, a new RW flag show in the next reply.
        """
        self.c.send(b"LIST VAR fake\nLIST CMD fake\nLIST RW fake\n")
        self.driver.state.set_info("battery.charge", "42")
        self.driver.state.add_command("test.battery.start")
        self.driver.state.set_flags("device.model", ["RW", "STRING"])
        self.assertIn(b'VAR fake battery.charge "42"\n', self.c.send(b"LIST VAR fake\n"))
        self.assertIn(b"CMD fake test.battery.start\n", self.c.send(b"LIST CMD fake\n"))
        self.assertIn(b'RW fake device.model "Test"\n', self.c.send(b"LIST RW fake\n"))

    def test_fsd(self) -> None:
        """
        Setting the FSD latch shows in the next LIST VAR.
        """
        self.assertIn(b'"OL CHRG"', self.c.send(b"LIST VAR fake\n"))
        self.c.login(b"admin", b"pw")
        self.c.send(b"FSD fake\n")
        self.assertIn(b'VAR fake ups.status "FSD OL CHRG"\n', self.c.send(b"LIST VAR fake\n"))

    def test_new_driver(self) -> None:
        """
        A reload that gives the UPS another driver (whose state may have
        the same generation number) is never answered from the old one.
        """
        self.c.send(b"LIST VAR fake\n")
        entry = self.engine.registry.get("fake")
        assert entry is not None
        other = MemoryDriver()
        for _ in range(self.driver.state.generation - 1):
            other.state.set_info("x.counter", str(other.state.generation))
        other.state.set_info("ups.status", "OB")
        self.assertEqual(other.state.generation, self.driver.state.generation)
        entry.driver = other
        self.assertIn(b'VAR fake ups.status "OB"\n', self.c.send(b"LIST VAR fake\n"))

    def test_availability_checked_every_time(self) -> None:
        """
        A stale or disconnected driver is refused even when a reply is
        remembered.
        """
        self.c.send(b"LIST VAR fake\n")
        self.driver.stale = True
        self.assertEqual(self.c.send(b"LIST VAR fake\n"), b"ERR DATA-STALE\n")
        self.driver.stale = False
        self.driver.connected = False
        self.assertEqual(self.c.send(b"LIST VAR fake\n"), b"ERR DRIVER-NOT-CONNECTED\n")

    def test_spelling_kept(self) -> None:
        """
        Each spelling of the UPS name is echoed as typed, and the number of
        remembered replies stays bounded.
        """
        self.assertTrue(self.c.send(b"LIST VAR FAKE\n").startswith(b"BEGIN LIST VAR FAKE\n"))
        self.assertTrue(self.c.send(b"LIST VAR fake\n").startswith(b"BEGIN LIST VAR fake\n"))
        entry = self.engine.registry.get("fake")
        assert entry is not None
        names = [
            "".join(ch.upper() if (i >> k) & 1 else ch for k, ch in enumerate("fake"))
            for i in range(16)
        ]
        for _ in range(entry.REPLIES_MAX // 16 + 2):
            for name in names:
                for verb in (b"VAR", b"RW", b"CMD"):
                    self.c.send(b"LIST " + verb + b" " + name.encode() + b"\n")
        self.assertLessEqual(len(entry.replies()), entry.REPLIES_MAX)


class LoginTests(SynchronousTestCase):
    """
    USERNAME/PASSWORD, LOGIN/ATTACH, PRIMARY/MASTER, FSD and counting.
    """

    def setUp(self) -> None:
        self.engine, self.driver, self.clock = build()
        self.c = Conversation(self.engine)

    def test_precedence(self) -> None:
        """
        USERNAME-REQUIRED and PASSWORD-REQUIRED come before argument checks.
        """
        self.assertEqual(self.c.send(b"LOGIN\n"), b"ERR USERNAME-REQUIRED\n")
        self.c.send(b"USERNAME admin\n")
        self.assertEqual(self.c.send(b"SET\n"), b"ERR PASSWORD-REQUIRED\n")
        self.c.send(b"PASSWORD pw\n")
        self.assertEqual(self.c.send(b"LOGIN a b\n"), b"ERR INVALID-ARGUMENT\n")

    def test_login_counting(self) -> None:
        """
        LOGIN and ATTACH share one counter, shown by NUMLOGINS and NUMATTACH,
        dropped when the session closes.
        """
        self.c.login(b"mon", b"mpw")
        self.assertEqual(self.c.send(b"LOGIN fake\n"), b"OK\n")
        self.assertEqual(self.c.send(b"LOGIN fake\n"), b"ERR ALREADY-LOGGED-IN\n")
        self.assertEqual(self.c.send(b"ATTACH fake\n"), b"ERR ALREADY-ATTACHED\n")
        other = Conversation(self.engine)
        other.login(b"sec", b"spw")
        self.assertEqual(other.send(b"ATTACH fake\n"), b"OK\n")
        self.assertEqual(
            self.c.send(b"GET NUMLOGINS fake\nGET NUMATTACH fake\n"),
            b"NUMLOGINS fake 2\nNUMATTACH fake 2\n",
        )
        self.engine.registry.close(other.session)
        self.assertEqual(self.c.send(b"GET NUMLOGINS fake\n"), b"NUMLOGINS fake 1\n")

    def test_login_denied(self) -> None:
        """
        A user without the LOGIN action, or a wrong password, is denied.
        """
        self.c.login(b"admin", b"wrong")
        self.assertEqual(self.c.send(b"LOGIN fake\n"), b"ERR ACCESS-DENIED\n")
        self.assertEqual(self.c.send(b"LOGIN nosuch\n"), b"ERR UNKNOWN-UPS\n")

    def test_login_no_driver(self) -> None:
        """
        LOGIN, PRIMARY and FSD work while the driver is down; NUMLOGINS not.
        """
        self.c.login(b"mon", b"mpw")
        self.assertEqual(
            self.c.send(b"LOGIN nodesc\nPRIMARY nodesc\nMASTER nodesc\nFSD nodesc\nGET NUMLOGINS nodesc\n"),
            b"OK\nOK PRIMARY-GRANTED\nOK MASTER-GRANTED\nOK FSD-SET\nERR DRIVER-NOT-CONNECTED\n",
        )

    def test_secondary_not_primary(self) -> None:
        """
        upsmon secondary grants LOGIN only.
        """
        self.c.login(b"sec", b"spw")
        self.assertEqual(
            self.c.send(b"PRIMARY fake\nFSD fake\nLOGIN fake\n"),
            b"ERR ACCESS-DENIED\nERR ACCESS-DENIED\nOK\n",
        )

    def test_logout(self) -> None:
        """
        LOGOUT answers OK Goodbye and asks the connection to close; DETACH
        leaves the count at once.
        """
        self.c.login(b"mon", b"mpw")
        self.c.send(b"ATTACH fake\n")
        self.assertEqual(self.c.send(b"DETACH\n"), b"OK Goodbye\n")
        self.assertEqual(self.c.actions[-1], Action.CLOSE)
        self.assertEqual(self.engine.registry.get("fake").numlogins, 0)  # type: ignore[union-attr]
        self.assertEqual(self.c.send(b"LOGOUT x\n"), b"ERR INVALID-ARGUMENT\n")


class SetInstcmdTests(SynchronousTestCase):
    """
    SET VAR, INSTCMD and TRACKING.
    """

    def setUp(self) -> None:
        self.engine, self.driver, self.clock = build()
        self.c = Conversation(self.engine)
        self.c.login()

    def test_set_order(self) -> None:
        """
        ACCESS-DENIED comes before VAR-NOT-SUPPORTED; then READONLY,
        TOO-LONG, INVALID-VALUE.
        """
        denied = Conversation(self.engine)
        denied.login(b"sec", b"spw")
        self.assertEqual(denied.send(b"SET VAR fake nope 1\n"), b"ERR ACCESS-DENIED\n")
        self.assertEqual(self.c.send(b"SET VAR fake nope 1\n"), b"ERR VAR-NOT-SUPPORTED\n")
        self.assertEqual(self.c.send(b"SET VAR fake device.model x\n"), b"ERR READONLY\n")
        self.assertEqual(self.c.send(b'SET VAR fake ups.id "12345678901234567"\n'), b"ERR TOO-LONG\n")
        self.assertEqual(self.c.send(b"SET VAR fake ups.beeper.status on\n"), b"ERR INVALID-VALUE\n")
        self.assertEqual(self.c.send(b"SET VAR fake input.transfer.low 175\n"), b"ERR INVALID-VALUE\n")
        self.assertEqual(self.c.send(b"SET VAR fake input.transfer.low 155abc\n"), b"ERR INVALID-VALUE\n")
        self.assertEqual(self.driver.requests, [])
        self.assertEqual(self.c.send(b"SET VAR fake input.transfer.low 185 extra\n"), b"OK\n")
        self.assertEqual(self.driver.requests, [("SET", "input.transfer.low", "185", None)])

    def test_set_enum_escapes(self) -> None:
        """
        SET on an ENUM compares the value itself with the listed values.
        NUT 2.8.0 compares it with their escaped text instead, refusing
        C{hi"q} and accepting C{hi\\"q} (a deliberate difference, see
        docs/compatibility.md; tests/test_differential.py checks both sides).
        """
        self.driver.state.add_enum("ups.beeper.status", 'hi"q')
        self.driver.state.add_enum("ups.beeper.status", "e#f")
        self.assertEqual(
            self.c.send(b'SET VAR fake ups.beeper.status "hi\\"q"\nSET VAR fake ups.beeper.status "e\\#f"\n'),
            b"OK\nOK\n",
        )
        self.assertEqual(
            self.c.send(b'SET VAR fake ups.beeper.status "hi\\\\\\"q"\nSET VAR fake ups.beeper.status "e\\\\\\#f"\n'),
            b"ERR INVALID-VALUE\nERR INVALID-VALUE\n",
        )
        self.assertEqual(
            self.driver.requests,
            [("SET", "ups.beeper.status", 'hi"q', None), ("SET", "ups.beeper.status", "e#f", None)],
        )

    def test_set_failed(self) -> None:
        """
        A driver that cannot take the request gives SET-FAILED.
        """
        self.driver.deliver = False
        self.assertEqual(self.c.send(b"SET VAR fake ups.beeper.status disabled\n"), b"ERR SET-FAILED\n")

    def test_instcmd(self) -> None:
        """
        CMD-NOT-SUPPORTED comes before ACCESS-DENIED; the parameter is used
        only when it is the one extra word.
        """
        denied = Conversation(self.engine)
        denied.login(b"sec", b"spw")
        self.assertEqual(denied.send(b"INSTCMD fake nope\n"), b"ERR CMD-NOT-SUPPORTED\n")
        self.assertEqual(denied.send(b"INSTCMD fake load.on\n"), b"ERR ACCESS-DENIED\n")
        self.assertEqual(self.c.send(b"INSTCMD fake LOAD.ON 5\nINSTCMD fake load.on 1 2\n"), b"OK\nOK\n")
        self.assertEqual(
            self.driver.requests,
            [("INSTCMD", "LOAD.ON", "5", None), ("INSTCMD", "load.on", None, None)],
        )

    def test_tracking(self) -> None:
        """
        With tracking ON, requests get an upper-case id whose status the
        driver's report changes; ids expire after TRACKINGDELAY.
        """
        self.assertEqual(self.c.send(b"GET TRACKING\n"), b"OFF\n")
        self.assertEqual(self.c.send(b"GET TRACKING abc\n"), b"ERR FEATURE-NOT-CONFIGURED\n")
        self.assertEqual(self.c.send(b"SET TRACKING on\nGET TRACKING\n"), b"OK\nON\n")
        out = self.c.send(b"INSTCMD fake load.on\n")
        self.assertTrue(out.startswith(b"OK TRACKING "))
        tid = out.split()[2].decode()
        self.assertEqual(tid, tid.upper())
        self.assertEqual(self.c.send(f"GET TRACKING {tid.lower()}\n".encode()), b"PENDING\n")
        self.engine.tracking.report(tid, 0)
        self.assertEqual(self.c.send(f"GET TRACKING {tid}\n".encode()), b"SUCCESS\n")
        self.clock.advance(3601)
        self.assertEqual(self.c.send(f"GET TRACKING {tid}\n".encode()), b"ERR UNKNOWN\n")
        self.assertEqual(self.c.send(b"SET TRACKING maybe\n"), b"ERR INVALID-ARGUMENT\n")


class TLSRequiredTests(SynchronousTestCase):
    """
    RFC 9271 section 6.2: the server refuses plaintext where TLS is required.
    """

    def test_refused_before_starttls(self) -> None:
        """
        Everything but STARTTLS, HELP and PROTVER/NETVER is TLS-NOT-ENABLED,
        credentials included.
        """
        engine, _, _ = build()
        c = Conversation(engine, "192.0.2.7")
        c.session.tls_required = True
        self.assertEqual(
            c.send(b"USERNAME admin\nPASSWORD pw\nLIST UPS\nVER\n"), b"ERR TLS-NOT-ENABLED\n" * 4
        )
        self.assertIsNone(c.session.username)
        self.assertEqual(c.send(b"PROTVER\n"), b"1.3\n")
        c.session.tls = True
        self.assertEqual(c.send(b"STARTTLS\n"), b"ERR TLS-ALREADY-ENABLED\n")
        self.assertEqual(c.send(b"USERNAME admin\n"), b"OK\n")


class UpstreamDescriptionTests(SynchronousTestCase):
    """
    NUT 2.8.4's C{upstream.} prefix (C{server/netget.c}): a proxying
    driver's C{upstream.<name>} is described as C{<name>}, and the reply
    echoes the name as asked.
    """

    CMDVARTAB = (
        b'VARDESC ups.status "UPS status"\n'
        b'VARDESC upstream.only "described under its full name"\n'
        b'CMDDESC load.off "Turn off the load immediately"\n'
    )

    def setUp(self) -> None:
        self.engine, _, _ = build()
        self.engine.descriptions = parse_cmdvartab(self.CMDVARTAB, "cmdvartab")
        self.c = Conversation(self.engine)

    def test_desc(self) -> None:
        """
        C{GET DESC <ups> upstream.<var>} answers C{<var>}'s description
        under the name as asked.
        """
        self.assertEqual(
            self.c.send(b"GET DESC fake upstream.ups.status\nGET DESC fake upstream.UPS.Status\n"),
            b'DESC fake upstream.ups.status "UPS status"\nDESC fake upstream.UPS.Status "UPS status"\n',
        )

    def test_cmddesc(self) -> None:
        """
        C{GET CMDDESC <ups> upstream.<cmd>} likewise.
        """
        self.assertEqual(
            self.c.send(b"GET CMDDESC fake upstream.load.off\n"),
            b'CMDDESC fake upstream.load.off "Turn off the load immediately"\n',
        )

    def test_prefix_rules(self) -> None:
        """
        As NUT's C{strncmp}: the prefix is case-sensitive and stripped once,
        and always: a name that itself starts with C{upstream.} is looked
        up without it.
        """
        self.assertEqual(
            self.c.send(
                b"GET DESC fake UPSTREAM.ups.status\n"
                b"GET DESC fake upstream.upstream.ups.status\n"
                b"GET DESC fake upstream.only\n"
                b"GET DESC fake upstream.\n"
                b"GET CMDDESC fake Upstream.load.off\n"
            ),
            b'DESC fake UPSTREAM.ups.status "Description unavailable"\n'
            b'DESC fake upstream.upstream.ups.status "Description unavailable"\n'
            b'DESC fake upstream.only "Description unavailable"\n'
            b'DESC fake upstream. "Description unavailable"\n'
            b'CMDDESC fake Upstream.load.off "Description unavailable"\n',
        )

    def test_plain_names_unchanged(self) -> None:
        """
        Names without the prefix are described as before.
        """
        self.assertEqual(
            self.c.send(b"GET DESC fake ups.status\nGET CMDDESC fake load.off\n"),
            b'DESC fake ups.status "UPS status"\n'
            b'CMDDESC fake load.off "Turn off the load immediately"\n',
        )


class CleartextPasswordTests(SynchronousTestCase):
    """
    RFC 9271 section 6.2: a password used in plaintext from another host is
    logged (once per connection), naming the user, the UPS and the peer.
    """

    def setUp(self) -> None:
        self.engine, _, _ = build()
        self.events: List[LogEvent] = []
        self.engine.log = Logger(observer=self.events.append)  # type: ignore[arg-type]

    def conversation(self, address: str, loopback: bool = False) -> Conversation:
        c = Conversation(self.engine, address)
        c.session.loopback = loopback
        return c

    def warnings(self) -> List[str]:
        return [formatEvent(e) for e in self.events if e["log_level"] is LogLevel.warn]

    def test_login_from_network(self) -> None:
        """
        LOGIN from a network address in plaintext: one WARN line with the
        user, the UPS, the peer and what it means; later uses of the same
        password on that connection add nothing.
        """
        c = self.conversation("192.0.2.7")
        c.login(b"mon", b"mpw")
        self.assertEqual(self.warnings(), [])
        self.assertEqual(c.send(b"LOGIN fake\nPRIMARY fake\nFSD fake\n"), b"OK\nOK PRIMARY-GRANTED\nOK FSD-SET\n")
        [line] = self.warnings()
        for fragment in ("192.0.2.7", "user mon", "LOGIN on UPS fake", "accepted", "in clear", "STARTTLS"):
            self.assertIn(fragment, line)

    def test_each_command(self) -> None:
        """
        ATTACH, PRIMARY, FSD, SET and INSTCMD check the password too: the
        first of them on a connection is logged, refused ones included.
        """
        cases = [
            (b"mon", b"mpw", b"ATTACH fake\n", "user mon (ATTACH on UPS fake, accepted)"),
            (b"mon", b"mpw", b"PRIMARY fake\n", "user mon (PRIMARY on UPS fake, accepted)"),
            (b"admin", b"pw", b"FSD fake\n", "user admin (FSD on UPS fake, accepted)"),
            (b"admin", b"pw", b"SET VAR fake ups.id x\n", "user admin (SET on UPS fake, accepted)"),
            (b"admin", b"pw", b"INSTCMD fake load.on\n", "user admin (INSTCMD on UPS fake, accepted)"),
            (b"sec", b"spw", b"INSTCMD fake load.on\n", "user sec (INSTCMD on UPS fake, refused)"),
        ]
        for user, password, request, fragment in cases:
            del self.events[:]
            c = self.conversation("2001:db8::7")
            c.login(user, password)
            c.send(request)
            [line] = self.warnings()
            self.assertIn(fragment, line)
            self.assertIn("from 2001:db8::7:", line)
        del self.events[:]
        c = self.conversation("192.0.2.8")
        c.login(b"admin", b"wrong")
        self.assertEqual(c.send(b"LOGIN fake\n"), b"ERR ACCESS-DENIED\n")
        [line] = self.warnings()
        self.assertIn("user admin (LOGIN on UPS fake, refused)", line)

    def test_not_logged(self) -> None:
        """
        Loopback (IPv4, IPv6, IPv4-mapped), Unix-socket peers and TLS
        sessions are not logged; nor is a request that never checks a
        password.
        """
        for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "unknown"):
            c = self.conversation(address, loopback=address != "unknown")
            c.login()
            c.send(b"LOGIN fake\nFSD fake\n")
        tls = self.conversation("192.0.2.9")
        tls.session.tls = True
        tls.login()
        tls.send(b"LOGIN fake\n")
        plain = self.conversation("192.0.2.10")
        plain.login()
        plain.send(b"GET VAR fake ups.status\nLIST UPS\nSET TRACKING ON\n")
        self.assertEqual(self.warnings(), [])
