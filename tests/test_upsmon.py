"""
nut-upsmon (the installed C{twistd nut-upsmon}) against real servers and
next to Debian's NUT 2.8.0 upsmon: the shutdown story of RFC 9271
Appendix B with Primaries and Secondaries of both kinds, over TLS, and
the loss of contact (NOCOMM, DEADTIME).

Every SHUTDOWNCMD and NOTIFYCMD is a harmless script that records what it
got: C{NOTIFYTYPE|UPSNAME|message} lines, and the time of the shutdown.
Blocking by design, like the rest of tests/: real processes, real
sockets, bounded waits.  A missing NUT binary skips, except in CI.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import textwrap
import time
from typing import Callable, Dict, List, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import (
    NUT_BIN,
    UPSD_USERS,
    Process,
    free_port,
    nut_env,
    nutshim_daemon,
    private_run,
    query,
    real_driver,
    real_upsd,
    require,
    run,
    twistd,
    wait_for,
    write,
)

#: OL long enough for every monitor to log in, then OB, then OB LB.
OUTAGE_SEQ = """
ups.mfr: Acme
ups.model: Outage
battery.charge: 100
ups.status: OL
TIMER 12
ups.status: OB DISCHRG
battery.charge: 60
TIMER 4
ups.status: OB DISCHRG LB
battery.charge: 10
TIMER 600
"""

#: OL, then on battery for good: for the loss-of-contact tests.
ONBATT_SEQ = """
ups.status: OL
TIMER 3
ups.status: OB
TIMER 600
"""

NOTIFY_SH = """#!/bin/sh
# $1: the record file; $2: the message (NUT passes it as the last word).
echo "$NOTIFYTYPE|${UPSNAME-}|$2" >> "$1"
"""

SHUTDOWN_SH = """#!/bin/sh
date +%s.%N > "$1"
"""

ALL_TYPES = ("ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN",
             "REPLBATT", "NOCOMM")


class Monitors:
    """
    The directory of one test: the server's configuration, the scripts,
    and one sub-directory per monitor with its records.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        self.case = case
        self.dir = os.path.abspath(case.mktemp())
        os.makedirs(self.dir)
        write(os.path.join(self.dir, "upsd.users"), UPSD_USERS, 0o640)
        self.notify_sh = write(os.path.join(self.dir, "notify.sh"), NOTIFY_SH, 0o755)
        self.shutdown_sh = write(os.path.join(self.dir, "shutdown.sh"), SHUTDOWN_SH, 0o755)
        self.procs: Dict[str, Process] = {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def conf(self, tag: str, port: int, user: str, role: str, extra: str = "") -> str:
        """upsmon.conf for monitor C{tag}; records go to C{tag}/."""
        mdir = self.path(tag)
        os.makedirs(mdir, exist_ok=True)
        password = "pripw" if user == "monpri" else "secpw"
        flags = "".join(f"NOTIFYFLAG {t} SYSLOG+EXEC\n" for t in ALL_TYPES)
        text = textwrap.dedent(
            f"""\
            RUN_AS_USER root
            MONITOR sim@127.0.0.1:{port} 1 {user} {password} {role}
            MINSUPPLIES 1
            SHUTDOWNCMD "{self.shutdown_sh} {mdir}/shutdown"
            NOTIFYCMD "{self.notify_sh} {mdir}/notify"
            POLLFREQ 1
            POLLFREQALERT 1
            HOSTSYNC 15
            DEADTIME 6
            FINALDELAY 1
            NOCOMMWARNTIME 1
            POWERDOWNFLAG {mdir}/killpower
            """
        ) + flags + extra
        return write(os.path.join(mdir, "upsmon.conf"), text, 0o600)

    def nutshim(self, tag: str, port: int, user: str, role: str, extra: str = "") -> Process:
        """Start nut-upsmon (the installed package) as monitor C{tag}."""
        path = self.conf(tag, port, user, role, extra)
        proc = Process([twistd(), "-n", "--pidfile=", "nut-upsmon", "--config", path],
                       self.path(tag, "daemon.log"), env=nut_env(self.path(tag)))
        self.case.addCleanup(proc.stop)
        self.procs[tag] = proc
        return proc

    def nut(self, tag: str, port: int, user: str, role: str, extra: str = "") -> Process:
        """Start Debian's real upsmon as monitor C{tag}."""
        upsmon = os.path.join(NUT_BIN, "upsmon")
        require(upsmon, "unshare")
        self.conf(tag, port, user, role, extra)
        mdir = self.path(tag)
        proc = Process(private_run(mdir, [upsmon, "-F", "-D"]), self.path(tag, "daemon.log"),
                       env=nut_env(mdir))
        self.case.addCleanup(proc.stop)
        self.procs[tag] = proc
        return proc

    def notes(self, tag: str) -> List[List[str]]:
        """The NOTIFYCMD records of C{tag}: [type, upsname, message]."""
        try:
            with open(self.path(tag, "notify")) as f:
                return [line.rstrip("\n").split("|", 2) for line in f]
        except FileNotFoundError:
            return []

    def types(self, tag: str) -> List[str]:
        return [note[0] for note in self.notes(tag)]

    def shutdown_time(self, tag: str) -> Optional[float]:
        try:
            with open(self.path(tag, "shutdown")) as f:
                return float(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def wait_shutdown(self, tag: str, timeout: float = 45) -> float:
        wait_for(lambda: self.shutdown_time(tag) is not None, timeout,
                 f"SHUTDOWNCMD of {tag}\n{self.procs[tag].output()[-3000:]}")
        value = self.shutdown_time(tag)
        assert value is not None
        return value

    def wait_note(self, tag: str, notify_type: str, timeout: float = 30) -> None:
        wait_for(lambda: notify_type in self.types(tag), timeout,
                 f"{notify_type} for {tag}: {self.notes(tag)}\n{self.procs[tag].output()[-3000:]}")


def numlogins(port: int) -> bytes:
    try:
        return query(port, b"GET NUMLOGINS sim\n")
    except OSError:
        return b""


def status(port: int) -> bytes:
    return query(port, b"GET VAR sim ups.status\n")


class RealUpsdTests(SynchronousTestCase):
    """
    Debian's upsd and dummy-ups, with nut-upsmon as Primary.
    """

    def start_nut(self, m: Monitors, seq: str) -> int:
        port = free_port()
        write(m.path("outage.seq"), seq)
        write(m.path("ups.conf"), "[sim]\n  driver = dummy-ups\n  port = outage.seq\n"
              "  desc = \"Outage\"\n  pollinterval = 1\n")
        write(m.path("upsd.conf"), f"LISTEN 127.0.0.1 {port}\nMAXAGE 15\n", 0o640)
        self.driver = real_driver(self, m.dir, "sim")
        self.upsd = real_upsd(self, m.dir, port)
        return port

    def test_primary_story(self) -> None:
        """
        OL, OB, OB LB: the nut-upsmon Primary sets FSD; the nut-upsmon
        Secondary and NUT's upsmon Secondary shut down and log out; the
        attach count drops to 1; then the Primary writes POWERDOWNFLAG and
        runs SHUTDOWNCMD, and exits.
        """
        m = Monitors(self)
        port = self.start_nut(m, OUTAGE_SEQ)
        m.nutshim("primary", port, "monpri", "primary")
        m.nutshim("secondary", port, "monsec", "secondary")
        m.nut("nut-secondary", port, "monsec", "secondary")
        wait_for(lambda: numlogins(port) == b"NUMLOGINS sim 3\n", 12, "three monitors attached")
        self.assertNotIn(b"OB", status(port), "too slow to attach before OB")
        secondary = m.wait_shutdown("secondary")
        nut_secondary = m.wait_shutdown("nut-secondary")
        primary = m.wait_shutdown("primary")
        self.assertGreaterEqual(primary, max(secondary, nut_secondary))
        self.assertIn(b"FSD", status(port))
        with open(m.path("primary", "killpower")) as f:
            self.assertEqual(f.read(), "upsmon-shutdown-file\n")
        self.assertFalse(os.path.exists(m.path("secondary", "killpower")))
        log = m.procs["primary"].output()
        self.assertIn("Setting FSD on UPS sim@127.0.0.1:", log)
        self.assertIn("All secondaries have logged out", log)
        ups = f"sim@127.0.0.1:{port}"
        self.assertEqual(m.notes("primary")[:2], [
            ["ONBATT", ups, f"UPS {ups} on battery"],
            ["LOWBATT", ups, f"UPS {ups} battery is low"],
        ])
        self.assertIn(["FSD", ups, f"UPS {ups}: forced shutdown in progress"], m.notes("secondary"))
        for tag in ("primary", "secondary"):
            self.assertIn(["SHUTDOWN", "", "Auto logout and shutdown proceeding"], m.notes(tag))
        # NUT's own Secondary heard the same events, named the same way.
        self.assertIn("ONBATT", m.types("nut-secondary"))
        self.assertIn("SHUTDOWN", m.types("nut-secondary"))
        for tag in ("primary", "secondary"):
            wait_for(lambda: not m.procs[tag].alive(), 10, f"{tag} exits after SHUTDOWNCMD")

    def test_driver_killed(self) -> None:
        """
        The driver dies while on battery: COMMBAD, NOCOMM every
        NOCOMMWARNTIME, and after DEADTIME the UPS is critical: shutdown.
        """
        m = Monitors(self)
        port = self.start_nut(m, ONBATT_SEQ)
        m.nutshim("primary", port, "monpri", "primary")
        m.wait_note("primary", "ONBATT", 20)
        killed = time.time()
        self.driver.stop()
        m.wait_note("primary", "COMMBAD", 10)
        m.wait_note("primary", "NOCOMM", 10)
        done = m.wait_shutdown("primary", 30)
        self.assertGreater(done - killed, 6)
        self.assertRegex(m.procs["primary"].output(),
                         "Poll UPS .* failed - (Driver not connected|Data stale)")
        self.assertIn("no contact for more than 6 s", m.procs["primary"].output())

    def test_upsd_stopped(self) -> None:
        """
        Issue 10 item 7: the server hangs (SIGSTOP) while on battery, the
        polls go unanswered, and after DEADTIME (6 s) the UPS is critical.
        nut-upsmon's Primary then waits on nothing from the hung server
        (no FSD, NUMATTACH or DETACH there): SHUTDOWNCMD within DEADTIME +
        POLLFREQALERT + FINALDELAY (8 s) and some slack -- NUT's own
        upsmon, a Primary on the same server beside it, takes about 11 s
        (DEADTIME plus its 5 s read timeout); both figures go to the test
        log.
        """
        m = Monitors(self)
        port = self.start_nut(m, ONBATT_SEQ)
        m.nutshim("primary", port, "monpri", "primary")
        m.nut("nut-primary", port, "monpri", "primary")
        m.wait_note("primary", "ONBATT", 20)
        m.wait_note("nut-primary", "ONBATT", 20)
        time.sleep(0.5)
        self.upsd.signal(signal.SIGSTOP)
        stopped = time.time()
        self.addCleanup(self.upsd.signal, signal.SIGCONT)
        done = m.wait_shutdown("primary", 40)
        nut_done = m.wait_shutdown("nut-primary", 40)
        log = m.procs["primary"].output()
        from twisted.python import log as twlog
        twlog.msg(f"hung upsd to SHUTDOWNCMD: nut-upsmon {done - stopped:.2f} s, "
                  f"NUT upsmon 2.8.0 {nut_done - stopped:.2f} s")
        self.assertGreater(done - stopped, 6)
        self.assertLess(done - stopped, 6 + 1 + 1 + 1.5, log[-3000:])
        self.assertIn("no contact for more than 6 s", log)
        self.assertIn("failed: no reply from the server for more than 6 s", log)
        self.assertNotIn("no reply to FSD", log)


class NutshimUpsdTests(SynchronousTestCase):
    """
    nutshim's upsd, with NUT's upsmon as Primary, or over TLS.
    """

    def start_nutshim(self, m: Monitors, upsd_conf: str = "") -> int:
        write(m.path("outage.seq"), OUTAGE_SEQ)
        write(m.path("ups.conf"), "[sim]\n  driver = nutshim-sim\n  port = outage.seq\n")
        write(m.path("upsd.conf"), upsd_conf, 0o640)
        port = free_port()
        nutshim_daemon(self, m.dir, port)
        return port

    def test_nut_primary(self) -> None:
        """
        NUT's upsmon as Primary, nut-upsmon as Secondary: the Secondary
        obeys FSD and logs out, then the Primary shuts down without waiting
        out HOSTSYNC.
        """
        m = Monitors(self)
        port = self.start_nutshim(m)
        m.nut("nut-primary", port, "monpri", "primary")
        m.nutshim("secondary", port, "monsec", "secondary")
        wait_for(lambda: numlogins(port) == b"NUMLOGINS sim 2\n", 12, "both monitors attached")
        secondary = m.wait_shutdown("secondary")
        primary = m.wait_shutdown("nut-primary")
        self.assertGreaterEqual(primary, secondary)
        self.assertLess(primary - secondary, 10, "NUT's Primary waited out HOSTSYNC")
        self.assertTrue(os.path.exists(m.path("nut-primary", "killpower")))
        ups = f"sim@127.0.0.1:{port}"
        # LB and FSD may arrive in one poll; the scripts run concurrently.
        self.assertEqual(set(m.types("secondary")), {"ONBATT", "LOWBATT", "FSD", "SHUTDOWN"})
        self.assertIn(["FSD", ups, f"UPS {ups}: forced shutdown in progress"], m.notes("secondary"))

    def test_reload_and_user_fsd(self) -> None:
        """
        SIGHUP re-reads upsmon.conf (a new MONITOR line logs in; a broken
        file is refused and the daemon runs on with what it had), and SIGUSR2
        (the forced shutdown, as SIGUSR1) shuts a Secondary down.
        """
        m = Monitors(self)
        write(m.path("steady.seq"), "ups.status: OL\nTIMER 600\n")
        write(m.path("ups.conf"), "[sim]\n  driver = nutshim-sim\n  port = steady.seq\n")
        write(m.path("upsd.conf"), "", 0o640)
        port = free_port()
        nutshim_daemon(self, m.dir, port)
        proc = m.nutshim("secondary", port, "monsec", "secondary")
        wait_for(lambda: numlogins(port) == b"NUMLOGINS sim 1\n", 12, "nut-upsmon attached")
        path = m.path("secondary", "upsmon.conf")
        with open(path) as f:
            text = f.read()
        # The same UPS under another MONITOR name (UPS names ignore case).
        write(path, text + f"MONITOR SIM@127.0.0.1:{port} 0 monsec secpw secondary\n", 0o600)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: numlogins(port) == b"NUMLOGINS sim 2\n", 12,
                 f"the second MONITOR attached\n{proc.output()[-3000:]}")
        write(path, text + "MINSUPPLIES 5\n", 0o600)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "Reload failed, keeping the running configuration" in proc.output(), 10,
                 "the broken reload logged")
        self.assertIn("total power value (1) less than MINSUPPLIES (5)", proc.output())
        self.assertTrue(proc.alive())
        self.assertEqual(numlogins(port), b"NUMLOGINS sim 2\n")
        self.assertEqual(m.types("secondary"), [])
        proc.signal(signal.SIGUSR2)
        m.wait_shutdown("secondary", timeout=20)
        self.assertIn("SHUTDOWN", m.types("secondary"))
        self.assertIn("Forced shutdown requested by the administrator", proc.output())

    def test_tls(self) -> None:
        """
        Over STARTTLS with the CA verified (CERTPATH, CERTVERIFY 1,
        FORCESSL 1) against a server that refuses plaintext: the whole
        story; a monitor trusting another CA never attaches.
        """
        m = Monitors(self)
        certs = m.path("certs")
        for args in (["init"], ["server", "localhost", "--san", "127.0.0.1"]):
            out = run([sys.executable, "-m", "nutshim.pki.cli", "--dir", certs, *args])
            self.assertEqual(out.returncode, 0, out.stderr)
        other = m.path("other")
        out = run([sys.executable, "-m", "nutshim.pki.cli", "--dir", other, "init"])
        self.assertEqual(out.returncode, 0, out.stderr)
        port = self.start_nutshim(m, f"CERTFILE {certs}/localhost.pem\nTLS_REQUIRED all\n")
        tls = f"CERTPATH {certs}/ca.pem\nCERTVERIFY 1\nFORCESSL 1\n"
        m.nutshim("primary", port, "monpri", "primary", extra=tls)
        m.nutshim("secondary", port, "monsec", "secondary", extra=tls)
        m.nutshim("stranger", port, "monsec", "secondary",
                  extra=f"CERTPATH {other}/ca.pem\nCERTVERIFY 1\nFORCESSL 1\n")
        secondary = m.wait_shutdown("secondary")
        primary = m.wait_shutdown("primary")
        self.assertGreaterEqual(primary, secondary)
        self.assertIn("All secondaries have logged out", m.procs["primary"].output())
        self.assertTrue(os.path.exists(m.path("primary", "killpower")))
        # Never attached: the UPS is only "unavailable" (NOCOMM), never critical.
        self.assertEqual(set(m.types("stranger")), {"NOCOMM"})
        self.assertIsNone(m.shutdown_time("stranger"))
        self.assertIn("certificate verify failed", m.procs["stranger"].output())


#: A UPS that stays on line power: nothing happens unless asked.
STEADY_SEQ = "ups.status: OL\nTIMER 600\n"


def unit_exec_start(name: str) -> List[str]:
    """The ExecStart= command of systemd/NAME, split as systemd does."""
    # The test command runs a copy of tests/ outside the checkout, and says
    # where the checkout is.
    top = os.environ.get("NUTSHIM_CHECKOUT") or os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(top, "systemd", name)
    with open(path) as f:
        for line in f:
            if line.startswith("ExecStart="):
                return shlex.split(line[len("ExecStart="):])
    raise AssertionError(f"no ExecStart in {path}")


class SignalTests(SynchronousTestCase):
    """
    Issue 10 item 1: SIGHUP, SIGUSR1 and SIGUSR2 never kill nut-upsmon, in
    each way it is run (twistd -n with and without --logfile, --syslog,
    the systemd unit's command line), and NUT 2.8.0's own C{upsmon -c
    fsd|reload|stop} drive it as they drive NUT's upsmon.  A Secondary on
    a steady UPS, so that only a forced shutdown runs SHUTDOWNCMD.
    """

    def start(self, twistd_args: List[str],
              unit: bool = False) -> Tuple[Monitors, Process, int]:
        """
        nut-upsd on a steady UPS and nut-upsmon as its Secondary, run as
        C{twistd TWISTD_ARGS nut-upsmon --config FILE}, or (C{unit}) with
        the systemd unit's ExecStart and /run/nut private to the test.
        """
        m = Monitors(self)
        write(m.path("steady.seq"), STEADY_SEQ)
        write(m.path("ups.conf"), "[sim]\n  driver = nutshim-sim\n  port = steady.seq\n")
        write(m.path("upsd.conf"), "", 0o640)
        port = free_port()
        nutshim_daemon(self, m.dir, port)
        path = m.conf("secondary", port, "monsec", "secondary", extra="FINALDELAY 2\n")
        args = [twistd(), *twistd_args, "nut-upsmon", "--config", path]
        if unit:
            require(os.path.join(NUT_BIN, "upsmon"), "unshare")
            args = unit_exec_start("nut-upsmon.service")
            self.assertEqual(args[args.index("nut-upsmon") - 1], "--pidfile=/run/nut/upsmon.pid")
            self.assertNotIn("--logfile", args)
            args[0] = twistd()
            args[args.index("--config") + 1] = path
            args = private_run(m.path("secondary"), args)
        proc = Process(args, m.path("secondary", "daemon.log"), env=nut_env(m.path("secondary")))
        self.addCleanup(proc.stop)
        m.procs["secondary"] = proc
        wait_for(lambda: numlogins(port) == b"NUMLOGINS sim 1\n", 15,
                 f"nut-upsmon attached\n{proc.output()[-3000:]}")
        return m, proc, port

    def nut_upsmon(self, *args: str, rundir: Optional[str] = None) -> str:
        """Run NUT's own upsmon with C{args}; its output."""
        upsmon = os.path.join(NUT_BIN, "upsmon")
        require(upsmon)
        argv = [upsmon, *args]
        if rundir is not None:
            argv = private_run(rundir, argv)
        out = run(argv, timeout=15)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        return out.stdout + out.stderr

    def reload_survived(self, m: Monitors, proc: Process, port: int,
                        log: Optional[Callable[[], str]], send: Callable[[], object]) -> None:
        """SIGHUP (by C{send}): reloaded, still running and attached."""
        send()
        if log is not None:
            wait_for(lambda: "Configuration reloaded" in log(), 10, "the reload")
        time.sleep(1)
        self.assertTrue(proc.alive(), proc.output()[-3000:])
        self.assertEqual(numlogins(port), b"NUMLOGINS sim 1\n")

    def forced(self, m: Monitors, proc: Process) -> None:
        """The forced shutdown ran SHUTDOWNCMD once; then the daemon ended."""
        m.wait_shutdown("secondary", 20)
        self.assertEqual(m.types("secondary"), ["SHUTDOWN"])
        wait_for(lambda: not proc.alive(), 15, "the end after SHUTDOWNCMD")
        self.assertEqual(proc.proc.returncode, 0)

    def test_nodaemon(self) -> None:
        """
        C{twistd -n} without --logfile: NUT's C{upsmon -c fsd -P PID}
        (SIGUSR1) forces the shutdown; a SIGUSR2 during it and a SIGHUP
        before it change nothing; the log says which signal does what.
        """
        m, proc, port = self.start(["-n", "--pidfile="])
        self.assertIn("SIGUSR1 forces the shutdown (upsmon -c fsd)", proc.output())
        self.reload_survived(m, proc, port, proc.output, lambda: proc.signal(signal.SIGHUP))
        self.nut_upsmon("-c", "fsd", "-P", str(proc.proc.pid))
        wait_for(lambda: "Forced shutdown requested" in proc.output(), 10, "the forced shutdown")
        proc.signal(signal.SIGUSR2)
        self.forced(m, proc)
        self.assertIn("already shutting down", proc.output())

    def test_logfile(self) -> None:
        """
        C{twistd -n --logfile FILE}: SIGUSR1 (NUT's C{upsmon -c fsd}) rotates
        the log and shuts nothing down; SIGHUP reloads; SIGUSR2 forces the
        shutdown.
        """
        logfile = os.path.abspath(self.mktemp())
        m, proc, port = self.start(["-n", "--pidfile=", "--logfile", logfile])

        def log() -> str:
            with open(logfile) as f:
                return f.read()

        self.assertIn("SIGUSR1 rotates the log file (twistd --logfile)", log())
        self.assertIn("send SIGUSR2 to force the shutdown", log())
        self.reload_survived(m, proc, port, log, lambda: proc.signal(signal.SIGHUP))
        self.nut_upsmon("-c", "fsd", "-P", str(proc.proc.pid))
        wait_for(lambda: os.path.exists(logfile + ".1"), 10, "the rotated log")
        time.sleep(3)
        self.assertTrue(proc.alive(), proc.output())
        self.assertIsNone(m.shutdown_time("secondary"))
        self.assertEqual(numlogins(port), b"NUMLOGINS sim 1\n")
        proc.signal(signal.SIGUSR2)
        self.forced(m, proc)

    def test_syslog(self) -> None:
        """
        C{twistd -n --syslog}: no log file, so SIGUSR1 is the forced
        shutdown; SIGHUP before it and SIGUSR2 during it kill nothing.
        """
        m, proc, port = self.start(["-n", "--pidfile=", "--syslog", "--prefix=nutshim-test"])
        self.reload_survived(m, proc, port, None, lambda: proc.signal(signal.SIGHUP))
        self.nut_upsmon("-c", "fsd", "-P", str(proc.proc.pid))
        time.sleep(0.5)
        proc.signal(signal.SIGUSR2)
        self.forced(m, proc)

    def test_systemd_unit_fsd(self) -> None:
        """
        The unit's own command line (with /run/nut private to the test):
        the PID file is where NUT's upsmon looks, so plain C{upsmon -c
        reload} and C{upsmon -c fsd}, without C{-P}, reach nut-upsmon.
        """
        m, proc, port = self.start([], unit=True)
        rundir = m.path("secondary")
        self.assertIn("SIGUSR1 forces the shutdown (upsmon -c fsd)", proc.output())
        with open(os.path.join(rundir, "upsmon.pid")) as f:
            self.assertEqual(int(f.read()), proc.proc.pid)
        self.reload_survived(m, proc, port, proc.output,
                             lambda: self.nut_upsmon("-c", "reload", rundir=rundir))
        self.nut_upsmon("-c", "fsd", rundir=rundir)
        self.forced(m, proc)
        self.assertFalse(os.path.exists(os.path.join(rundir, "upsmon.pid")))

    def test_systemd_unit_stop(self) -> None:
        """
        C{upsmon -c stop} against the unit's command line: DETACH, a clean
        exit, the PID file gone, no shutdown.
        """
        m, proc, port = self.start([], unit=True)
        rundir = m.path("secondary")
        self.nut_upsmon("-c", "stop", rundir=rundir)
        wait_for(lambda: not proc.alive(), 15, "the stop")
        # twistd ends by re-raising the SIGTERM it handled (systemd counts
        # that as a clean exit), once the service has stopped.
        self.assertIn(proc.proc.returncode, (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", proc.output())
        self.assertEqual(numlogins(port), b"NUMLOGINS sim 0\n")
        self.assertFalse(os.path.exists(os.path.join(rundir, "upsmon.pid")))
        self.assertIsNone(m.shutdown_time("secondary"))


class StartupTests(SynchronousTestCase):
    """
    Fail before start: a configuration NUT's upsmon refuses stops twistd
    with one line, C{nut-upsmon: FILE:LINE: message}, and exit status 1 --
    not twistd's --help.
    """

    def twistd(self, *args: str) -> Tuple[int, str]:
        out = run([twistd(), "-n", "--pidfile=", "nut-upsmon", *args], timeout=30)
        return out.returncode, out.stdout + out.stderr

    def test_bad_config(self) -> None:
        path = write(os.path.abspath(self.mktemp()),
                     "MONITOR ups@127.0.0.1 1 u p primary\nMINSUPPLIES 5\n", 0o600)
        code, output = self.twistd("--config", path)
        self.assertEqual(code, 1)
        self.assertEqual(output, f"nut-upsmon: {path}: total power value (1) less than "
                                 f"MINSUPPLIES (5)\n")
        missing = os.path.abspath(self.mktemp())
        self.assertEqual(self.twistd("--config", missing),
                         (1, f"nut-upsmon: {missing}: not found\n"))

    def test_nut_command(self) -> None:
        """
        C{-c fsd} (NUT's habit) says what to do instead.
        """
        code, output = self.twistd("-c", "fsd")
        self.assertEqual(code, 1)
        self.assertEqual(output.count("\n"), 1)
        self.assertIn("nut-upsmon: -c fsd: -c is --config for nut-upsmon", output)
