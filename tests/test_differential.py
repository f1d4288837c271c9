"""
Differential tests: NUT 2.8.0's C upsd and nutshim's upsd, side by side.

One private directory holds one C{ups.conf} with three UPSes:

 - C{dev}: NUT's C{dummy-ups} playing a C{.dev} file with quoted and escaped
   values (and a mixed-case variable name);
 - C{seq}: NUT's C{dummy-ups} playing a C{.seq} file;
 - C{sim}: C{nutshim-driver -a sim} (C{driver = nutshim-sim}, C{nutshim-driver
   = external}) playing a C{.dev} with nutshim's extensions: ENUM, RANGE,
   read-only variables, C{STRING:n} limits and instant commands.

NUT's C upsd and nutshim's C{twistd nut-upsd} both read that directory and
attach to the I{same} driver sockets.  The same bytes are then sent to both
over raw sockets (sequentially per connection: a step's replies are read
before the next step is sent) and the replies are compared byte for byte,
including whether the connection is still open at the end.  Each table row
is a request sequence; a mismatch names the row and shows both transcripts.

Where nutshim differs on purpose (docs/compatibility.md is the authority),
the row states I{both} sides' exact replies, so the list of differences is
executable: a difference that disappears, or a new one, fails here.

The driver life cycle is compared too: a driver killed (C{DRIVER-NOT-CONNECTED}
on both), restarted (C{WAIT}, then data), stopped with SIGSTOP for longer
than C{MAXAGE} (C{DATA-STALE} on both, SIGCONT recovers), a driver that says
C{DATASTALE} itself; so are TRACKING (ids normalised), the FSD latch, a
SIGHUP reload, MAXCONN, and STARTTLS (each daemon with its own certificate
store); and NUT's own clients (C{upsc}, C{upsrw}, C{upscmd}) are run through
both daemons.

Set C{NUTSHIM_KEEP_SANDBOX=1} to keep the sandbox directories (and their
logs) for a look after a failure.

Each test builds its own sandbox (about 3 s), so that latches (FSD), login
counts and driver state never leak from one test into another.  Run from a
directory outside the checkout with nutshim installed, e.g.::

    rm -rf /tmp/twd && mkdir /tmp/twd && cp -r tests /tmp/twd/ && cd /tmp/twd
    python -m twisted.trial tests.test_differential
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import NUT_BIN, Process, free_port, nut_env, require, twistd, wait_for, wait_port, write

UPSD = os.path.join(NUT_BIN, "upsd")
DUMMY_UPS = os.path.join(NUT_BIN, "dummy-ups")
UPSC = "/usr/bin/upsc"
UPSRW = "/usr/bin/upsrw"
UPSCMD = "/usr/bin/upscmd"

#: Longest wait for any reply or state change.
TIMEOUT = 30.0
#: How long a step that expects no reply waits for unexpected bytes.
QUIET = 0.3

# --- The sandbox's files -------------------------------------------------

UPS_CONF = """\
[dev]
\tdriver = dummy-ups
\tport = dev.dev
\tdesc = "Dummy \\"quoted\\" \\\\ dev"
[seq]
\tdriver = dummy-ups
\tport = seq.seq
[sim]
\tdriver = nutshim-sim
\tport = sim.dev
\tdesc = "nutshim simulation"
\t# nutshim's upsd reads the socket of a separate nutshim-driver process
\t# instead of running the simulation in-process, as NUT's upsd must.
\tnutshim-driver = external
"""

# Quoted and escaped values; dummy-ups copies ups.mfr/model/serial to
# device.* (escaped once more: NUT's own double escaping, shown identically).
DEV_DEV = """\
ups.status: OL CHRG
ups.mfr: "ACME \\"Power\\" Co"
ups.model: Smart UPS 1500
ups.id: "c:\\\\path\\#1"
device.serial: "a\\#b"
battery.charge: 90
battery.runtime: 3600
input.voltage: 230.0
outlet.1.desc: "PowerShare Outlet 1"
outlet.desc: "Main Outlet"
Zeta.var: zz
ups.test.result: "Done and passed"
"""

# Long timers: the values must not change while the tables run.
SEQ_SEQ = """\
ups.status: OB DISCHRG
ups.model: Seq UPS
battery.charge: 50
TIMER 600
ups.status: OL
TIMER 600
"""

# Every command's effect sets a value the variable already has, so that the
# tables (which send everything twice, once per daemon) see a stable tree.
SIM_DEV = """\
TYPE ups.beeper.status RW STRING:8
ENUM ups.beeper.status enabled disabled muted
TYPE input.transfer.low RW NUMBER
RANGE input.transfer.low 160 200
RANGE input.transfer.low 210 220
TYPE battery.charge NUMBER
TYPE ups.serial STRING:12
TYPE ups.id RW STRING:8
TYPE ups.contacts RW
TYPE input.sensitivity RW STRING:10
ENUM input.sensitivity normal "hi\\"q" "c\\\\d" "e\\#f"
CMD beeper.enable ups.beeper.status: enabled
CMD beeper.disable ups.beeper.status: disabled
CMD load.on ups.status: OL
CMD test.battery.start ups.test.result: "In progress"
CMD Zeta.cmd ups.load: 35
ups.status: OL
ups.mfr: nutshim
ups.model: "Sim \\"1000\\""
ups.serial: SN123
ups.id: lab
ups.load: 35
ups.beeper.status: enabled
ups.contacts: 0
input.transfer.low: 180
battery.charge: 100
ups.test.result: "No test"
input.sensitivity: normal
"""

UPSD_USERS = """\
[admin]
\tpassword = pw
\tactions = SET FSD
\tinstcmds = ALL
\tupsmon primary
[viewer]
\tpassword = pw
\tupsmon secondary
[cmdonly]
\tpassword = pw
\tinstcmds = beeper.enable
"""

UPSES = ("dev", "seq", "sim")
DRIVERS = {"dev": "dummy-ups", "seq": "dummy-ups", "sim": "nutshim-sim"}

# The login prefixes used by the tables.
ADMIN = b"USERNAME admin\nPASSWORD pw\n"
VIEWER = b"USERNAME viewer\nPASSWORD pw\n"
CMDONLY = b"USERNAME cmdonly\nPASSWORD pw\n"

TRACKING_ID = re.compile(rb"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
UUID4_UPPER = re.compile(rb"\A[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}\Z")


def nutshim_version() -> Tuple[str, str]:
    """
    What the installed nutshim calls itself: C{VER}'s text and its version.
    """
    from nutshim.upsd.engine import ServerInfo

    return ServerInfo.ver_text, ServerInfo.version


NUT_VER = "Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/"


# --- Reading replies -----------------------------------------------------


def split_replies(data: bytes) -> Tuple[List[bytes], bytes]:
    """
    Cut a reply stream into whole replies: one line, or a C{BEGIN LIST} ...
    C{END LIST} block.  Returns the replies and what is left over.
    """
    replies: List[bytes] = []
    pos = 0
    block: Optional[int] = None
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        line = data[pos:end]
        if block is None:
            if line.startswith(b"BEGIN LIST "):
                block = pos
            else:
                replies.append(data[pos : end + 1])
        elif line.startswith(b"END LIST "):
            replies.append(data[block : end + 1])
            block = None
        pos = end + 1
    return replies, data[pos if block is None else block :]


def count_lines(data: bytes) -> int:
    """
    The requests in C{data}: its newlines, less backslash continuations.
    """
    return data.count(b"\n") - data.count(b"\\\n")


class Conn:
    """
    A raw client connection that reads replies by structure, not by time.
    """

    def __init__(self, port: int, sock: Optional[socket.socket] = None) -> None:
        self.sock = sock if sock is not None else socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        self.eof = False

    def start_tls(self, cafile: str) -> None:
        """
        C{STARTTLS}, then the handshake (verifying the server as localhost).
        """
        self.send(b"STARTTLS\n")
        line = b""
        while not line.endswith(b"\n"):
            byte = self.sock.recv(1)  # nothing after the line: TLS follows
            if not byte:
                break
            line += byte
        if line != b"OK STARTTLS\n":
            raise AssertionError(f"STARTTLS answered {line!r}")
        context = ssl.create_default_context(cafile=cafile)
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.eof = True

    def _recv(self, timeout: float) -> bool:
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def replies(self, n: int, timeout: float = 5.0) -> bytes:
        """
        The next C{n} replies; fewer (and what there is) at EOF or timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            whole, _ = split_replies(self.buf)
            if len(whole) >= n:
                out = b"".join(whole[:n])
                self.buf = self.buf[len(out) :]
                return out
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                out, self.buf = self.buf, b""
                return out
            self._recv(left)

    def quiet(self, quiet: float = QUIET) -> bytes:
        """
        Whatever arrives until nothing has for C{quiet} seconds.
        """
        while self._recv(quiet):
            pass
        out, self.buf = self.buf, b""
        return out

    def state(self) -> bytes:
        """
        C{<open>} if the connection still answers (a C{NETVER} sentinel sent
        now gets C{1.3}), C{<closed>} at EOF, else the unexpected bytes.
        """
        if not self.eof and not self.buf:
            self.send(b"NETVER\n")
        out = self.replies(1, 5.0)
        if out == b"1.3\n" and not self.buf:
            return b"<open>"
        if not out and self.eof:
            return b"<closed>"
        return b"<unexpected " + out + self.quiet(0.05) + b">"

    def close(self) -> None:
        self.sock.close()


# --- Request sequences -----------------------------------------------------


@dataclass(frozen=True)
class Step:
    """
    Bytes sent in one write on connection C{conn} (L{None}: close it), and
    how many replies to read: by default one per request line; 0 sends and
    pauses (a split request); L{QUIET_READ} reads until quiet.
    """

    data: Optional[bytes]
    conn: int = 0
    replies: Optional[int] = None


QUIET_READ = -1
#: Marks a step that got fewer replies than it expected before the timeout.
INCOMPLETE = b"<incomplete: fewer replies than expected>"


@dataclass(frozen=True)
class Case:
    name: str
    steps: Tuple[Step, ...]

    def touches_logins(self) -> bool:
        return any(
            s.data is not None and (b"LOGIN" in s.data.upper() or b"ATTACH" in s.data.upper())
            for s in self.steps
        )


def case(name: str, *steps: Union[bytes, Step]) -> Case:
    """
    A sequence: plain bytes are steps on connection 0.
    """
    return Case(name, tuple(s if isinstance(s, Step) else Step(s) for s in steps))


def on(conn: int, data: bytes, replies: Optional[int] = None) -> Step:
    return Step(data, conn, replies)


def close(conn: int) -> Step:
    return Step(None, conn)


def run_case(port: int, c: Case, expected: Optional[Sequence[bytes]] = None) -> List[bytes]:
    """
    Play C{c} against the daemon on C{port}; the transcript is the replies
    of each step, then the state of each connection.

    @param expected: a transcript this side should produce; its replies
        say how many to wait for (none: read until quiet).
    """
    conns: Dict[int, Conn] = {}
    out: List[bytes] = []
    try:
        for i, step in enumerate(c.steps):
            if step.data is None:
                conns.pop(step.conn).close()
                out.append(b"<close %d>" % step.conn)
                # Let the daemon notice before the next step counts logins.
                time.sleep(0.2)
                continue
            conn = conns.get(step.conn)
            if conn is None:
                conn = conns[step.conn] = Conn(port)
            conn.send(step.data)
            n = step.replies
            if expected is not None:
                whole, rest = split_replies(expected[i])
                n = len(whole) if whole and not rest else QUIET_READ
            if n is None:
                n = count_lines(step.data)
            if n == 0:
                time.sleep(0.05)
                out.append(b"")
            elif n == QUIET_READ:
                out.append(conn.quiet())
            else:
                got = conn.replies(n)
                if len(split_replies(got)[0]) < n and not conn.eof:
                    # A table error (or a hung daemon): say so, loudly.
                    got += INCOMPLETE
                out.append(got)
        for index in sorted(conns):
            out.append(b"[%d] " % index + conns[index].state())
    finally:
        for conn in conns.values():
            conn.close()
    return out


#: HELP lists PROTVER since NUT 2.8.3, and nutshim answers as the newest
#: release does (docs/compatibility.md): the reference 2.8.0's line is
#: compared as that release's.
HELP_2_8_0 = b"Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"
HELP_2_8_3 = b"Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS\n"


def normalise(transcript: Iterable[bytes]) -> List[bytes]:
    """
    Tracking ids are random by design: number them in order of appearance.
    NUT 2.8.0's HELP reads as NUT 2.8.3's.
    """
    seen: Dict[bytes, bytes] = {}

    def number(m: "re.Match[bytes]") -> bytes:
        key = m.group(0).upper()
        if key not in seen:
            seen[key] = b"<ID%d>" % (len(seen) + 1)
        return seen[key]

    return [TRACKING_ID.sub(number, part).replace(HELP_2_8_0, HELP_2_8_3) for part in transcript]


def show(transcript: Sequence[bytes]) -> str:
    return "\n".join("    " + repr(part) for part in transcript)


# --- The sandbox ---------------------------------------------------------


class Sandbox:
    """
    The private directory, the three drivers and the two daemons.

    @ivar c_port: NUT's C upsd.
    @ivar n_port: nutshim's upsd.
    """

    def __init__(self, testcase: SynchronousTestCase, upsd_conf: str = "") -> None:
        require(UPSD, DUMMY_UPS)
        self.testcase = testcase
        # Short, outside _trial_temp: a Unix socket path must fit 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="nutshim-diff-")
        if not os.environ.get("NUTSHIM_KEEP_SANDBOX"):
            testcase.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        self.c_port = free_port()
        self.n_port = free_port()
        write(self.path("ups.conf"), UPS_CONF)
        write(self.path("upsd.conf"), f"LISTEN 127.0.0.1 {self.c_port}\nMAXAGE 5\n{upsd_conf}", 0o640)
        write(self.path("upsd.users"), UPSD_USERS, 0o600)
        write(self.path("dev.dev"), DEV_DEV)
        write(self.path("seq.seq"), SEQ_SEQ)
        write(self.path("sim.dev"), SIM_DEV)
        self.env = nut_env(self.dir)
        self.drivers: Dict[str, Process] = {}
        for ups in UPSES:
            self.start_driver(ups, wait=False)
        for ups in UPSES:
            self.wait_socket(ups)
        self.upsd = self.spawn("upsd", [UPSD, "-u", "root", "-F"])
        args = [twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", self.dir, "--statepath", self.dir]
        args += ["--listen", f"tcp:{self.n_port}:interface=127.0.0.1"]
        self.nutshim = self.spawn("nutshim", args)
        for port, proc in ((self.c_port, self.upsd), (self.n_port, self.nutshim)):
            try:
                wait_port(port, TIMEOUT)
            except AssertionError:
                raise AssertionError(f"{proc.args[0]} did not start:\n{proc.output()}")
        for ups in UPSES:
            self.wait_both(f"data of {ups}", lambda r: r.startswith(b"VAR "), f"GET VAR {ups} driver.name\n")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def spawn(self, name: str, args: Sequence[str]) -> Process:
        proc = Process(args, self.path(name + ".log"), env=self.env, cwd=self.dir)
        self.testcase.addCleanup(proc.stop)
        return proc

    def start_driver(self, ups: str, wait: bool = True) -> Process:
        """
        Start C{ups}'s driver (after removing the socket a dead one left).
        """
        old = self.drivers.get(ups)
        assert old is None or not old.alive()
        if os.path.exists(self.socket_path(ups)):
            os.unlink(self.socket_path(ups))
        if DRIVERS[ups] == "dummy-ups":
            args = [DUMMY_UPS, "-u", "root", "-F", "-a", ups]
        else:
            args = [sys.executable, "-m", "nutshim.drivers.runner", "-a", ups]
        proc = self.drivers[ups] = self.spawn(f"driver-{ups}", args)
        if wait:
            self.wait_socket(ups)
        return proc

    def socket_path(self, ups: str) -> str:
        return self.path(f"{DRIVERS[ups]}-{ups}")

    def wait_socket(self, ups: str, poll: float = 0.1) -> None:
        """
        Wait for the driver's socket file.  (Not by connecting to it: NUT
        2.8.0's dummy-ups can abort with "bit out of range 0 - FD_SETSIZE on
        fd_set" when it later writes to a client that connected and left
        while the driver was stopped.)
        """
        proc = self.drivers[ups]
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(self.socket_path(ups)):
            if not proc.alive():
                raise AssertionError(f"driver of {ups} exited:\n{proc.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no socket for {ups}:\n{proc.output()}")
            time.sleep(poll)

    def ask(self, port: int, data: bytes) -> bytes:
        conn = Conn(port)
        try:
            conn.send(data)
            return conn.replies(count_lines(data))
        finally:
            conn.close()

    def wait_both(self, what: str, ok: Callable[[bytes], bool], request: str, timeout: float = TIMEOUT) -> None:
        """
        Wait until both daemons' reply to C{request} satisfies C{ok}.
        """
        last: Dict[str, bytes] = {}

        def both() -> bool:
            for name, port in (("C upsd", self.c_port), ("nutshim", self.n_port)):
                last[name] = reply = self.ask(port, request.encode())
                if not ok(reply):
                    return False
            return True

        try:
            wait_for(both, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; last replies: {last!r}\n{self.logs()}")

    def login_counts(self, port: int) -> Dict[str, bytes]:
        return {ups: self.ask(port, f"GET NUMLOGINS {ups}\n".encode()) for ups in UPSES}

    def settle_logins(self, port: int, before: Dict[str, bytes]) -> None:
        """
        Wait until the daemon on C{port} counts the logins it counted
        C{before} (closing a connection is noticed asynchronously).
        """
        counts: Dict[str, bytes] = {}

        def settled() -> bool:
            counts.update(self.login_counts(port))
            return counts == before

        try:
            wait_for(settled, 10.0, "login counts to settle")
        except AssertionError as e:
            raise AssertionError(f"{e}: {counts!r}, expected {before!r}")

    def logs(self) -> str:
        parts = []
        for name in ("upsd", "nutshim", "driver-dev", "driver-seq", "driver-sim"):
            try:
                with open(self.path(name + ".log"), "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            parts.append(f"--- {name}.log (tail) ---\n" + "\n".join(text.splitlines()[-15:]))
        return "\n".join(parts)


class DifferentialCase(SynchronousTestCase):
    """
    A fresh sandbox per test, and the comparison of tables.
    """

    #: Extra upsd.conf lines for this test's sandbox.
    upsd_conf = ""

    def setUp(self) -> None:
        self.box = Sandbox(self, self.upsd_conf)

    def compare(self, cases: Sequence[Case]) -> None:
        """
        Every sequence must give both daemons the same transcript.
        """
        names = [c.name for c in cases]
        self.assertEqual(len(names), len(set(names)), "duplicate case names")
        failures = []
        for c in cases:
            got_c = self.play(self.box.c_port, c)
            got_n = self.play(self.box.n_port, c)
            if any(part.endswith(INCOMPLETE) for part in got_c):
                failures.append(f"{c.name}: NUT gave fewer replies than the table expects:\n{show(got_c)}")
            elif got_c != got_n:
                failures.append(f"{c.name}:\n  NUT 2.8.0 upsd:\n{show(got_c)}\n  nutshim:\n{show(got_n)}")
        if failures:
            self.fail(f"{len(failures)} of {len(cases)} sequences differ:\n" + "\n".join(failures))

    def play(self, port: int, c: Case, expected: Optional[Sequence[bytes]] = None) -> List[bytes]:
        """
        Play C{c} on one daemon; wait until its login counts are back.
        """
        before = self.box.login_counts(port) if c.touches_logins() else None
        got = normalise(run_case(port, c, expected))
        if before is not None:
            self.box.settle_logins(port, before)
        return got

    def expect(self, rows: Sequence[Tuple[Case, Sequence[bytes], Sequence[bytes]]]) -> None:
        """
        Each deliberate difference: both sides' exact transcripts.
        """
        failures = []
        for c, want_c, want_n in rows:
            for side, port, want in (("NUT 2.8.0 upsd", self.box.c_port, want_c), ("nutshim", self.box.n_port, want_n)):
                got = self.play(port, c, want)
                if got != list(want):
                    failures.append(f"{c.name} ({side}):\n  expected:\n{show(want)}\n  got:\n{show(got)}")
        if failures:
            self.fail(f"{len(failures)} deliberate differences not as documented:\n" + "\n".join(failures))


# --- The tables ----------------------------------------------------------

BASICS = [
    case("NETVER", b"NETVER\n"),
    case("PROTVER", b"PROTVER\n"),
    case("HELP", b"HELP\n"),
    case("STARTTLS without certificates", b"STARTTLS\n"),
    case("STARTTLS ignores arguments", b"STARTTLS now please\n"),
    case("STARTTLS twice without certificates", b"STARTTLS\nSTARTTLS\n"),
    case("verbs in any case", b"netver\nProtVer\nhelp\nstarttls\n"),
    case("VER with an argument", b"VER x\n"),
    case("NETVER with an argument", b"NETVER 1\n"),
    case("PROTVER with arguments", b"PROTVER a b\n"),
    case("HELP with an argument", b"HELP me\n"),
    case("LOGOUT with an argument", b"LOGOUT now\n"),
    case("empty line", b"\n"),
    case("blank line", b"   \t \n"),
    case("CR only", b"\r\n"),
    case("comment line", b"# a comment\n"),
    case("comment after spaces", b"   # NETVER\n"),
    case("unknown verb", b"BOGUS\n"),
    case("unknown verb with arguments", b"BOGUS a b c\n"),
    case("pre-1.5 verbs", b"REQ dev ups.status\nLISTVARS dev\nLISTRW dev\nVARTYPE dev ups.status\n"
                          b"VARDESC ups.status\nINSTCMDDESC load.off\nLISTINSTCMD dev\nENUM dev ups.status\n"),
    case("GET sub-commands are not verbs", b"NUMLOGINS dev\nUPSDESC dev\nVAR dev ups.status\nTRACKING\n"),
    case("near misses", b"GETVAR dev ups.status\nUSER admin\nPASS pw\nLIST_UPS\nVERSION\n"),
    case("DEL is kept", b"NETVER\x7f\n"),
    case("NUL is dropped", b"NET\x00VER\x00\n"),
    case("control bytes are dropped", b"NET\x01\x02VER\x1b\n"),
    case("non-ASCII is dropped", b"NET\xc3\xa9VER\n"),
    case("CRLF", b"NETVER\r\nPROTVER\r\n"),
    case("LOGOUT closes", b"LOGOUT\n"),
    case("logout in lower case closes", b"logout\n"),
    case("LOGOUT then more in the same read stays open", b"LOGOUT\nNETVER\n"),
    case("LOGOUT twice in the same read", b"LOGOUT\nLOGOUT\n"),
    case("LOGOUT after a request, in separate writes", b"NETVER\n", b"LOGOUT\n"),
]

GET = [
    case("GET without sub-command", b"GET\n"),
    case("GET unknown sub-command", b"GET BOGUS\n"),
    case("GET unknown sub-command with arguments", b"GET BOGUS a b c\n"),
    case("GET sub-command gates", b"GET VAR\nGET VAR dev\nGET UPSDESC\nGET NUMLOGINS\nGET TYPE dev\n"
                                  b"GET DESC dev\nGET CMDDESC sim\nGET TYPE\nGET DESC\nGET CMDDESC\n"),
    case("GET VAR dev", b"".join(b"GET VAR dev %s\n" % v for v in (
        b"ups.status", b"ups.mfr", b"ups.model", b"ups.id", b"device.mfr", b"device.serial", b"battery.charge",
        b"outlet.1.desc", b"outlet.desc", b"Zeta.var", b"driver.name", b"driver.parameter.port", b"ups.test.result"))),
    case("GET VAR seq", b"GET VAR seq ups.status\nGET VAR seq battery.charge\nGET VAR seq device.mfr\n"),
    case("GET VAR sim", b"".join(b"GET VAR sim %s\n" % v for v in (
        b"ups.status", b"ups.model", b"ups.beeper.status", b"input.transfer.low", b"battery.charge", b"ups.serial",
        b"ups.id", b"ups.contacts", b"driver.name", b"device.model", b"ups.test.result"))),
    case("GET VAR echoes the client's spelling", b"get var DEV UPS.STATUS\nGet Var Sim Ups.Model\n"
                                                  b"GET VAR dev zeta.var\nGET VAR dev ZETA.VAR\n"),
    case("GET sub-commands in any case", b"get Var dev ups.status\nGET upsdesc dev\nGET numlogins dev\n"
                                          b"GET type sim ups.id\nGET desc dev ups.status\nGET cmddesc sim load.off\n"),
    case("GET VAR unknown UPS", b"GET VAR nosuch ups.status\n"),
    case("GET VAR unknown variable", b"GET VAR dev nosuch.var\nGET VAR sim ups\nGET VAR sim ups.status.x\n"),
    case("GET VAR unknown server variable", b"GET VAR dev server.bogus\nGET VAR nosuch server.bogus\n"
                                             b"GET VAR nosuch SERVER.\n"),
    case("GET VAR ignores extra words", b"GET VAR dev ups.status extra words\n"),
    case("GET TYPE", b"".join(b"GET TYPE sim %s\n" % v for v in (
        b"ups.beeper.status", b"input.transfer.low", b"battery.charge", b"ups.serial", b"ups.id", b"ups.contacts",
        b"ups.status", b"ups.load", b"driver.name", b"driver.parameter.port", b"device.mfr"))),
    case("GET TYPE dummy-ups", b"".join(b"GET TYPE dev %s\n" % v for v in (
        b"ups.status", b"ups.id", b"battery.charge", b"Zeta.var", b"driver.name", b"outlet.1.desc", b"ups.test.result"))),
    case("GET TYPE errors", b"GET TYPE nosuch ups.status\nGET TYPE dev nosuch\nget type SIM UPS.BEEPER.STATUS\n"),
    case("GET DESC", b"GET DESC dev ups.status\nGET DESC dev battery.charge\nGET DESC dev nosuch.var\n"
                     b"GET DESC dev UPS.STATUS\nGET DESC nosuch ups.status\nGET DESC sim ups.beeper.status\n"),
    case("GET CMDDESC", b"GET CMDDESC sim load.off\nGET CMDDESC sim beeper.enable\nGET CMDDESC sim nosuch\n"
                        b"GET CMDDESC sim LOAD.OFF\nGET CMDDESC nosuch load.off\nGET CMDDESC sim Zeta.cmd\n"),
    case("GET UPSDESC", b"GET UPSDESC dev\nGET UPSDESC seq\nGET UPSDESC sim\nGET UPSDESC DEV\n"
                        b"GET UPSDESC nosuch\nGET UPSDESC dev extra\n"),
    case("GET NUMLOGINS", b"GET NUMLOGINS dev\nGET NUMLOGINS SIM\nGET NUMLOGINS nosuch\nGET NUMLOGINS seq extra\n"),
    case("GET TRACKING", b"GET TRACKING\nget tracking\nGET TRACKING abc\nGET TRACKING a b\n"),
]

LIST = [
    case("LIST without sub-command", b"LIST\n"),
    case("LIST sub-command gates", b"LIST BOGUS\nLIST VAR\nLIST RW\nLIST CMD\nLIST CLIENT\nLIST ENUM\n"
                                   b"LIST ENUM sim\nLIST RANGE sim\nLIST BOGUS a b\nLIST BOGUS a b c\n"),
    case("LIST UPS", b"LIST UPS\n"),
    case("LIST UPS in lower case", b"list ups\n"),
    case("LIST UPS ignores extra words", b"LIST UPS extra words\n"),
    case("LIST VAR dev", b"LIST VAR dev\n"),
    case("LIST VAR seq", b"LIST VAR seq\n"),
    case("LIST VAR sim", b"LIST VAR sim\n"),
    case("LIST RW", b"LIST RW dev\nLIST RW seq\nLIST RW sim\n"),
    case("LIST CMD", b"LIST CMD dev\nLIST CMD seq\nLIST CMD sim\n"),
    case("LIST echoes the client's spelling", b"list var SIM\nLIST Rw Dev\nLIST cmd Sim\nlist client SIM\n"
                                               b"LIST ENUM sim UPS.BEEPER.STATUS\nLIST RANGE SIM Input.Transfer.Low\n"),
    case("LIST unknown UPS", b"LIST VAR nosuch\nLIST RW nosuch\nLIST CMD nosuch\nLIST CLIENT nosuch\n"
                             b"LIST ENUM nosuch x\nLIST RANGE nosuch x\n"),
    case("LIST ignores extra words", b"LIST VAR dev extra\nLIST ENUM sim ups.beeper.status extra\n"),
    case("LIST ENUM", b"LIST ENUM sim ups.beeper.status\nLIST ENUM sim ups.load\nLIST ENUM dev ups.status\n"
                      b"LIST ENUM sim nosuch\n"),
    case("LIST ENUM with escaped values", b"LIST ENUM sim input.sensitivity\nGET TYPE sim input.sensitivity\n"),
    case("LIST RANGE", b"LIST RANGE sim input.transfer.low\nLIST RANGE sim ups.load\nLIST RANGE dev battery.charge\n"
                       b"LIST RANGE sim nosuch\n"),
    case("LIST CLIENT with nobody logged in", b"LIST CLIENT sim\nLIST CLIENT dev\n"),
]

USER_VERBS = (b"LOGIN", b"PRIMARY", b"MASTER", b"FSD", b"SET", b"INSTCMD")

AUTH = [
    case("privileged verbs need USERNAME before anything",
         b"".join(b"%s\n%s a b c d e\n%s nosuch\n" % (v, v, v) for v in USER_VERBS)),
    case("privileged verbs need PASSWORD next",
         b"USERNAME x\n" + b"".join(b"%s\n%s nosuch\n" % (v, v) for v in USER_VERBS)),
    case("PASSWORD alone is not enough", b"PASSWORD y\nLOGIN sim\nINSTCMD sim load.off\n"),
    case("privileged verbs in lower case", b"login sim\nfsd sim\nset var sim ups.id x\ninstcmd sim load.on\n"),
    case("argument gates after credentials",
         b"USERNAME x\nPASSWORD y\nLOGIN\nLOGIN a b\nPRIMARY\nPRIMARY a b\nMASTER\nFSD\nFSD a b\n"
         b"SET\nSET VAR\nSET VAR sim\nSET VAR sim ups.id\nSET BOGUS a\nSET TRACKING\nINSTCMD\nINSTCMD sim\n"),
    case("USERNAME and PASSWORD", b"USERNAME\nUSERNAME a b\nPASSWORD\nPASSWORD a b\nUSERNAME a\nUSERNAME a\n"
                                  b"PASSWORD p\nPASSWORD q\n"),
    case("= is a word of its own", b"USERNAME a=b\nUSERNAME a=\nUSERNAME =\nUSERNAME \"a=b\"\n"),
    case("empty credentials are accepted", b'USERNAME ""\nPASSWORD ""\nLOGIN sim\nPRIMARY sim\n'),
    case("anything is accepted until used", b"USERNAME nobody\nPASSWORD x\nLOGIN sim\nPRIMARY sim\nFSD sim\n"
                                            b"SET VAR sim ups.id x\nINSTCMD sim load.on\nSET TRACKING ON\nGET TRACKING\n"),
    case("LOGIN", ADMIN + b"LOGIN sim\nGET NUMLOGINS sim\nLIST CLIENT sim\n"),
    case("LOGIN twice", ADMIN + b"LOGIN sim\nLOGIN sim\nLOGIN dev\nLOGIN nosuch\nLOGIN\n"),
    case("LOGIN unknown UPS before access", b"USERNAME admin\nPASSWORD bad\nLOGIN nosuch\nLOGIN sim\n"),
    case("LOGIN wrong password", b"USERNAME admin\nPASSWORD bad\nLOGIN sim\n"),
    case("LOGIN without the right", CMDONLY + b"LOGIN sim\n"),
    case("LOGIN as upsmon secondary", VIEWER + b"login SIM\nGET NUMLOGINS sim\nLIST CLIENT sim\n"),
    case("LOGIN on a UPS with its canonical name", ADMIN + b"LOGIN DEV\nLIST CLIENT dev\nLIST CLIENT Dev\n"),
    case("LOGOUT after LOGIN", ADMIN + b"LOGIN sim\nLOGOUT\n"),
    case("LOGIN, LOGOUT and more in one read", ADMIN + b"LOGIN sim\nLOGOUT\nGET NUMLOGINS sim\n"),
    case("PRIMARY and MASTER", ADMIN + b"PRIMARY sim\nMASTER sim\nprimary DEV\nmaster seq\nPRIMARY nosuch\n"),
    case("PRIMARY without the right", VIEWER + b"PRIMARY sim\nMASTER sim\nPRIMARY nosuch\n"),
    case("PRIMARY wrong password", b"USERNAME admin\nPASSWORD bad\nPRIMARY sim\nMASTER sim\n"),
    case("FSD refusals", VIEWER + b"FSD sim\nFSD nosuch\nFSD\n" + b"GET VAR sim ups.status\n"),
    case("two connections count logins",
         on(0, ADMIN + b"LOGIN sim\n"), on(1, VIEWER + b"LOGIN sim\n"),
         on(2, b"GET NUMLOGINS sim\nLIST CLIENT sim\n"), close(0),
         on(2, b"GET NUMLOGINS sim\nLIST CLIENT sim\n"), on(1, b"LOGOUT\n"), close(1),
         on(2, b"GET NUMLOGINS sim\nLIST CLIENT sim\n")),
    case("logins on different UPSes",
         on(0, ADMIN + b"LOGIN dev\n"), on(1, VIEWER + b"LOGIN seq\n"), on(2, ADMIN + b"LOGIN SIM\n"),
         on(3, b"LIST CLIENT dev\nLIST CLIENT seq\nLIST CLIENT sim\nGET NUMLOGINS dev\nGET NUMLOGINS seq\n"
               b"GET NUMLOGINS sim\n")),
    case("a refused LOGIN does not count",
         on(0, b"USERNAME admin\nPASSWORD bad\nLOGIN sim\n"), on(1, b"GET NUMLOGINS sim\nLIST CLIENT sim\n")),
    case("LOGOUT with more in the same read keeps the login",
         on(0, ADMIN + b"LOGIN sim\n"), on(0, b"LOGOUT\nGET NUMLOGINS sim\n"),
         on(1, b"GET NUMLOGINS sim\n")),
]

SET_INSTCMD = [
    case("SET before credentials", b"SET VAR sim ups.id lab\n"),
    case("SET TRACKING needs credentials only", b"USERNAME x\nPASSWORD y\nSET TRACKING ON\nGET TRACKING\n"
                                                 b"set tracking off\nGET TRACKING\nSET TRACKING On\nSET TRACKING maybe\n"
                                                 b"SET TRACKING ON extra\nGET TRACKING\n"),
    case("SET without the right: ACCESS-DENIED before VAR-NOT-SUPPORTED",
         VIEWER + b"SET VAR sim nosuch x\nSET VAR sim ups.id lab\nSET VAR sim battery.charge 5\nSET VAR nosuch a b\n"),
    case("SET wrong password", b"USERNAME admin\nPASSWORD bad\nSET VAR sim ups.id lab\nSET VAR nosuch a b\n"),
    case("SET error order", ADMIN + b"SET VAR nosuch a b\nSET VAR sim nosuch b\nSET VAR sim battery.charge 5\n"
                                    b"SET VAR sim ups.serial x\nSET VAR sim driver.name x\nSET VAR dev driver.name x\n"),
    case("SET TOO-LONG", ADMIN + b"SET VAR sim ups.id 123456789\nSET VAR sim ups.id \"lab lab lab\"\n"
                                 b"SET VAR dev ups.id 12345678901234567\nSET VAR sim ups.id lab\n"),
    case("SET ENUM", ADMIN + b"SET VAR sim ups.beeper.status loud\nSET VAR sim ups.beeper.status Enabled\n"
                             b"SET VAR sim ups.beeper.status \"enabled \"\nSET VAR sim ups.beeper.status enabled\n"),
    case("SET RANGE", ADMIN + b"SET VAR sim input.transfer.low 205\nSET VAR sim input.transfer.low 155\n"
                              b"SET VAR sim input.transfer.low 221\nSET VAR sim input.transfer.low -5\n"
                              b"SET VAR sim input.transfer.low abc\nSET VAR sim input.transfer.low 180\n"),
    case("SET ENUM with escapes", ADMIN + b"SET VAR sim input.sensitivity hi\nSET VAR sim input.sensitivity q\n"
                                          b"SET VAR sim input.sensitivity \"c\\d\"\nSET VAR sim input.sensitivity normal\n"),
    case("SET a plain RW variable", ADMIN + b"SET VAR sim ups.contacts 0\nSET VAR dev battery.charge 90\n"
                                            b"SET VAR dev ups.status \"OL CHRG\"\nSET VAR dev ups.id \"c:\\\\path\\#1\"\n"),
    case("SET ignores extra words", ADMIN + b"SET VAR sim ups.beeper.status enabled extra words\n"),
    case("SET in any case", ADMIN + b"set var SIM UPS.BEEPER.STATUS enabled\nSet Var sim ups.beeper.status loud\n"),
    case("SET on dummy-ups", ADMIN + b"SET VAR seq battery.charge 50\n"
                                                                        b"SET VAR seq nosuch 1\nSET VAR seq driver.version 1\n"),
    case("INSTCMD before credentials", b"INSTCMD sim beeper.enable\n"),
    case("INSTCMD: CMD-NOT-SUPPORTED before ACCESS-DENIED",
         CMDONLY + b"INSTCMD sim nosuch\nINSTCMD sim beeper.disable\nINSTCMD nosuch x\nINSTCMD sim beeper.enable\n"
                   b"INSTCMD sim BEEPER.ENABLE\n"),
    case("INSTCMD parameters", CMDONLY + b"INSTCMD sim beeper.enable 1\nINSTCMD sim beeper.enable 1 2\n"
                                         b"INSTCMD sim beeper.enable \"a b\"\n"),
    case("INSTCMD without any right", VIEWER + b"INSTCMD sim beeper.enable\nINSTCMD sim nosuch\n"),
    case("INSTCMD wrong password", b"USERNAME cmdonly\nPASSWORD bad\nINSTCMD sim beeper.enable\n"
                                   b"INSTCMD sim nosuch\n"),
    case("INSTCMD as admin", ADMIN + b"INSTCMD sim Zeta.cmd\nINSTCMD SIM zeta.CMD\nINSTCMD sim load.on\n"
                                     b"INSTCMD dev load.off\nINSTCMD seq nosuch\n"),
]

TOKENIZER = [
    case("quoted words", b'GET VAR "dev" "ups.status"\n'),
    case("a quote ends the word", b'GET VAR "de"v ups.status\nGET VAR "dev""ups.status"\n'),
    case("a quote inside a bare word is literal", b'GET VAR a"b ups.status\nGET VAR dev" ups.status\n'),
    case("text after a closing quote", b'GET VAR "dev" "ups.status"x\n'),
    case("backslash escapes", b"GET VAR d\\ev ups\\.status\nGET VAR dev ups.status\\#\n"
                              b"GET VAR dev \"ups.status\\#\"\nGET VAR dev \"ups\\\\status\"\n"),
    case("escaped quote as a word", b'GET VAR dev ups.status \\"\nUSERNAME \\"\n'),
    case("escaped hash in a password", b"USERNAME \"a b\"\nPASSWORD \\#x\nLOGIN sim\n"),
    case("continuation", b"GET VAR dev \\\nups.status\n"),
    case("continuation inside quotes", b"GET VAR \"dev\\\n\" ups.status\n"),
    case("continuation makes one line", b"USERNAME \\\nPASSWORD x\n"),
    case("tabs", b"GET\tVAR\tdev\tups.status\n"),
    case("tab and CR inside quotes are dropped", b'GET VAR "d\tev" ups.status\nGET VAR "d\rev" ups.status\n'),
    case("CR between words", b"GET VAR dev\rups.status\n"),
    case("non-ASCII inside a word", b"GET VAR dev ups.\xc3\xa9status\nGET \"VAR\" dev ups.st\xffatus\n"),
    case("a word of non-ASCII only is empty", b"GET VAR \xc3\xa9 ups.status\nGET VAR dev \xc3\xa9\n"),
    case("comments", b"GET VAR dev ups.status # comment\nGET VAR dev ups.status#comment\n"
                     b"GET VAR dev ups#status\n"),
    case("= splits words", b"GET VAR dev=ups.status\nGET VAR dev \"=\"\nGET=VAR dev ups.status\n"),
    case("empty strings", b'GET VAR "" ups.status\nGET VAR dev ""\nLIST ENUM sim ""\nGET TYPE sim ""\n'
                          b'GET UPSDESC ""\nLIST VAR ""\n""\n'),
    case("empty strings in privileged commands", ADMIN + b'SET VAR sim "" x\nSET VAR "" ups.id x\n'
                                                         b'INSTCMD sim ""\nLOGIN ""\nPRIMARY ""\n'),
    case("long words", b"GET VAR " + b"a" * 600 + b" ups.status\nGET VAR dev " + b"b" * 700 + b"\n"),
    case("many words", b"GET VAR dev ups.status" + b" x" * 40 + b"\nNETVER" + b" x" * 40 + b"\n"),
    case("a request split across writes", on(0, b"GET VA", 0), on(0, b"R dev ups.s", 0), on(0, b"tatus\n")),
    case("a quoted word split across writes", on(0, b'GET VAR "d', 0), on(0, b'ev" "ups.', 0),
         on(0, b'status"\n')),
    case("a continuation split across writes", on(0, b"GET VAR dev \\", 0), on(0, b"\n", 0),
         on(0, b"ups.status\n")),
]

PIPELINE_MIX = [
    b"GET VAR dev ups.status\n", b"LIST VAR sim\n", b"BOGUS\n", b"\n", b"GET TYPE sim ups.beeper.status\n",
    b"LIST ENUM sim ups.beeper.status\n", b"GET VAR nosuch ups.status\n", b"LIST UPS\n", b"HELP\n",
    b"GET DESC dev ups.status\n", b"LIST RANGE sim input.transfer.low\n", b"GET NUMLOGINS dev\n",
    b"USERNAME x\n", b"LIST CMD sim\n", b"GET VAR \"dev\" \"ups.id\"\n", b"LOGIN sim\n", b"LIST RW dev\n",
    b"GET UPSDESC dev\n", b"GET VAR sim ups.model\n", b"# comment\n", b"NETVER\n",
]

PIPELINE = [
    case("pipelined mix in one write", b"".join(PIPELINE_MIX) * 5),
    case("1000 pipelined GET VAR in one write", b"GET VAR dev ups.status\n" * 1000),
    case("pipelined LIST VAR in one write", b"LIST VAR dev\nLIST VAR seq\nLIST VAR sim\n" * 20),
    case("pipelined session", ADMIN + b"LOGIN sim\nPRIMARY sim\nSET VAR sim ups.id lab\nINSTCMD sim beeper.enable\n"
                                      b"GET NUMLOGINS sim\nLIST CLIENT sim\nLOGOUT\nGET NUMLOGINS sim\n"),
    case("pipelined requests in many small writes", *[on(0, r) for r in PIPELINE_MIX]),
    case("LOGOUT in the middle of a short pipeline", b"NETVER\nLOGOUT\nHELP\nGET VAR dev ups.status\n"),
]


def deliberate_differences() -> List[Tuple[Case, Tuple[bytes, ...], Tuple[bytes, ...]]]:
    """
    docs/compatibility.md's "Deliberate differences" that show on the wire
    with this setup: C{(case, NUT's transcript, nutshim's transcript)}.
    """
    ver, version = nutshim_version()
    nut_ver = NUT_VER.encode() + b"\n"
    our_ver = ver.encode() + b"\n"
    a512 = b"a" * 512
    return [
        (case("VER", b"VER\n"), (nut_ver, b"[0] <open>"), (our_ver, b"[0] <open>")),
        (case("VER in lower case, with a NUL", b"ver\nVE\x00R\n"),
         (nut_ver * 2, b"[0] <open>"), (our_ver * 2, b"[0] <open>")),
        (case("server.info and server.version", b"GET VAR dev server.info\nGET VAR nosuch SERVER.INFO\n"
                                                b"GET VAR x Server.Version\n"),
         (b'VAR dev server.info "%s"\nVAR nosuch server.info "%s"\nVAR x server.version "2.8.0"\n'
          % (NUT_VER.encode(), NUT_VER.encode()), b"[0] <open>"),
         (b'VAR dev server.info "%s"\nVAR nosuch server.info "%s"\nVAR x server.version "%s"\n'
          % (ver.encode(), ver.encode(), version.encode()), b"[0] <open>")),
        # The reply echoes the 512-character word: over 512 bytes, NUT cuts
        # it (no newline) and glues the next reply on.
        (case("reply line over 512 bytes", b"GET VAR " + b"a" * 600 + b" server.version\nNETVER\n"),
         (b"VAR " + a512[:508] + b"1.3\n", b"[0] <open>"),
         (b'VAR %s server.version "%s"\n1.3\n' % (a512, version.encode()), b"[0] <open>")),
        (case("unescaped # inside quotes", b'GET VAR "a#b" ups.status\nNETVER\n'),
         (b"", b"[0] <open>"), (b"ERR INVALID-ARGUMENT\n1.3\n", b"[0] <open>")),
        (case("unterminated quote at end of line", b'GET VAR "dev\nNETVER\n', b'" ups.status\n'),
         (b"", b"ERR UNKNOWN-UPS\n", b"[0] <open>"),
         (b"ERR INVALID-ARGUMENT\n1.3\n", b"ERR INVALID-ARGUMENT\n", b"[0] <open>")),
        (case("request line over MAXLINE", b"GET VAR dev ups.status" + b" " * 5000 + b"\nNETVER\n"),
         (b'VAR dev ups.status "OL CHRG"\n1.3\n', b"[0] <open>"), (b"ERR TOO-LONG\n1.3\n", b"[0] <open>")),
        (case("SET on a RANGE: the whole value must be a number",
              ADMIN + b"SET VAR sim input.transfer.low 180abc\nSET VAR sim input.transfer.low 180\n"),
         (b"OK\nOK\nOK\nOK\n", b"[0] <open>"), (b"OK\nOK\nERR INVALID-VALUE\nOK\n", b"[0] <open>")),
        # NUT compares the value with the enum's escaped text: an allowed
        # value with a quote, backslash or hash is refused, and its escaped
        # spelling is accepted (and reaches the driver with backslashes).
        (case("SET on an ENUM: the value, not its escaped text",
              ADMIN + b'SET VAR sim input.sensitivity "hi\\"q"\nSET VAR sim input.sensitivity "hi\\\\\\"q"\n'
                      b'SET VAR sim input.sensitivity "e\\#f"\nSET VAR sim input.sensitivity "e\\\\\\#f"\n'
                      b"SET VAR sim input.sensitivity normal\n"),
         (b"OK\nOK\nERR INVALID-VALUE\nOK\nERR INVALID-VALUE\nOK\nOK\n", b"[0] <open>"),
         (b"OK\nOK\nOK\nERR INVALID-VALUE\nOK\nERR INVALID-VALUE\nOK\n", b"[0] <open>")),
        # NUT reads at most 512 bytes at a time: a LOGOUT that ends a read
        # closes the connection and what was pipelined after it is lost.
        (case("LOGOUT at the end of a 512-byte read", b"NETVER" + b" " * 498 + b"\nLOGOUT\nNETVER\n"),
         (b"1.3\nOK Goodbye\n", b"[0] <closed>"), (b"1.3\nOK Goodbye\n1.3\n", b"[0] <open>")),
        (case("ATTACH without credentials", b"ATTACH sim\n"),
         (b"ERR UNKNOWN-COMMAND\n", b"[0] <open>"), (b"ERR USERNAME-REQUIRED\n", b"[0] <open>")),
        (case("ATTACH, NUMATTACH, DETACH", VIEWER + b"ATTACH sim\nATTACH sim\nLOGIN sim\nGET NUMATTACH sim\n"
                                                    b"GET NUMLOGINS sim\nget numattach SIM\nDETACH\n"),
         (b"OK\nOK\nERR UNKNOWN-COMMAND\nERR UNKNOWN-COMMAND\nOK\nERR INVALID-ARGUMENT\nNUMLOGINS sim 1\n"
          b"ERR INVALID-ARGUMENT\nERR UNKNOWN-COMMAND\n", b"[0] <open>"),
         (b"OK\nOK\nOK\nERR ALREADY-ATTACHED\nERR ALREADY-LOGGED-IN\nNUMATTACH sim 1\nNUMLOGINS sim 1\n"
          b"NUMATTACH SIM 1\nOK Goodbye\n", b"[0] <closed>")),
        (case("ATTACH argument gates and errors", VIEWER + b"ATTACH\nATTACH nosuch\nGET NUMATTACH\nGET NUMATTACH nosuch\n"
                                                          b"DETACH now\n"),
         (b"OK\nOK\nERR UNKNOWN-COMMAND\nERR UNKNOWN-COMMAND\nERR INVALID-ARGUMENT\nERR INVALID-ARGUMENT\n"
          b"ERR UNKNOWN-COMMAND\n", b"[0] <open>"),
         (b"OK\nOK\nERR INVALID-ARGUMENT\nERR UNKNOWN-UPS\nERR INVALID-ARGUMENT\nERR UNKNOWN-UPS\n"
          b"ERR INVALID-ARGUMENT\n", b"[0] <open>")),
        (case("DETACH counts down at once", on(0, VIEWER + b"ATTACH sim\n"), on(1, b"GET NUMLOGINS sim\n"),
              on(0, b"DETACH\n"), on(1, b"GET NUMLOGINS sim\n")),
         (b"OK\nOK\nERR UNKNOWN-COMMAND\n", b"NUMLOGINS sim 0\n", b"ERR UNKNOWN-COMMAND\n", b"NUMLOGINS sim 0\n",
          b"[0] <open>", b"[1] <open>"),
         (b"OK\nOK\nOK\n", b"NUMLOGINS sim 1\n", b"OK Goodbye\n", b"NUMLOGINS sim 0\n",
          b"[0] <closed>", b"[1] <open>")),
    ]


class TablesTests(DifferentialCase):
    """
    The request tables: both daemons give the same bytes.
    """

    def test_basics(self) -> None:
        """
        Version, help, STARTTLS without certificates, empty and unknown
        lines, argument gates of the simple verbs, LOGOUT.
        """
        self.compare(BASICS)

    def test_get(self) -> None:
        """
        Every GET sub-command and its errors, in any case.
        """
        self.compare(GET)

    def test_list(self) -> None:
        """
        Every LIST sub-command and its errors, in any case.
        """
        self.compare(LIST)

    def test_auth_and_sessions(self) -> None:
        """
        USERNAME/PASSWORD-REQUIRED before argument checks, LOGIN, PRIMARY,
        MASTER, refusals, counting logins over several connections, LIST
        CLIENT, LOGOUT.
        """
        self.compare(AUTH)

    def test_set_and_instcmd(self) -> None:
        """
        SET and INSTCMD error paths in NUT's order: ACCESS-DENIED before
        VAR-NOT-SUPPORTED for SET, CMD-NOT-SUPPORTED before ACCESS-DENIED for
        INSTCMD, READONLY, TOO-LONG, INVALID-VALUE for ENUM and RANGE.
        """
        self.compare(SET_INSTCMD)

    def test_tokenizer(self) -> None:
        """
        Quoting, escaping, comments, C{=}, empty strings, dropped bytes, CR,
        tabs, continuation, long words, requests split across writes.
        """
        self.compare(TOKENIZER)

    def test_pipelining(self) -> None:
        """
        Many requests in one write (including a LOGOUT in the middle), and
        the same requests in many writes.
        """
        self.compare(PIPELINE)

    def test_deliberate_differences(self) -> None:
        """
        Each difference of docs/compatibility.md that shows on the wire here,
        with both sides' exact replies.
        """
        self.expect(deliberate_differences())


class FsdTests(DifferentialCase):
    """
    The FSD latch, which cannot be undone: a sandbox of its own.
    """

    def test_fsd_latch(self) -> None:
        """
        FSD sets a latch shown in GET VAR and LIST VAR (not LIST RW) on every
        connection, for that UPS only; repeating it is fine.
        """
        self.compare([
            case("before FSD", b"GET VAR sim ups.status\n"),
            case("FSD", ADMIN + b"FSD sim\nGET VAR sim ups.status\nGET VAR sim UPS.STATUS\nLIST VAR sim\n"
                                b"LIST RW sim\nfsd SIM\nGET VAR dev ups.status\n"),
            case("latched for everybody", b"GET VAR sim ups.status\nLIST VAR sim\nGET VAR seq ups.status\n"
                                          b"GET TYPE sim ups.status\n"),
            case("FSD on a dummy-ups UPS", ADMIN + b"FSD seq\nGET VAR seq ups.status\nLIST RW seq\n"),
            case("FSD needs the right", CMDONLY + b"FSD dev\nGET VAR dev ups.status\n"),
        ])


class TrackingTests(DifferentialCase):
    """
    TRACKING ids differ by design; their statuses, once the driver has
    reported, must not.
    """

    upsd_conf = "TRACKINGDELAY 2\n"

    REQUESTS = [
        b"SET VAR sim ups.beeper.status enabled\n",  # nutshim-sim: SUCCESS
        b"INSTCMD sim beeper.enable\n",  # declared: SUCCESS
        b"INSTCMD sim load.off\n",  # not declared: UNKNOWN
        b"SET VAR dev battery.charge 90\n",  # dummy-ups: SUCCESS
        b"INSTCMD dev load.off\n",  # dummy-ups: UNKNOWN
        b"INSTCMD seq load.off 1\n",  # with a parameter
    ]

    def transcript(self, port: int) -> List[bytes]:
        out: List[bytes] = []
        a = Conn(port)
        b = Conn(port)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        a.send(ADMIN + b"SET TRACKING ON\nGET TRACKING\n")
        out.append(a.replies(4))
        ids = []
        for request in self.REQUESTS:
            a.send(request)
            reply = a.replies(1)
            out.append(reply)
            m = TRACKING_ID.search(reply)
            if m is not None:
                self.assertRegex(m.group(0), UUID4_UPPER)
                ids.append(m.group(0))
        self.assertEqual(len(ids), len(self.REQUESTS), out)
        # Wait for every result, then compare them.
        for tid in ids:
            deadline = time.monotonic() + TIMEOUT
            while True:
                a.send(b"GET TRACKING %s\n" % tid)
                status = a.replies(1)
                if status != b"PENDING\n" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            out.append(b"GET TRACKING <id>: " + status)
        # Ids are case-insensitive; the table is shared by all connections
        # with tracking on; unknown ids are ERR UNKNOWN.
        a.send(b"GET TRACKING %s\nGET TRACKING 00000000-0000-4000-8000-000000000000\n" % ids[0].lower())
        out.append(a.replies(2))
        b.send(b"GET TRACKING %s\n" % ids[0])
        out.append(b.replies(1))
        b.send(b"USERNAME x\nPASSWORD y\nSET TRACKING ON\nGET TRACKING %s\nGET TRACKING %s\n" % (ids[0], ids[2]))
        out.append(b.replies(5))
        # Tracking off again: plain OK, and ids are no longer readable here.
        a.send(b"SET TRACKING OFF\nSET VAR sim ups.id lab\nGET TRACKING %s\nGET TRACKING\n" % ids[0])
        out.append(a.replies(4))
        out.append(a.state())
        # TRACKINGDELAY (2 s here; NUT counts whole seconds in a <= 2 s loop).
        deadline = time.monotonic() + TIMEOUT
        while True:
            b.send(b"GET TRACKING %s\n" % ids[0])
            status = b.replies(1)
            if status != b"SUCCESS\n" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        out.append(b"after TRACKINGDELAY: " + status)
        return normalise(out)

    def test_tracking(self) -> None:
        """
        Tracked SET and INSTCMD on both kinds of driver: the same statuses
        (SUCCESS, ERR UNKNOWN) on both daemons; ids are upper-case UUIDv4
        on both.
        """
        got_c = self.transcript(self.box.c_port)
        got_n = self.transcript(self.box.n_port)
        self.assertEqual(got_c, got_n, f"\nNUT:\n{show(got_c)}\nnutshim:\n{show(got_n)}")
        self.assertIn(b"GET TRACKING <id>: SUCCESS\n", got_c)
        self.assertIn(b"GET TRACKING <id>: ERR UNKNOWN\n", got_c)
        self.assertEqual(got_c[-1], b"after TRACKINGDELAY: ERR UNKNOWN\n")


# Requests whose replies depend on the driver's state.
DRIVER_STATE = [
    b"GET VAR {u} ups.status\n", b"GET VAR {u} battery.charge\n", b"LIST VAR {u}\n", b"LIST RW {u}\n",
    b"LIST CMD {u}\n", b"GET TYPE {u} ups.status\n", b"GET DESC {u} ups.status\n", b"GET CMDDESC {u} load.off\n",
    b"LIST ENUM {u} ups.status\n", b"LIST RANGE {u} ups.status\n", b"GET NUMLOGINS {u}\n", b"GET UPSDESC {u}\n",
    b"LIST CLIENT {u}\n", b"LIST UPS\n", b"GET VAR {u} server.bogus\n",
]


#: ups.status as the files set it (SETs in the tables must not change it).
STATUS = {"dev": b"OL CHRG", "seq": b"OB DISCHRG", "sim": b"OL"}


def driver_cases(ups: str, label: str) -> List[Case]:
    u = ups.encode()
    cases = [case(f"{label}: {r.decode().strip()}".replace("{u}", ups), r.replace(b"{u}", u)) for r in DRIVER_STATE]
    cases.append(case(f"{label}: privileged commands on {ups}",
                      ADMIN + b"LOGIN %s\nPRIMARY %s\nSET VAR %s ups.status \"%s\"\nINSTCMD %s load.off\n"
                              b"GET NUMLOGINS %s\nLIST CLIENT %s\n" % (u, u, u, STATUS[ups], u, u, u)))
    return cases


class DriverLifeTests(DifferentialCase):
    """
    Drivers that die, come back, or stop answering.
    """

    def test_killed_and_restarted(self) -> None:
        """
        A killed driver: DRIVER-NOT-CONNECTED where NUT says so, the rest
        still answered.  Restarted: C{ups.status "WAIT"} alone until the
        dump (held back here by stopping the new driver), then the data.
        """
        box = self.box
        # Logins survive the driver: one held open on each daemon.
        for port in (box.c_port, box.n_port):
            held = Conn(port)
            self.addCleanup(held.close)
            held.send(ADMIN + b"LOGIN dev\n")
            self.assertEqual(held.replies(3), b"OK\nOK\nOK\n")
        for ups in ("dev", "sim"):
            box.drivers[ups].stop()
            box.wait_both(f"{ups} disconnected", lambda r: r == b"ERR DRIVER-NOT-CONNECTED\n",
                          f"GET VAR {ups} ups.status\n")
        self.compare(driver_cases("dev", "dummy-ups killed") + driver_cases("sim", "nutshim-driver killed"))

        for ups in ("dev", "sim"):
            self.restart_held(ups)
        self.compare(driver_cases("dev", "dummy-ups dumping") + driver_cases("sim", "nutshim-driver dumping"))
        for ups in ("dev", "sim"):
            box.drivers[ups].signal(signal.SIGCONT)
        for ups in ("dev", "sim"):
            box.wait_both(f"{ups} data", lambda r: r.startswith(b"VAR ") and b"WAIT" not in r,
                          f"GET VAR {ups} ups.status\n")
        self.compare(driver_cases("dev", "dummy-ups back") + driver_cases("sim", "nutshim-driver back"))

    def restart_held(self, ups: str) -> None:
        """
        Start the driver again and stop it (SIGSTOP) as soon as its socket
        listens, so that both daemons connect and wait for the dump.  If a
        daemon was quicker than the SIGSTOP, try again.
        """
        box = self.box
        for attempt in range(4):
            proc = box.start_driver(ups, wait=False)
            box.wait_socket(ups, poll=0.002)
            proc.signal(signal.SIGSTOP)
            wait = f'VAR {ups} ups.status "WAIT"\n'.encode()
            try:
                box.wait_both(f"{ups} WAIT", lambda r: r == wait, f"GET VAR {ups} ups.status\n", 4.0)
                return
            except AssertionError:
                proc.signal(signal.SIGCONT)
                proc.stop()
                box.wait_both(f"{ups} disconnected", lambda r: r == b"ERR DRIVER-NOT-CONNECTED\n",
                              f"GET VAR {ups} ups.status\n")
        self.fail(f"could not catch {ups}'s daemons waiting for the dump")

    def test_stale(self) -> None:
        """
        A driver stopped (SIGSTOP) for longer than MAXAGE: DATA-STALE on both
        where NUT says so; SIGCONT: fresh data on both.
        """
        box = self.box
        for ups in ("dev", "sim"):
            box.drivers[ups].signal(signal.SIGSTOP)
        for ups in ("dev", "sim"):
            box.wait_both(f"{ups} stale", lambda r: r == b"ERR DATA-STALE\n", f"GET VAR {ups} ups.status\n", 20.0)
        self.compare(driver_cases("dev", "dummy-ups stale") + driver_cases("sim", "nutshim-driver stale"))
        for ups in ("dev", "sim"):
            box.drivers[ups].signal(signal.SIGCONT)
        for ups in ("dev", "sim"):
            box.wait_both(f"{ups} fresh", lambda r: r.startswith(b"VAR "), f"GET VAR {ups} ups.status\n")
        self.compare(driver_cases("dev", "dummy-ups fresh") + driver_cases("sim", "nutshim-driver fresh"))

        # The driver itself says DATASTALE (nutshim-sim's file is gone),
        # then DATAOK (it is back).
        os.rename(box.path("sim.dev"), box.path("sim.dev.away"))
        box.wait_both("sim DATASTALE", lambda r: r == b"ERR DATA-STALE\n", "GET VAR sim ups.status\n")
        self.compare(driver_cases("sim", "nutshim-sim says DATASTALE"))
        os.rename(box.path("sim.dev.away"), box.path("sim.dev"))
        box.wait_both("sim DATAOK", lambda r: r.startswith(b"VAR "), "GET VAR sim ups.status\n")
        self.compare(driver_cases("sim", "nutshim-sim says DATAOK"))


class MaxconnTests(DifferentialCase):
    """
    Past MAXCONN (deliberate difference): NUT leaves the extra client
    hanging, nutshim closes it at once.
    """

    upsd_conf = "MAXCONN 6\n"

    def test_maxconn(self) -> None:
        """
        NUT's MAXCONN counts every socket it polls: with 3 drivers and one
        listener, 6 leaves room for 3 clients (the listener itself is no
        longer polled once the clients fill the rest), and a 4th connects
        but gets no answer until a place is free.  nutshim counts clients:
        6 are served, the 7th is closed at once.
        """
        got = {}
        for port, room in ((self.box.c_port, 3), (self.box.n_port, 6)):
            served = [Conn(port) for _ in range(room)]
            for conn in served:
                self.addCleanup(conn.close)
                conn.send(b"NETVER\n")
                self.assertEqual(conn.replies(1), b"1.3\n")
            extra = Conn(port)
            self.addCleanup(extra.close)
            extra.send(b"NETVER\n")
            first = (extra.quiet(1.0), extra.eof)
            served[0].close()
            second = (extra.quiet(1.0), extra.eof)
            got[port] = [first, second]
        self.assertEqual(got[self.box.c_port], [(b"", False), (b"1.3\n", False)])
        self.assertEqual(got[self.box.n_port], [(b"", True), (b"", True)])


RELOADED_UPS_CONF = """\
[dev]
\tdriver = dummy-ups
\tport = dev.dev
\tdesc = "Reloaded \\"dev\\""
[sim]
\tdriver = nutshim-sim
\tport = sim.dev
\tdesc = "nutshim simulation"
\tnutshim-driver = external
[extra]
\tdriver = dummy-ups
\tport = extra.dev
"""


class ReloadTests(DifferentialCase):
    """
    SIGHUP with changed ups.conf and upsd.users.
    """

    def test_reload(self) -> None:
        """
        A UPS added by a reload comes first in LIST UPS, a removed one is
        gone and its logged-in clients are disconnected, a changed
        description shows, logins and the FSD latch of the others are kept,
        and open sessions are checked against the new upsd.users.
        """
        box = self.box
        held: Dict[int, Tuple[Conn, Conn, Conn]] = {}
        for port in (box.c_port, box.n_port):
            on_dev, on_seq, viewer = Conn(port), Conn(port), Conn(port)
            for conn in (on_dev, on_seq, viewer):
                self.addCleanup(conn.close)
            on_dev.send(ADMIN + b"LOGIN dev\n")
            on_seq.send(ADMIN + b"LOGIN seq\n")
            viewer.send(VIEWER + b"SET VAR sim ups.id lab\n")
            self.assertEqual([on_dev.replies(3), on_seq.replies(3), viewer.replies(3)],
                             [b"OK\nOK\nOK\n", b"OK\nOK\nOK\n", b"OK\nOK\nERR ACCESS-DENIED\n"])
            self.assertEqual(box.ask(port, ADMIN + b"FSD sim\n"), b"OK\nOK\nOK FSD-SET\n")
            held[port] = (on_dev, on_seq, viewer)
        write(box.path("ups.conf"), RELOADED_UPS_CONF)
        write(box.path("upsd.users"), UPSD_USERS.replace("[viewer]\n", "[viewer]\n\tactions = SET\n"), 0o600)
        box.upsd.signal(signal.SIGHUP)
        box.nutshim.signal(signal.SIGHUP)
        box.wait_both("the reload", lambda r: r.startswith(b"BEGIN LIST UPS\nUPS extra"), "LIST UPS\n")
        box.wait_both("dev's data", lambda r: r.startswith(b"VAR "), "GET VAR dev ups.status\n")
        self.compare([
            case("after reload: LIST UPS", b"LIST UPS\n"),
            case("after reload: descriptions", b"GET UPSDESC dev\nGET UPSDESC extra\nGET UPSDESC seq\n"),
            case("after reload: removed UPS", b"GET VAR seq ups.status\nLIST VAR seq\nGET NUMLOGINS seq\n"),
            case("after reload: added UPS without a driver", b"GET VAR extra ups.status\nLIST CLIENT extra\n"
                                                             b"GET NUMLOGINS extra\n"),
            case("after reload: logins and FSD kept", b"GET NUMLOGINS dev\nLIST CLIENT dev\n"
                                                      b"GET VAR sim ups.status\nGET VAR dev ups.status\n"),
            case("after reload: new rights", VIEWER + b"SET VAR sim ups.id lab\nLOGIN extra\n"),
        ])
        results = {}
        for port, (on_dev, on_seq, viewer) in held.items():
            viewer.send(b"SET VAR sim ups.id lab\n")
            results[port] = [on_dev.state(), on_seq.state(), viewer.replies(1)]
        self.assertEqual(results[box.c_port], [b"<open>", b"<closed>", b"OK\n"])
        self.assertEqual(results[box.n_port], results[box.c_port])


TLS_UPS_CONF = '[u]\n\tdriver = dummy-ups\n\tport = u.dev\n\tdesc = "no driver"\n'


class TlsTests(SynchronousTestCase):
    """
    STARTTLS on both, each with a certificate from C{nutshim-pki}: NUT's
    (an NSS build) from an NSS database, nutshim's from the PEM file.  The
    two upsd.conf files differ there, so each daemon has its own directory.
    """

    def setUp(self) -> None:
        require(UPSD, "certutil", "pk12util")
        self.dir = tempfile.mkdtemp(prefix="nutshim-difftls-")
        if not os.environ.get("NUTSHIM_KEEP_SANDBOX"):
            self.addCleanup(shutil.rmtree, self.dir, True)
        certs = os.path.join(self.dir, "certs")
        self.cafile = os.path.join(certs, "ca.pem")
        for args in (["init"], ["server", "localhost", "--san", "127.0.0.1"],
                     ["export-nss", os.path.join(self.dir, "nss"), "--server", "localhost"]):
            out = subprocess.run([sys.executable, "-m", "nutshim.pki.cli", "--dir", certs, *args],
                                 capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.c_port, self.n_port = free_port(), free_port()
        c_dir, n_dir = os.path.join(self.dir, "nut"), os.path.join(self.dir, "nutshim")
        for d, tls in ((c_dir, f'CERTPATH {self.dir}/nss\nCERTIDENT "localhost" ""\n'),
                       (n_dir, f"CERTFILE {certs}/localhost.pem\n")):
            os.makedirs(d)
            write(os.path.join(d, "ups.conf"), TLS_UPS_CONF)
            write(os.path.join(d, "upsd.conf"), f"LISTEN 127.0.0.1 {self.c_port}\n{tls}", 0o600)
            write(os.path.join(d, "upsd.users"), UPSD_USERS, 0o600)
        for name, d, args, port in (
            ("upsd", c_dir, [UPSD, "-u", "root", "-F"], self.c_port),
            ("nutshim", n_dir, [twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", n_dir, "--statepath", n_dir,
                                "--listen", f"tcp:{self.n_port}:interface=127.0.0.1"], self.n_port),
        ):
            proc = Process(args, os.path.join(d, name + ".log"), env=nut_env(d), cwd=d)
            self.addCleanup(proc.stop)
            try:
                wait_port(port, TIMEOUT)
            except AssertionError:
                raise AssertionError(f"{name} did not start:\n{proc.output()}")

    def over_tls(self, port: int, steps: Sequence[Tuple[bytes, int]]) -> List[bytes]:
        conn = Conn(port)
        self.addCleanup(conn.close)
        conn.start_tls(self.cafile)
        out = []
        for data, replies in steps:
            conn.send(data)
            out.append(conn.replies(replies))
        out.append(conn.state())
        return out

    def test_inside_tls(self) -> None:
        """
        Inside TLS both answer the same, except a second STARTTLS: NUT's
        C{ALREADY-SSL-MODE}, RFC 9271's C{TLS-ALREADY-ENABLED} (deliberate).
        """
        requests = (b"NETVER\nHELP\nLIST UPS\nGET UPSDESC u\nGET VAR u ups.status\n" + VIEWER +
                    b"LOGIN u\nLIST CLIENT u\nGET NUMLOGINS u\n")
        same = (requests, count_lines(requests))
        got = {}
        for port in (self.c_port, self.n_port):
            got[port] = normalise(self.over_tls(port, [(b"STARTTLS\n", 1), same, (b"starttls now\n", 1)]))
        self.assertEqual(got[self.c_port][1:2] + got[self.c_port][3:], got[self.n_port][1:2] + got[self.n_port][3:])
        self.assertEqual([got[self.c_port][0], got[self.c_port][2]], [b"ERR ALREADY-SSL-MODE\n"] * 2)
        self.assertEqual([got[self.n_port][0], got[self.n_port][2]], [b"ERR TLS-ALREADY-ENABLED\n"] * 2)
        self.assertEqual(got[self.c_port][-1], b"<open>")

    def test_plaintext_after_starttls(self) -> None:
        """
        Plaintext pipelined behind STARTTLS (deliberate difference): NUT
        runs it (its reply is lost to the failed handshake) and keeps the
        connection; nutshim runs nothing more and closes.
        """
        got = {}
        for port in (self.c_port, self.n_port):
            conn = Conn(port)
            self.addCleanup(conn.close)
            conn.send(b"STARTTLS\nNETVER\n")
            got[port] = (conn.quiet(1.0), conn.eof)
        self.assertEqual(got[self.c_port], (b"OK STARTTLS\n", False))
        self.assertEqual(got[self.n_port], (b"OK STARTTLS\n", True))


class NutToolsTests(DifferentialCase):
    """
    NUT's own clients through NUT's C upsd, on nutshim's simulation driver,
    and through nutshim's upsd.
    """

    def run_tool(self, args: Sequence[str]) -> str:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=TIMEOUT, env=self.box.env)
        # NSS-built clients say so on stderr for every plaintext connection.
        err = "".join(line for line in out.stderr.splitlines(True)
                      if line.strip() != "Init SSL without certificate database")
        return out.stdout + err + ("" if out.returncode == 0 else f"[exit {out.returncode}]")

    def both(self, tool: Sequence[str], ups: Optional[str], *rest: str) -> str:
        """
        Run C{tool} against both daemons; the outputs must be the same.
        """
        outs = []
        for port in (self.box.c_port, self.box.n_port):
            where = f"{ups}@127.0.0.1:{port}" if ups is not None else f"127.0.0.1:{port}"
            outs.append(self.run_tool([*tool, where, *rest]).replace(f":{port}", ":PORT"))
        self.assertEqual(outs[0], outs[1], f"{tool} differs:\n--- NUT:\n{outs[0]}\n--- nutshim:\n{outs[1]}")
        return outs[0]

    def test_upsc_upsrw_upscmd(self) -> None:
        """
        C{upsc}, C{upsrw} and C{upscmd} print the same through both daemons;
        through NUT's C upsd they reach nutshim's driver: the simulated
        variables, a SET and an instant command's effect are visible.
        """
        require(UPSC, UPSRW, UPSCMD)
        out = self.both([UPSC], "sim")
        for line in ("ups.status: OL", "driver.name: nutshim-sim", "ups.beeper.status: enabled",
                     'ups.model: Sim "1000"', "input.transfer.low: 180", "device.type: ups"):
            self.assertIn(line, out.splitlines())
        self.assertEqual(self.both([UPSC], "sim", "ups.status"), "OL\n")
        self.both([UPSC], "dev")
        self.both([UPSC, "-l"], None)
        self.assertIn("sim: nutshim simulation", self.both([UPSC, "-L"], None))
        self.both([UPSC, "-c"], "sim")
        self.assertIn("beeper.enable", self.both([UPSCMD, "-l"], "sim"))
        listing = self.both([UPSRW], "sim")
        for text in ("[ups.beeper.status]", "Option: \"muted\"", "[input.transfer.low]", "Type: RANGE"):
            self.assertIn(text, listing)
        self.both([UPSRW], "dev")
        self.both([UPSC], "sim", "nosuch.var")
        self.both([UPSC], "nosuch")

        # Refusals, the same through both.
        admin = ["-u", "admin", "-p", "pw"]
        self.both([UPSRW, "-s", "ups.beeper.status=loud", *admin], "sim")
        self.both([UPSRW, "-s", "battery.charge=5", *admin], "sim")
        self.both([UPSRW, "-s", "ups.id=waytoolongvalue", *admin], "sim")
        self.both([UPSRW, "-s", "ups.id=x", "-u", "viewer", "-p", "pw"], "sim")
        self.both([UPSCMD, "-u", "viewer", "-p", "pw"], "sim", "beeper.enable")
        self.both([UPSCMD, *admin], "sim", "nosuch.cmd")

        # Through NUT's C upsd into nutshim-driver: the effects show on both.
        c = f"sim@127.0.0.1:{self.box.c_port}"
        out = self.run_tool([UPSRW, "-s", "ups.beeper.status=muted", *admin, "-w", "-t", "10", c])
        self.assertIn("SUCCESS", out)
        out = self.run_tool([UPSCMD, *admin, "-w", "-t", "10", c, "test.battery.start"])
        self.assertIn("SUCCESS", out)
        out = self.run_tool([UPSRW, "-s", "input.transfer.low=215", *admin, c])
        self.assertIn("OK", out)
        for request, want in (("GET VAR sim ups.beeper.status\n", b'VAR sim ups.beeper.status "muted"\n'),
                              ("GET VAR sim ups.test.result\n", b'VAR sim ups.test.result "In progress"\n'),
                              ("GET VAR sim input.transfer.low\n", b'VAR sim input.transfer.low "215"\n')):
            self.box.wait_both(request.strip(), want.__eq__, request, 10.0)
        out = self.both([UPSC], "sim")
        self.assertIn("ups.beeper.status: muted", out.splitlines())
        self.assertIn("ups.test.result: In progress", out.splitlines())
        # An undeclared command: nutshim-sim reports UNKNOWN, as dummy-ups.
        out = self.run_tool([UPSCMD, *admin, "-w", "-t", "10", c, "load.off"])
        self.assertIn("UNKNOWN", out)
