# -*- test-case-name: nutshim.test.test_web_exposition -*-
"""
The standard C{process_*} metrics, read from C{/proc} as Prometheus's own
client libraries do (same names, same meaning), so the usual "process"
Grafana panels work for nut-upsd.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

__all__ = ["ProcessSample", "ProcessMetrics"]


@dataclass(frozen=True)
class ProcessSample:
    """
    One reading; L{None} where this system cannot tell.
    """

    cpu_seconds: Optional[float]
    resident_bytes: Optional[int]
    virtual_bytes: Optional[int]
    open_fds: Optional[int]
    max_fds: Optional[int]
    start_time: Optional[float]


def _boot_time(proc: str) -> Optional[float]:
    try:
        with open(os.path.join(proc, "stat")) as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


class ProcessMetrics:
    """
    Reads this process's CPU time, memory and descriptors.

    @param proc: the C{/proc} directory (tests pass a fake tree).
    @param pid: C{"self"} or a process id.
    """

    def __init__(self, proc: str = "/proc", pid: str = "self",
                 max_fds: Callable[[], int] = lambda: resource.getrlimit(resource.RLIMIT_NOFILE)[0]) -> None:
        self._dir = os.path.join(proc, pid)
        self._max_fds = max_fds
        try:
            self._ticks = float(os.sysconf("SC_CLK_TCK"))
            self._page = os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            self._ticks, self._page = 100.0, 4096
        self._boot = _boot_time(proc)
        self._start: Optional[float] = None
        fields = self._stat()
        if fields is not None and self._boot is not None:
            # Field 22 of stat(5): start time in ticks after boot.
            self._start = self._boot + int(fields[19]) / self._ticks

    def _stat(self) -> Optional[List[str]]:
        try:
            with open(os.path.join(self._dir, "stat")) as f:
                text = f.read()
        except OSError:
            return None
        # The command name may contain spaces and parentheses: split after
        # the last ")".  fields[0] is then field 3 of stat(5) (state).
        return text.rsplit(")", 1)[-1].split()

    def _fds(self) -> Optional[int]:
        try:
            return len(os.listdir(os.path.join(self._dir, "fd")))
        except OSError:
            return None

    def sample(self) -> ProcessSample:
        fields = self._stat()
        cpu = rss = vsize = None
        if fields is not None and len(fields) > 21:
            cpu = (int(fields[11]) + int(fields[12])) / self._ticks
            vsize = int(fields[20])
            rss = int(fields[21]) * self._page
        try:
            max_fds: Optional[int] = int(self._max_fds())
        except (OSError, ValueError):
            max_fds = None
        return ProcessSample(cpu, rss, vsize, self._fds(), max_fds, self._start)

    def metrics(self) -> List[Tuple[str, str, str, Optional[float]]]:
        """
        C{(name, type, help, value)} of each process metric.
        """
        s = self.sample()
        return [
            ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
             s.cpu_seconds),
            ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
             None if s.resident_bytes is None else float(s.resident_bytes)),
            ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
             None if s.virtual_bytes is None else float(s.virtual_bytes)),
            ("process_open_fds", "gauge", "Number of open file descriptors.",
             None if s.open_fds is None else float(s.open_fds)),
            ("process_max_fds", "gauge", "Maximum number of open file descriptors.",
             None if s.max_fds is None else float(s.max_fds)),
            ("process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.", s.start_time),
        ]
