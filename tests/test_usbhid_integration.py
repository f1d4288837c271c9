"""
C{driver = nutshim-usbhid} with C{port = replay:CAPTURE}, end to end, for
every complete real device of L{nutshim.test.usbhid_data.DEVICES}: the
captured device played through pyusb into C{twistd -n nut-upsd} and into
NUT's own C upsd (through C{nutshim-driver -a}), read by NUT's upsc and
upscmd.  upsc must show every variable of the device's oracle with NUT's
value, and C{ups.status}; both daemons must show the same tree.

The test methods (C{test_upsc_NAME}, C{test_same_upsc_NAME}) are generated
per device from the registry.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Dict, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from nutshim.test.usbhid_data import DEVICES, ReplayedDevice
from nutshim.test.usbhid_data import path as capture_path
from tests.harness import (NUT_BIN, UPSD_USERS, Process, free_port, nut_env, nutshim_daemon,
                           real_upsd, require, run, statepath_for, wait_for, write)

POLLINTERVAL = "1"


def section(device: ReplayedDevice) -> str:
    lines = ["[hid]", "  driver = nutshim-usbhid", f"  port = replay:{capture_path(device.capture)}",
             f"  pollinterval = {POLLINTERVAL}"]
    lines += [f"  {key} = {value}" for key, value in device.options]
    lines.append(f'  desc = "replayed {device.usb_id}"')
    return "\n".join(lines) + "\n"


def expected(device: ReplayedDevice) -> Dict[str, str]:
    """
    The oracle, plus what the section itself makes the driver publish.
    """
    values = device.expected()
    values.update({"driver.name": "nutshim-usbhid",
                   "driver.parameter.port": "replay:" + capture_path(device.capture),
                   "driver.parameter.pollinterval": POLLINTERVAL})
    values.update({f"driver.parameter.{key}": value for key, value in device.options})
    return values


def _upsc(confdir: str, target: str) -> Dict[str, str]:
    out = run(["upsc", target], env=nut_env(confdir))
    values = {}
    for line in out.stdout.splitlines():
        name, _, value = line.partition(": ")
        values[name] = value
    return values


def _confdir(testcase: SynchronousTestCase, device: ReplayedDevice, port: int) -> str:
    confdir = os.path.abspath(testcase.mktemp())
    os.makedirs(confdir)
    write(os.path.join(confdir, "ups.conf"), section(device))
    write(os.path.join(confdir, "upsd.conf"), f"LISTEN 127.0.0.1 {port}\n", 0o640)
    write(os.path.join(confdir, "upsd.users"), UPSD_USERS, 0o640)
    return confdir


def _status_is(confdir: str, target: str, device: ReplayedDevice) -> Callable[[], bool]:
    want = device.expected()["ups.status"]
    return lambda: _upsc(confdir, target).get("ups.status") == want


def _assert_oracle(testcase: SynchronousTestCase, device: ReplayedDevice,
                   got: Dict[str, str]) -> None:
    for name, value in sorted(expected(device).items()):
        testcase.assertEqual(got.get(name), value, f"{device.name}: {name}")


class ReplayInNutshimUpsdTests(SynchronousTestCase):
    def check_upsc(self, device: ReplayedDevice) -> None:
        """
        nut-upsd runs the driver in-process on the replayed device; upsc
        shows the device's oracle values.
        """
        require("upsc")
        port = free_port()
        confdir = _confdir(self, device, port)
        daemon = nutshim_daemon(self, confdir, port)
        target = f"hid@127.0.0.1:{port}"
        wait_for(_status_is(confdir, target, device), 20, "ups.status\n" + daemon.output())
        _assert_oracle(self, device, _upsc(confdir, target))
        self.assertNotIn("Traceback", daemon.output())


class ReplayBehindNutUpsdTests(SynchronousTestCase):
    def check_same_upsc(self, device: ReplayedDevice) -> None:
        """
        The same section served by C{nutshim-driver -a hid} to NUT's C upsd:
        upsc shows the oracle values, and the same variables with the same
        values as nut-upsd.
        """
        require("upsc", os.path.join(NUT_BIN, "upsd"))
        port = free_port()
        confdir = _confdir(self, device, port)
        env = nut_env(confdir)
        driver = Process([sys.executable, "-m", "nutshim.drivers.runner", "-a", "hid"],
                         os.path.join(confdir, "nutshim-driver.log"), env=env)
        self.addCleanup(driver.stop)
        sock = os.path.join(statepath_for(confdir), "nutshim-usbhid-hid")
        wait_for(lambda: os.path.exists(sock), 20, "driver socket\n" + driver.output())
        real_upsd(self, confdir, port)
        target = f"hid@127.0.0.1:{port}"
        wait_for(_status_is(confdir, target, device), 30,
                 "ups.status via NUT's upsd\n" + driver.output())
        got = _upsc(confdir, target)
        _assert_oracle(self, device, got)

        # And the in-process daemon on another port shows the same tree.
        port2 = free_port()
        confdir2 = _confdir(self, device, port2)
        nutshim_daemon(self, confdir2, port2)
        target2 = f"hid@127.0.0.1:{port2}"
        wait_for(_status_is(confdir2, target2, device), 20, "nut-upsd")
        self.assertEqual(_upsc(confdir2, target2), got)
        out = run(["upscmd", "-l", target], env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("Traceback", driver.output())


def _generate() -> None:
    cases: List[Tuple[type, str, Callable[..., None]]] = [
        (ReplayInNutshimUpsdTests, "test_upsc", ReplayInNutshimUpsdTests.check_upsc),
        (ReplayBehindNutUpsdTests, "test_same_upsc", ReplayBehindNutUpsdTests.check_same_upsc)]
    for device in DEVICES:
        for cls, prefix, check in cases:
            def test(self: SynchronousTestCase, device: ReplayedDevice = device,
                     check: Callable[..., None] = check) -> None:
                check(self, device)
            test.__name__ = f"{prefix}_{device.name}"
            test.__doc__ = f"{device.vendor} {device.model} ({device.usb_id}, {device.source})"
            setattr(cls, test.__name__, test)


_generate()
