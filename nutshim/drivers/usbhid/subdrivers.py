# -*- test-case-name: nutshim.test.test_usbhid_mapping -*-
"""
Subdrivers: which table, which usage names and which identity strings
a device gets, chosen by USB vendor ID as NUT's subdrivers claim devices
(or by the C{subdriver} option, a regular expression on the name, as in
NUT).  Unknown vendors get the generic table.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import attrs

from nutshim.drivers.usbhid import vendor_usages
from nutshim.drivers.usbhid.mapping import Info
from nutshim.drivers.usbhid.tables_apc_cps import APC_TABLE, CPS_TABLE
from nutshim.drivers.usbhid.tables_mge_tl import GENERIC_TABLE, MGE_TABLE, tripplite_table
from nutshim.drivers.usbhid.usages import UsageTable

__all__ = ["Identity", "Subdriver", "SUBDRIVERS", "choose", "SubdriverError"]


class SubdriverError(ValueError):
    """
    A C{subdriver} option that names no subdriver.
    """


@attrs.frozen
class Identity:
    """
    What the USB device descriptor and its strings say.
    """

    vendor_id: int
    product_id: int
    manufacturer: Optional[str] = None
    product: Optional[str] = None
    serial: Optional[str] = None
    bus: str = ""
    device: str = ""
    release: int = 0


@attrs.frozen
class Subdriver:
    """
    A vendor's mapping.

    @ivar name: as NUT's C{driver.version.data} names it.
    @ivar vendor_ids: the USB vendors it claims.
    @ivar identity: C{Identity -> {var: value}} for C{ups.mfr},
        C{ups.model}, C{ups.serial} and the like.
    """

    name: str
    key: str
    vendor_ids: Tuple[int, ...]
    table: Callable[[Identity], Tuple[Info, ...]]
    usages: UsageTable
    identity: Callable[[Identity], Dict[str, str]]


def _plain(default_mfr: Optional[str]) -> Callable[[Identity], Dict[str, str]]:
    def identity(ident: Identity) -> Dict[str, str]:
        out: Dict[str, str] = {}
        mfr = ident.manufacturer or default_mfr
        for var, value in (("ups.mfr", mfr), ("ups.model", ident.product),
                           ("ups.serial", ident.serial)):
            if value:
                out[var] = value.strip()
        return out
    return identity


def _apc_identity(ident: Identity) -> Dict[str, str]:
    """
    APC puts the firmware in the product string: C{"Back-UPS ES 850G2
    FW:938.a2 .I USB FW:a2"} is model, C{ups.firmware} and
    C{ups.firmware.aux} (NUT's C{apc_format_model}).
    """
    out = _plain("APC")(ident)
    model = ident.product or "unknown"
    fw = model.find("FW:")
    if fw >= 0:
        rest = model[fw + 3:]
        model = model[:max(fw - 1, 0)]
        usb = rest.find("USB FW:")
        if usb >= 0:
            out["ups.firmware.aux"] = rest[usb + 7:]
            rest = rest[:max(usb - 1, 0)]
        out["ups.firmware"] = rest
    out["ups.model"] = model
    return out


def _cps_identity(ident: Identity) -> Dict[str, str]:
    return _plain("CPS")(ident)


def _mge_identity(ident: Identity) -> Dict[str, str]:
    return _plain("Eaton")(ident)


def _tl_identity(ident: Identity) -> Dict[str, str]:
    return _plain("Tripp Lite")(ident)


SUBDRIVERS: Tuple[Subdriver, ...] = (
    Subdriver("APC HID (nutshim)", "apc", (0x051D,), lambda ident: APC_TABLE,
              UsageTable(vendor_usages.APC), _apc_identity),
    Subdriver("CyberPower HID (nutshim)", "cyberpower", (0x0764,), lambda ident: CPS_TABLE,
              UsageTable(), _cps_identity),
    Subdriver("MGE HID (nutshim)", "mge", (0x0463, 0x047C, 0x10AF), lambda ident: MGE_TABLE,
              UsageTable(vendor_usages.MGE), _mge_identity),
    Subdriver("TrippLite HID (nutshim)", "tripplite", (0x09AE,),
              lambda ident: tripplite_table(ident.product_id),
              UsageTable(vendor_usages.TRIPPLITE), _tl_identity),
    Subdriver("Generic HID (nutshim)", "generic", (), lambda ident: GENERIC_TABLE, UsageTable(),
              _plain(None)),
)


def choose(ident: Identity, override: Optional[str] = None) -> Subdriver:
    """
    The subdriver of a device: the one whose name or key matches the
    C{subdriver} option (a case-insensitive regex, tried as is and then
    as a prefix, like NUT), else the one claiming the vendor ID, else
    the generic one.

    @raise SubdriverError: if C{override} matches nothing or is no regex.
    """
    if override:
        try:
            pattern = re.compile(override, re.IGNORECASE)
        except re.error as e:
            raise SubdriverError(f"subdriver {override!r}: {e}") from None
        for sub in SUBDRIVERS:
            if pattern.fullmatch(sub.key) or pattern.fullmatch(sub.name):
                return sub
        for sub in SUBDRIVERS:
            if pattern.match(sub.key) or pattern.match(sub.name):
                return sub
        raise SubdriverError(f"subdriver {override!r} matches none of "
                             f"{', '.join(s.key for s in SUBDRIVERS)}")
    for sub in SUBDRIVERS:
        if ident.vendor_id in sub.vendor_ids:
            return sub
    return SUBDRIVERS[-1]


def by_key(key: str) -> Subdriver:
    for sub in SUBDRIVERS:
        if sub.key == key:
            return sub
    raise KeyError(key)


def keys() -> Sequence[str]:
    return [s.key for s in SUBDRIVERS]

