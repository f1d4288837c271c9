"""
C{driver = nutshim-usbhid} with C{port = replay:CAPTURE}, end to end: a
real captured device played through pyusb into C{twistd -n nut-upsd} and
into NUT's own C upsd (through C{nutshim-driver -a}), read by NUT's upsc,
upsrw and upscmd.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict

from twisted.trial.unittest import SynchronousTestCase

from nutshim.test.usbhid_data import path as capture_path
from tests.harness import (NUT_BIN, UPSD_USERS, Process, free_port, nut_env, nutshim_daemon,
                           real_upsd, require, run, statepath_for, wait_for, write)

#: What upsc must show for the unbranded 5131:2007 UPS of nut#3227 (no NUT
#: subdriver claims it; these follow from NUT's own decode of its reports:
#: WarningCapacityLimit 40, ConfigVoltage 220 at NUT's exponent -2, RemainingCapacity
#: 400 of FullChargeCapacity 400 in mAh mode, ACPresent 1 in the Input report).
EXPECTED = {
    "battery.charge": "100",
    "battery.charge.warning": "40",
    "battery.runtime": "0",
    "battery.voltage.nominal": "2.2",
    "device.type": "ups",
    "driver.name": "nutshim-usbhid",
    "driver.parameter.pollinterval": "1",
    "driver.parameter.port": "replay:" + capture_path("unbranded-5131-2007.dump"),
    "driver.parameter.vendorid": "5131",
    "ups.productid": "2007",
    "ups.status": "OL",
    "ups.vendorid": "5131",
}
SECTION = ("[hid]\n  driver = nutshim-usbhid\n  port = replay:{capture}\n  vendorid = 5131\n"
           "  pollinterval = 1\n  desc = \"replayed USB UPS\"\n")


def _upsc(confdir: str, target: str) -> Dict[str, str]:
    out = run(["upsc", target], env=nut_env(confdir))
    values = {}
    for line in out.stdout.splitlines():
        name, _, value = line.partition(": ")
        values[name] = value
    return values


def _confdir(testcase: SynchronousTestCase, port: int) -> str:
    confdir = os.path.abspath(testcase.mktemp())
    os.makedirs(confdir)
    write(os.path.join(confdir, "ups.conf"),
          SECTION.format(capture=capture_path("unbranded-5131-2007.dump")))
    write(os.path.join(confdir, "upsd.conf"), f"LISTEN 127.0.0.1 {port}\n", 0o640)
    write(os.path.join(confdir, "upsd.users"), UPSD_USERS, 0o640)
    return confdir


class ReplayInNutshimUpsdTests(SynchronousTestCase):
    def test_upsc(self) -> None:
        """
        nut-upsd runs the driver in-process on the replayed device; upsc
        shows the device's values.
        """
        require("upsc")
        port = free_port()
        confdir = _confdir(self, port)
        daemon = nutshim_daemon(self, confdir, port)
        target = f"hid@127.0.0.1:{port}"
        wait_for(lambda: _upsc(confdir, target).get("ups.status") == "OL", 20,
                 "ups.status\n" + daemon.output())
        got = _upsc(confdir, target)
        for name, value in EXPECTED.items():
            self.assertEqual(got.get(name), value, name)
        self.assertNotIn("Traceback", daemon.output())


class ReplayBehindNutUpsdTests(SynchronousTestCase):
    def test_same_upsc(self) -> None:
        """
        The same section served by C{nutshim-driver -a hid} to NUT's C upsd:
        upsc shows the same variables, with the same values, as nut-upsd.
        """
        require("upsc", os.path.join(NUT_BIN, "upsd"))
        port = free_port()
        confdir = _confdir(self, port)
        env = nut_env(confdir)
        driver = Process([sys.executable, "-m", "nutshim.drivers.runner", "-a", "hid"],
                         os.path.join(confdir, "nutshim-driver.log"), env=env)
        self.addCleanup(driver.stop)
        sock = os.path.join(statepath_for(confdir), "nutshim-usbhid-hid")
        wait_for(lambda: os.path.exists(sock), 20, "driver socket\n" + driver.output())
        real_upsd(self, confdir, port)
        target = f"hid@127.0.0.1:{port}"
        wait_for(lambda: _upsc(confdir, target).get("ups.status") == "OL", 30,
                 "ups.status via NUT's upsd\n" + driver.output())
        got = _upsc(confdir, target)
        for name, value in EXPECTED.items():
            self.assertEqual(got.get(name), value, name)

        # And the in-process daemon on another port shows the same tree.
        port2 = free_port()
        confdir2 = _confdir(self, port2)
        nutshim_daemon(self, confdir2, port2)
        target2 = f"hid@127.0.0.1:{port2}"
        wait_for(lambda: _upsc(confdir2, target2).get("ups.status") == "OL", 20, "nut-upsd")
        self.assertEqual(_upsc(confdir2, target2), got)
        out = run(["upscmd", "-l", target], env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("Traceback", driver.output())


del subprocess
