# -*- test-case-name: nutshim.test.test_usbhid_descriptor -*-
"""
HID report descriptors: bytes to items, items to fields, and back.

A report descriptor is a byte code (HID 1.11 section 6.2.2) whose main
items (Input, Output, Feature) each lay out C{Report Count} fields of
C{Report Size} bits in one report, described by the global state (usage
page, logical and physical ranges, unit, exponent, report ID, pushed and
popped as a whole) and the local state (the usages of the fields, reset
after every main item).  L{parse} runs that byte code and gives every
field its usage path (the usages of the enclosing collections, then its
own), report ID, kind, bit offset and size, which is all a driver needs
to read a value from a report or to build a SET_REPORT payload.

Where NUT's parser (C{drivers/hidparser.c}) makes a choice the spec leaves
open, this parser makes the same one, so that paths and offsets are those
NUT users see in C{usbhid-ups -DDDDD} logs:

 - a usage's page is the one in force when the usage item is read;
 - a collection is named after its first usage; collections of a
   vendor-defined type (>= 0x80) add an index node C{0x00ffNNNN};
 - fields beyond the declared usages have usage 0 (padding);
 - a 1-byte unit exponent 0x8..0xF is the 4-bit two's complement.

Unlike NUT's parser this one also honours Push/Pop and Usage
Minimum/Maximum (NUT ignores both), and records array fields as such.
No I/O, no Twisted: a function from bytes to immutable data.
"""

from __future__ import annotations

import enum
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import attrs

__all__ = ["DescriptorError", "ItemType", "ReportKind", "RawItem", "Field", "Descriptor",
           "tokenize", "encode", "parse", "MAIN_INPUT", "MAIN_OUTPUT", "MAIN_FEATURE",
           "MAIN_COLLECTION", "MAIN_END_COLLECTION"]

#: Main item tags.
MAIN_INPUT, MAIN_OUTPUT, MAIN_FEATURE, MAIN_COLLECTION, MAIN_END_COLLECTION = 0x8, 0x9, 0xB, 0xA, 0xC
#: Global item tags.
(G_USAGE_PAGE, G_LOGMIN, G_LOGMAX, G_PHYMIN, G_PHYMAX, G_UNIT_EXP, G_UNIT, G_REPORT_SIZE,
 G_REPORT_ID, G_REPORT_COUNT, G_PUSH, G_POP) = range(12)
#: Local item tags.
L_USAGE, L_USAGE_MIN, L_USAGE_MAX = 0, 1, 2
#: Nesting deeper than this is refused (NUT's PATH_SIZE is 10).
MAX_DEPTH = 32
#: Fields beyond this are refused: a descriptor is at most a few kB.
MAX_FIELDS = 1 << 16


class DescriptorError(ValueError):
    """
    The bytes are not a report descriptor this parser can use.
    """


class ItemType(enum.IntEnum):
    MAIN = 0
    GLOBAL = 1
    LOCAL = 2
    RESERVED = 3


class ReportKind(enum.IntEnum):
    """
    The three kinds of report, valued as the report type of GET_REPORT and
    SET_REPORT (the high byte of C{wValue}).
    """

    INPUT = 1
    OUTPUT = 2
    FEATURE = 3

    @property
    def label(self) -> str:
        """
        The word NUT prints in C{Type:} (C{Input}, C{Output}, C{Feature}).
        """
        return self.name.capitalize()


_KIND_OF_TAG = {MAIN_INPUT: ReportKind.INPUT, MAIN_OUTPUT: ReportKind.OUTPUT,
                MAIN_FEATURE: ReportKind.FEATURE}
_TAG_OF_KIND = {kind: tag for tag, kind in _KIND_OF_TAG.items()}


@attrs.frozen
class RawItem:
    """
    One item of the byte code: C{type}/C{tag}/C{data} for a short item, or
    C{long=True} with the long item's tag and data.
    """

    type: ItemType
    tag: int
    data: bytes = b""
    long: bool = False

    @property
    def unsigned(self) -> int:
        return int.from_bytes(self.data, "little")

    @property
    def signed(self) -> int:
        return int.from_bytes(self.data, "little", signed=True) if self.data else 0


def tokenize(desc: bytes) -> Iterator[RawItem]:
    """
    Split a descriptor into its items.

    @raise DescriptorError: if the last item is cut.
    """
    i, n = 0, len(desc)
    while i < n:
        prefix = desc[i]
        if prefix == 0xFE:
            if i + 3 > n:
                raise DescriptorError(f"long item cut at byte {i}")
            size, tag = desc[i + 1], desc[i + 2]
            if i + 3 + size > n:
                raise DescriptorError(f"long item cut at byte {i}")
            yield RawItem(ItemType.RESERVED, tag, bytes(desc[i + 3:i + 3 + size]), True)
            i += 3 + size
            continue
        size = (0, 1, 2, 4)[prefix & 3]
        if i + 1 + size > n:
            raise DescriptorError(f"item 0x{prefix:02x} at byte {i} needs {size} data bytes,"
                                  f" {n - i - 1} left")
        yield RawItem(ItemType((prefix >> 2) & 3), prefix >> 4, bytes(desc[i + 1:i + 1 + size]))
        i += 1 + size


def encode(items: Iterable[RawItem]) -> bytes:
    """
    The byte code of C{items} (the inverse of L{tokenize}).

    @raise DescriptorError: for data no item can carry.
    """
    out = bytearray()
    for item in items:
        if item.long:
            if len(item.data) > 255:
                raise DescriptorError("long item data over 255 bytes")
            out += bytes((0xFE, len(item.data), item.tag)) + item.data
            continue
        code = {0: 0, 1: 1, 2: 2, 4: 3}.get(len(item.data))
        if code is None or not 0 <= item.tag <= 15:
            raise DescriptorError(f"a short item cannot carry {len(item.data)} bytes")
        out.append((item.tag << 4) | (int(item.type) << 2) | code)
        out += item.data
    return bytes(out)


@attrs.frozen
class Field:
    """
    One field of one report: what a usage path reads or writes.

    @ivar path: the usages of the enclosing collections (with NUT's index
        nodes C{0x00ffNNNN}), then the field's own usage (0 for padding).
    @ivar offset: in bits, from the first bit after the report ID byte.
    @ivar flags: the main item's data (bit 0 constant, bit 1 variable...).
    @ivar usages: for array fields, every usage the field may report.
    """

    report_id: int
    kind: ReportKind
    offset: int
    size: int
    path: Tuple[int, ...]
    logmin: int
    logmax: int
    phymin: Optional[int] = None
    phymax: Optional[int] = None
    unit: int = 0
    unit_exp: int = 0
    flags: int = 0x02
    usages: Tuple[int, ...] = ()
    logmax_bytes: int = 4

    @property
    def usage(self) -> int:
        return self.path[-1] if self.path else 0

    @property
    def constant(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def array(self) -> bool:
        return not self.flags & 0x02


@attrs.frozen
class Descriptor:
    """
    A parsed report descriptor.

    @ivar report_bits: the bits each C{(report_id, kind)} report carries.
    @ivar numbered: whether the device uses report IDs (then every report
        starts with its ID byte).
    """

    raw: bytes
    fields: Tuple[Field, ...]
    report_bits: Tuple[Tuple[Tuple[int, ReportKind], int], ...]
    numbered: bool

    def report_length(self, report_id: int, kind: ReportKind) -> int:
        """
        The length in bytes of a report, with its ID byte; 0 if the
        descriptor does not define that report.
        """
        bits = dict(self.report_bits).get((report_id, kind))
        if bits is None:
            return 0
        return (bits + 7) // 8 + (1 if self.numbered else 0)

    def reports(self, kind: ReportKind) -> Tuple[int, ...]:
        """
        The IDs of the reports of one kind, in order.
        """
        return tuple(sorted(rid for (rid, k), _ in self.report_bits if k is kind))

    def replace_field(self, old: Field, new: Field) -> "Descriptor":
        """
        A copy with one field changed (for the quirk fix-ups).
        """
        return attrs.evolve(self, fields=tuple(new if f is old else f for f in self.fields))


@attrs.define
class _Globals:
    page: int = 0
    logmin: int = 0
    logmax: int = 0
    phymin: Optional[int] = None
    phymax: Optional[int] = None
    unit_exp: int = 0
    unit: int = 0
    size: int = 0
    report_id: int = 0
    count: int = 0
    logmax_bytes: int = 4


def _unit_exp(item: RawItem) -> int:
    value = item.unsigned
    if value <= 0xF:
        return value - 16 if value > 7 else value
    return item.signed


def _apply_global(g: _Globals, stack: List[_Globals], item: RawItem) -> _Globals:
    tag = item.tag
    if tag == G_USAGE_PAGE:
        g.page = item.unsigned & 0xFFFF
    elif tag == G_LOGMIN:
        g.logmin = item.signed
    elif tag == G_LOGMAX:
        g.logmax = item.signed
        g.logmax_bytes = len(item.data)
    elif tag == G_PHYMIN:
        g.phymin = item.signed
    elif tag == G_PHYMAX:
        g.phymax = item.signed
    elif tag == G_UNIT_EXP:
        g.unit_exp = _unit_exp(item)
    elif tag == G_UNIT:
        g.unit = item.unsigned
    elif tag == G_REPORT_SIZE:
        g.size = item.unsigned
        if g.size > 256:
            raise DescriptorError(f"report size {g.size} bits")
    elif tag == G_REPORT_ID:
        g.report_id = item.unsigned
        if not 0 < g.report_id < 256:
            raise DescriptorError(f"report ID {g.report_id}")
    elif tag == G_REPORT_COUNT:
        g.count = item.unsigned
    elif tag == G_PUSH:
        if len(stack) >= MAX_DEPTH:
            raise DescriptorError("too many Push items")
        stack.append(attrs.evolve(g))
    elif tag == G_POP:
        if not stack:
            raise DescriptorError("Pop without Push")
        return stack.pop()
    return g


def _full_usage(item: RawItem, page: int) -> int:
    if len(item.data) == 4:
        return item.unsigned
    return (page << 16) | (item.unsigned & 0xFFFF)


def _items(desc: bytes, partial: bool) -> Iterator[RawItem]:
    try:
        yield from tokenize(desc)
    except DescriptorError:
        if not partial:
            raise


def parse(desc: bytes, partial: bool = False) -> Descriptor:
    """
    Run a report descriptor and list its fields.

    @param partial: read the beginning of a descriptor (as bug reports
        often quote them): a cut last item is dropped and open
        collections are closed.
    @raise DescriptorError: for cut items, unbalanced collections, a Pop
        without Push, or absurd sizes.
    """
    g = _Globals()
    stack: List[_Globals] = []
    usages: List[int] = []
    usage_min: Optional[int] = None
    collections: List[Tuple[int, ...]] = []
    fields: List[Field] = []
    bitpos: Dict[Tuple[int, ReportKind], int] = {}
    numbered = False
    for item in _items(desc, partial):
        if item.long:
            continue
        if item.type is ItemType.GLOBAL:
            g = _apply_global(g, stack, item)
            numbered = numbered or g.report_id != 0
        elif item.type is ItemType.LOCAL:
            if item.tag == L_USAGE:
                usages.append(_full_usage(item, g.page))
            elif item.tag == L_USAGE_MIN:
                usage_min = _full_usage(item, g.page)
            elif item.tag == L_USAGE_MAX and usage_min is not None:
                usage_max = _full_usage(item, g.page)
                if usage_max - usage_min > MAX_FIELDS:
                    raise DescriptorError("usage range too large")
                usages.extend(range(usage_min, usage_max + 1))
                usage_min = None
        elif item.type is ItemType.MAIN:
            if item.tag == MAIN_COLLECTION:
                if len(collections) >= MAX_DEPTH:
                    raise DescriptorError("collections nested too deep")
                node: Tuple[int, ...] = (usages[0] if usages else 0,)
                if item.unsigned >= 0x80:
                    node += (0x00FF0000 | (item.unsigned & 0x7F),)
                collections.append(node)
            elif item.tag == MAIN_END_COLLECTION:
                if not collections:
                    raise DescriptorError("End Collection without Collection")
                collections.pop()
            elif item.tag in _KIND_OF_TAG:
                kind = _KIND_OF_TAG[item.tag]
                key = (g.report_id, kind)
                start = bitpos.get(key, 0)
                if len(fields) + g.count > MAX_FIELDS:
                    raise DescriptorError("too many fields")
                prefix = tuple(n for node in collections for n in node)
                array = not item.unsigned & 0x02
                for k in range(g.count):
                    usage = usages[k] if k < len(usages) else 0
                    fields.append(Field(
                        g.report_id, kind, start + k * g.size, g.size, prefix + (usage,),
                        g.logmin, g.logmax, g.phymin, g.phymax, g.unit, g.unit_exp,
                        item.unsigned, tuple(usages) if array else (), g.logmax_bytes))
                bitpos[key] = start + g.count * g.size
            usages = []
            usage_min = None
    if collections and not partial:
        raise DescriptorError(f"{len(collections)} collection(s) not closed")
    return Descriptor(bytes(desc), tuple(fields), tuple(sorted(bitpos.items())), numbered)


def main_item(kind: ReportKind, flags: int = 0x02) -> RawItem:
    """
    The Input/Output/Feature item of C{kind} (a helper for building
    descriptors in tests and samples).
    """
    return RawItem(ItemType.MAIN, _TAG_OF_KIND[kind], _data(flags, signed=False))


def _data(value: int, signed: bool) -> bytes:
    for size in (1, 2, 4):
        try:
            return value.to_bytes(size, "little", signed=signed)
        except OverflowError:
            continue
    raise DescriptorError(f"{value} does not fit in 4 bytes")


def short(type: ItemType, tag: int, value: Optional[int] = None, signed: bool = False) -> RawItem:
    """
    A short item carrying C{value} in as few bytes as it fits in.
    """
    return RawItem(type, tag, b"" if value is None else _data(value, signed))


def describe(fields: Sequence[Tuple[int, ReportKind, int, int, int, int, int]],
             page: int = 0x84, application: int = 0x04) -> bytes:
    """
    Build a descriptor: one application collection holding, per entry
    C{(usage, kind, report_id, size, count, logmin, logmax)}, a main item
    of C{count} fields named by C{usage} (a full 32-bit usage).
    """
    items = [short(ItemType.GLOBAL, G_USAGE_PAGE, page), short(ItemType.LOCAL, L_USAGE, application),
             RawItem(ItemType.MAIN, MAIN_COLLECTION, b"\x01")]
    for usage, kind, report_id, size, count, logmin, logmax in fields:
        items += [short(ItemType.GLOBAL, G_REPORT_ID, report_id),
                  short(ItemType.GLOBAL, G_REPORT_SIZE, size),
                  short(ItemType.GLOBAL, G_REPORT_COUNT, count),
                  short(ItemType.GLOBAL, G_LOGMIN, logmin, signed=True),
                  short(ItemType.GLOBAL, G_LOGMAX, logmax, signed=True),
                  RawItem(ItemType.LOCAL, L_USAGE, usage.to_bytes(4, "little")),
                  main_item(kind)]
    items.append(RawItem(ItemType.MAIN, MAIN_END_COLLECTION))
    return encode(items)
