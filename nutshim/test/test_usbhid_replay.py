"""
Captures (NUT's -DDDDD logs, plain dumps) and the pyusb replay backend,
driven through pyusb's own API and nutshim's device layer.
"""

from __future__ import annotations

import errno

import usb.core
import usb.util
from twisted.trial.unittest import SynchronousTestCase

from nutshim.drivers.usbhid import capture, device
from nutshim.drivers.usbhid.descriptor import ReportKind
from nutshim.drivers.usbhid.engine import DeviceGone, ReportFailed
from nutshim.drivers.usbhid.replay import ReplayBackend, derive_strings
from nutshim.drivers.usbhid.usages import UsageTable
from nutshim.test.usbhid_data import hexbytes, load_json, path

UNBRANDED = load_json("unbranded-5131-2007.json")
FEATURE = hexbytes(UNBRANDED["reports"][0]["raw_hex"])

#: Lines of the APC CS500 log in nut#1776 (NUT 2.8, no timestamps), verbatim.
CS500 = """\
[D1] Path: UPS.PowerSummary.iOEMInformation, Type: Feature, ReportID: 0x04, Offset: 0, Size: 8, Value: 3
[D4] Entering libusb_get_report
[D3] Report[get]: (2 bytes) => 05 01
[D5] PhyMax = 0, PhyMin = 0, LogMax = 255, LogMin = 0
[D1] Path: UPS.PowerSummary.Rechargeable, Type: Feature, ReportID: 0x05, Offset: 0, Size: 8, Value: 1
[D4] Entering libusb_get_report
[D3] Report[get]: (4 bytes) => 06 00 00 08
[D5] send_to_all: SETINFO ups.mfr "American Power Conversion"
"""

#: The CP1500AVRLCDa identity lines of nut#439 (NUT 2.7, tab after the time), verbatim.
CPS_IDENTITY = """\
   0.004537\tChecking device (0764/0501) (001/003)
   0.011208\t- VendorID: 0764
   0.011252\t- ProductID: 0501
   0.011274\t- Manufacturer: CPS
   0.011300\t- Product: CP1500AVRLCDa
   0.011322\t- Serial Number: CXEJX2003678
   0.011344\t- Bus: 001
   0.011365\t- Device release number: 0200
"""


class LogTests(SynchronousTestCase):
    def test_nut_log(self) -> None:
        cap = capture.load(path("unbranded-5131-2007.log"))
        self.assertEqual((cap.vendor_id, cap.product_id), (0x5131, 0x2007))
        self.assertEqual(cap.descriptor, hexbytes(UNBRANDED["report_descriptor_hex"]))
        self.assertEqual(cap.reports, (capture.CapturedReport(ReportKind.FEATURE, 11, FEATURE,
                                                               "buf"),))

    def test_lines_of_other_versions(self) -> None:
        text = CPS_IDENTITY + "Report Descriptor: (3 bytes) => 05 84 09\n" + CS500
        with self.assertRaises(capture.CaptureError):
            capture.parse_log(text)  # a cut item: not a descriptor
        text = (CPS_IDENTITY + "Report Descriptor: (8 bytes) => 05 84 09 04 a1 01\n c0 c0\n"
                + CS500)
        with self.assertRaises(capture.CaptureError):
            capture.parse_log(text)  # unbalanced
        text = CPS_IDENTITY + "[D3] Report Descriptor: (7 bytes) => 05 84 09 04 a1\n 01 c0\n" + CS500
        cap = capture.parse_log(text)
        self.assertEqual((cap.vendor_id, cap.product_id, cap.manufacturer, cap.product,
                          cap.serial, cap.bus, cap.release),
                         (0x0764, 0x0501, "CPS", "CP1500AVRLCDa", "CXEJX2003678", "001", 0x0200))
        self.assertEqual([(r.report_id, r.data) for r in cap.reports],
                         [(5, b"\x05\x01"), (6, bytes.fromhex("06 00 00 08"))])
        self.assertEqual(cap.paths[0], capture.PathLine("UPS.PowerSummary.iOEMInformation",
                                                        ReportKind.FEATURE, 4, 0, 8, 3.0))
        self.assertEqual(cap.published(), {"ups.mfr": "American Power Conversion"})

    def test_no_descriptor(self) -> None:
        self.assertRaises(capture.CaptureError, capture.parse_log, CS500)

    def test_reports_rebuilt_from_paths(self) -> None:
        """
        A log that decoded values but did not dump their report: the report
        is rebuilt from the descriptor, and decodes to the same values.
        """
        lines = "\n".join(
            f"Path: {p['path']}, Type: Feature, ReportID: 0x0b, Offset: {p['offset']},"
            f" Size: {p['size']}, Value: {p['value']}" for p in UNBRANDED["parsed_items"])
        text = open(path("unbranded-5131-2007.log")).read().split("# Re-rendered")[0] + lines
        cap = capture.parse_log(text).complete_reports(UsageTable())
        (rebuilt,) = cap.reports
        self.assertEqual(rebuilt.label, "path")
        self.assertEqual(rebuilt.data[8:15], FEATURE[8:15])


class PlainTests(SynchronousTestCase):
    def test_plain(self) -> None:
        cap = capture.load(path("unbranded-5131-2007.dump"))
        self.assertEqual(cap.descriptor, hexbytes(UNBRANDED["report_descriptor_hex"]))
        self.assertEqual([(r.kind, r.data) for r in cap.reports],
                         [(ReportKind.FEATURE, FEATURE),
                          (ReportKind.INPUT, hexbytes(UNBRANDED["reports"][1]["raw_hex"]))])

    def test_usbhid_dump_blocks(self) -> None:
        text = ("vendorid: 5131\nproductid: 2007\nstring 1: Maker # not a comment\n"
                "001:004:000:DESCRIPTOR         1480337329.938452\n"
                + "\n".join(" " + " ".join(UNBRANDED["report_descriptor_hex"].split()[i:i + 32])
                            for i in range(0, 183, 32))
                + "\n\n001:004:000:STREAM             1480337330.132456\n 0B 90 01 00 00 00 01\n")
        cap = capture.parse_plain(text)
        self.assertEqual(len(cap.descriptor), 183)
        self.assertEqual(cap.reports[0].data, hexbytes("0b 90 01 00 00 00 01"))
        self.assertEqual(cap.strings, ((1, "Maker # not a comment"),))

    def test_errors(self) -> None:
        self.assertRaises(capture.CaptureError, capture.parse_plain, "vendorid: 1\n")
        self.assertRaises(capture.CaptureError, capture.parse_plain, "colour: blue\n")
        self.assertRaises(capture.CaptureError, capture.parse_plain, "descriptor: 05 84 09 zz\n")


class ReplayTests(SynchronousTestCase):
    def setUp(self) -> None:
        cap = capture.load(path("unbranded-5131-2007.dump"))
        self.cap = capture.Capture(**{**{a: getattr(cap, a) for a in (
            "source", "vendor_id", "product_id", "descriptor", "reports")},
            "manufacturer": "Maker", "product": "UPS 1", "serial": "S1"})
        self.backend = ReplayBackend([self.cap])

    def test_pyusb_sees_the_device(self) -> None:
        dev = usb.core.find(idVendor=0x5131, backend=self.backend)
        self.assertIsNotNone(dev)
        self.assertEqual(usb.util.get_string(dev, dev.iProduct), "UPS 1")
        got = dev.ctrl_transfer(0xA1, 0x01, 0x030B, 0, 23)
        self.assertEqual(bytes(got), FEATURE)
        dev.ctrl_transfer(0x21, 0x09, 0x030B, 0, b"\x0b\x00")
        self.assertEqual(self.backend.set_reports, [(3, 11, b"\x0b\x00")])

    def test_device_layer(self) -> None:
        (dev, ident), = device.find(device.Match(vendorid="5131"), self.backend)
        opened = device.open_device(dev, ident)
        self.assertEqual((opened.ident.manufacturer, opened.ident.product, opened.ident.serial),
                         ("Maker", "UPS 1", "S1"))
        self.assertEqual(opened.descriptor, self.cap.descriptor)
        self.assertEqual(opened.get_report(ReportKind.FEATURE, 11, 23), FEATURE)
        # The Input report comes once on the interrupt endpoint.
        self.assertEqual(opened.read_interrupt(10), hexbytes("0b 90 01 00 00 00 01"))
        self.assertIsNone(opened.read_interrupt(10))
        self.assertRaises(ReportFailed, opened.get_report, ReportKind.FEATURE, 12, 2)
        self.backend.hang()
        self.assertRaises(ReportFailed, opened.get_report, ReportKind.FEATURE, 11, 23)
        self.backend.unplug()
        self.assertRaises(DeviceGone, opened.get_report, ReportKind.FEATURE, 11, 23)
        self.assertEqual(device.find(device.Match(vendorid="5131"), self.backend), [])

    def test_matching(self) -> None:
        def found(**kw: str) -> int:
            return len(device.find(device.Match(**kw), self.backend))
        self.assertEqual(found(), 0)  # unknown vendor: never without vendorid
        self.assertEqual(found(vendorid="5131", productid="20.."), 1)
        self.assertEqual(found(vendorid="5131", product="ups 1"), 1)  # case-insensitive
        self.assertEqual(found(vendorid="5131", product="UPS"), 0)  # whole value
        self.assertEqual(found(vendorid="5131", serial="S2"), 0)
        self.assertEqual(found(vendorid="5131", bus="001"), 1)
        self.assertRaises(device.MatchError, device.Match.from_options, {"vendor": "("})

    def test_permission_error_names_device_and_rule(self) -> None:
        e = device.translate(usb.core.USBError("Access denied", -3, errno.EACCES),
                             "USB device 051d:0002 on bus 001 device 004")
        self.assertIsInstance(e, device.PermissionDenied)
        self.assertIn("051d:0002 on bus 001 device 004", str(e))
        self.assertIn("nutshim-usbhid.rules", str(e))

    def test_strings_from_a_log(self) -> None:
        """
        Index 3 is iSerialNumber for the Back-UPS ES 850G2 (nut#1304's Path
        lines); the identity line gives its text.
        """
        cap = capture.Capture("x", 0x051D, 2, self.cap.descriptor, serial="SN1",
                              paths=(capture.PathLine("UPS.iSerialNumber", ReportKind.FEATURE,
                                                      125, 0, 8, 3.0),
                                     capture.PathLine("UPS.PowerSummary.iDeviceChemistry",
                                                      ReportKind.FEATURE, 3, 0, 8, 4.0)),
                              setinfo=(("battery.type", "PbAc"),))
        self.assertEqual(derive_strings(cap), {3: "SN1", 4: "PbAc"})
