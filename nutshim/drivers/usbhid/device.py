# -*- test-case-name: nutshim.test.test_usbhid_replay -*-
"""
The blocking half: a USB HID UPS through pyusb (libusb1 backend).

Everything here blocks and must run off the reactor (the driver runs it
on its own thread, L{nutshim.drivers.usbhid.driver}); every transfer has
a timeout.  L{find} matches devices as NUT's C{usbhid-ups} does (the
C{vendorid}, C{productid}, C{vendor}, C{product}, C{serial}, C{bus} and
C{device} options are case-insensitive regular expressions that must
match the whole value); L{open_device} detaches the kernel's C{usbhid}
driver, reads the report descriptor and the identity strings.  USB
errors are translated into the engine's two outcomes: the device is gone
(reconnect) or one request failed (try again next poll), plus a
permission error that names the device and the udev rule to install.
"""

from __future__ import annotations

import errno
import re
from typing import Any, Iterable, List, Mapping, Optional, Tuple

import attrs
import usb.core
import usb.util

from nutshim.drivers.usbhid.descriptor import ReportKind
from nutshim.drivers.usbhid.engine import DeviceGone, ReportFailed
from nutshim.drivers.usbhid.subdrivers import Identity

__all__ = ["Match", "MatchError", "PermissionDenied", "NoDevice", "Device", "find",
           "open_device", "KNOWN_VENDORS", "UDEV_RULE", "TIMEOUT_MS"]

#: Every USB transfer gives up after this long.
TIMEOUT_MS = 5000
#: Where the sample udev rule ships (and where to install it).
UDEV_RULE = "drivers/nutshim-usbhid.rules (install it as /etc/udev/rules.d/62-nutshim-usbhid.rules)"
#: Vendors whose HID devices are UPSes (NUT's subdriver tables); any other
#: device needs an explicit C{vendorid}, so no keyboard is ever taken.
KNOWN_VENDORS = frozenset({
    0x051D,  # APC
    0x0764,  # CyberPower
    0x0463, 0x047C,  # MGE/Eaton, Dell
    0x09AE,  # Tripp Lite
    0x10AF,  # Liebert
    0x06DA,  # Phoenixtec (Salicru, ...)
    0x0D9F,  # Powercom
    0x050D,  # Belkin
    0x03F0,  # HP
    0x05DD,  # Delta
    0x0665,  # Cypress-based (PowerWalker, ...)
    0x2E66,  # Salicru
})

_GONE = {errno.ENODEV, errno.ENOENT, errno.EIO, errno.EBUSY, errno.ENXIO, errno.ESHUTDOWN}
_DENIED = {errno.EACCES, errno.EPERM}


class MatchError(ValueError):
    """
    A matching option that is no valid regular expression.
    """


class NoDevice(DeviceGone):
    """
    No device matches (yet).
    """


class PermissionDenied(DeviceGone):
    """
    The device exists but may not be opened.
    """


@attrs.frozen
class Match:
    """
    The matching options of a ups.conf section (C{None}: any).
    """

    vendorid: Optional[str] = None
    productid: Optional[str] = None
    vendor: Optional[str] = None
    product: Optional[str] = None
    serial: Optional[str] = None
    bus: Optional[str] = None
    device: Optional[str] = None

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> "Match":
        """
        @raise MatchError: for an option that does not compile.
        """
        match = cls(**{k: options.get(k) for k in
                       ("vendorid", "productid", "vendor", "product", "serial", "bus", "device")})
        for name, pattern in attrs.asdict(match).items():
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise MatchError(f"{name} = {pattern!r}: {e}") from None
        return match

    def accepts(self, ident: Identity) -> bool:
        if self.vendorid is None and ident.vendor_id not in KNOWN_VENDORS:
            return False
        for pattern, value in ((self.vendorid, f"{ident.vendor_id:04x}"),
                               (self.productid, f"{ident.product_id:04x}"),
                               (self.vendor, ident.manufacturer), (self.product, ident.product),
                               (self.serial, ident.serial), (self.bus, ident.bus),
                               (self.device, ident.device)):
            if pattern is None:
                continue
            if value is None or not re.fullmatch(pattern, value, re.IGNORECASE):
                return False
        return True

    @property
    def needs_strings(self) -> bool:
        return any(p is not None for p in (self.vendor, self.product, self.serial))


def _where(dev: Any) -> str:
    return (f"USB device {dev.idVendor:04x}:{dev.idProduct:04x} on bus {dev.bus or 0:03d}"
            f" device {dev.address or 0:03d}")


def translate(e: usb.core.USBError, what: str) -> Exception:
    """
    A pyusb error as the engine's outcome.
    """
    code = e.errno
    if isinstance(e, usb.core.USBTimeoutError) or code == errno.ETIMEDOUT:
        return ReportFailed(f"{what}: timed out")
    if code in _DENIED:
        return PermissionDenied(f"{what}: permission denied; install the udev rule {UDEV_RULE}"
                                " (or run as a user allowed to write the device) and replug it")
    if code in _GONE or code is None:
        return DeviceGone(f"{what}: {e.strerror or e}")
    return ReportFailed(f"{what}: {e.strerror or e}")


def _string(dev: Any, index: int, strict: bool = False) -> Optional[str]:
    """
    A string descriptor; C{None} if the device has none.

    @param strict: before the device is opened (matching C{vendor},
        C{product}, C{serial}), a device whose strings cannot be read at
        all is most likely one we may not open.
    @raise PermissionDenied: if C{strict} and it may not be read.
    """
    if not index:
        return None
    try:
        text = usb.util.get_string(dev, index)
    except usb.core.USBError as e:
        if strict and e.errno in _DENIED:
            raise translate(e, _where(dev)) from None
        return None
    except ValueError as e:
        if strict and "permission" in str(e):
            raise PermissionDenied(f"{_where(dev)}: cannot read its strings (permission denied?);"
                                   f" install the udev rule {UDEV_RULE} and replug it") from None
        return None
    except UnicodeDecodeError:
        return None
    return text.strip() if text else None


def _hid_interface(dev: Any) -> Optional[Any]:
    try:
        for cfg in dev:
            for intf in cfg:
                if intf.bInterfaceClass == 3:
                    return intf
    except (usb.core.USBError, IndexError, NotImplementedError):
        return None
    return None


def find(match: Match, backend: Any = None) -> List[Tuple[Any, Identity]]:
    """
    The matching HID devices and their identities (strings are read only
    when a string option has to be matched, or later by L{open_device}).

    @raise PermissionDenied: if a device matching by IDs cannot be read.
    """
    found: List[Tuple[Any, Identity]] = []
    try:
        devices: Iterable[Any] = usb.core.find(find_all=True, backend=backend)
        for dev in devices:
            ident = Identity(dev.idVendor, dev.idProduct, bus=f"{dev.bus or 0:03d}",
                             device=f"{dev.address or 0:03d}", release=dev.bcdDevice)
            if not Match(match.vendorid, match.productid, bus=match.bus,
                         device=match.device).accepts(ident):
                continue
            if _hid_interface(dev) is None:
                continue
            if match.needs_strings:
                try:
                    ident = attrs.evolve(ident, manufacturer=_string(dev, dev.iManufacturer, True),
                                         product=_string(dev, dev.iProduct, True),
                                         serial=_string(dev, dev.iSerialNumber, True))
                except usb.core.USBError as e:
                    raise translate(e, _where(dev)) from None
            if match.accepts(ident):
                found.append((dev, ident))
    except usb.core.NoBackendError:
        raise DeviceGone("libusb-1.0 is not installed (Debian: apt-get install libusb-1.0-0)") from None
    return found


class Device:
    """
    An opened UPS: its identity, its report descriptor, and blocking
    GET_REPORT / SET_REPORT / interrupt reads.
    """

    def __init__(self, dev: Any, ident: Identity, descriptor: bytes, intf: int,
                 endpoint: Optional[int], packet: int, whole_packets: bool = False) -> None:
        self.dev, self.ident, self.descriptor = dev, ident, descriptor
        self.intf, self.endpoint, self.packet = intf, endpoint, packet
        self.whole_packets = whole_packets
        self.where = _where(dev)

    def get_report(self, kind: ReportKind, report_id: int, length: int) -> bytes:
        size = max(length, self.packet) if self.whole_packets or not length else length
        try:
            data = self.dev.ctrl_transfer(0xA1, 0x01, (int(kind) << 8) | report_id, self.intf,
                                          size, TIMEOUT_MS)
        except usb.core.USBError as e:
            raise translate(e, f"{self.where}: GET_REPORT 0x{report_id:02x}") from None
        if not len(data):
            raise ReportFailed(f"{self.where}: empty report 0x{report_id:02x}")
        return bytes(data)

    def set_report(self, kind: ReportKind, report_id: int, data: bytes) -> None:
        try:
            self.dev.ctrl_transfer(0x21, 0x09, (int(kind) << 8) | report_id, self.intf, data,
                                   TIMEOUT_MS)
        except usb.core.USBError as e:
            raise translate(e, f"{self.where}: SET_REPORT 0x{report_id:02x}") from None

    def read_interrupt(self, timeout_ms: int) -> Optional[bytes]:
        """
        One interrupt IN report, or C{None} if none came in time.
        """
        if self.endpoint is None:
            return None
        try:
            data = self.dev.read(self.endpoint, self.packet, timeout_ms)
        except usb.core.USBTimeoutError:
            return None
        except usb.core.USBError as e:
            exc = translate(e, f"{self.where}: interrupt IN")
            if isinstance(exc, ReportFailed):
                return None
            raise exc from None
        return bytes(data) if len(data) else None

    def string(self, index: int) -> Optional[str]:
        return _string(self.dev, index)

    def close(self) -> None:
        try:
            usb.util.release_interface(self.dev, self.intf)
            usb.util.dispose_resources(self.dev)
        except (usb.core.USBError, ValueError):
            pass


def _descriptor_length(intf: Any) -> int:
    """
    The report descriptor length from the HID class descriptor in the
    configuration (NUT's "method 2", which some devices get right when
    they answer the HID descriptor request with garbage).
    """
    extra = bytes(intf.extra_descriptors or b"")
    i = 0
    while i + 1 < len(extra):
        length = extra[i]
        if length < 2:
            break
        if extra[i + 1] == 0x21 and length >= 9:
            for j in range(i + 6, i + length - 2, 3):
                if extra[j] == 0x22:
                    return extra[j + 1] | (extra[j + 2] << 8)
        i += length
    return 4096


def open_device(dev: Any, ident: Identity, whole_packets: bool = False) -> Device:
    """
    Claim a device: detach the kernel driver, read its identity strings
    and its report descriptor.

    @raise DeviceGone: or its subclass L{PermissionDenied}.
    """
    where = _where(dev)
    intf = _hid_interface(dev)
    if intf is None:
        raise DeviceGone(f"{where}: no HID interface")
    number = intf.bInterfaceNumber
    try:
        try:
            if dev.is_kernel_driver_active(number):
                dev.detach_kernel_driver(number)
        except NotImplementedError:
            pass
        usb.util.claim_interface(dev, number)
        if ident.manufacturer is None and ident.product is None:
            ident = attrs.evolve(ident, manufacturer=_string(dev, dev.iManufacturer),
                                 product=_string(dev, dev.iProduct),
                                 serial=_string(dev, dev.iSerialNumber))
        length = _descriptor_length(intf)
        descriptor = bytes(dev.ctrl_transfer(0x81, 0x06, 0x2200, number, length, TIMEOUT_MS))
    except usb.core.USBError as e:
        raise translate(e, where) from None
    endpoint, packet = None, 64
    for ep in intf:
        if ep.bEndpointAddress & 0x80 and ep.bmAttributes & 3 == 3:
            endpoint, packet = ep.bEndpointAddress, ep.wMaxPacketSize or 64
            break
    return Device(dev, ident, descriptor, number, endpoint, packet, whole_packets)
