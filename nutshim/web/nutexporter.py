# -*- test-case-name: nutshim.test.test_web_exposition -*-
"""
The UPS series of C{/metrics}, named and valued as DRuggeri/nut_exporter
names and values them.

Why nut_exporter's names: its Grafana dashboard and the alerts people
already wrote (C{network_ups_tools_ups_status{flag="OB"} == 1}) should keep
working when nut-upsd becomes the exporter.  Its rules, from its collector
and its client library (go.nut), are followed to the letter:

 - every variable whose value is a number (C{-?[0-9.]+}, see
   L{nutshim.web.snapshot.number}) is a gauge
   C{network_ups_tools_<name with "." and "-" as "_">}; the HELP text is
   C{"<description> (<variable>)"} with GET DESC's description;
 - C{enabled}/C{on}/C{true}/... count as 1 and C{disabled}/C{off}/
   C{false}/... as 0 (go.nut's booleans and nut_exporter's default
   C{--nut.on_regex}/C{--nut.off_regex}); any other text is not exported;
 - C{ups.status} is C{network_ups_tools_ups_status{flag="OL"} 1}, one
   series per flag, plus 0 for each of nut_exporter's default
   C{--nut.statuses} flags that is not set (the FSD latch counts as set,
   as GET VAR shows it);
 - C{network_ups_tools_device_info} is 1, with the C{device.*} variables
   C{model mfr serial type description contact location part macaddr} as
   labels (empty when missing).

One difference by design: nut_exporter serves one UPS per scrape and the
C{ups} label comes from the scrape configuration; C{/metrics} serves every
UPS, so each series carries C{ups="<name>"} itself -- the label the
dashboard selects on.  L{UpsFormatter} without the label answers
C{/ups_metrics?ups=NAME} exactly as nut_exporter does.

Cost: a scrape must stay in the low milliseconds with a hundred UPSes, in
Python.  So L{UpsSeries} keeps every line it made, per family and UPS, and
on a scrape only looks again at a UPS whose data changed (the stamp
L{UpsEntry.replies} uses), and there only at the variables whose value
object changed; everything else is a join of strings already made.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from nutshim.state import Variable
from nutshim.upsd.registry import UpsEntry
from nutshim.web.snapshot import number, status_flags

__all__ = [
    "NAMESPACE", "DEFAULT_STATUSES", "DEVICE_LABELS", "STATUS", "DEVICE_INFO",
    "metric_name", "escape_label", "format_value", "sample_value", "labels",
    "UpsFormatter", "UpsSeries",
]

NAMESPACE = "network_ups_tools"
#: nut_exporter's default C{--nut.statuses}: exported as 0 when not set.
DEFAULT_STATUSES = ("OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF",
                    "OVER", "TRIM", "BOOST", "FSD", "SD")
#: nut_exporter's C{deviceLabels}, in its order.
DEVICE_LABELS = ("model", "mfr", "serial", "type", "description", "contact", "location", "part",
                 "macaddr")
STATUS = NAMESPACE + "_ups_status"
DEVICE_INFO = NAMESPACE + "_device_info"
_ON = re.compile(r"(enable|enabled|on|true|active|activated)\Z", re.IGNORECASE)
_OFF = re.compile(r"(disable|disabled|off|false|inactive|deactivated)\Z", re.IGNORECASE)
_BAD_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_:]")


def metric_name(variable: str) -> str:
    """
    C{battery.charge} as C{network_ups_tools_battery_charge}.  Dots and
    dashes become underscores as in nut_exporter; any other character
    Prometheus does not allow in a name does too.
    """
    return NAMESPACE + "_" + _BAD_NAME_CHAR.sub("_", variable)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(pairs: Iterable[Tuple[str, str]]) -> str:
    """
    C{{k="v",...}}, or nothing without pairs.
    """
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def sample_value(text: str) -> Optional[float]:
    """
    What nut_exporter exports for a variable's value, or L{None}.
    """
    value = number(text)
    if value is not None:
        return value
    stripped = text.strip(" ")
    if _ON.match(stripped):
        return 1
    if _OFF.match(stripped):
        return 0
    return None


_VALUES: Dict[str, Optional[str]] = {}
_VALUES_MAX = 20000


def value_text(text: str) -> Optional[str]:
    """
    L{sample_value} formatted; remembered, since most values repeat
    (C{230}, C{100}).
    """
    try:
        return _VALUES[text]
    except KeyError:
        pass
    value = sample_value(text)
    formatted = None if value is None else format_value(value)
    if len(_VALUES) >= _VALUES_MAX:
        _VALUES.clear()
    _VALUES[text] = formatted
    return formatted


class _Plan:
    """
    What one UPS's variables export, worked out once per variable list (a
    driver adding or removing a variable makes a new list): each candidate
    variable with its family and line prefix, the C{device.*} variables of
    the info metric, the status variable.
    """

    __slots__ = ("source", "numeric", "device", "device_keys", "status", "help")

    def __init__(self, source: List[Variable], base: str, wanted: Optional[Set[str]]) -> None:
        self.source = source
        self.numeric: List[Tuple[Variable, str, str]] = []
        self.status: Optional[Variable] = None
        self.help: Dict[str, str] = {}
        device_of: Dict[str, Variable] = {}
        for var in source:
            name = var.name
            lname = name.lower()
            if lname.startswith("device."):
                part = name.split(".")[1]
                if part in DEVICE_LABELS:
                    device_of[part] = var
            if wanted is not None and lname not in wanted:
                continue
            if lname == "ups.status":
                self.status = var
                continue
            family = metric_name(name)
            if family in self.help or family == STATUS or family == DEVICE_INFO:
                continue  # two spellings for one name: the first one wins
            self.help[family] = name
            self.numeric.append((var, family, f"{family}{base} "))
        self.device_keys = tuple(k for k in DEVICE_LABELS if k in device_of)
        self.device = [device_of[k] for k in self.device_keys]


class UpsFormatter:
    """
    The series of one UPS, with its lines that rarely change remembered.

    @param ups_label: add C{ups="<name>"} (C{/metrics}) or not
        (C{/ups_metrics}).
    @param variables: only these (nut_exporter's C{variables} parameter).
    @param statuses: the flags exported as 0 when not set.
    """

    def __init__(self, name: str, ups_label: bool, variables: Optional[Sequence[str]] = None,
                 statuses: Sequence[str] = DEFAULT_STATUSES) -> None:
        self.name = name
        self.base: List[Tuple[str, str]] = [("ups", name)] if ups_label else []
        self.wanted = None if not variables else {v.lower() for v in variables}
        self.statuses = tuple(statuses)
        self.plan: Optional[_Plan] = None
        self._status: Tuple[object, str] = (None, "")
        self._device: Tuple[object, str] = (None, "")

    def current_plan(self, entry: UpsEntry) -> Tuple[_Plan, bool]:
        """
        The plan for the UPS's variables now, and whether it is new.
        """
        source = entry.driver.state.variables()
        plan = self.plan
        if plan is not None and plan.source is source:
            return plan, False
        plan = self.plan = _Plan(source, labels(self.base), self.wanted)
        return plan, True

    def status_block(self, entry: UpsEntry) -> str:
        """
        The C{ups_status} lines (empty for a UPS without a status).
        """
        plan = self.plan
        wanted = self.wanted
        if (plan is None or plan.status is None) and not entry.fsd:
            return ""
        if wanted is not None and "ups.status" not in wanted:
            return ""
        flags = status_flags(entry)
        if self._status[0] != flags:
            shown: List[str] = []
            lines = []
            for flag in flags:
                if flag not in shown:
                    shown.append(flag)
                    lines.append(f"{STATUS}{labels(self.base + [('flag', flag)])} 1\n")
            for flag in self.statuses:
                if flag not in shown:
                    lines.append(f"{STATUS}{labels(self.base + [('flag', flag)])} 0\n")
            self._status = (flags, "".join(lines))
        return self._status[1]

    def device_line(self) -> str:
        plan = self.plan
        assert plan is not None
        values = tuple(v.value for v in plan.device)
        key = (plan.device_keys, values)
        if self._device[0] != key:
            found = dict(zip(plan.device_keys, values))
            pairs = [(k, found.get(k, "")) for k in DEVICE_LABELS]
            self._device = (key, f"{DEVICE_INFO}{labels(self.base + pairs)} 1\n")
        return self._device[1]

    def help_variable(self, family: str) -> str:
        plan = self.plan
        if family == STATUS:
            return plan.status.name if plan is not None and plan.status is not None else "ups.status"
        return plan.help.get(family, "") if plan is not None else ""

    def samples(self, entry: UpsEntry) -> List[Tuple[str, str]]:
        """
        C{(family, text)} of every series of one available UPS, for
        C{/ups_metrics}.
        """
        plan, _ = self.current_plan(entry)
        out = []
        for var, family, prefix in plan.numeric:
            text = value_text(var.value)
            if text is not None:
                out.append((family, prefix + text + "\n"))
        block = self.status_block(entry)
        if block:
            out.append((STATUS, block))
        out.append((DEVICE_INFO, self.device_line()))
        return out


class _Tracked:
    """
    What L{UpsSeries} knows of one UPS.
    """

    __slots__ = ("formatter", "stamp", "values", "families")

    def __init__(self, formatter: UpsFormatter) -> None:
        self.formatter = formatter
        self.stamp: object = None
        self.values: List[object] = []
        self.families: Set[str] = set()


class UpsSeries:
    """
    Every available UPS's series, grouped by family as the text format
    requires, kept up to date one changed value at a time.
    """

    def __init__(self) -> None:
        #: family -> {UPS key: its text for that family ("" for none)}.
        self._families: Dict[str, Dict[int, str]] = {}
        #: family -> the variable its HELP describes.
        self.help_variable: Dict[str, str] = {}
        self._tracked: Dict[int, _Tracked] = {}
        self._order: object = None
        self._sorted: Optional[List[str]] = None
        #: Incremented whenever a line may have changed.
        self.version = 0

    def _set(self, family: str, key: int, text: str, tracked: _Tracked) -> None:
        group = self._families.get(family)
        if group is None:
            group = self._families[family] = {}
            self._sorted = None
        group[key] = text
        tracked.families.add(family)

    def _forget(self, key: int, tracked: _Tracked) -> None:
        for family in tracked.families:
            self._families.get(family, {}).pop(key, None)
        tracked.families = set()

    def update(self, entries: Sequence[UpsEntry]) -> None:
        """
        Bring the series up to date with C{entries} (the available UPSes,
        in LIST UPS order).
        """
        order = tuple((id(e), e.name) for e in entries)
        if order != self._order:
            # A UPS came, went, was renamed or lost its data: drop the
            # lines of those gone (a series' place in its family does not
            # matter), keep everybody else's.
            self._order = order
            self.version += 1
            present = dict(order)
            for key in list(self._tracked):
                gone = self._tracked[key]
                if present.get(key) != gone.formatter.name:
                    self._forget(key, gone)
                    del self._tracked[key]
        for entry in entries:
            key = id(entry)
            found = self._tracked.get(key)
            if found is None:
                tracked = self._tracked[key] = _Tracked(UpsFormatter(entry.name, True))
            else:
                tracked = found
            state = entry.driver.state
            stamp = (state, state.generation, entry.fsd)
            if tracked.stamp == stamp:
                continue
            tracked.stamp = stamp
            self.version += 1
            self._refresh(key, entry, tracked)

    def _refresh(self, key: int, entry: UpsEntry, tracked: _Tracked) -> None:
        formatter = tracked.formatter
        plan, new = formatter.current_plan(entry)
        if new:
            self._forget(key, tracked)
            tracked.values = [None] * len(plan.numeric)
            for family, name in plan.help.items():
                self.help_variable.setdefault(family, name)
            if plan.status is not None:
                self.help_variable.setdefault(STATUS, plan.status.name)
        values = tracked.values
        families = self._families
        i = 0
        for var, family, prefix in plan.numeric:
            value = var.value
            if value is not values[i]:
                values[i] = value
                text = value_text(value)
                line = "" if text is None else prefix + text + "\n"
                group = families.get(family)
                if group is not None:
                    group[key] = line
                    tracked.families.add(family)
                else:
                    self._set(family, key, line, tracked)
            i += 1
        self._set(STATUS, key, formatter.status_block(entry), tracked)
        self._set(DEVICE_INFO, key, formatter.device_line(), tracked)

    def families(self) -> Iterator[Tuple[str, str]]:
        """
        C{(family, body)} of every family with at least one series, sorted.
        """
        if self._sorted is None:
            self._sorted = sorted(self._families)
        for family in self._sorted:
            body = "".join(self._families[family].values())
            if body:
                yield family, body
