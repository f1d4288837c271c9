# -*- test-case-name: nutshim.test.test_usbhid_mapping -*-
"""
The driver's core, without I/O: a device's descriptor and subdriver
table, the last reports read, the status bits, and what to publish.

L{Engine} is given a L{ReportSource} (a real device in a thread, a replay,
or a dict in a test) and walks the table as NUT's C{usbhid-ups} does:
L{Engine.walk} reads each Feature report once per walk, converts every
bound entry and returns the L{Snapshot} the daemon publishes;
L{Engine.interrupt} folds an interrupt IN report in between polls;
L{Engine.payload} builds the SET_REPORT of a command or a writable
variable.  Entries bind to the Feature field of their path, or, where a
device has only an Input field for it, to that (read through GET_REPORT
Input and the interrupt endpoint; NUT would skip such an entry).
"""

from __future__ import annotations

import enum
from typing import Dict, FrozenSet, List, Mapping, Optional, Protocol, Tuple

import attrs

from nutshim.drivers.usbhid import values
from nutshim.drivers.usbhid.descriptor import Descriptor, Field, ReportKind
from nutshim.drivers.usbhid.mapping import (HU, Info, Status, alarms, apply_word, format_value,
                                            status_words)
from nutshim.drivers.usbhid.subdrivers import Identity, Subdriver
from nutshim.drivers.usbhid.usages import PathError, parse_path

__all__ = ["Mode", "ReportSource", "TransportError", "DeviceGone", "ReportFailed", "Snapshot",
           "Engine", "Options"]


class Mode(enum.Enum):
    INIT = "init"
    FULL = "full"
    QUICK = "quick"


class TransportError(Exception):
    """
    A USB transfer failed.
    """


class DeviceGone(TransportError):
    """
    The device is unplugged, reset or taken: reconnect.
    """


class ReportFailed(TransportError):
    """
    One request failed (stall, timeout): skip it, try again next poll.
    """


class ReportSource(Protocol):
    def get_report(self, kind: ReportKind, report_id: int, length: int) -> bytes: ...

    def string(self, index: int) -> Optional[str]: ...


@attrs.frozen
class Options:
    """
    The ups.conf options the engine honours.
    """

    ignorelb: bool = False
    lowbatt: Optional[str] = None
    ondelay: Optional[str] = None
    offdelay: Optional[str] = None


@attrs.frozen
class Snapshot:
    """
    What the daemon should show: every variable with its value, the
    writable ones with their string length, and the commands.
    """

    variables: Tuple[Tuple[str, str], ...]
    writable: Tuple[Tuple[str, int], ...]
    commands: FrozenSet[str]


@attrs.frozen
class Binding:
    info: Info
    field: Field


class _Ctx:
    def __init__(self, engine: "Engine", source: ReportSource) -> None:
        self._engine, self._source = engine, source

    def string(self, index: int) -> Optional[str]:
        if index <= 0:
            return None
        cache = self._engine.strings
        if index not in cache:
            cache[index] = self._source.string(index)
        return cache[index]

    def get(self, var: str) -> Optional[str]:
        return self._engine.values.get(var)

    def hid(self, name: str) -> Optional[float]:
        return self._engine.hidden.get(name)


class Engine:
    """
    One device's mapping state (see the module docstring).
    """

    def __init__(self, ident: Identity, desc: Descriptor, sub: Subdriver,
                 options: Options = Options()) -> None:
        self.ident, self.desc, self.sub, self.options = ident, desc, sub, options
        self.table: Tuple[Info, ...] = sub.table(ident)
        self.bindings: List[Binding] = []
        self.by_var: Dict[str, Binding] = {}
        self.values: Dict[str, str] = {}
        self.writable: Dict[str, int] = {}
        self.commands: set[str] = set()
        self.bits = Status.NONE
        self.strings: Dict[int, Optional[str]] = {}
        self.buffers: Dict[Tuple[int, ReportKind], bytes] = {}
        self.initialised = False
        self.changed = True
        self._asked = self._answered = 0
        self.hidden: Dict[str, float] = {}
        fields: Dict[Tuple[Tuple[int, ...], ReportKind], Field] = {}
        for f in desc.fields:
            fields.setdefault((f.path, f.kind), f)
        self._fields = fields

    # Binding entries to fields.

    def field_of(self, path: str) -> Optional[Field]:
        """
        The field an entry's path names: the Feature one, else the Input one.
        """
        try:
            numeric = parse_path(path, self.sub.usages)
        except PathError:
            return None
        return (self._fields.get((numeric, ReportKind.FEATURE))
                or self._fields.get((numeric, ReportKind.INPUT)))

    # Reading.

    def _report(self, source: ReportSource, f: Field, fetched: set[Tuple[int, ReportKind]]) -> bytes:
        key = (f.report_id, f.kind)
        if key not in fetched:
            length = self.desc.report_length(f.report_id, f.kind)
            self._asked += 1
            try:
                data = source.get_report(f.kind, f.report_id, length)
                self._answered += 1
            except ReportFailed:
                if f.kind is ReportKind.INPUT and key in self.buffers:
                    return self.buffers[key]  # the last interrupt report
                raise
            self.buffers[key] = data
            fetched.add(key)
        return self.buffers[key]

    def _value(self, source: ReportSource, f: Field, fetched: set[Tuple[int, ReportKind]]) -> Optional[float]:
        try:
            data = self._report(source, f, fetched)
            return values.extract(f, data, self.desc.numbered)
        except (ReportFailed, values.ValueError_):
            return None

    def _set(self, info: Info, value: float, ctx: _Ctx) -> bool:
        text = format_value(info, value, ctx)
        if text is None:
            return False
        if info.is_status:
            self.bits = apply_word(self.bits, text)
            return False
        self.values[info.var] = text
        return True

    def walk(self, mode: Mode, source: ReportSource) -> Snapshot:
        """
        One poll.  The first is always C{INIT}.

        @raise DeviceGone: if the device went away (reconnect).
        """
        if not self.initialised:
            mode = Mode.INIT
        ctx = _Ctx(self, source)
        fetched: set[Tuple[int, ReportKind]] = set()
        self._asked = self._answered = 0
        if mode is not Mode.QUICK:
            self._capacity_scale(source, fetched)
        if mode is Mode.INIT:
            self._init_walk(source, ctx, fetched)
        else:
            for b in self.bindings:
                info = b.info
                if info.flags & (HU.ABSENT | HU.CMD | HU.STATIC):
                    continue
                if mode is Mode.QUICK and not info.flags & HU.QUICK:
                    continue
                if mode is Mode.FULL and info.flags & HU.SEMI_STATIC and not self.changed:
                    continue
                value = self._value(source, b.field, fetched)
                if value is not None:
                    self._set(info, value, ctx)
            if mode is Mode.FULL:
                self.changed = False
        if self._asked and not self._answered:
            raise DeviceGone(f"the device answered none of {self._asked} report requests")
        return self.snapshot()

    def _init_walk(self, source: ReportSource, ctx: _Ctx, fetched: set[Tuple[int, ReportKind]]) -> None:
        for info in self.table:
            f = self.field_of(info.path)
            if f is None:
                continue
            if info.flags & HU.ABSENT:
                if info.var not in self.values:
                    self.values[info.var] = info.fmt or ""
                    self.writable[info.var] = info.rw
                    self.bindings.append(Binding(info, f))
                continue
            if not info.is_status and not info.is_command and info.var in self.values:
                continue
            value = self._value(source, f, fetched)
            if value is None:
                continue
            if info.is_command:
                self.commands.add(info.var)
                self.bindings.append(Binding(info, f))
                self.by_var.setdefault(info.var, Binding(info, f))
                continue
            self.bindings.append(Binding(info, f))
            if self._set(info, value, ctx):
                self.by_var.setdefault(info.var, Binding(info, f))
                if info.rw:
                    self.writable[info.var] = info.rw
        opts = self.options
        for var, given in (("battery.charge.low", opts.lowbatt), ("ups.delay.start", opts.ondelay),
                           ("ups.delay.shutdown", opts.offdelay)):
            if given is not None and var in self.values:
                self.values[var] = str(_atol(given))
        if "load.off.delay" in self.commands:
            self.commands.add("load.off")
        if "load.on.delay" in self.commands:
            self.commands.add("load.on")
        if {"load.off.delay", "load.on.delay"} <= self.commands:
            self.commands |= {"shutdown.return", "shutdown.stayoff"}
        if {"beeper.enable", "beeper.disable"} <= self.commands:
            self.commands.add("beeper.toggle")  # nutshim's: NUT's usbhid-ups has none
        self.initialised = True
        self.changed = False

    def _capacity_scale(self, source: ReportSource, fetched: set[Tuple[int, ReportKind]]) -> None:
        """
        Remember CapacityMode and FullChargeCapacity, for tables that turn
        mAh/mWh capacities into a percentage (C{capacity_percent}).
        """
        for name in ("CapacityMode", "FullChargeCapacity"):
            f = self.field_of(f"UPS.PowerSummary.{name}")
            value = self._value(source, f, fetched) if f is not None else None
            if value is not None:
                self.hidden[name] = value

    def interrupt(self, data: bytes) -> Snapshot:
        """
        Fold in an interrupt IN report (the device telling a change).
        """
        report_id = data[0] if self.desc.numbered and data else 0
        self.buffers[(report_id, ReportKind.INPUT)] = bytes(data)
        ctx = _Ctx(self, _NoSource())
        paths = {f.path: f for f in self.desc.fields
                 if f.kind is ReportKind.INPUT and f.report_id == report_id}
        for b in self.bindings:
            f = paths.get(b.field.path)
            if f is None or b.info.flags & (HU.ABSENT | HU.CMD):
                continue
            try:
                self._set(b.info, values.extract(f, data, self.desc.numbered), ctx)
            except values.ValueError_:
                continue
        return self.snapshot()

    def status(self) -> str:
        """
        C{ups.status}, with C{ignorelb} and alarms as NUT's status_set and
        status_commit: with C{ignorelb} the device's own LB is dropped and
        LB comes from C{battery.charge.low}/C{battery.runtime.low} only.
        """
        words = status_words(self.bits)
        if self.options.ignorelb:
            words = [w for w in words if w != "LB"]
            for var, low in (("battery.charge", "battery.charge.low"),
                             ("battery.runtime", "battery.runtime.low")):
                if var in self.values and low in self.values and \
                        _atol(self.values[var]) < _atol(self.values[low]):
                    words.append("LB")
                    break
        if alarms(self.bits):
            words.insert(0, "ALARM")
        return " ".join(words)

    def snapshot(self) -> Snapshot:
        variables = dict(self.values)
        variables["ups.status"] = self.status()
        texts = alarms(self.bits)
        if texts:
            variables["ups.alarm"] = " ".join(texts)
        return Snapshot(tuple(sorted(variables.items())), tuple(sorted(self.writable.items())),
                        frozenset(self.commands))

    # Writing.

    def payload(self, var: str, value: float) -> Tuple[Field, bytes]:
        """
        The SET_REPORT that writes C{value} (in the variable's unit) to the
        field of C{var}: the last report read, with the field changed.

        @raise KeyError: if C{var} has no field.
        """
        b = self.by_var[var]
        f = b.field
        length = self.desc.report_length(f.report_id, f.kind)
        base = self.buffers.get((f.report_id, f.kind), bytes(length))
        logical = values.from_physical(f, value)
        self.changed = True
        return f, values.insert(f, base, logical, self.desc.numbered, length)

    def binding(self, var: str) -> Optional[Binding]:
        return self.by_var.get(var)

    def server_side(self, var: str) -> bool:
        for b in self.bindings:
            if b.info.var == var and b.info.flags & HU.ABSENT:
                return True
        return False


class _NoSource:
    def get_report(self, kind: ReportKind, report_id: int, length: int) -> bytes:
        raise ReportFailed("no I/O while handling an interrupt")

    def string(self, index: int) -> Optional[str]:
        return None


def _atol(text: str) -> int:
    """
    C's C{atol}/C{strtol(..., 10)}: the leading integer, 0 if none.
    """
    text = text.strip()
    end = 0
    if text[:1] in ("-", "+"):
        end = 1
    while end < len(text) and text[end].isdigit():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0

