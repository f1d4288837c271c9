"""
The real USB HID captures the usbhid tests use (C{nutshim/test/usbhid/},
each file naming the public bug report it comes from), the registry of
the complete ones (L{DEVICES}: replayed end to end, each with its oracle),
and a small descriptor builder for the cases no capture covers.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import attrs

from nutshim.drivers.usbhid.descriptor import (G_LOGMAX, G_LOGMIN, G_REPORT_COUNT, G_REPORT_ID,
                                               G_REPORT_SIZE, G_UNIT, G_UNIT_EXP, G_USAGE_PAGE,
                                               L_USAGE, MAIN_COLLECTION, MAIN_END_COLLECTION,
                                               ItemType, RawItem, ReportKind, encode, main_item,
                                               short)
from nutshim.drivers.usbhid.usages import UsageTable, parse_path

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "usbhid")
JSON_CAPTURES = sorted(f for f in os.listdir(DATA) if f.endswith(".json"))


def path(name: str) -> str:
    return os.path.join(DATA, name)


@attrs.frozen
class ReplayedDevice:
    """
    A complete captured device (descriptor and every report the driver
    asks for) and what NUT showed, or decoded, for it.

    @ivar name: the test id (letters, digits and underscores).
    @ivar capture: the file under C{nutshim/test/usbhid/} (NUT log or plain
        dump) that C{port = replay:} plays.
    @ivar source: the public URL the bytes come from.
    @ivar oracle_source: what the oracle is: NUT's C{upsc} output for this
        unit, or the values NUT decoded (C{Path: ... Value:}) put through
        the NUT subdriver's mapping (named).
    @ivar oracle: every variable of the oracle the capture supports, with
        C{ups.status}; the replayed driver must publish exactly these values.
    @ivar options: the C{ups.conf} options besides C{port} (e.g.
        C{vendorid} for a vendor nutshim does not match by itself).
    @ivar differences: deliberate differences from NUT's value (variable,
        nutshim's value, why), listed in docs/drivers.md too.
    """

    name: str
    capture: str
    vendor: str
    model: str
    usb_id: str
    source: str
    oracle_source: str
    oracle: Tuple[Tuple[str, str], ...]
    options: Tuple[Tuple[str, str], ...] = ()
    differences: Tuple[Tuple[str, str, str], ...] = ()

    def expected(self) -> Dict[str, str]:
        """
        The oracle, with each deliberate difference's nutshim value.
        """
        values = dict(self.oracle)
        values.update({var: ours for var, ours, _ in self.differences})
        return values


#: The complete devices, replayed end to end by
#: C{nutshim.test.test_usbhid_devices} (unit level, on a Clock) and
#: C{tests.test_usbhid_integration} (real nut-upsd, NUT's upsd and upsc).
#: Add a device here with its capture file; both tests pick it up.
DEVICES: Tuple[ReplayedDevice, ...] = (
    ReplayedDevice(
        name="unbranded_5131_2007",
        capture="unbranded-5131-2007.dump",
        vendor="unbranded (no NUT subdriver)",
        model="USB UPS, 183-byte descriptor",
        usb_id="5131:2007",
        source="https://github.com/networkupstools/nut/issues/3227",
        # No upsc exists (NUT has no subdriver for it); the values follow from
        # NUT's own decode of the Feature report (WarningCapacityLimit 40,
        # ConfigVoltage 220 at NUT's exponent -2, RemainingCapacity 400 of
        # FullChargeCapacity 400 in mAh mode) and the reporter's Input report
        # (RunTimeToEmpty 0, ACPresent 1, not charging or discharging) through
        # the standard Power Device paths every NUT table shares.
        oracle_source="NUT's decode of the reports (Path values), generic paths",
        oracle=(("battery.charge", "100"), ("battery.charge.warning", "40"),
                ("battery.runtime", "0"), ("battery.voltage.nominal", "2.2"),
                ("device.type", "ups"), ("ups.productid", "2007"),
                ("ups.vendorid", "5131"), ("ups.status", "OL")),
        options=(("vendorid", "5131"),),
    ),
)


def load_json(name: str) -> Dict[str, Any]:
    with open(path(name)) as f:
        data: Dict[str, Any] = json.load(f)
    return data


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text)


def descriptor_bytes(cap: Dict[str, Any]) -> Tuple[Optional[bytes], bool]:
    """
    A capture's descriptor and whether it is whole (else a prefix).
    """
    if cap.get("report_descriptor_hex"):
        return hexbytes(cap["report_descriptor_hex"]), True
    for frag in cap.get("descriptor_fragments") or []:
        if frag["position"] == "prefix":
            return hexbytes(frag["hex"]), False
    return None, False


#: One field for L{build}: path, kind, report ID, size, logical range,
#: unit, unit exponent.
Spec = Tuple[str, ReportKind, int, int, int, int, int, int]


def build(specs: Sequence[Spec], table: UsageTable = UsageTable()) -> bytes:
    """
    A descriptor laying out C{specs}, each in its own main item inside
    the collections its path names (opened and closed as needed).
    """
    items: List[RawItem] = []
    open_path: Tuple[int, ...] = ()
    for name, kind, rid, size, logmin, logmax, unit, unit_exp in specs:
        numeric = parse_path(name, table)
        parents, usage = numeric[:-1], numeric[-1]
        common = 0
        while common < min(len(open_path), len(parents)) and open_path[common] == parents[common]:
            common += 1
        for _ in range(len(open_path) - common):
            items.append(RawItem(ItemType.MAIN, MAIN_END_COLLECTION))
        for node in parents[common:]:
            items += [RawItem(ItemType.LOCAL, L_USAGE, node.to_bytes(4, "little")),
                      RawItem(ItemType.MAIN, MAIN_COLLECTION, b"\x01" if not items else b"\x00")]
        open_path = parents
        items += [short(ItemType.GLOBAL, G_USAGE_PAGE, usage >> 16),
                  short(ItemType.GLOBAL, G_REPORT_ID, rid),
                  short(ItemType.GLOBAL, G_REPORT_SIZE, size),
                  short(ItemType.GLOBAL, G_REPORT_COUNT, 1),
                  short(ItemType.GLOBAL, G_LOGMIN, logmin, signed=True),
                  short(ItemType.GLOBAL, G_LOGMAX, logmax, signed=True),
                  short(ItemType.GLOBAL, G_UNIT, unit),
                  short(ItemType.GLOBAL, G_UNIT_EXP, unit_exp & 0xF if unit_exp < 0 else unit_exp),
                  short(ItemType.LOCAL, L_USAGE, usage & 0xFFFF),
                  main_item(kind)]
    for _ in open_path:
        items.append(RawItem(ItemType.MAIN, MAIN_END_COLLECTION))
    return encode(items)
