# -*- test-case-name: nutshim.test.test_usbhid_replay -*-
"""
A pyusb backend that plays a captured device.

L{ReplayBackend} implements pyusb's C{usb.backend.IBackend}, so the real
driver code (L{nutshim.drivers.usbhid.device}: C{usb.core.find}, the
control transfers, the interrupt endpoint) runs unchanged against the
bytes a user's device sent: the device and string descriptors, the HID
report descriptor (GET_DESCRIPTOR 0x22), GET_REPORT answers (the first
captured report of each ID; SET_REPORT changes what is answered, as a
device would) and the interrupt reports of the capture, once each.

Every SET_REPORT is recorded (L{ReplayBackend.set_reports}); tests and
the C{replay:} port use (with C{realtime}, an interrupt read with nothing
to read waits its timeout, as a device does) L{ReplayBackend.unplug}, L{ReplayBackend.replug}
and L{ReplayBackend.hang} to make the device vanish or stop answering,
the ways pyusb reports it (C{ENODEV}, C{ETIMEDOUT}).
"""

from __future__ import annotations

import errno
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import attrs
import usb.backend
import usb.core

from nutshim.drivers.usbhid.capture import Capture
from nutshim.drivers.usbhid.descriptor import ReportKind
from nutshim.drivers.usbhid.mapping import stringid
from nutshim.drivers.usbhid.subdrivers import Identity, choose

__all__ = ["ReplayBackend", "derive_strings", "INTERRUPT_ENDPOINT"]

INTERRUPT_ENDPOINT = 0x81
_GET_DESCRIPTOR, _GET_REPORT, _SET_REPORT, _SET_IDLE = 0x06, 0x01, 0x09, 0x0A


def derive_strings(capture: Capture) -> Dict[int, str]:
    """
    The string descriptors a NUT log implies: the capture's own, the
    C{iManufacturer}/C{iProduct}/C{iSerialNumber} indexes NUT decoded
    paired with the identity lines, and each C{stringid} variable's index
    paired with the value NUT published for it (C{SETINFO}).
    """
    strings = dict(capture.strings)
    last = {line.path.rsplit(".", 1)[-1]: line.value for line in capture.paths}
    for usage, text in (("iManufacturer", capture.manufacturer), ("iProduct", capture.product),
                        ("iSerialNumber", capture.serial)):
        index = last.get(usage)
        if text and index:
            strings.setdefault(int(index), text)
    ident = Identity(capture.vendor_id, capture.product_id)
    published = capture.published()
    by_path = {line.path: line.value for line in capture.paths}
    for info in choose(ident).table(ident):
        if info.lookup is stringid and info.var in published:
            index = by_path.get(info.path)
            if index:
                strings.setdefault(int(index), published[info.var])
    return strings


@attrs.define
class _Desc:
    """
    A descriptor object: pyusb reads its attributes.
    """

    fields: Dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None


class _Device:
    def __init__(self, capture: Capture, address: int) -> None:
        self.capture = capture
        self.address = address
        desc = capture.parsed()
        self.descriptor = capture.descriptor
        self.strings = derive_strings(capture)
        free = (i for i in range(1, 256) if i not in self.strings)
        self.string_index: Dict[str, int] = {}
        for what, text in (("manufacturer", capture.manufacturer), ("product", capture.product),
                           ("serial", capture.serial)):
            if text:
                index = next((i for i, s in self.strings.items() if s == text), None)
                if index is None:
                    index = next(free)
                    self.strings[index] = text
                self.string_index[what] = index
        self.reports: Dict[Tuple[ReportKind, int], bytes] = {}
        self.interrupts: List[bytes] = []
        for rep in capture.reports:
            if rep.label == "set":
                continue
            if rep.label == "int" or (rep.kind is ReportKind.INPUT and rep.label == "plain"):
                self.interrupts.append(rep.data)
            self.reports.setdefault((rep.kind, rep.report_id), rep.data)
        self.lengths = {(kind, rid): desc.report_length(rid, kind)
                        for (rid, kind), _ in desc.report_bits}
        self.detached = False


def _error(code: int, message: str) -> usb.core.USBError:
    return usb.core.USBError(message, {errno.ENODEV: -4, errno.EPIPE: -9,
                                       errno.EACCES: -3}.get(code, -99), code)


class ReplayBackend(usb.backend.IBackend):  # type: ignore[misc]
    """
    Plays one or more captured devices (see the module docstring).
    """

    def __init__(self, captures: Sequence[Capture], realtime: bool = False) -> None:
        self._lock = threading.Lock()
        self.realtime = realtime
        self.devices = [_Device(c, i + 2) for i, c in enumerate(captures)]
        self.set_reports: List[Tuple[int, int, bytes]] = []
        self.present = True
        self.hung = False
        self.calls = 0

    # Test controls.

    def unplug(self) -> None:
        with self._lock:
            self.present = False

    def replug(self) -> None:
        with self._lock:
            self.present = True
            self.hung = False

    def hang(self) -> None:
        with self._lock:
            self.hung = True

    def push_interrupt(self, data: bytes, device: int = 0) -> None:
        with self._lock:
            self.devices[device].interrupts.append(bytes(data))

    def _check(self) -> None:
        self.calls += 1
        if not self.present:
            raise _error(errno.ENODEV, "No such device (it may have been disconnected)")
        if self.hung:
            raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)

    # IBackend: enumeration and descriptors.

    def enumerate_devices(self) -> Iterator[_Device]:
        with self._lock:
            present = self.present
        return iter(self.devices if present else [])

    def get_device_descriptor(self, dev: _Device) -> _Desc:
        c = dev.capture
        return _Desc(dict(
            bLength=18, bDescriptorType=1, bcdUSB=0x0110, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=8, idVendor=c.vendor_id, idProduct=c.product_id,
            bcdDevice=c.release, iManufacturer=dev.string_index.get("manufacturer", 0),
            iProduct=dev.string_index.get("product", 0),
            iSerialNumber=dev.string_index.get("serial", 0), bNumConfigurations=1,
            address=_int(c.device, dev.address), bus=_int(c.bus, 1), port_number=1,
            port_numbers=(1,), speed=1))

    def get_configuration_descriptor(self, dev: _Device, config: int) -> _Desc:
        if config != 0:
            raise IndexError(config)
        return _Desc(dict(bLength=9, bDescriptorType=2, wTotalLength=34, bNumInterfaces=1,
                          bConfigurationValue=1, iConfiguration=0, bmAttributes=0xA0,
                          bMaxPower=50, extra_descriptors=[]))

    def get_interface_descriptor(self, dev: _Device, intf: int, alt: int, config: int) -> _Desc:
        if (intf, alt, config) != (0, 0, 0):
            raise IndexError(intf)
        n = len(dev.descriptor)
        hid = [9, 0x21, 0x11, 0x01, 0, 1, 0x22, n & 0xFF, n >> 8]
        return _Desc(dict(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                          bNumEndpoints=1, bInterfaceClass=3, bInterfaceSubClass=0,
                          bInterfaceProtocol=0, iInterface=0, extra_descriptors=hid))

    def get_endpoint_descriptor(self, dev: _Device, ep: int, intf: int, alt: int,
                                config: int) -> _Desc:
        if (ep, intf, alt, config) != (0, 0, 0, 0):
            raise IndexError(ep)
        return _Desc(dict(bLength=7, bDescriptorType=5, bEndpointAddress=INTERRUPT_ENDPOINT,
                          bmAttributes=3, wMaxPacketSize=64, bInterval=10, bRefresh=0,
                          bSynchAddress=0, extra_descriptors=[]))

    # IBackend: handles.

    def open_device(self, dev: _Device) -> _Device:
        with self._lock:
            self._check()
        return dev

    def close_device(self, dev_handle: _Device) -> None:
        pass

    def set_configuration(self, dev_handle: _Device, config_value: int) -> None:
        pass

    def get_configuration(self, dev_handle: _Device) -> int:
        return 1

    def set_interface_altsetting(self, dev_handle: _Device, intf: int, altsetting: int) -> None:
        pass

    def claim_interface(self, dev_handle: _Device, intf: int) -> None:
        with self._lock:
            self._check()

    def release_interface(self, dev_handle: _Device, intf: int) -> None:
        pass

    def is_kernel_driver_active(self, dev_handle: _Device, intf: int) -> bool:
        return not dev_handle.detached

    def detach_kernel_driver(self, dev_handle: _Device, intf: int) -> None:
        dev_handle.detached = True

    def attach_kernel_driver(self, dev_handle: _Device, intf: int) -> None:
        dev_handle.detached = False

    def clear_halt(self, dev_handle: _Device, ep: int) -> None:
        pass

    def reset_device(self, dev_handle: _Device) -> None:
        pass

    # IBackend: transfers.

    def intr_read(self, dev_handle: _Device, ep: int, intf: int, buff: Any, timeout: int) -> int:
        with self._lock:
            self._check()
            data = dev_handle.interrupts.pop(0) if dev_handle.interrupts else None
        if data is None:
            if self.realtime:
                # A device blocks until it has something to say.
                time.sleep(min(timeout or 1000, 1000) / 1000.0)
            raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        n = min(len(data), len(buff))
        memoryview(buff).cast("B")[:n] = data[:n]
        return n

    def ctrl_transfer(self, dev_handle: _Device, bmRequestType: int, bRequest: int, wValue: int,
                      wIndex: int, data: Any, timeout: int) -> int:
        with self._lock:
            self._check()
            answer = self._control(dev_handle, bmRequestType, bRequest, wValue, data)
        if answer is None:
            return len(data)
        n = min(len(answer), len(data))
        memoryview(data).cast("B")[:n] = answer[:n]
        return n

    def _control(self, dev: _Device, request_type: int, request: int, value: int,
                 data: Any) -> Optional[bytes]:
        if request_type == 0x80 and request == _GET_DESCRIPTOR and value >> 8 == 3:
            index = value & 0xFF
            if index == 0:
                return bytes((4, 3, 0x09, 0x04))
            text = dev.strings.get(index)
            if text is None:
                raise _error(errno.EPIPE, "Pipe error")
            raw = text.encode("utf-16-le")[:252]
            return bytes((len(raw) + 2, 3)) + raw
        if request_type == 0x81 and request == _GET_DESCRIPTOR and value >> 8 == 0x22:
            return dev.descriptor
        if request_type == 0xA1 and request == _GET_REPORT:
            kind, rid = ReportKind(value >> 8), value & 0xFF
            answer = dev.reports.get((kind, rid))
            if answer is None and kind is ReportKind.INPUT:
                feature = dev.reports.get((ReportKind.FEATURE, rid))
                if feature is not None and len(feature) == dev.lengths.get((kind, rid)):
                    answer = feature
            if answer is None:
                raise _error(errno.EPIPE, "Pipe error")
            return answer
        if request_type == 0x21 and request == _SET_REPORT:
            payload = bytes(data)
            self.set_reports.append((value >> 8, value & 0xFF, payload))
            dev.reports[(ReportKind(value >> 8), value & 0xFF)] = payload
            return None
        if request_type == 0x21 and request == _SET_IDLE:
            return None
        raise _error(errno.EPIPE, "Pipe error")


def _int(text: str, default: int) -> int:
    try:
        return int(text, 10)
    except ValueError:
        return default
