"""
The pure HID layer: report descriptor items, fields, values, usage names.
"""

from __future__ import annotations

from typing import List

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from nutshim.drivers.usbhid import values
from nutshim.drivers.usbhid.descriptor import (DescriptorError, Field, ItemType, RawItem,
                                               ReportKind, describe, encode, parse, tokenize)
from nutshim.drivers.usbhid.usages import UsageTable, parse_path, path_string
from nutshim.drivers.usbhid.vendor_usages import APC
from nutshim.test.usbhid_data import JSON_CAPTURES, descriptor_bytes, hexbytes, load_json

UNBRANDED = load_json("unbranded-5131-2007.json")
STD = UsageTable()


def _descriptors() -> List[bytes]:
    """
    Every captured descriptor (whole, or the prefix a report quoted).
    """
    out = []
    for name in JSON_CAPTURES:
        raw, _ = descriptor_bytes(load_json(name))
        if raw is not None:
            out.append(raw)
    return out


CAPTURED = [d for d in (parse(raw, partial=True) for raw in _descriptors()) if d.fields]


class TokenizeTests(SynchronousTestCase):
    def test_real_descriptor_round_trips(self) -> None:
        raw = hexbytes(UNBRANDED["report_descriptor_hex"])
        self.assertEqual(encode(tokenize(raw)), raw)

    def test_cut_item(self) -> None:
        with self.assertRaises(DescriptorError) as e:
            list(tokenize(b"\x05\x84\x26\xff"))
        self.assertIn("byte 2", str(e.exception))

    def test_long_item_is_skipped(self) -> None:
        raw = bytes.fromhex("05 84 09 04 a1 01 fe 02 10 aa bb 85 01 75 08 95 01 09 30 b1 02 c0")
        items = list(tokenize(raw))
        self.assertEqual(items[3], RawItem(ItemType.RESERVED, 0x10, b"\xaa\xbb", True))
        self.assertEqual(encode(items), raw)
        self.assertEqual([f.usage for f in parse(raw).fields], [0x00840030])


class ParseTests(SynchronousTestCase):
    def test_unbranded_layout(self) -> None:
        """
        The 183-byte descriptor of nut#3227: report 0x0b is a 23-byte
        Feature and a 7-byte Input report with different layouts, and the
        items NUT logged sit where NUT says.
        """
        desc = parse(hexbytes(UNBRANDED["report_descriptor_hex"]))
        self.assertEqual(desc.report_length(11, ReportKind.FEATURE), 23)
        self.assertEqual(desc.report_length(11, ReportKind.INPUT), 7)
        for item in UNBRANDED["parsed_items"]:
            kind = ReportKind[item["type"].upper()]
            f = [f for f in desc.fields if (f.kind, f.report_id, f.offset, f.size)
                 == (kind, item["report_id"], item["offset"], item["size"])]
            self.assertEqual(len(f), 1, item)
            self.assertEqual(path_string(f[0].path, STD), item["path"])
            report = hexbytes(UNBRANDED["reports"][0]["raw_hex"])
            self.assertEqual(values.extract(f[0], report), item["value"])

    def test_unit_exponent_nibble(self) -> None:
        """
        C{55 05} on a volt field (unit 0x00f0d121) is 10^(5-7): NUT logs
        "Exponent = -2" for ConfigVoltage in nut#3227.
        """
        desc = parse(hexbytes(UNBRANDED["report_descriptor_hex"]))
        config = [f for f in desc.fields if f.usage == 0x00840040][0]
        self.assertEqual(values.unit_exponent(config), -2)
        self.assertAlmostEqual(values.extract(config, hexbytes(UNBRANDED["reports"][0]["raw_hex"])),
                               2.2)
        nibble = parse(bytes.fromhex("05 84 09 04 a1 01 85 01 75 08 95 01 55 0e 09 30 b1 02 c0"))
        self.assertEqual(nibble.fields[0].unit_exp, -2)

    def test_push_pop(self) -> None:
        raw = bytes.fromhex("05 84 09 04 a1 01 85 01 75 08 95 01 15 00 25 64 a4"
                            " 75 10 27 ff ff 00 00 09 30 b1 02 b4 09 31 b1 02 c0")
        a, b = parse(raw).fields
        self.assertEqual((a.size, a.logmax, a.offset), (16, 65535, 0))
        self.assertEqual((b.size, b.logmax, b.offset), (8, 100, 16))

    def test_pop_without_push(self) -> None:
        self.assertRaises(DescriptorError, parse, bytes.fromhex("05 84 b4"))

    def test_unbalanced(self) -> None:
        self.assertRaises(DescriptorError, parse, bytes.fromhex("05 84 09 04 a1 01"))
        self.assertRaises(DescriptorError, parse, bytes.fromhex("c0"))
        self.assertEqual(parse(bytes.fromhex("05 84 09 04 a1 01 85 01 75 08 95 01 09 30 b1 02"
                                             " 09"), partial=True).fields[0].usage, 0x00840030)

    def test_usage_range_and_array(self) -> None:
        raw = bytes.fromhex("05 85 09 04 a1 01 85 02 19 44 29 46 75 01 95 03 15 00 25 01 81 02"
                            " 19 01 29 03 75 08 95 01 25 03 81 00 c0")
        fields = parse(raw).fields
        self.assertEqual([f.usage & 0xFF for f in fields[:3]], [0x44, 0x45, 0x46])
        self.assertTrue(fields[3].array)
        self.assertEqual(fields[3].usages, (0x00850001, 0x00850002, 0x00850003))

    def test_vendor_collection_index(self) -> None:
        """
        NUT names a vendor-defined collection (type >= 0x80) with an index
        node, as in C{UPS.TLCustom.[1].UPSFirmwareVersion}.
        """
        raw = bytes.fromhex("05 84 09 04 a1 01 06 ff ff 09 10 a1 81 85 0f 75 10 95 01"
                            " 09 7c b1 02 c0 c0")
        f = parse(raw).fields[0]
        from nutshim.drivers.usbhid.vendor_usages import TRIPPLITE
        table = UsageTable(TRIPPLITE)
        self.assertEqual(path_string(f.path, table), "UPS.TLCustom.[1].UPSFirmwareVersion")
        self.assertEqual(parse_path("UPS.TLCustom.[1].UPSFirmwareVersion", table), f.path)

    def test_apc_names(self) -> None:
        self.assertEqual(path_string((0x00840004, 0xFF860005, 0xFF86007C), UsageTable(APC)),
                         "UPS.APCGeneralCollection.APCDelayBeforeReboot")
        self.assertEqual(path_string((0x00840004, 0xFF860072), STD), "UPS.ff860072")


class ValueTests(SynchronousTestCase):
    def _field(self, size: int, logmin: int, logmax: int, **kw: object) -> Field:
        return Field(1, ReportKind.FEATURE, 0, size, (0x00840030,), logmin, logmax, **kw)  # type: ignore[arg-type]

    def test_signed(self) -> None:
        """
        C{15 ff} (LogMin -1): DelayBeforeShutdown C{15 ff ff} reads -1, as
        NUT logs for the Back-UPS XS 1400U (nut#1189).
        """
        self.assertEqual(values.extract(self._field(16, -1, 32767), b"\x15\xff\xff"), -1)

    def test_clamped_and_masked(self) -> None:
        # Garbage above the range is dropped (NUT's GetValue), then clamped.
        f = self._field(16, 0, 100)
        self.assertEqual(values.extract(f, b"\x01\x80\x00"), 0)
        self.assertEqual(values.extract(f, b"\x01\x7f\x00"), 100)
        self.assertEqual(values.extract(f, b"\x01\x32\xff"), 50)

    def test_physical(self) -> None:
        f = self._field(16, -1, 32767, phymin=-60, phymax=1966020)
        self.assertEqual(values.extract(f, b"\x01\x00\x00"), 0.0)
        self.assertEqual(values.from_physical(f, 60), 1)

    def test_short_report(self) -> None:
        self.assertRaises(values.ValueError_, values.extract, self._field(16, 0, 100), b"\x01\x00")

    def test_insert_keeps_other_bits(self) -> None:
        f = Field(3, ReportKind.FEATURE, 4, 4, (0,), 0, 15)
        self.assertEqual(values.insert(f, b"\x03\xff", 0), b"\x03\x0f")


def _short_items() -> st.SearchStrategy[RawItem]:
    return st.builds(RawItem, st.sampled_from([ItemType.MAIN, ItemType.GLOBAL, ItemType.LOCAL]),
                     st.integers(0, 15), st.sampled_from([0, 1, 2, 4]).flatmap(
                         lambda n: st.binary(min_size=n, max_size=n)))


_LONG = st.builds(RawItem, st.just(ItemType.RESERVED), st.integers(0, 255),
                  st.binary(max_size=40), st.just(True))


class PropertyTests(SynchronousTestCase):
    @given(st.lists(st.one_of(_short_items(), _LONG), max_size=40))
    def test_items_survive_encode_parse(self, items: List[RawItem]) -> None:
        self.assertEqual(list(tokenize(encode(items))), items)

    @given(st.lists(st.tuples(
        st.integers(0x00840001, 0x008400FF), st.sampled_from(list(ReportKind)),
        st.integers(1, 255), st.integers(1, 32), st.integers(1, 4),
        st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1)), max_size=12))
    def test_fields_survive_describe_parse(self, specs: list) -> None:  # type: ignore[type-arg]
        desc = parse(describe(specs))
        expected = []
        bits: dict = {}  # type: ignore[type-arg]
        for usage, kind, rid, size, count, logmin, logmax in specs:
            for k in range(count):
                start = bits.get((rid, kind), 0)
                expected.append((rid, kind, start, size, (0x00840004, usage if k == 0 else 0),
                                 logmin, logmax))
                bits[(rid, kind)] = start + size
        self.assertEqual([(f.report_id, f.kind, f.offset, f.size, f.path, f.logmin, f.logmax)
                          for f in desc.fields], expected)

    @settings(max_examples=300)
    @given(st.data())
    def test_values_survive_insert_extract(self, data: st.DataObject) -> None:
        """
        For every field of every captured descriptor, any logical value in
        its range survives insert -> extract, and the physical value of it
        maps back to it.
        """
        desc = data.draw(st.sampled_from(CAPTURED))
        fields = [f for f in desc.fields if f.size and f.logmin <= f.logmax]
        f = data.draw(st.sampled_from(fields))
        top = min(f.logmax, (1 << (f.size - (1 if f.logmin < 0 else 0))) - 1)
        bottom = max(f.logmin, -(1 << (f.size - 1)) if f.logmin < 0 else 0)
        logical = data.draw(st.integers(bottom, top))
        length = desc.report_length(f.report_id, f.kind)
        noise = data.draw(st.binary(min_size=length, max_size=length))
        report = values.insert(f, noise, logical, desc.numbered, length)
        self.assertEqual(values.to_logical(f, values.raw_bits(f, report, desc.numbered)), logical)
        self.assertEqual(values.from_physical(f, values.to_physical(f, logical)), logical)


class RobustnessTests(SynchronousTestCase):
    """
    Bad input never escapes as anything but the documented errors.
    """

    @given(st.binary(max_size=300))
    def test_any_bytes(self, raw: bytes) -> None:
        try:
            desc = parse(raw)
        except DescriptorError:
            return
        for f in desc.fields:
            desc.report_length(f.report_id, f.kind)

    @given(st.text(max_size=400))
    def test_any_capture_text(self, text: str) -> None:
        from nutshim.drivers.usbhid import capture
        for reader in (capture.parse_log, capture.parse_plain):
            try:
                reader(text)
            except capture.CaptureError:
                pass

    @settings(max_examples=200)
    @given(st.data())
    def test_any_reports(self, data: st.DataObject) -> None:
        """
        Reports of any length and content (a device lying about its report
        sizes, or sending garbage) never break a walk or an interrupt.
        """
        from nutshim.drivers.usbhid.engine import Engine, Mode
        from nutshim.drivers.usbhid.subdrivers import Identity, choose
        desc = parse(hexbytes(UNBRANDED["report_descriptor_hex"]))
        blobs = data.draw(st.lists(st.binary(max_size=40), min_size=1, max_size=4))

        class Src:
            n = 0

            def get_report(self, kind: ReportKind, report_id: int, length: int) -> bytes:
                self.n += 1
                return blobs[self.n % len(blobs)]

            def string(self, index: int) -> None:
                return None

        ident = Identity(0x5131, 0x2007)
        engine = Engine(ident, desc, choose(ident))
        for mode in (Mode.INIT, Mode.FULL, Mode.QUICK):
            engine.walk(mode, Src())
        for blob in blobs:
            engine.interrupt(blob)
