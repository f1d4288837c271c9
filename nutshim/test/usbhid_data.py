"""
The real USB HID captures the usbhid tests use (C{nutshim/test/usbhid/},
each file naming the public bug report it comes from), and a small
descriptor builder for the cases no capture covers.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
