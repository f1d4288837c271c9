# -*- test-case-name: nutshim.test.test_web_exposition -*-
"""
C{/metrics} in Prometheus's text format: every UPS with
DRuggeri/nut_exporter's names (L{nutshim.web.nutexporter}), then the
daemon's own C{nutshim_*} metrics and the standard C{process_*} ones.

A UPS whose driver is not connected or whose data are stale exports no
C{network_ups_tools_*} series (NUT would answer C{ERR DATA-STALE}); its
C{nutshim_ups_driver_connected} and C{nutshim_ups_data_stale} gauges say
why.  Names, labels and their meaning: docs/metrics.md.
"""

from __future__ import annotations

import sys
from typing import Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from nutshim import __version__
from nutshim.upsd.registry import Registry, UpsEntry
from nutshim.web.counters import DaemonCounters, command_label, error_label
from nutshim.web.nutexporter import (DEFAULT_STATUSES, DEVICE_INFO, STATUS, UpsFormatter, UpsSeries,
                                     format_value, labels)
from nutshim.web.process import ProcessMetrics
from nutshim.web.snapshot import available, data_age

__all__ = ["Exposition", "CONTENT_TYPE", "Descriptions"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_UNAVAILABLE = "Description unavailable"


class _Descriptions(Protocol):
    def describe_var(self, name: str) -> Optional[str]: ...


#: Returns the current cmdvartab (a reload replaces it).
Descriptions = Callable[[], _Descriptions]


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class _Family:
    __slots__ = ("help", "type", "lines")

    def __init__(self, help: str, type: str) -> None:
        self.help = help
        self.type = type
        self.lines: List[str] = []


def _header(name: str, help: str, type: str) -> str:
    return f"# HELP {name} {_escape_help(help)}\n# TYPE {name} {type}\n"


def _render(families: Mapping[str, _Family]) -> List[str]:
    out: List[str] = []
    for name in sorted(families):
        family = families[name]
        if family.lines:
            out.append(_header(name, family.help, family.type))
            out.extend(family.lines)
    return out


class Exposition:
    """
    Renders C{/metrics} and C{/ups_metrics} from the daemon's memory.

    @param registry: the daemon's UPSes and sessions.
    @param descriptions: returns the current cmdvartab (GET DESC's
        descriptions, for the HELP lines).
    @param counters: the daemon's counters.
    @param seconds: the clock (the reactor's C{seconds}).
    @param process: the C{process_*} reader (L{None}: none exported).
    """

    def __init__(self, registry: Registry, descriptions: Descriptions, counters: DaemonCounters,
                 seconds: Callable[[], float], process: Optional[ProcessMetrics] = None) -> None:
        self.registry = registry
        self.descriptions = descriptions
        self.counters = counters
        self.seconds = seconds
        self.process = process
        self.series = UpsSeries()
        self._section: Tuple[object, str] = (None, "")
        self._labels: Dict[Tuple[str, ...], str] = {}

    # The UPS data.

    def _help(self, family: str, variable: str) -> str:
        if family == DEVICE_INFO:
            return "UPS Device information"
        description = self.descriptions().describe_var(variable) or _UNAVAILABLE
        return f"{description} ({variable})"

    def _ups_section(self, entries: Sequence[UpsEntry]) -> str:
        series = self.series
        series.update([e for e in entries if available(e)])
        stamp = (series.version, self.descriptions())
        if stamp == self._section[0]:
            return self._section[1]
        parts = []
        helps = series.help_variable
        for family, body in series.families():
            variable = helps.get(family, "ups.status" if family == STATUS else "")
            parts.append(_header(family, self._help(family, variable), "gauge"))
            parts.append(body)
        section = "".join(parts)
        self._section = (stamp, section)
        return section

    # nutshim's own metrics.

    def _label(self, *pairs: str) -> str:
        """
        C{{k="v",...}} for alternating keys and values, remembered (the
        same UPS labels come back on every scrape).
        """
        text = self._labels.get(pairs)
        if text is None:
            if len(self._labels) > 10000:
                self._labels.clear()
            text = self._labels[pairs] = labels(zip(pairs[::2], pairs[1::2]))
        return text

    def _daemon(self, entries: Sequence[UpsEntry], now: float) -> List[str]:
        families: Dict[str, _Family] = {}

        def add(name: str, type: str, help: str, labels: str, value: Optional[float]) -> None:
            if value is None:
                return
            group = families.get(name)
            if group is None:
                group = families[name] = _Family(help, type)
            group.lines.append(f"{name}{labels} {format_value(value)}\n")

        label = self._label
        add("nutshim_build_info", "gauge", "nutshim's version and Python's.",
            label("version", __version__, "python", "%d.%d.%d" % sys.version_info[:3]), 1)
        for e in entries:
            ups = label("ups", e.name)
            driver = e.driver
            add("nutshim_ups_info", "gauge", "A configured UPS: its driver, port and description.",
                label("ups", e.name, "driver", e.driver_name, "port", e.port, "description", e.desc or ""),
                1)
            add("nutshim_ups_driver_connected", "gauge",
                "1 when the UPS's driver is connected (else ERR DRIVER-NOT-CONNECTED).", ups,
                1 if driver.connected else 0)
            add("nutshim_ups_data_stale", "gauge",
                "1 when the UPS's data are stale (ERR DATA-STALE) or its driver is not connected.",
                ups, 0 if available(e) else 1)
            add("nutshim_ups_data_age_seconds", "gauge",
                "Seconds since the driver last spoke (MAXAGE counts these); 0 for in-process drivers.",
                ups, data_age(e, now))
            add("nutshim_ups_fsd", "gauge", "1 once the forced-shutdown latch is set (FSD).", ups,
                1 if e.fsd else 0)
            add("nutshim_ups_logins", "gauge", "Clients logged in to the UPS (GET NUMLOGINS).", ups,
                e.numlogins)
            add("nutshim_ups_variables", "gauge", "Variables the UPS's driver publishes.", ups,
                len(driver.state) if driver.connected else 0)
        add("nutshim_ups", "gauge", "Configured UPSes.", "", len(entries))
        add("nutshim_clients", "gauge", "Open client connections.", "", self.registry.session_count)
        self._connections(add)
        self._requests(add)
        self._reloads(add)
        c = self.counters
        for resource, n in sorted(c.scrapes.items()):
            add("nutshim_http_requests_total", "counter", "HTTP requests answered, by resource.",
                label("resource", resource), n)
        add("nutshim_metrics_render_seconds", "gauge",
            "Server time spent rendering the previous /metrics answer.", "", c.last_scrape_seconds)
        if self.process is not None:
            for name, type, help, value in self.process.metrics():
                add(name, type, help, "", value)
        return _render(families)

    def _connections(self, add: Callable[..., None]) -> None:
        c = self.counters
        label = self._label
        for listener, n in sorted(c.accepted.items()):
            add("nutshim_connections_accepted_total", "counter",
                "Client connections accepted, by listener.", label("listener", listener), n)
        add("nutshim_connections_refused_total", "counter",
            "Client connections refused because MAXCONN was reached.", "", c.refused)
        for listener in sorted(set(c.open_plain) | set(c.open_tls)):
            for transport, gauge in (("plain", c.open_plain), ("tls", c.open_tls)):
                add("nutshim_connections_open", "gauge",
                    "Open client connections by listener, plaintext or with TLS up.",
                    label("listener", listener, "transport", transport), gauge.get(listener, 0))
        handshakes = sorted(c.handshakes.items(), key=lambda kv: (kv[0][0], kv[0][1].value))
        help = "TLS handshakes after STARTTLS by listener and result (ok, error, timeout, pipelined)."
        for (listener, outcome), n in handshakes:
            add("nutshim_tls_handshakes_total", "counter", help,
                label("listener", listener, "result", outcome.value), n)

    def _requests(self, add: Callable[..., None]) -> None:
        c = self.counters
        label = self._label
        totals: Dict[str, int] = {}
        for kind, n in list(c.requests.items()):
            name = command_label(kind)
            totals[name] = totals.get(name, 0) + n
        for name, n in sorted(totals.items()):
            add("nutshim_requests_total", "counter", "Requests answered, by command.",
                label("command", name), n)
        errors: Dict[Tuple[str, str], int] = {}
        for (kind, reply), n in list(c.errors.items()):
            key = (command_label(kind), error_label(reply))
            errors[key] = errors.get(key, 0) + n
        for (command, error), n in sorted(errors.items()):
            add("nutshim_request_errors_total", "counter", "Error replies, by command and error name.",
                label("command", command, "error", error), n)

    def _reloads(self, add: Callable[..., None]) -> None:
        c = self.counters
        add("nutshim_config_reloads_total", "counter", "Configuration reloads (SIGHUP) tried.", "",
            c.reloads)
        add("nutshim_config_reload_failures_total", "counter",
            "Reloads refused because a file was unusable (the running configuration was kept).", "",
            c.reload_failures)
        add("nutshim_config_last_reload_successful", "gauge",
            "1 if the last reload was applied (or none was tried).", "", 1 if c.last_reload_ok else 0)
        add("nutshim_config_last_reload_timestamp_seconds", "gauge",
            "When the last reload was tried, in seconds since the epoch.", "", c.last_reload)

    # Entry points.

    def render(self) -> bytes:
        """
        The whole C{/metrics} answer.
        """
        entries = list(self.registry)
        now = self.seconds()
        text = self._ups_section(entries) + "".join(self._daemon(entries, now))
        return text.encode("utf-8", "replace")

    def render_ups(self, name: Optional[str], variables: Optional[Sequence[str]] = None,
                   statuses: Optional[Sequence[str]] = None) -> Tuple[int, bytes]:
        """
        C{/ups_metrics}: one UPS as nut_exporter serves it (no C{ups}
        label).

        @param name: the C{ups} parameter; L{None} is fine when exactly one
            UPS is configured (nut_exporter's rule).
        @return: C{(HTTP status, body)}.
        """
        entries = list(self.registry)
        if name is None:
            if len(entries) != 1:
                return 400, (b"Multiple UPS devices are configured: add a ups=<name> query string"
                             b" parameter\n" if entries else b"No UPS configured\n")
            entry: Optional[UpsEntry] = entries[0]
        else:
            entry = self.registry.get(name)
        if entry is None:
            return 404, b"Unknown UPS\n"
        if not available(entry):
            return 503, (b"Driver not connected\n" if not entry.driver.connected else b"Data stale\n")
        formatter = UpsFormatter(entry.name, False, variables,
                                 DEFAULT_STATUSES if statuses is None else statuses)
        families: Dict[str, _Family] = {}
        for family, text in formatter.samples(entry):
            group = families.get(family)
            if group is None:
                group = families[family] = _Family(
                    self._help(family, formatter.help_variable(family)), "gauge")
            group.lines.append(text)
        return 200, "".join(_render(families)).encode("utf-8", "replace")
