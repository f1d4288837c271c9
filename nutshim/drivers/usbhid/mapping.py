# -*- test-case-name: nutshim.test.test_usbhid_mapping -*-
"""
From HID values to NUT variables, status flags and commands.

A subdriver is a table of L{Info} entries, each tying one HID path to one
NUT variable (with a printf format or a lookup), to a status bit
(C{BOOL} entries) or to an instant command (with the value to write).
The walk over the table follows NUT's C{usbhid-ups} (2.8.0) rules, so the
same device shows the same variables:

 - at the first walk, the first entry of a variable whose path exists and
   whose value converts wins; later entries of the same variable are
   dropped (status and command entries all stay);
 - status words collect into bits that persist across polls (a report
   need not carry every flag); L{status_words} turns the bits into
   C{ups.status} as NUT's C{ups_status_set} does;
 - C{ups.delay.start}/C{ups.delay.shutdown} are server-side variables
   (C{ABSENT}): shown when the device has the path, never read from it.

This module holds the machinery and the shared lookups; the vendor
tables are in L{nutshim.drivers.usbhid.subdrivers}.
"""

from __future__ import annotations

import enum
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Tuple

import attrs

__all__ = ["HU", "Status", "Context", "Lookup", "Info", "V", "B", "C", "A", "table",
           "status_words", "alarms", "format_value", "BEEPER", "TEST_RESULT", "YES_NO",
           "date_conversion", "kelvin_celsius", "stringid", "DEFAULT_OFFDELAY",
           "DEFAULT_ONDELAY"]

DEFAULT_ONDELAY = "30"
DEFAULT_OFFDELAY = "20"


class HU(enum.IntFlag):
    """
    How an entry is polled (NUT's C{HU_FLAG_*} and C{HU_TYPE_CMD}).
    """

    NONE = 0
    STATIC = 1        # read once
    SEMI_STATIC = 2   # read once and after a SET or command
    QUICK = 4         # read at every pollinterval, not only every pollfreq
    ABSENT = 8        # a server-side variable: the path only has to exist
    CMD = 16          # an instant command
    ENUM = 32         # publish the lookup's words as enums


class Status(enum.IntFlag):
    """
    The raw status bits the device reports (NUT's C{STATUS(...)}).
    """

    NONE = 0
    ONLINE = enum.auto()
    DISCHRG = enum.auto()
    CHRG = enum.auto()
    LOWBATT = enum.auto()
    OVERLOAD = enum.auto()
    REPLACEBATT = enum.auto()
    SHUTDOWNIMM = enum.auto()
    TRIM = enum.auto()
    BOOST = enum.auto()
    BYPASSAUTO = enum.auto()
    BYPASSMAN = enum.auto()
    OFF = enum.auto()
    CAL = enum.auto()
    OVERHEAT = enum.auto()
    COMMFAULT = enum.auto()
    DEPLETED = enum.auto()
    TIMELIMITEXP = enum.auto()
    FULLYCHARGED = enum.auto()
    AWAITINGPOWER = enum.auto()
    FANFAIL = enum.auto()
    NOBATTERY = enum.auto()
    BATTVOLTLO = enum.auto()
    BATTVOLTHI = enum.auto()
    CHARGERFAIL = enum.auto()
    VRANGE = enum.auto()
    FRANGE = enum.auto()


#: The status words of the lookups, as NUT spells them.
STATUS_WORDS: Mapping[str, Status] = {
    "online": Status.ONLINE, "dischrg": Status.DISCHRG, "chrg": Status.CHRG,
    "lowbatt": Status.LOWBATT, "overload": Status.OVERLOAD, "replacebatt": Status.REPLACEBATT,
    "shutdownimm": Status.SHUTDOWNIMM, "trim": Status.TRIM, "boost": Status.BOOST,
    "bypassauto": Status.BYPASSAUTO, "bypassman": Status.BYPASSMAN, "off": Status.OFF,
    "cal": Status.CAL, "overheat": Status.OVERHEAT, "commfault": Status.COMMFAULT,
    "depleted": Status.DEPLETED, "timelimitexp": Status.TIMELIMITEXP,
    "fullycharged": Status.FULLYCHARGED, "awaitingpower": Status.AWAITINGPOWER,
    "fanfail": Status.FANFAIL, "nobattery": Status.NOBATTERY, "battvoltlo": Status.BATTVOLTLO,
    "battvolthi": Status.BATTVOLTHI, "chargerfail": Status.CHARGERFAIL,
    "vrange": Status.VRANGE, "frange": Status.FRANGE,
}


def apply_word(bits: Status, word: str) -> Status:
    """
    One status word (C{"online"}, C{"!online"}) applied to the bits.
    """
    flag = STATUS_WORDS.get(word.lstrip("!").lower())
    if flag is None:
        return bits
    return bits & ~flag if word.startswith("!") else bits | flag


def status_words(bits: Status) -> List[str]:
    """
    C{ups.status} from the bits, in NUT 2.8.0's order (C{ups_status_set}).
    """
    out: List[str] = []
    if not bits & Status.ONLINE:
        out.append("OB")
    else:
        out.append("OL")
    if bits & Status.DISCHRG and not bits & Status.DEPLETED:
        out.append("DISCHRG")
    if bits & Status.CHRG and not bits & Status.FULLYCHARGED:
        out.append("CHRG")
    if bits & (Status.LOWBATT | Status.TIMELIMITEXP | Status.SHUTDOWNIMM):
        out.append("LB")
    for flag, word in ((Status.OVERLOAD, "OVER"), (Status.REPLACEBATT, "RB"),
                       (Status.TRIM, "TRIM"), (Status.BOOST, "BOOST")):
        if bits & flag:
            out.append(word)
    if bits & (Status.BYPASSAUTO | Status.BYPASSMAN):
        out.append("BYPASS")
    if bits & Status.OFF:
        out.append("OFF")
    if bits & Status.CAL:
        out.append("CAL")
    return out


_ALARMS = ((Status.REPLACEBATT, "Replace battery!"), (Status.SHUTDOWNIMM, "Shutdown imminent!"),
           (Status.FANFAIL, "Fan failure!"), (Status.NOBATTERY, "No battery installed!"),
           (Status.BATTVOLTLO, "Battery voltage too low!"),
           (Status.BATTVOLTHI, "Battery voltage too high!"),
           (Status.CHARGERFAIL, "Battery charger fail!"),
           (Status.OVERHEAT, "Temperature too high!"), (Status.COMMFAULT, "Internal UPS fault!"),
           (Status.AWAITINGPOWER, "Awaiting power!"),
           (Status.BYPASSAUTO, "Automatic bypass mode!"), (Status.BYPASSMAN, "Manual bypass mode!"))


def alarms(bits: Status) -> List[str]:
    """
    C{ups.alarm} texts, as NUT's C{ups_alarm_set}.
    """
    return [text for flag, text in _ALARMS if bits & flag]


class Context(Protocol):
    """
    What a conversion may ask of the driver.
    """

    def string(self, index: int) -> Optional[str]:
        """
        A USB string descriptor (C{stringid_conversion}).
        """

    def get(self, var: str) -> Optional[str]:
        """
        A variable already published (C{battery.voltage.nominal}...).
        """

    def hid(self, name: str) -> Optional[float]:
        """
        A remembered HID value (C{CapacityMode}, C{FullChargeCapacity}).
        """


@attrs.frozen
class Lookup:
    """
    A value ↔ text conversion: a table of C{(value, text)} pairs, or
    functions (NUT's C{info_lkp_t} with C{fun}/C{nuf}).
    """

    pairs: Tuple[Tuple[int, str], ...] = ()
    fun: Optional[Callable[[float, Context], Optional[str]]] = None
    nuf: Optional[Callable[[str], Optional[float]]] = None

    def text(self, value: float, ctx: Context) -> Optional[str]:
        if self.fun is not None:
            return self.fun(value, ctx)
        for hid, text in self.pairs:
            if hid == int(value):
                return text
        return None

    def value(self, text: str) -> Optional[float]:
        if self.nuf is not None:
            return self.nuf(text)
        for hid, word in self.pairs:
            if word == text:
                return float(hid)
        return None

    def words(self) -> Tuple[str, ...]:
        return tuple(text for _, text in self.pairs)


def table(*pairs: Tuple[int, str]) -> Lookup:
    return Lookup(tuple(pairs))


BEEPER = table((1, "disabled"), (2, "enabled"), (3, "muted"))
TEST_RESULT = table((1, "Done and passed"), (2, "Done and warning"), (3, "Done and error"),
                    (4, "Aborted"), (5, "In progress"), (6, "No test initiated"),
                    (7, "Test scheduled"))
YES_NO = table((0, "no"), (1, "yes"))


def _date_text(value: float, ctx: Context) -> Optional[str]:
    v = int(value)
    if v == 0:
        return "not set"
    return f"{1980 + (v >> 9):04d}/{(v >> 5) & 0x0F:02d}/{v & 0x1F:02d}"


def _date_value(text: str) -> Optional[float]:
    try:
        year, month, day = (int(x) for x in text.split("/"))
    except ValueError:
        return None
    if year - 1980 > 127 or month > 12 or day > 31:
        return 0.0
    return float(((year - 1980) << 9) + (month << 5) + day)


date_conversion = Lookup(fun=_date_text, nuf=_date_value)


def _kelvin(value: float, ctx: Context) -> Optional[str]:
    # Some devices report Celsius where Kelvin is due (NUT's check).
    return "%.1f" % (value - 273.15 if 273 <= value <= 373 else value)


kelvin_celsius = Lookup(fun=_kelvin)


def _stringid(value: float, ctx: Context) -> Optional[str]:
    return ctx.string(int(value))


stringid = Lookup(fun=_stringid)


def _capacity_percent(value: float, ctx: Context) -> Optional[str]:
    # CapacityMode 0 (mAh) or 1 (mWh): a share of FullChargeCapacity;
    # 2 (percent) or unknown: the value itself.
    mode, full = ctx.hid("CapacityMode"), ctx.hid("FullChargeCapacity")
    if mode in (0, 1) and full:
        return "%.0f" % min(100.0, 100.0 * value / full)
    return "%.0f" % value


capacity_percent = Lookup(fun=_capacity_percent)


def _bool(on: str, off: str) -> Lookup:
    return table((1, on), (0, off))


def flag(word: str, inverted: bool = False) -> Lookup:
    """
    The lookup of a status bit: 1 sets C{word}, 0 clears it (or the
    reverse, for NUT's C{off_info} and C{nobattery_info}).
    """
    if inverted:
        return table((0, word), (1, "!" + word))
    return _bool(word, "!" + word)


@attrs.frozen
class Info:
    """
    One entry of a subdriver table.

    @ivar var: a NUT variable, C{BOOL} for status bits, or a command.
    @ivar fmt: printf format of the value; for commands and C{ABSENT}
        variables, the default value.
    @ivar rw: for writable variables, the string length (NUT's aux).
    """

    var: str
    path: str
    fmt: Optional[str] = "%.0f"
    lookup: Optional[Lookup] = None
    flags: HU = HU.NONE
    rw: int = 0

    @property
    def is_status(self) -> bool:
        return self.var == "BOOL"

    @property
    def is_command(self) -> bool:
        return bool(self.flags & HU.CMD)


def V(var: str, path: str, fmt: str = "%.0f", lookup: Optional[Lookup] = None,
      flags: HU = HU.NONE, rw: int = 0) -> Info:
    """
    A variable read from the device.
    """
    return Info(var, path, fmt, lookup, flags, rw)


def B(path: str, lookup: Lookup, quick: bool = False) -> Info:
    """
    A status bit.
    """
    return Info("BOOL", path, None, lookup, HU.QUICK if quick else HU.NONE)


def C(cmd: str, path: str, value: str) -> Info:
    """
    An instant command writing C{value} to C{path}.
    """
    return Info(cmd, path, value, None, HU.CMD)


def A(var: str, path: str, default: str) -> Info:
    """
    A server-side writable variable, shown when C{path} exists.
    """
    return Info(var, path, default, None, HU.ABSENT, 10)


def format_value(info: Info, value: float, ctx: Context) -> Optional[str]:
    """
    The text of a variable, as NUT's C{ups_infoval_set}: the lookup's
    word, or the value through the entry's printf format.
    """
    if info.lookup is not None:
        return info.lookup.text(value, ctx)
    assert info.fmt is not None
    return info.fmt % value


def first_per_variable(entries: Iterable[Info], available: Callable[[Info], bool]) -> Dict[str, Info]:
    """
    The entry NUT would use for each variable: the first available one.
    """
    out: Dict[str, Info] = {}
    for info in entries:
        if info.is_status or info.var in out:
            continue
        if available(info):
            out[info.var] = info
    return out
