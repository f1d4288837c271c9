# -*- test-case-name: nutshim.test.test_usbhid_replay -*-
"""
Captures of real devices: NUT's C{usbhid-ups -DDDDD} logs and plain dumps.

A user's bug report holds everything a device says: its identity
(C{- VendorID: 051d} ... lines), its report descriptor (C{Report
Descriptor: (N bytes) => ...}, wrapped over several lines), the reports
it answered (C{Report[get]}, C{Report[buf]}, C{Report[int]} hex dumps)
and NUT's decode of each value (C{Path: ..., Value: ...} lines), often
with what NUT published (C{SETINFO var "value"}).  L{parse_log} reads
all of that, with or without the timestamps and C{[Dn]} tags of the
various NUT versions; L{parse_plain} reads the simpler form a device
dumped without NUT gives (C{usbhid-dump} output, or C{key: value} lines,
see docs/drivers.md).  L{load} picks the right one.

Where the log shows a Path value but not the report it came from,
L{Capture.complete_reports} rebuilds the report from the descriptor and
the value, so a log excerpt still replays.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

import attrs

from nutshim.drivers.usbhid import values
from nutshim.drivers.usbhid.descriptor import Descriptor, DescriptorError, ReportKind, parse
from nutshim.drivers.usbhid.usages import UsageTable, path_string

__all__ = ["CaptureError", "PathLine", "CapturedReport", "Capture", "parse_log", "parse_plain",
           "load", "MAX_CAPTURE"]

MAX_CAPTURE = 8 << 20

_PREFIX = re.compile(r"^\s*(?:\d+\.\d+\s+)?(?:\[D\d\]\s?)?")
_HEX_HEAD = re.compile(r"^(?P<label>[A-Za-z][\w \[\],]*?): \((?P<n>\d+) bytes\) =>\s?(?P<hex>.*)$")
_HEX = re.compile(r"^\s*(?:[0-9A-Fa-f]{2}\s*)+$")
_IDENT = re.compile(r"^- (?P<key>VendorID|ProductID|Manufacturer|Product|Serial Number|Bus|"
                    r"Device release number|Device): (?P<value>.*)$")
_PATH = re.compile(r"^Path: (?P<path>[^,]+), Type: (?P<type>\w+), ReportID: 0x(?P<rid>[0-9a-fA-F]+),"
                   r" Offset: (?P<off>\d+), Size: (?P<size>\d+)(?:, Value: (?P<value>\S+))?")
_SETINFO = re.compile(r'SETINFO (?P<var>[\w.-]+) "(?P<value>(?:[^"\\]|\\.)*)"')
_KINDS = {"input": ReportKind.INPUT, "output": ReportKind.OUTPUT, "feature": ReportKind.FEATURE}


class CaptureError(ValueError):
    """
    A file that is no capture (or has no descriptor).
    """


@attrs.frozen
class PathLine:
    path: str
    kind: ReportKind
    report_id: int
    offset: int
    size: int
    value: Optional[float]


@attrs.frozen
class CapturedReport:
    """
    One report the device sent: C{label} is NUT's (C{get}, C{buf}, C{int},
    C{set}) or C{plain}.
    """

    kind: ReportKind
    report_id: int
    data: bytes
    label: str = "get"


@attrs.frozen
class Capture:
    """
    Everything known about one captured device.
    """

    source: str
    vendor_id: int
    product_id: int
    descriptor: bytes
    manufacturer: Optional[str] = None
    product: Optional[str] = None
    serial: Optional[str] = None
    bus: str = "001"
    device: str = "001"
    release: int = 0x0100
    reports: Tuple[CapturedReport, ...] = ()
    paths: Tuple[PathLine, ...] = ()
    strings: Tuple[Tuple[int, str], ...] = ()
    setinfo: Tuple[Tuple[str, str], ...] = ()

    def parsed(self) -> Descriptor:
        return parse(self.descriptor)

    def published(self) -> Dict[str, str]:
        """
        The last value NUT published for each variable (its C{SETINFO}).
        """
        return dict(self.setinfo)

    def complete_reports(self, table: UsageTable) -> "Capture":
        """
        Add the reports the log decoded (C{Path:} lines) but did not dump,
        rebuilt from the descriptor (the values inverted into bits).
        """
        desc = self.parsed()
        have = {(r.kind, r.report_id) for r in self.reports}
        built: Dict[Tuple[ReportKind, int], bytes] = {}
        by_key = {(f.kind, f.report_id, f.offset, f.size): f for f in desc.fields}
        for line in self.paths:
            key = (line.kind, line.report_id)
            if key in have or line.value is None:
                continue
            f = by_key.get((line.kind, line.report_id, line.offset, line.size))
            if f is None or path_string(f.path, table) != line.path:
                continue
            length = desc.report_length(line.report_id, line.kind)
            base = built.get(key, bytes(length))
            try:
                built[key] = values.insert(f, base, values.from_physical(f, line.value),
                                           desc.numbered, length)
            except values.ValueError_:
                continue
        extra = tuple(CapturedReport(kind, rid, data, "path") for (kind, rid), data in built.items())
        return attrs.evolve(self, reports=self.reports + extra)


def _hexbytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CaptureError(f"bad hex {text[:40]!r}") from None


def _message(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1).strip()


def parse_log(text: str, source: str = "<log>") -> Capture:
    """
    Read a C{usbhid-ups -DDDDD} log.

    When a log shows several devices being matched, the identity of the
    last one NUT reported before the descriptor is kept.

    @raise CaptureError: without a complete report descriptor.
    """
    ident: Dict[str, str] = {}
    descriptor: Optional[bytes] = None
    reports: List[CapturedReport] = []
    paths: List[PathLine] = []
    setinfo: Dict[str, str] = {}
    pending: Optional[Tuple[str, int, bytearray]] = None
    last_rid: Dict[str, int] = {}

    def finish(label: str, data: bytes) -> None:
        nonlocal descriptor
        if label == "Report Descriptor":
            descriptor = data
        elif label.startswith("Report[") and data:
            tag = label[7:-1]
            kind = ReportKind.INPUT if tag == "int" else ReportKind.FEATURE
            if tag in ("get", "buf", "int", "set"):
                reports.append(CapturedReport(kind, data[0], data, tag))

    for raw in text.splitlines():
        msg = _message(raw)
        if pending is not None:
            label, n, buf = pending
            if _HEX.match(msg) and len(buf) < n:
                buf += _hexbytes(msg)
                if len(buf) >= n:
                    finish(label, bytes(buf[:n]))
                    pending = None
                continue
            if label != "Report Descriptor":
                finish(label, bytes(buf))  # a dump cut short: keep what is there
            pending = None
        m = _HEX_HEAD.match(msg)
        if m:
            n = int(m.group("n"))
            buf = bytearray(_hexbytes(m.group("hex")) if m.group("hex").strip() else b"")
            if len(buf) >= n:
                finish(m.group("label"), bytes(buf[:n]))
            else:
                pending = (m.group("label"), n, buf)
            continue
        m = _IDENT.match(msg)
        if m and descriptor is None:
            key, value = m.group("key"), m.group("value").strip()
            if key == "VendorID":
                ident = {}
            ident[key] = value
            continue
        m = _PATH.match(msg)
        if m:
            value = m.group("value")
            try:
                number: Optional[float] = float(value) if value is not None else None
            except ValueError:
                number = None
            paths.append(PathLine(m.group("path"), _KINDS.get(m.group("type").lower(),
                                                             ReportKind.FEATURE),
                                  int(m.group("rid"), 16), int(m.group("off")),
                                  int(m.group("size")), number))
            last_rid[m.group("path")] = int(m.group("rid"), 16)
            continue
        m = _SETINFO.search(msg)
        if m:
            setinfo[m.group("var")] = m.group("value").replace('\\"', '"').replace("\\\\", "\\")
    if pending is not None and pending[0] != "Report Descriptor":
        finish(pending[0], bytes(pending[2]))
    if descriptor is None:
        raise CaptureError(f"{source}: no complete 'Report Descriptor' in the log")
    return _build(source, ident, descriptor, reports, paths, {}, setinfo)


def _int16(text: Optional[str], default: int) -> int:
    if not text:
        return default
    try:
        return int(text.strip(), 16)
    except ValueError:
        return default


def _unknown(text: Optional[str]) -> Optional[str]:
    return None if text in (None, "", "unknown", "(null)") else text


def _build(source: str, ident: Mapping[str, str], descriptor: bytes,
           reports: List[CapturedReport], paths: List[PathLine], strings: Mapping[int, str],
           setinfo: Mapping[str, str]) -> Capture:
    try:
        parse(descriptor)
    except DescriptorError as e:
        raise CaptureError(f"{source}: {e}") from None
    if "VendorID" not in ident:
        raise CaptureError(f"{source}: no VendorID")
    return Capture(
        source, _int16(ident.get("VendorID"), 0), _int16(ident.get("ProductID"), 0), descriptor,
        _unknown(ident.get("Manufacturer")), _unknown(ident.get("Product")),
        _unknown(ident.get("Serial Number")), ident.get("Bus") or "001",
        _unknown(ident.get("Device")) or "001",
        _int16(ident.get("Device release number"), 0x0100), tuple(reports), tuple(paths),
        tuple(sorted(strings.items())), tuple(setinfo.items()))


_PLAIN_KEYS = {"vendorid": "VendorID", "productid": "ProductID", "manufacturer": "Manufacturer",
               "product": "Product", "serial": "Serial Number", "bus": "Bus",
               "device": "Device", "release": "Device release number"}
_PLAIN_REPORT = re.compile(r"^(?P<kind>feature|input)(?:\s+(?:0x)?(?P<rid>[0-9a-fA-F]+))?\s*:\s*"
                           r"(?P<hex>(?:[0-9A-Fa-f]{2}\s*)+)$", re.IGNORECASE)
_PLAIN_STRING = re.compile(r"^string\s+(?P<index>\d+)\s*:\s?(?P<text>.*)$", re.IGNORECASE)
_DUMP_HEAD = re.compile(r"^\d+:\d+:\d+:(?P<what>DESCRIPTOR|STREAM)\b")


def parse_plain(text: str, source: str = "<dump>") -> Capture:
    """
    Read the plain form: C{key: value} identity lines (vendorid,
    productid, manufacturer, product, serial, bus, device), C{descriptor:}
    followed by hex (on the same and following lines, or C{usbhid-dump}'s
    C{DESCRIPTOR} block), C{feature [ID]: hex} and C{input [ID]: hex}
    reports (or C{usbhid-dump}'s C{STREAM} blocks, input reports),
    C{string N: text}; C{#} starts a comment.
    """
    ident: Dict[str, str] = {}
    strings: Dict[int, str] = {}
    reports: List[CapturedReport] = []
    desc = bytearray()
    block: Optional[str] = None
    stream = bytearray()

    def flush_stream() -> None:
        if stream:
            reports.append(CapturedReport(ReportKind.INPUT, stream[0], bytes(stream), "plain"))
            stream.clear()

    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lower().startswith("string") else raw.strip()
        if not line:
            continue
        m = _DUMP_HEAD.match(line)
        if m:
            flush_stream()
            block = m.group("what").lower()
            continue
        if _HEX.match(line) and block is not None:
            if block == "descriptor":
                desc += _hexbytes(line)
            else:
                stream.extend(_hexbytes(line))
            continue
        flush_stream()
        block = None
        m = _PLAIN_STRING.match(line)
        if m:
            strings[int(m.group("index"))] = m.group("text")
            continue
        m = _PLAIN_REPORT.match(line)
        if m:
            data = _hexbytes(m.group("hex"))
            kind = ReportKind.INPUT if m.group("kind").lower() == "input" else ReportKind.FEATURE
            rid = int(m.group("rid"), 16) if m.group("rid") else (data[0] if data else 0)
            reports.append(CapturedReport(kind, rid, data, "plain"))
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise CaptureError(f"{source}: cannot read {line[:60]!r}")
        key = key.strip().lower()
        if key == "descriptor":
            desc += _hexbytes(value)
            block = "descriptor"
        elif key in _PLAIN_KEYS:
            ident[_PLAIN_KEYS[key]] = value.strip()
        else:
            raise CaptureError(f"{source}: unknown key {key!r}")
    flush_stream()
    if not desc:
        raise CaptureError(f"{source}: no descriptor")
    return _build(source, ident, bytes(desc), reports, [], strings, {})


def load(path: str) -> Capture:
    """
    Read a capture file, whichever form it has.

    @raise CaptureError: if it is none; L{OSError} if it cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read(MAX_CAPTURE + 1)
    if len(data) > MAX_CAPTURE:
        raise CaptureError(f"{path}: larger than {MAX_CAPTURE} bytes")
    text = data.decode("utf-8", errors="replace")
    if "Report Descriptor:" in text:
        return parse_log(text, path)
    return parse_plain(text, path)
