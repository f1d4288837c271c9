# -*- test-case-name: nutshim.test.test_web -*-
"""
C{/api/v1/ups}: every UPS as JSON, in a schema that stays stable.

The schema (version 1, documented in docs/metrics.md) only grows: fields
are added, never renamed or removed, so scripts written against it keep
working.  It shows what a NUT client could learn with LIST VAR/RW/CMD/
CLIENT, GET TYPE/NUMLOGINS/UPSDESC, plus what only the daemon knows (the
driver's state, the age of its data).  Values are the raw strings NUT
holds; C{number} adds them as numbers where nut_exporter would.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from nutshim import __version__
from nutshim.state import Flags, Variable
from nutshim.upsd.registry import Registry, UpsEntry
from nutshim.web.history import SERIES, Point, finite
from nutshim.web.snapshot import available, data_age, number, status_flags
from nutshim.web.status import describe, severity

__all__ = ["API_VERSION", "ups_json", "all_json", "history_json", "error_json", "JsonView"]

API_VERSION = 1


def _unescape(enc: str) -> str:
    out = []
    it = iter(enc)
    for ch in it:
        if ch == "\\":
            ch = next(it, "")
        out.append(ch)
    return "".join(out)


def variable_json(var: Variable, fsd: bool) -> Dict[str, Any]:
    value = var.value
    if fsd and var.name.lower() == "ups.status":
        value = "FSD " + value  # as GET VAR and LIST VAR show it
    string = bool(var.flags & Flags.STRING)
    num = None if string else number(value)
    return {
        "value": value,
        "number": None if num is None else float(num),
        "type": "STRING" if string else "NUMBER",
        "rw": bool(var.flags & Flags.RW),
        "maxlen": var.aux if string else None,
        "enum": [_unescape(e) for e in var.enums] if var.enums else None,
        "range": [[low, high] for low, high in var.ranges] if var.ranges else None,
    }


def clients_by_ups(registry: Registry) -> Dict[int, List[Dict[str, Any]]]:
    """
    LIST CLIENT for every UPS at once (by C{id} of the entry), newest first.
    """
    out: Dict[int, List[Dict[str, Any]]] = {}
    for s in registry.sessions():
        if s.login is not None:
            out.setdefault(id(s.login), []).append({"address": s.address, "tls": bool(s.tls)})
    return out


def ups_json(entry: UpsEntry, registry: Registry, now: float,
             variables: Optional[Dict[str, Any]] = None,
             clients: Optional[Dict[int, List[Dict[str, Any]]]] = None) -> Dict[str, Any]:
    """
    One UPS (C{/api/v1/ups/<name>}).

    @param variables: the C{variables} value to use instead of encoding
        the variables here (L{JsonView} passes a placeholder).
    """
    ok = available(entry)
    state = entry.driver.state
    flags = status_flags(entry) if ok else ()
    status_var = state.get("ups.status") if ok else None
    if clients is None:
        clients = clients_by_ups(registry)
    return {
        "name": entry.name,
        "description": entry.desc,
        "available": ok,
        "driver": {
            "name": entry.driver_name,
            "port": entry.port,
            "connected": bool(entry.driver.connected),
            "stale": bool(entry.driver.stale),
            "data_age_seconds": data_age(entry, now),
        },
        "status": {
            "value": (" ".join(flags) if flags else status_var.value if status_var else None),
            "flags": list(flags),
            "text": describe(flags) if ok else (
                "Driver not connected" if not entry.driver.connected else "Data stale"),
            "severity": severity(flags, ok).value,
        },
        "fsd": bool(entry.fsd),
        "numlogins": entry.numlogins,
        "clients": clients.get(id(entry), []),
        "variables": variables if variables is not None else (
            {v.name: variable_json(v, entry.fsd) for v in state.variables()} if ok else {}),
        "commands": list(state.commands()) if ok else [],
    }


def _server(now: float) -> Dict[str, Any]:
    return {"software": "nutshim upsd", "version": __version__, "time": now}


def all_json(registry: Registry, now: float) -> Dict[str, Any]:
    """
    C{/api/v1/ups}: every UPS in LIST UPS order.
    """
    clients = clients_by_ups(registry)
    return {
        "api_version": API_VERSION,
        "server": _server(now),
        "ups": [ups_json(e, registry, now, clients=clients) for e in registry],
    }


def history_json(entry: UpsEntry, points: List[Point], interval: float) -> Dict[str, Any]:
    """
    C{/api/v1/ups/<name>/history}: the in-memory samples, oldest first.
    """
    return {
        "api_version": API_VERSION,
        "name": entry.name,
        "interval_seconds": interval,
        "series": list(SERIES),
        "points": [
            {
                "time": p[0],
                **{name: finite(value) for name, value in zip(SERIES, p[1:4])},
                "on_battery": p[4],
            }
            for p in points
        ],
    }


def error_json(error: str, message: str, name: Optional[str] = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {"api_version": API_VERSION, "error": error, "message": message}
    if name is not None:
        body["name"] = name
    return body


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class JsonView:
    """
    Encodes C{/api/v1/ups} and C{/api/v1/ups/<name>}, remembering each
    variable's JSON until it changes: a hundred UPSes of 35 variables are
    3,500 small objects, and encoding them all for every request would
    hold the reactor for tens of milliseconds.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        #: UPS key -> (stamp, variables text); variable key -> fragment.
        self._ups: Dict[int, Tuple[object, str]] = {}
        self._vars: Dict[Tuple[int, str], Tuple[object, str]] = {}

    def _variables(self, entry: UpsEntry) -> str:
        if not available(entry):
            return "{}"
        state = entry.driver.state
        stamp = (entry.name, state, state.generation, entry.fsd)
        known = self._ups.get(id(entry))
        if known is not None and known[0] == stamp:
            return known[1]
        parts = []
        cache = self._vars
        for var in state.variables():
            key = (id(entry), var.name)
            vkey = (var.value, var.flags, var.aux, tuple(var.enums), tuple(var.ranges), entry.fsd, state)
            hit = cache.get(key)
            if hit is None or hit[0] != vkey:
                if len(cache) > 200000:
                    cache.clear()
                hit = cache[key] = (vkey, _dumps(var.name) + ":" + _dumps(variable_json(var, entry.fsd)))
            parts.append(hit[1])
        text = "{" + ",".join(parts) + "}"
        self._ups[id(entry)] = (stamp, text)
        return text

    def one(self, entry: UpsEntry, now: float,
            clients: Optional[Dict[int, List[Dict[str, Any]]]] = None) -> str:
        """
        C{/api/v1/ups/<name>}, encoded.
        """
        head = _dumps(ups_json(entry, self.registry, now, variables={}, clients=clients))
        # The placeholder object is the only "{}" after "variables":.
        marker = '"variables":{}'
        at = head.index(marker)
        return head[:at] + '"variables":' + self._variables(entry) + head[at + len(marker):]

    def all(self, now: float) -> str:
        """
        C{/api/v1/ups}, encoded.
        """
        entries = list(self.registry)
        live = {id(e) for e in entries}
        for key in [k for k in self._ups if k not in live]:
            del self._ups[key]
        for vkey in [k for k in self._vars if k[0] not in live]:
            del self._vars[vkey]
        clients = clients_by_ups(self.registry)
        body = ",".join(self.one(e, now, clients) for e in entries)
        return ('{"api_version":%d,"server":%s,"ups":[%s]}'
                % (API_VERSION, _dumps(_server(now)), body))
