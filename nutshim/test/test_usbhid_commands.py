"""
Instant commands, writable variables and the UPS power-off: the SET_REPORT
payloads, byte for byte, against the descriptor's layout, as the replay
backend records them.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nutshim.drivers.base import (TRACKING_FAILED, TRACKING_INVALID, TRACKING_SUCCESS,
                                  TRACKING_UNKNOWN)
from nutshim.drivers.usbhid import capture
from nutshim.drivers.usbhid.commands import run_command, run_setvar, shutdown_ups
from nutshim.drivers.usbhid.descriptor import ReportKind
from nutshim.drivers.usbhid.driver import SyncWorker, connect
from nutshim.drivers.usbhid.engine import Options
from nutshim.drivers.usbhid.factory import make_opener, make_usbhid_driver
from nutshim.drivers.usbhid.device import Match
from nutshim.drivers.usbhid.replay import ReplayBackend
from nutshim.test.usbhid_data import DATA, build

F = ReportKind.FEATURE
S, V = 0x1001, 0x00F0D121

#: An APC-like layout with every writable path of the APC table.
LAYOUT = [
    ("UPS.PowerSummary.RemainingCapacity", F, 0x0C, 8, 0, 100, 0, 0),
    ("UPS.PowerSummary.RemainingCapacityLimit", F, 0x0E, 8, 0, 100, 0, 0),
    ("UPS.PowerSummary.RemainingTimeLimit", F, 0x0F, 16, 0, 65535, S, 0),
    ("UPS.PowerSummary.DelayBeforeShutdown", F, 0x15, 16, -1, 32767, S, 0),
    ("UPS.PowerSummary.DelayBeforeStartup", F, 0x16, 16, -1, 32767, S, 0),
    ("UPS.PowerSummary.DelayBeforeReboot", F, 0x17, 16, -1, 32767, S, 0),
    ("UPS.PowerSummary.AudibleAlarmControl", F, 0x1F, 8, 1, 3, 0, 0),
    ("UPS.PowerSummary.PresentStatus.ACPresent", F, 0x13, 8, 0, 1, 0, 0),
    ("UPS.Battery.Test", F, 0x52, 8, 0, 7, 0, 0),
    ("UPS.Input.LowVoltageTransfer", F, 0x32, 16, 0, 65535, V, 7),
    ("UPS.Input.HighVoltageTransfer", F, 0x32, 16, 0, 65535, V, 7),
]
REPORTS = {0x0C: "0c 64", 0x0E: "0e 0a", 0x0F: "0f 78 00", 0x15: "15 ff ff", 0x16: "16 ff ff",
           0x17: "17 ff ff", 0x1F: "1f 02", 0x13: "13 01", 0x52: "52 06",
           0x32: "32 b4 00 0a 01"}


def make_capture() -> capture.Capture:
    return capture.Capture(
        "built", 0x051D, 0x0002, build(LAYOUT), "American Power Conversion",
        "Back-UPS XS 1400U FW:926.T2 .I USB FW:T2",
        reports=tuple(capture.CapturedReport(F, rid, bytes.fromhex(h), "plain")
                      for rid, h in REPORTS.items()))


class CommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.backend = ReplayBackend([make_capture()])
        session, snapshot = connect(make_opener(Match(vendorid="051d"), self.backend),
                                    Options(), None)
        self.engine, self.device = session.engine, session.device
        self.commands = snapshot.commands
        self.slept: List[float] = []

    def sent(self) -> List[str]:
        out = [data.hex(" ") for kind, rid, data in self.backend.set_reports]
        self.assertTrue(all(kind == F for kind, _, _ in self.backend.set_reports))
        del self.backend.set_reports[:]
        return out

    def command(self, cmd: str, param: Optional[str] = None) -> int:
        return run_command(self.engine, self.device, cmd, param, self.slept.append)

    def test_commands_offered(self) -> None:
        self.assertEqual(sorted(self.commands), sorted([
            "beeper.disable", "beeper.enable", "beeper.mute", "beeper.toggle", "load.off",
            "load.off.delay", "load.on", "load.on.delay", "shutdown.reboot", "shutdown.return",
            "shutdown.stayoff", "shutdown.stop", "test.battery.start.deep",
            "test.battery.start.quick", "test.battery.stop"]))

    def test_payloads(self) -> None:
        for cmd, param, payloads in (
                ("beeper.enable", None, ["1f 02"]),
                ("beeper.disable", None, ["1f 01"]),
                ("beeper.mute", None, ["1f 03"]),
                ("beeper.off", None, ["1f 01"]),
                ("test.battery.start.quick", None, ["52 01"]),
                ("test.battery.start.deep", None, ["52 02"]),
                ("test.battery.stop", None, ["52 03"]),
                ("load.off.delay", None, ["15 14 00"]),
                ("load.off.delay", "60", ["15 3c 00"]),
                ("load.on.delay", None, ["16 1e 00"]),
                ("load.off", None, ["15 00 00"]),
                ("load.on", None, ["16 00 00"]),
                ("shutdown.stop", None, ["15 ff ff"]),
                ("shutdown.reboot", None, ["17 0a 00"]),
                ("shutdown.return", None, ["16 1e 00", "15 14 00"]),
                ("shutdown.stayoff", None, ["16 ff ff", "15 14 00"])):
            self.assertEqual(self.command(cmd, param), TRACKING_SUCCESS, cmd)
            self.assertEqual(self.sent(), payloads, cmd)
        # NUT's pause between the two writes, on the USB thread.
        self.assertEqual(self.slept, [0.125, 0.125])

    def test_toggle(self) -> None:
        self.assertEqual(self.engine.values["ups.beeper.status"], "enabled")
        self.command("beeper.toggle")
        self.command("beeper.toggle")
        self.assertEqual(self.sent(), ["1f 01", "1f 02"])

    def test_variables(self) -> None:
        for var, value, payloads in (
                ("battery.charge.low", "20", ["0e 14"]),
                ("battery.runtime.low", "300", ["0f 2c 01"]),
                # The other field of the report keeps the value the device gave.
                ("input.transfer.low", "170", ["32 aa 00 0a 01"]),
                ("input.transfer.high", "280", ["32 aa 00 18 01"]),
                ("ups.delay.shutdown", "90", []),
                ("ups.delay.start", "120", [])):
            self.assertEqual(run_setvar(self.engine, self.device, var, value), TRACKING_SUCCESS)
            self.assertEqual(self.sent(), payloads, var)
            self.assertEqual(self.engine.values[var], value)
        # The server-side delays are what shutdown.return then sends.
        self.command("shutdown.return")
        self.assertEqual(self.sent(), ["16 78 00", "15 5a 00"])

    def test_refusals(self) -> None:
        self.assertEqual(run_setvar(self.engine, self.device, "ups.load", "5"), TRACKING_UNKNOWN)
        self.assertEqual(self.command("calibrate.start"), TRACKING_INVALID)
        self.backend.hang()
        self.assertEqual(self.command("beeper.enable"), TRACKING_FAILED)
        self.assertEqual(run_setvar(self.engine, self.device, "battery.charge.low", "20"),
                         TRACKING_FAILED)

    def test_poweroff(self) -> None:
        run_setvar(self.engine, self.device, "ups.delay.shutdown", "60")
        self.assertTrue(shutdown_ups(self.engine, self.device, self.slept.append))
        self.assertEqual(self.sent(), ["16 1e 00", "15 3c 00"])


class DriverCommandTests(SynchronousTestCase):
    def test_tracking(self) -> None:
        backend = ReplayBackend([make_capture()])
        driver = make_usbhid_driver("ups", {"vendorid": "051d", "pollonly": ""}, DATA, Clock(),
                                    worker=SyncWorker(), backend=backend)
        driver.start()
        self.addCleanup(driver.stop)
        results: List[Tuple[str, int]] = []
        driver.tracking_listener = lambda tid, result: results.append((tid, result))
        self.assertTrue(driver.instcmd("beeper.disable", None, "t1"))
        self.assertTrue(driver.setvar("battery.charge.low", "25", "t2"))
        self.assertEqual(results, [("t1", TRACKING_SUCCESS), ("t2", TRACKING_SUCCESS)])
        self.assertEqual([d.hex(" ") for _, _, d in backend.set_reports], ["1f 01", "0e 19"])
        low = driver.state.get("battery.charge.low")
        assert low is not None
        self.assertEqual((low.value, low.aux), ("25", 10))
        self.assertEqual(driver.state.get("ups.beeper.status").value, "disabled")  # type: ignore[union-attr]
        self.assertEqual(driver.state.get("ups.firmware").value, "926.T2 .I")  # type: ignore[union-attr]
        self.assertTrue(driver.state.has_command("shutdown.return"))


class PowerOffTests(SynchronousTestCase):
    """
    C{nutshim-driver -k}: shutdown.return with the configured delays.
    """

    def test_poweroff(self) -> None:
        import io

        from nutshim.drivers.usbhid.poweroff import poweroff
        backend = ReplayBackend([make_capture()])
        err = io.StringIO()
        self.assertEqual(poweroff("ups", {"vendorid": "051d", "offdelay": "60", "ondelay": "45"},
                                  DATA, backend, err), 0)
        self.assertEqual([d.hex(" ") for _, _, d in backend.set_reports], ["16 2d 00", "15 3c 00"])
        self.assertIn("cuts its load in 60 s", err.getvalue())

    def test_refused_or_absent(self) -> None:
        import io

        from nutshim.drivers.usbhid.poweroff import main, poweroff
        err = io.StringIO()
        backend = ReplayBackend([capture.load(os.path.join(DATA, "unbranded-5131-2007.dump"))])
        self.assertEqual(poweroff("ups", {"vendorid": "5131"}, DATA, backend, err), 1)
        self.assertIn("refused", err.getvalue())
        backend.unplug()
        self.assertEqual(poweroff("ups", {"vendorid": "5131"}, DATA, backend, err), 1)
        self.assertIn("no matching USB HID UPS", err.getvalue())
        confdir = self.mktemp()
        os.makedirs(confdir)
        with open(os.path.join(confdir, "ups.conf"), "w") as f:
            f.write("[hid]\n driver = nutshim-usbhid\n port = replay:%s\n vendorid = 5131\n"
                    % os.path.join(DATA, "unbranded-5131-2007.dump"))
        out = io.StringIO()
        self.assertEqual(main(["-a", "hid", "-c", confdir], out), 1)
        self.assertIn("[hid]: the UPS refused the shutdown commands", out.getvalue())
        out = io.StringIO()
        self.assertEqual(main(["-a", "nosuch", "-c", confdir], out), 1)
        self.assertEqual(out.getvalue(), "nutshim-driver: no nutshim-usbhid section [nosuch] in ups.conf\n")
