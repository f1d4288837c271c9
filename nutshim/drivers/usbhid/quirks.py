# -*- test-case-name: nutshim.test.test_usbhid_mapping -*-
"""
Named fix-ups for real devices' broken report descriptors.

Each quirk says which devices it is for (vendor, and product IDs or
C{None} for all of the vendor's, or C{None} for every device), what it
repairs and where NUT repairs the same thing, and is a pure function
from a L{Descriptor} to a repaired one.  L{apply} runs every quirk that
matches and names the ones that changed something, so that the driver
can log them (as NUT logs "Fixing Report Descriptor") and tests can
check each against a real capture.  C{disable_fix_report_desc} in
ups.conf turns them off, as in NUT.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import attrs

from nutshim.drivers.usbhid.descriptor import Descriptor, Field, ReportKind
from nutshim.drivers.usbhid.subdrivers import Identity

__all__ = ["Quirk", "QUIRKS", "apply", "find"]

_VOLTAGE = 0x00840030
_CONFIG_VOLTAGE = 0x00840040
_HIGH_VOLTAGE_TRANSFER = 0x00840054


@attrs.frozen
class Quirk:
    name: str
    vendor_id: Optional[int]
    product_ids: Optional[Tuple[int, ...]]
    description: str
    fix: Callable[[Descriptor], Descriptor]

    def matches(self, ident: Identity) -> bool:
        if self.vendor_id is not None and ident.vendor_id != self.vendor_id:
            return False
        return self.product_ids is None or ident.product_id in self.product_ids


def find(desc: Descriptor, report_id: int, usage: int,
         kind: ReportKind = ReportKind.FEATURE) -> Optional[Field]:
    """
    The first field of a report with a usage (NUT's
    C{FindObject_with_ID_Node}).
    """
    for f in desc.fields:
        if f.report_id == report_id and f.usage == usage and f.kind is kind:
            return f
    return None


def _set_range(desc: Descriptor, report_id: int, usage: int, logmin: int, logmax: int) -> Descriptor:
    for f in desc.fields:
        if f.report_id == report_id and f.usage == usage:
            desc = desc.replace_field(f, attrs.evolve(f, logmin=logmin, logmax=logmax))
    return desc


def _unsigned_logmax(desc: Descriptor) -> Descriptor:
    """
    A LogMax below LogMin was written too short and overflowed into the
    sign bit (C{25 ff} for 255): read it unsigned, as NUT's hidparser.c
    does since 2.8.0 (APC BX1600MI, nut#1208, and others).
    """
    for f in desc.fields:
        if f.logmax < f.logmin and f.logmax < 0:
            fixed = f.logmax + (1 << (8 * f.logmax_bytes))
            desc = desc.replace_field(f, attrs.evolve(f, logmax=fixed))
    return desc


def _apc_input_voltage(desc: Descriptor) -> Descriptor:
    """
    Back-UPS XS 1400U in 230 V regions: Input.Voltage (report 0x31) and
    Input.ConfigVoltage (0x30) get a logical range below the high
    transfer voltage (0x33), so 230 V reads as 140 (nut#1189); NUT's
    C{apc_fix_report_desc}.
    """
    hvt = find(desc, 0x33, _HIGH_VOLTAGE_TRANSFER)
    if hvt is None:
        return desc
    voltage = find(desc, 0x31, _VOLTAGE)
    if voltage is not None and hvt.logmax > voltage.logmax:
        desc = _set_range(desc, 0x31, _VOLTAGE, 0, hvt.logmax * 2)
    config = find(desc, 0x30, _CONFIG_VOLTAGE)
    if config is not None and hvt.logmax > config.logmax:
        desc = _set_range(desc, 0x30, _CONFIG_VOLTAGE, config.logmin, 255)
    return desc


CPS_VOLTAGE_RANGE = (0, 511)


def _cps_voltages(desc: Descriptor) -> Descriptor:
    """
    CyberPower: the Output.Voltage item (report 0x12) and on some models
    Input.Voltage (0x0f) inherit the logical range of the high transfer
    voltage (0x10) instead of their own, so readings are clipped (nut#439,
    fixed in NUT by PR #1245, extended to 0764:0601 after nut#1512).
    """
    hvt = find(desc, 0x10, _HIGH_VOLTAGE_TRANSFER)
    output = find(desc, 0x12, _VOLTAGE)
    if hvt is None or output is None or (hvt.logmin, hvt.logmax) != (output.logmin, output.logmax):
        return desc
    desc = _set_range(desc, 0x12, _VOLTAGE, *CPS_VOLTAGE_RANGE)
    inp = find(desc, 0x0F, _VOLTAGE)
    if inp is not None and (inp.logmin, inp.logmax) == (hvt.logmin, hvt.logmax):
        desc = _set_range(desc, 0x0F, _VOLTAGE, *CPS_VOLTAGE_RANGE)
    return desc


QUIRKS: Tuple[Quirk, ...] = (
    Quirk("logmax-unsigned", None, None,
          "LogMax encoded too short (negative, below LogMin) is read unsigned",
          _unsigned_logmax),
    Quirk("apc-input-voltage", 0x051D, (0x0002,),
          "APC 051d:0002 input voltage logical range below the transfer voltage",
          _apc_input_voltage),
    Quirk("cps-voltage-range", 0x0764, (0x0501, 0x0601),
          "CyberPower voltages inheriting the transfer voltage's logical range",
          _cps_voltages),
)

#: I/O quirk: Back-UPS models whose reports overflow the descriptor's
#: length; GET_REPORT asks for a whole packet (NUT's max_report_size).
APC_MAX_REPORT_PRODUCTS = ("Back-UPS ES 525", "Back-UPS CS")


def max_report_size(ident: Identity) -> bool:
    """
    Whether to ask for whole packets instead of the descriptor's lengths.
    """
    return ident.vendor_id == 0x051D and any(
        (ident.product or "").startswith(p) for p in APC_MAX_REPORT_PRODUCTS)


def apply(ident: Identity, desc: Descriptor, enabled: bool = True) -> Tuple[Descriptor, List[str]]:
    """
    Run the matching quirks; the repaired descriptor and the names of
    the quirks that changed it.
    """
    applied: List[str] = []
    if not enabled:
        return desc, applied
    for quirk in QUIRKS:
        if quirk.matches(ident):
            fixed = quirk.fix(desc)
            if fixed != desc:
                applied.append(quirk.name)
                desc = fixed
    return desc, applied
