"""
NUT's own C{upssched} (Debian's /sbin/upssched, unchanged) as nut-upsmon's
C{NOTIFYCMD}: it reads C{NOTIFYTYPE} and C{UPSNAME} as NUT's upsmon sets
them, so a timer started on ONBATT is cancelled by ONLINE, runs
C{CMDSCRIPT} when it expires, and C{AT SHUTDOWN * ...} runs too (it needs
an empty C{UPSNAME}, not an unset one).  The power events come from a
nutshim-sim C{.dev} file rewritten by the test.

Blocking by design, like the rest of tests/.  A missing upssched skips,
except in CI.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Dict, List

from twisted.python import log as twlog
from twisted.trial.unittest import SynchronousTestCase

from tests.harness import free_port, nutshim_daemon, require, statepath_for, wait_for, write
from tests.test_heartbeat import Box

UPSSCHED = "/sbin/upssched"

#: Records C{time|timer or command|UPSNAME|NOTIFYTYPE}.
CMDSCRIPT = """#!/bin/sh
echo "$(date +%s.%N)|$1|${UPSNAME-unset}|${NOTIFYTYPE-unset}" >> "$(dirname "$0")/sched"
"""

#: The environment variable that marks this test's upssched processes.
MARK = "NUTSHIM_UPSSCHED_TEST"


def upssched_pids(mark: str) -> List[int]:
    """The upssched processes whose environment carries C{MARK=mark}."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            exe = os.path.basename(os.readlink(f"/proc/{entry}/exe"))
        except OSError:
            continue
        if exe == "upssched" and f"{MARK}={mark}".encode() in environ:
            found.append(int(entry))
    return found


def kill_upssched(mark: str) -> None:
    """End the timer daemon this test's upssched started, by its pid."""
    for pid in upssched_pids(mark):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


class UpsschedTests(SynchronousTestCase):
    """
    nut-upsmon with NOTIFYCMD /sbin/upssched.
    """

    def test_timers(self) -> None:
        """
        ONBATT starts a 3 s timer (and EXECUTEs at once, matched on the
        group name as written); ONLINE 1 s later cancels it, so nothing
        runs; ONBATT again, and CMDSCRIPT runs when the timer expires;
        the forced shutdown's SHUTDOWN reaches C{AT SHUTDOWN *}.
        """
        require(UPSSCHED)
        box = Box(self)
        dev = write(box.path("sim.dev"), "ups.status: OL\n")
        write(box.path("ups.conf"),
              "[sim]\n  driver = nutshim-sim\n  port = sim.dev\n  pollinterval = 0.25\n")
        write(box.path("upsd.conf"), "", 0o640)
        port = free_port()
        nutshim_daemon(self, box.dir, port)
        ups = f"LAB:sim@127.0.0.1:{port}"
        mdir = box.path("mon")
        os.makedirs(mdir)
        script = write(os.path.join(mdir, "cmd.sh"), CMDSCRIPT, 0o755)
        state = statepath_for(mdir)
        write(os.path.join(mdir, "upssched.conf"), f"""\
CMDSCRIPT {script}
PIPEFN {state}/upssched.pipe
LOCKFN {state}/upssched.lock
AT ONBATT * START-TIMER onbatt 3
AT ONLINE * CANCEL-TIMER onbatt
AT ONBATT {ups} EXECUTE onbatt-now
AT ONLINE * EXECUTE online-now
AT SHUTDOWN * EXECUTE shutdown-now
""")
        self.addCleanup(kill_upssched, mdir)
        # The NOTIFYCMD line comes after the Box's own, and wins.
        mon = box.nut_upsmon("mon", f"MONITOR {ups} 1 monsec secpw secondary\nMINSUPPLIES 1",
                             f"NOTIFYCMD {UPSSCHED}\nNOTIFYFLAG ONLINE SYSLOG+EXEC\n",
                             environ={MARK: mdir})
        wait_for(lambda: f"Logged into UPS {ups}" in mon.output(), 15,
                 f"nut-upsmon logged in\n{mon.output()[-3000:]}")
        time.sleep(1.5)

        def records() -> List[List[str]]:
            try:
                with open(os.path.join(mdir, "sched")) as f:
                    return [line.rstrip("\n").split("|") for line in f]
            except FileNotFoundError:
                return []

        def when(name: str, count: int = 1) -> float:
            def found() -> bool:
                return len([r for r in records() if r[1] == name]) >= count
            wait_for(found, 15, f"{name} x{count}: {records()}\n{mon.output()[-3000:]}")
            return float([r for r in records() if r[1] == name][count - 1][0])

        write(dev, "ups.status: OB\n")
        first = when("onbatt-now")
        write(dev, "ups.status: OL\n")
        when("online-now")
        time.sleep(4.5)
        self.assertNotIn("onbatt", [r[1] for r in records()], "the cancelled timer ran")

        write(dev, "ups.status: OB\n")
        second = when("onbatt-now", 2)
        expired = when("onbatt")
        twlog.msg(f"upssched timer of 3 s: CMDSCRIPT {expired - second:.2f} s after ONBATT")
        self.assertGreater(expired - second, 1.9)
        self.assertLess(expired - second, 5.5)
        by_name: Dict[str, List[str]] = {r[1]: r for r in records()}
        self.assertEqual(by_name["onbatt-now"][2:], [ups, "ONBATT"])
        self.assertEqual(by_name["online-now"][2:], [ups, "ONLINE"])
        self.assertGreater(second, first)

        mon.signal(signal.SIGUSR2)
        when("shutdown-now")
        self.assertEqual({r[1]: r for r in records()}["shutdown-now"][2:], ["", "SHUTDOWN"])
        wait_for(lambda: os.path.exists(os.path.join(mdir, "shutdown")), 15, "SHUTDOWNCMD")
