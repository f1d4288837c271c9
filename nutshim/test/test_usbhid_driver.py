"""
The nutshim-usbhid driver on a Clock: connecting, polling, the interrupt
endpoint, unplug/hang -> stale -> reconnect, and the ups.conf options.
The real pyusb code runs against the replay backend; USB jobs run at once
(L{SyncWorker}) so no thread or real time is involved.
"""

from __future__ import annotations

import errno
from typing import Any, List

import usb.core
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from nutshim.drivers.base import TRACKING_SUCCESS
from nutshim.drivers.usbhid import capture
from nutshim.drivers.usbhid.driver import State, SyncWorker, UsbHidUPS
from nutshim.drivers.usbhid.factory import make_usbhid_driver, replay_path
from nutshim.drivers.usbhid.replay import ReplayBackend
from nutshim.test.usbhid_data import DATA, path

OPTIONS = {"port": "auto", "vendorid": "5131", "pollinterval": "2", "pollfreq": "10"}


class DeniedBackend(ReplayBackend):
    def open_device(self, dev: Any) -> Any:
        raise usb.core.USBError("Access denied (insufficient permissions)", -3, errno.EACCES)


class DriverTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.backend = ReplayBackend([capture.load(path("unbranded-5131-2007.dump"))])
        self.events: List[LogEvent] = []
        observer: Any = self.events.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def make(self, backend: Any = None, **options: str) -> UsbHidUPS:
        driver = make_usbhid_driver("ups", {**OPTIONS, **options}, DATA, self.clock,
                                    worker=SyncWorker(),
                                    backend=self.backend if backend is None else backend)
        self.addCleanup(driver.stop)
        return driver

    def value(self, driver: UsbHidUPS, name: str) -> str:
        var = driver.state.get(name)
        assert var is not None, name
        return var.value

    def test_publishes(self) -> None:
        driver = self.make()
        driver.start()
        self.assertEqual(driver.fsm, State.POLLING)
        self.assertTrue(driver.connected)
        self.assertFalse(driver.stale)
        for name, value in (("driver.name", "nutshim-usbhid"), ("ups.vendorid", "5131"),
                            ("ups.productid", "2007"), ("battery.charge.warning", "40"),
                            ("ups.status", "OL"), ("driver.parameter.pollfreq", "10"),
                            ("driver.parameter.vendorid", "5131"), ("device.type", "ups")):
            self.assertEqual(self.value(driver, name), value)

    def test_no_device_yet(self) -> None:
        """
        Before the device is first found the daemon says
        DRIVER-NOT-CONNECTED; the driver keeps looking, logging once.
        """
        self.backend.unplug()
        driver = self.make()
        driver.start()
        self.assertFalse(driver.connected)
        self.assertEqual(driver.fsm, State.WAITING)
        self.clock.advance(2)
        self.clock.advance(2)
        errors = [e for e in self.events if e.get("log_level") is not None
                  and e["log_level"].name == "error"]
        self.assertEqual(len(errors), 1)
        self.assertIn("no matching USB HID UPS", formatEvent(errors[0]))
        self.backend.replug()
        self.clock.advance(2)
        self.assertTrue(driver.connected)
        self.assertEqual(self.value(driver, "ups.status"), "OL")

    def test_unplug_stale_reconnect(self) -> None:
        driver = self.make()
        driver.start()
        self.clock.advance(2)
        self.assertFalse(driver.stale)
        self.backend.unplug()
        self.clock.advance(2)
        # DATA-STALE (the driver is still there), not DRIVER-NOT-CONNECTED.
        self.assertTrue(driver.stale)
        self.assertTrue(driver.connected)
        self.assertEqual(driver.fsm, State.WAITING)
        self.clock.advance(2)
        self.assertTrue(driver.stale)
        self.backend.replug()
        self.clock.advance(2)
        self.assertEqual(driver.fsm, State.POLLING)
        self.assertFalse(driver.stale)

    def test_device_stops_answering(self) -> None:
        driver = self.make(pollonly="")
        driver.start()
        self.backend.hang()
        for _ in range(5):  # quick polls, then the full poll: all time out
            self.clock.advance(2)
        self.assertTrue(driver.stale)
        self.backend.replug()
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertFalse(driver.stale)

    def test_interrupt_between_polls(self) -> None:
        driver = self.make()
        driver.start()
        self.clock.advance(0.5)
        self.backend.push_interrupt(bytes.fromhex("0b 90 01 00 00 00 00"))  # ACPresent = 0
        self.clock.advance(0.1)
        self.assertEqual(self.value(driver, "ups.status"), "OB")
        self.backend.push_interrupt(bytes.fromhex("0b 90 01 00 00 00 01"))
        self.clock.advance(0.1)
        self.assertEqual(self.value(driver, "ups.status"), "OL")

    def test_permission_denied(self) -> None:
        backend = DeniedBackend([capture.load(path("unbranded-5131-2007.dump"))])
        driver = self.make(backend)
        driver.start()
        self.assertFalse(driver.connected)
        text = " ".join(formatEvent(e) for e in self.events)
        self.assertIn("5131:2007 on bus 001", text)
        self.assertIn("nutshim-usbhid.rules", text)

    def test_server_side_variable(self) -> None:
        raw = capture.load(path("unbranded-5131-2007.dump"))
        driver = self.make(ReplayBackend([raw]))
        driver.start()
        results: List[Any] = []
        driver.tracking_listener = lambda tid, result: results.append((tid, result))
        # battery.charge.low is absent from this device: not writable.
        self.assertTrue(driver.setvar("battery.charge.low", "20", "t1"))
        self.assertNotEqual(results, [("t1", TRACKING_SUCCESS)])

    def test_stop(self) -> None:
        driver = self.make()
        driver.start()
        driver.stop()
        self.assertEqual(driver.fsm, State.STOPPED)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(driver.instcmd("beeper.enable", None, None))


class OptionTests(SynchronousTestCase):
    def test_bad_options(self) -> None:
        for options in ({"vendorid": "("}, {"pollinterval": "fast"}, {"pollfreq": "0"},
                        {"subdriver": "nosuch"}, {"offdelay": "soon"},
                        {"port": "replay:/nonexistent/capture.log"}):
            self.assertRaises(ValueError, make_usbhid_driver, "ups", options, DATA, Clock(),
                              worker=SyncWorker(), backend=object())

    def test_replay_port(self) -> None:
        self.assertEqual(replay_path("replay:x.log", "/etc/nut"), "/etc/nut/x.log")
        self.assertEqual(replay_path("replay:/a/x.log", "/etc/nut"), "/a/x.log")
        self.assertIsNone(replay_path("auto", "/etc/nut"))
        driver = make_usbhid_driver("ups", {"port": "replay:unbranded-5131-2007.log",
                                            "vendorid": "5131"}, DATA, Clock(),
                                    worker=SyncWorker())
        self.assertIsInstance(driver.backend, ReplayBackend)
        self.assertTrue(driver.backend.realtime)


class ConfigCheckTests(SynchronousTestCase):
    def test_refused_before_start(self) -> None:
        """
        nut-upsd refuses a bad nutshim-usbhid section with ups.conf:LINE,
        like any configuration error.
        """
        import os

        from nutshim.config import ConfigError, load_config
        from nutshim.upsd.sections import check_sections
        confdir = self.mktemp()
        os.makedirs(confdir)
        with open(os.path.join(confdir, "ups.conf"), "w") as f:
            f.write("[ok]\n driver = nutshim-usbhid\n port = auto\n"
                    "[bad]\n driver = nutshim-usbhid\n port = auto\n productid = 05(\n")
        config = load_config(confdir)
        with self.assertRaises(ConfigError) as e:
            check_sections(config)
        self.assertIn("ups.conf:4: [bad]", str(e.exception))
        self.assertIn("productid", str(e.exception))
