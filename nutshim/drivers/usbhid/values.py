# -*- test-case-name: nutshim.test.test_usbhid_descriptor -*-
"""
Reading a field's value from report bytes, and writing one into them.

Three steps each way, as NUT's C{libhid.c}/C{hidparser.c} do them, so
that a value is the value NUT prints:

 1. bits: C{size} bits at C{offset} after the report ID byte, read as
    two's complement when the logical minimum is negative (HID 1.11
    6.2.2.7), excess high bits dropped and the result clamped into
    C{[LogMin, LogMax]} (devices do send garbage above the range);
 2. physical: scaled linearly onto C{[PhyMin, PhyMax]} when both are
    declared and not both 0;
 3. unit exponent: multiplied by 10 to the exponent, less the exponent
    the HID Power Device spec implies for the unit (volts and watts are
    expressed in 10^7 of the SI base units, so a volt field with
    exponent 7 is plain volts; NUT keeps the same table).

L{insert} inverts all three to build the payload of a SET_REPORT.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

from nutshim.drivers.usbhid.descriptor import Field

__all__ = ["ValueError_", "raw_bits", "to_logical", "extract", "to_physical", "from_physical",
           "insert", "unit_exponent", "UNIT_EXPONENTS"]

#: Units of the Power Device spec (pdcv11, 3.2.3) and the exponent their
#: plain value has; NUT's C{HIDUnits} table.
UNIT_EXPONENTS: Dict[int, int] = {
    0x00F0D121: 7,  # volt
    0x00100001: 0,  # ampere
    0x0000D121: 7,  # volt-ampere, watt
    0x00001001: 0,  # second
    0x00010001: 0,  # kelvin
    0x0000F001: 0,  # hertz
    0x00101001: 0,  # ampere-second
}


class ValueError_(ValueError):
    """
    A report too short for a field, or a value that cannot be encoded.
    """


def _signbit_mask(field: Field) -> "tuple[int, int]":
    mag_max = field.logmax if field.logmax >= 0 else -(field.logmax + 1)
    mag_min = field.logmin if field.logmin >= 0 else -(field.logmin + 1)
    top = max(mag_max, mag_min)
    signbit = 1 << top.bit_length() if top else 1
    mask = (signbit - 1) | (signbit if field.logmin < 0 else 0)
    return signbit, mask


def raw_bits(field: Field, report: bytes, numbered: bool = True) -> int:
    """
    The field's bits as an unsigned integer.

    @param report: the report as the device sends it (with its ID byte
        when C{numbered}).
    @raise ValueError_: if the report is too short for the field.
    """
    body = report[1:] if numbered else report
    end = field.offset + field.size
    if len(body) * 8 < end:
        raise ValueError_(f"report of {len(report)} bytes too short for bits"
                          f" {field.offset}..{end - 1}")
    return (int.from_bytes(body, "little") >> field.offset) & ((1 << field.size) - 1)


def to_logical(field: Field, bits: int) -> int:
    """
    Bits to a logical value in C{[LogMin, LogMax]}, as NUT's C{GetValue}.
    """
    signbit, mask = _signbit_mask(field)
    value = bits & mask
    if field.logmin < 0 and value & signbit:
        value |= ~mask
    return min(max(value, field.logmin), field.logmax) if field.logmin <= field.logmax else value


def unit_exponent(field: Field) -> int:
    """
    The power of ten a logical value is multiplied by.
    """
    return field.unit_exp - UNIT_EXPONENTS.get(field.unit, 0)


def _has_physical(field: Field) -> bool:
    return (field.phymin is not None and field.phymax is not None
            and not (field.phymin == 0 and field.phymax == 0)
            and field.phymax > field.phymin and field.logmax > field.logmin)


def to_physical(field: Field, logical: int) -> float:
    """
    A logical value to the value in the field's unit (NUT's
    C{logical_to_physical}, then the exponent).
    """
    value = float(logical)
    if _has_physical(field):
        assert field.phymin is not None and field.phymax is not None
        factor = (field.phymax - field.phymin) / (field.logmax - field.logmin)
        value = min(max((logical - field.logmin) * factor + field.phymin, field.phymin),
                    field.phymax)
    return value * 10.0 ** unit_exponent(field)


def extract(field: Field, report: bytes, numbered: bool = True) -> float:
    """
    The value of C{field} in C{report}, in the field's unit.
    """
    return to_physical(field, to_logical(field, raw_bits(field, report, numbered)))


def from_physical(field: Field, value: float) -> int:
    """
    A value in the field's unit to the logical value to send (NUT's
    C{physical_to_logical}), clamped into the logical range.

    @raise ValueError_: for NaN or infinite values.
    """
    if not math.isfinite(value):
        raise ValueError_(f"cannot send {value}")
    scaled = value / 10.0 ** unit_exponent(field)
    if _has_physical(field):
        assert field.phymin is not None and field.phymax is not None
        factor = (field.logmax - field.logmin) / (field.phymax - field.phymin)
        logical = int((scaled - field.phymin) * factor) + field.logmin
    else:
        # round, not truncate: 0.29 / 0.01 is 28.999...
        logical = int(round(scaled)) if abs(scaled - round(scaled)) < 1e-6 else int(scaled)
    if field.logmin <= field.logmax:
        logical = min(max(logical, field.logmin), field.logmax)
    return logical


def insert(field: Field, report: bytes, logical: int, numbered: bool = True,
           length: Optional[int] = None) -> bytes:
    """
    C{report} with C{field} set to the logical value C{logical} (two's
    complement in C{size} bits), the other bits unchanged.

    @param length: pad or cut the report to this many bytes first.
    @raise ValueError_: if the report is too short for the field.
    """
    data = bytearray(report)
    if length is not None:
        data = data[:length] + bytearray(max(0, length - len(data)))
    head = 1 if numbered else 0
    if numbered:
        data[0] = field.report_id
    if (len(data) - head) * 8 < field.offset + field.size:
        raise ValueError_("report too short for the field")
    body = int.from_bytes(bytes(data[head:]), "little")
    mask = ((1 << field.size) - 1) << field.offset
    body = (body & ~mask) | ((logical << field.offset) & mask)
    data[head:] = body.to_bytes(len(data) - head, "little")
    return bytes(data)
