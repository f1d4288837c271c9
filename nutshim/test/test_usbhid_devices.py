"""
Every complete real device of L{nutshim.test.usbhid_data.DEVICES}, played
through the replay backend into the real driver on a Clock: the driver
publishes every variable of the device's oracle (NUT's upsc, or NUT's own
decode of the reports) with NUT's value, and C{ups.status}; the capture
answers every report the driver asks for.

One test method per device and check is generated from the registry, so a
device added there is tested here (and end to end in
C{tests.test_usbhid_integration}) without further code.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Tuple

import usb.core
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from nutshim.drivers.usbhid import capture
from nutshim.drivers.usbhid.descriptor import ReportKind
from nutshim.drivers.usbhid.driver import State, SyncWorker, UsbHidUPS
from nutshim.drivers.usbhid.factory import make_usbhid_driver
from nutshim.drivers.usbhid.replay import ReplayBackend
from nutshim.test.usbhid_data import DATA, DEVICES, ReplayedDevice, path

_GET_REPORT = (0xA1, 0x01)
POLLINTERVAL, POLLFREQ = 2, 10


class RecordingBackend(ReplayBackend):
    """
    The replay backend, noting each GET_REPORT the capture could not
    answer: a complete capture leaves the list empty.
    """

    def __init__(self, captures: List[capture.Capture]) -> None:
        super().__init__(captures)
        self.unanswered: List[Tuple[ReportKind, int]] = []

    def ctrl_transfer(self, dev_handle: Any, bmRequestType: int, bRequest: int, wValue: int,
                      wIndex: int, data: Any, timeout: int) -> int:
        try:
            n: int = super().ctrl_transfer(dev_handle, bmRequestType, bRequest, wValue, wIndex,
                                           data, timeout)
        except usb.core.USBError:
            if (bmRequestType, bRequest) == _GET_REPORT:
                self.unanswered.append((ReportKind(wValue >> 8), wValue & 0xFF))
            raise
        return n


def replay(testcase: SynchronousTestCase, device: ReplayedDevice, capture_file: str = ""
           ) -> Tuple[UsbHidUPS, RecordingBackend, Clock]:
    """
    The driver for C{device}'s ups.conf section, started on a Clock over
    its capture (or C{capture_file}, for the checks of the checker).
    """
    clock = Clock()
    name = capture_file or device.capture
    backend = RecordingBackend([capture.load(path(name))])
    options = dict(device.options, port="replay:" + name, pollinterval=str(POLLINTERVAL),
                   pollfreq=str(POLLFREQ))
    driver = make_usbhid_driver("ups", options, DATA, clock, worker=SyncWorker(),
                                backend=backend)
    testcase.addCleanup(driver.stop)
    driver.start()
    return driver, backend, clock


def published(driver: UsbHidUPS) -> Dict[str, str]:
    return {var.name: var.value for var in driver.state.variables()}


class DeviceTests(SynchronousTestCase):
    """
    Per device (methods generated below): C{test_oracle_NAME},
    C{test_complete_NAME}, C{test_source_NAME}.
    """

    def check_oracle(self, device: ReplayedDevice) -> None:
        """
        Every oracle variable has NUT's value at the first poll, and still
        after quick polls and a full poll (nothing is lost once the
        interrupt reports are consumed).
        """
        driver, _, clock = replay(self, device)
        self.assertEqual(driver.fsm, State.POLLING, device.name)
        self.assertIn("ups.status", device.expected())
        for when in ("first poll", "after a full poll"):
            got = published(driver)
            for var, value in sorted(device.expected().items()):
                self.assertEqual(got.get(var), value, f"{device.name} {var} ({when})")
            for _ in range(POLLFREQ // POLLINTERVAL):
                clock.advance(POLLINTERVAL)
        self.assertFalse(driver.stale, device.name)

    def check_complete(self, device: ReplayedDevice) -> None:
        """
        The capture answers every GET_REPORT the driver makes (init walk,
        quick and full polls): it is a whole device, not a fragment.
        """
        _, backend, clock = replay(self, device)
        for _ in range(POLLFREQ // POLLINTERVAL):
            clock.advance(POLLINTERVAL)
        self.assertEqual(backend.unanswered, [], device.name)

    def check_source(self, device: ReplayedDevice) -> None:
        """
        The capture file names its public source in its header, and the
        registry entry is well formed.
        """
        with open(path(device.capture), encoding="utf-8") as f:
            text = f.read()
        self.assertIn(device.source, text, device.capture)
        self.assertRegex(device.source, r"^https://")
        self.assertRegex(device.usb_id, r"^[0-9a-f]{4}:[0-9a-f]{4}$")
        vid, pid = device.usb_id.split(":")
        self.assertEqual((dict(device.oracle).get("ups.vendorid"),
                          dict(device.oracle).get("ups.productid")), (vid, pid))

    def test_registry(self) -> None:
        names = [d.name for d in DEVICES]
        self.assertEqual(len(names), len(set(names)))
        for name in names:
            self.assertRegex(name, r"^[a-z0-9_]+$")
        self.assertTrue(DEVICES)

    def test_incomplete_capture_is_detected(self) -> None:
        """
        The completeness check can fail: the NUT log of the 5131:2007 UPS
        carries its Feature report but not its Input report, so the
        driver's GET_REPORT(Input 0x0b) goes unanswered (and the log alone
        cannot support ups.status).
        """
        (device,) = [d for d in DEVICES if d.name == "unbranded_5131_2007"]
        _, backend, _ = replay(self, device, "unbranded-5131-2007.log")
        self.assertIn((ReportKind.INPUT, 0x0B), backend.unanswered)

    def test_oracle_mismatch_is_detected(self) -> None:
        """
        The oracle check can fail: a wrong expected value is reported.
        """
        (device,) = DEVICES[:1]
        wrong = ReplayedDevice(**{**{a.name: getattr(device, a.name)
                                     for a in device.__attrs_attrs__},
                                  "oracle": device.oracle + (("ups.status", "OB LB"),)})
        self.assertRaises(self.failureException, self.check_oracle, wrong)


def _generate() -> None:
    checks: List[Tuple[str, Callable[[DeviceTests, ReplayedDevice], None]]] = [
        ("oracle", DeviceTests.check_oracle), ("complete", DeviceTests.check_complete),
        ("source", DeviceTests.check_source)]
    for device in DEVICES:
        for label, check in checks:
            def test(self: DeviceTests, device: ReplayedDevice = device,
                     check: Callable[[DeviceTests, ReplayedDevice], None] = check) -> None:
                check(self, device)
            test.__name__ = f"test_{label}_{device.name}"
            test.__doc__ = (f"{device.vendor} {device.model} ({device.usb_id}): "
                            f"{re.sub(r'[ ]+', ' ', (check.__doc__ or '').strip())}")
            setattr(DeviceTests, test.__name__, test)


_generate()
