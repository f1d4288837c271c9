"""
The RFC 9271 heartbeat end to end: C{nutshim-heartbeat} behind NUT's own
C upsd (through C{nutshim-driver}) and inside nut-upsd, watched by
nut-upsmon.  The heartbeat beats every 2 s and nut-upsmon polls every
second, so its window is 2 x 2 + 1 = 5 s: stopping the driver, or
SIGSTOPping the upsd, must bring C{HEARTBEATLOST} within 5 s of the last
change, and never a shutdown.  NUT 2.8.0's upsmon reads the same
upsmon.conf and only warns about nutshim's lines.

Blocking by design, like the rest of tests/.  A missing NUT binary skips,
except in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Dict, List, Optional

from twisted.python import log as twlog
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
    real_upsd,
    require,
    statepath_for,
    twistd,
    wait_for,
    write,
)

#: Records C{time|NOTIFYTYPE|UPSNAME|UPSGROUP|message}.
NOTIFY_SH = """#!/bin/sh
echo "$(date +%s.%N)|$NOTIFYTYPE|$UPSNAME|${UPSGROUP-unset}|$2" >> "$1"
"""

HEARTBEAT_SECTION = """
[hb]
  driver = nutshim-heartbeat
  port = none
  interval = 2
  desc = "Watch over NUT"
"""

#: Seconds: 2 x interval + POLLFREQ.
WINDOW = 5.0


class Box:
    """One test's directory: configuration, scripts, records."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.case = case
        self.dir = os.path.abspath(case.mktemp())
        os.makedirs(self.dir)
        write(self.path("upsd.users"), UPSD_USERS, 0o640)
        self.notify_sh = write(self.path("notify.sh"), NOTIFY_SH, 0o755)

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def upsmon_conf(self, tag: str, monitors: str, extra: str = "") -> str:
        mdir = self.path(tag)
        os.makedirs(mdir, exist_ok=True)
        text = textwrap.dedent(f"""\
            RUN_AS_USER root
            {monitors}
            NOTIFYCMD "{self.notify_sh} {mdir}/notify"
            NOTIFYFLAG HEARTBEATLOST SYSLOG+EXEC
            NOTIFYFLAG HEARTBEATOK SYSLOG+EXEC
            NOTIFYFLAG ONBATT SYSLOG+EXEC
            NOTIFYFLAG SHUTDOWN SYSLOG+EXEC
            SHUTDOWNCMD "/usr/bin/touch {mdir}/shutdown"
            POLLFREQ 1
            POLLFREQALERT 1
            DEADTIME 3
            FINALDELAY 0
            """) + extra
        return write(os.path.join(mdir, "upsmon.conf"), text, 0o600)

    def nut_upsmon(self, tag: str, monitors: str, extra: str = "",
                   environ: Optional[Dict[str, str]] = None) -> Process:
        """nut-upsmon (the checkout's, through PYTHONPATH) as C{tag}."""
        path = self.upsmon_conf(tag, monitors, extra)
        proc = Process([twistd(), "-n", "--pidfile=", "nut-upsmon", "--config", path],
                       self.path(tag, "daemon.log"), env=nut_env(self.path(tag), environ))
        self.case.addCleanup(proc.stop)
        return proc

    def notes(self, tag: str) -> List[List[str]]:
        """[time, type, upsname, upsgroup, message] records of C{tag}."""
        try:
            with open(self.path(tag, "notify")) as f:
                return [line.rstrip("\n").split("|", 4) for line in f]
        except FileNotFoundError:
            return []

    def first(self, tag: str, notify_type: str, after: float = 0.0) -> Optional[float]:
        for note in self.notes(tag):
            if note[1] == notify_type and float(note[0]) > after:
                return float(note[0])
        return None

    def wait_note(self, tag: str, notify_type: str, proc: Process, timeout: float,
                  after: float = 0.0) -> float:
        wait_for(lambda: self.first(tag, notify_type, after) is not None, timeout,
                 f"{notify_type} for {tag}: {self.notes(tag)}\n{proc.output()[-3000:]}")
        when = self.first(tag, notify_type, after)
        assert when is not None
        return when

    def status(self, port: int, ups: str = "hb") -> bytes:
        try:
            return query(port, f"GET VAR {ups} ups.status\n".encode())
        except OSError:
            return b""


class BehindNutUpsdTests(SynchronousTestCase):
    """
    C{nutshim-driver -a hb} serving NUT 2.8.0's C upsd.
    """

    def driver(self, box: Box) -> Process:
        proc = Process([sys.executable, "-m", "nutshim.drivers.runner", "-a", "hb"],
                       box.path("driver.log"), env=nut_env(box.dir))
        self.addCleanup(proc.stop)
        sock = os.path.join(statepath_for(box.dir), "nutshim-heartbeat-hb")
        wait_for(lambda: os.path.exists(sock), 20, f"the driver socket\n{proc.output()}")
        return proc

    def test_driver_stopped(self) -> None:
        """
        NUT's upsc sees the status alternate; nut-upsmon, told the UPS as
        C{HB:hb@...} (a group), learns the interval, says nothing while it
        beats, says HEARTBEATLOST within the window once the driver is
        stopped and HEARTBEATOK once it runs again, with C{$UPSGROUP};
        nutshim-client's upsc takes the group name too.  NUT's upsmon on an
        upsmon.conf with nutshim's HEARTBEAT line and notify names warns
        and monitors on.
        """
        require(os.path.join(NUT_BIN, "upsd"), "/usr/bin/upsc")
        box = Box(self)
        port = free_port()
        write(box.path("ups.conf"), HEARTBEAT_SECTION)
        write(box.path("upsd.conf"), f"LISTEN 127.0.0.1 {port}\n", 0o640)
        driver = self.driver(box)
        real_upsd(self, box.dir, port)
        seen = set()

        def both() -> bool:
            out = subprocess.run(["/usr/bin/upsc", f"hb@127.0.0.1:{port}", "ups.status"],
                                 capture_output=True, text=True, env=nut_env(box.dir))
            seen.add(out.stdout.strip())
            return {"OL TICK", "OL TOCK"} <= seen

        wait_for(both, 15, f"upsc to see OL TICK and OL TOCK (saw {seen})")
        mon = box.nut_upsmon("mon", f"MONITOR HB:hb@127.0.0.1:{port} 0 monsec secpw secondary\n"
                             "MINSUPPLIES 0")
        wait_for(lambda: "interval 2 s, window 5 s" in mon.output(), 15,
                 f"the interval learnt\n{mon.output()[-3000:]}")
        client = subprocess.run(
            [sys.executable, "-m", "nutshim.client.cli", "upsc", "--no-tls",
             f"HB:hb@127.0.0.1:{port}", "ups.status"], capture_output=True, text=True)
        self.assertIn(client.stdout.strip(), ("OL TICK", "OL TOCK"), client.stderr)
        time.sleep(2 * WINDOW)
        self.assertEqual(box.notes("mon"), [], mon.output()[-3000:])

        driver.stop()
        stopped = time.time()
        lost = box.wait_note("mon", "HEARTBEATLOST", mon, 3 * WINDOW)
        twlog.msg(f"heartbeat driver stopped to HEARTBEATLOST: {lost - stopped:.2f} s")
        self.assertLess(lost - stopped, WINDOW + 1.0, mon.output()[-3000:])
        [note] = box.notes("mon")
        self.assertEqual(note[2:], [f"HB:hb@127.0.0.1:{port}", "HB",
                                    f"UPS HB:hb@127.0.0.1:{port}: heartbeat lost (no TICK/TOCK "
                                    "change within the window)"])
        self.assertIn("no TICK/TOCK change for", mon.output())

        self.driver(box)
        back = box.wait_note("mon", "HEARTBEATOK", mon, 30)
        self.assertGreater(back, lost)
        self.assertFalse(os.path.exists(box.path("mon", "shutdown")))
        self.assertTrue(mon.alive())

        # NUT 2.8.0's upsmon on a file with nutshim's lines: warnings only.
        upsmon = os.path.join(NUT_BIN, "upsmon")
        require(upsmon, "unshare")
        box.upsmon_conf("nut", f"MONITOR hb@127.0.0.1:{port} 0 monsec secpw secondary\n"
                        f"HEARTBEAT hb@127.0.0.1:{port} 660\nMINSUPPLIES 0",
                        'NOTIFYMSG HEARTBEATOK "heartbeat %s back"\n')
        nut = Process(private_run(box.path("nut"), [upsmon, "-F", "-D"]),
                      box.path("nut", "daemon.log"), env=nut_env(box.path("nut")))
        self.addCleanup(nut.stop)
        wait_for(lambda: "Logged into UPS hb@" in nut.output(), 15,
                 f"NUT's upsmon logged in\n{nut.output()}")
        out = nut.output()
        self.assertIn("invalid directive HEARTBEAT", out)
        self.assertIn("Warning: invalid notify type [HEARTBEATLOST]", out)
        self.assertIn("'HEARTBEATOK' is not a valid notify event name", out)
        time.sleep(2)
        self.assertTrue(nut.alive(), nut.output())


class InNutshimUpsdTests(SynchronousTestCase):
    """
    The heartbeat inside nut-upsd, next to a UPS that feeds the system.
    """

    def test_upsd_stopped(self) -> None:
        """
        nut-upsd hangs (SIGSTOP): the polls hang, HEARTBEATLOST comes within
        the window of the last change all the same; nothing shuts down,
        past DEADTIME too (the real UPS was last seen on line); SIGCONT
        brings HEARTBEATOK.
        """
        box = Box(self)
        write(box.path("steady.seq"), "ups.status: OL\nTIMER 600\n")
        write(box.path("ups.conf"), HEARTBEAT_SECTION +
              "[sim]\n  driver = nutshim-sim\n  port = steady.seq\n")
        write(box.path("upsd.conf"), "", 0o640)
        port = free_port()
        upsd = nutshim_daemon(self, box.dir, port)
        mon = box.nut_upsmon("mon", f"MONITOR hb@127.0.0.1:{port} 0 monsec secpw secondary\n"
                             f"MONITOR sim@127.0.0.1:{port} 1 monsec secpw secondary\n"
                             "MINSUPPLIES 1")
        wait_for(lambda: "interval 2 s, window 5 s" in mon.output(), 15,
                 f"the interval learnt\n{mon.output()[-3000:]}")
        time.sleep(WINDOW)
        self.assertEqual(box.notes("mon"), [])
        upsd.signal(signal.SIGSTOP)
        stopped = time.time()
        self.addCleanup(upsd.signal, signal.SIGCONT)
        lost = box.wait_note("mon", "HEARTBEATLOST", mon, 3 * WINDOW)
        twlog.msg(f"nut-upsd SIGSTOP to HEARTBEATLOST: {lost - stopped:.2f} s")
        self.assertLess(lost - stopped, WINDOW + 1.0, mon.output()[-3000:])
        time.sleep(WINDOW)
        self.assertFalse(os.path.exists(box.path("mon", "shutdown")), mon.output()[-3000:])
        upsd.signal(signal.SIGCONT)
        box.wait_note("mon", "HEARTBEATOK", mon, 30)
        self.assertEqual([n[1] for n in box.notes("mon")], ["HEARTBEATLOST", "HEARTBEATOK"])
        self.assertEqual(box.notes("mon")[0][3], "")
        self.assertFalse(os.path.exists(box.path("mon", "shutdown")))
        self.assertTrue(mon.alive())
