# -*- test-case-name: nutshim.test.test_sdnotify -*-
"""
systemd's readiness protocol (sd_notify), spoken directly.

Why no library: the protocol is one datagram per notification on the
AF_UNIX socket named by C{$NOTIFY_SOCKET} (a path, or C{@name} in the
abstract namespace), text lines C{KEY=VALUE}.  python-systemd needs
libsystemd and a C build, the pure-Python packages on PyPI are small and
mostly unmaintained; forty lines of C{socket} cost less than any of them
and cannot break with a release.  The socket is non-blocking and every
error is logged, never raised: telling systemd about the daemon must not
hurt the daemon.

What a daemon says, and when (see L{ServiceNotifier}):

  - C{READY=1} once it really serves: listeners bound I{and} every driver
    delivered its first data, or the wait for them timed out (then
    C{STATUS=} names the missing ones);
  - C{RELOADING=1} (with C{MONOTONIC_USEC}, as C{Type=notify-reload}
    wants) when SIGHUP's reload begins, C{READY=1} when it is done,
    whether the new files were applied or refused;
  - C{STOPPING=1} when it begins to stop;
  - C{STATUS=...} (e.g. "3 UPS, 12 clients"), refreshed when it changes;
  - C{WATCHDOG=1} every C{WatchdogSec}/2 when systemd asks for it
    (C{$WATCHDOG_USEC}, for this process if C{$WATCHDOG_PID} says so).
    The pings are timed by the reactor's own clock, so a reactor that
    hangs stops pinging and systemd restarts the daemon -- which is the
    point of a watchdog.

Without C{$NOTIFY_SOCKET} (not under systemd, or C{Type=simple}) all of
this does nothing.  The variables are removed from the environment once
read, so programs the daemon starts (NOTIFYCMD scripts) do not inherit
them.
"""

from __future__ import annotations

import enum
import errno
import os
import socket
import time
from typing import Any, Callable, Dict, MutableMapping, Optional, Sequence, Tuple, Union

from twisted.logger import Logger

__all__ = ["Notifier", "ServiceNotifier", "Phase", "watchdog_interval", "notify_address",
           "reload_told"]

_log = Logger()

Address = Union[str, bytes]
SocketFactory = Callable[[], Any]


def _datagram_socket() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    return sock


def notify_address(value: Optional[str]) -> Optional[Address]:
    """
    The socket address C{$NOTIFY_SOCKET} names: an absolute path, or
    C{@name} in Linux's abstract namespace; L{None} for anything else
    (unset, empty, relative, C{vsock:} which this module does not speak).
    """
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8", "surrogateescape")
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(environ: MutableMapping[str, str], pid: int) -> Optional[float]:
    """
    Seconds between C{WATCHDOG=1} pings: half of C{$WATCHDOG_USEC}, if
    it is set and C{$WATCHDOG_PID} (when set) is this process.
    """
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner.strip() != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 2e6


class Notifier:
    """
    Sends notifications to one C{NOTIFY_SOCKET}.

    @param address: from L{notify_address}; L{None} disables everything.
    @param socket_factory: makes the non-blocking datagram socket (tests
        pass a fake).
    """

    def __init__(self, address: Optional[Address], socket_factory: SocketFactory = _datagram_socket,
                 log: Logger = _log) -> None:
        self.address = address
        self._socket_factory = socket_factory
        self._sock: Any = None
        self._log = log
        self._reported: set[int] = set()

    @classmethod
    def from_environ(cls, environ: Optional[MutableMapping[str, str]] = None, unset: bool = True,
                     socket_factory: SocketFactory = _datagram_socket) -> "Notifier":
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET")
        address = notify_address(value)
        if value and address is None:
            _log.warn("NOTIFY_SOCKET={value}: not a Unix socket path or @name; not notifying systemd",
                      value=value)
        if unset:
            env.pop("NOTIFY_SOCKET", None)
        return cls(address, socket_factory)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """
        Send one notification of C{KEY=VALUE} lines.

        @return: whether it was handed to the socket.
        """
        if self.address is None:
            return False
        data = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = self._socket_factory()
            self._sock.sendto(data, self.address)
        except OSError as e:
            code = e.errno or 0
            if code not in self._reported:
                self._reported.add(code)
                self._log.warn("Cannot notify systemd at {address!r}: {error}", address=self.address,
                               error=os.strerror(code) if code else str(e))
            if code not in (errno.EAGAIN, errno.EWOULDBLOCK):
                self.close()  # a new socket next time
            return False
        return True

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


class Phase(enum.Enum):
    """
    Where the daemon is, as systemd is told.
    """

    STARTING = "starting"
    READY = "ready"
    RELOADING = "reloading"
    STOPPING = "stopping"


class _Event(enum.Enum):
    READY = "ready"
    RELOAD = "reload"
    RELOADED = "reloaded"
    STOP = "stop"


#: (phase, event) -> (new phase, whether to notify).  A reload during the
#: start is done but not announced (the start's READY=1 comes later); after
#: STOPPING nothing else is said.
_TRANSITIONS: Dict[Tuple[Phase, _Event], Tuple[Phase, bool]] = {
    (Phase.STARTING, _Event.READY): (Phase.READY, True),
    (Phase.STARTING, _Event.RELOAD): (Phase.STARTING, False),
    (Phase.STARTING, _Event.RELOADED): (Phase.STARTING, False),
    (Phase.STARTING, _Event.STOP): (Phase.STOPPING, True),
    (Phase.READY, _Event.READY): (Phase.READY, False),
    (Phase.READY, _Event.RELOAD): (Phase.RELOADING, True),
    (Phase.READY, _Event.RELOADED): (Phase.READY, False),
    (Phase.READY, _Event.STOP): (Phase.STOPPING, True),
    (Phase.RELOADING, _Event.READY): (Phase.RELOADING, False),
    (Phase.RELOADING, _Event.RELOAD): (Phase.RELOADING, False),
    (Phase.RELOADING, _Event.RELOADED): (Phase.READY, True),
    (Phase.RELOADING, _Event.STOP): (Phase.STOPPING, True),
    (Phase.STOPPING, _Event.READY): (Phase.STOPPING, False),
    (Phase.STOPPING, _Event.RELOAD): (Phase.STOPPING, False),
    (Phase.STOPPING, _Event.RELOADED): (Phase.STOPPING, False),
    (Phase.STOPPING, _Event.STOP): (Phase.STOPPING, False),
}


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class ServiceNotifier:
    """
    One daemon's life, told to systemd.

    @param notifier: where to send.
    @param clock: the reactor (C{callLater}); the watchdog runs on it.
    @param status: the current C{STATUS=} text (e.g. "3 UPS, 12 clients").
    @param watchdog: seconds between pings (L{watchdog_interval}), or
        L{None}.
    @param status_interval: how often a changed status is re-sent.
    @param monotonic_usec: C{CLOCK_MONOTONIC} in microseconds, for
        C{RELOADING=1}.
    """

    POLL = 0.1

    def __init__(self, notifier: Notifier, clock: Any, status: Callable[[], str],
                 watchdog: Optional[float] = None, status_interval: float = 10.0,
                 monotonic_usec: Callable[[], int] = _monotonic_usec, log: Logger = _log) -> None:
        self.notifier = notifier
        self.clock = clock
        self.status = status
        self.watchdog = watchdog
        self.status_interval = status_interval
        self.monotonic_usec = monotonic_usec
        self.phase = Phase.STARTING
        self._log = log
        self._last_status: Optional[str] = None
        self._calls: Dict[str, Any] = {}

    @classmethod
    def from_environ(cls, clock: Any, status: Callable[[], str],
                     environ: Optional[MutableMapping[str, str]] = None,
                     pid: Optional[int] = None) -> "ServiceNotifier":
        """
        Read (and remove) C{NOTIFY_SOCKET}, C{WATCHDOG_USEC} and
        C{WATCHDOG_PID} from the environment.
        """
        env = os.environ if environ is None else environ
        notifier = Notifier.from_environ(env)
        interval = watchdog_interval(env, os.getpid() if pid is None else pid)
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        return cls(notifier, clock, status, interval if notifier.enabled else None)

    @property
    def enabled(self) -> bool:
        return self.notifier.enabled

    # Timers.

    def _later(self, name: str, delay: float, what: Callable[[], None]) -> None:
        def fire() -> None:
            self._calls.pop(name, None)
            what()
        self._cancel(name)
        self._calls[name] = self.clock.callLater(delay, fire)

    def _cancel(self, name: str) -> None:
        call = self._calls.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _ping(self) -> None:
        assert self.watchdog is not None
        self.notifier.send("WATCHDOG=1")
        self._later("watchdog", self.watchdog, self._ping)

    def _refresh_status(self) -> None:
        self._send_status_if_changed()
        self._later("status", self.status_interval, self._refresh_status)

    def _status_field(self) -> str:
        try:
            text = self.status()
        except Exception:
            self._log.failure("Cannot compute the status for systemd")
            text = ""
        self._last_status = text
        return "STATUS=" + text

    def _send_status_if_changed(self) -> None:
        if self.phase is not Phase.READY:
            return
        try:
            text = self.status()
        except Exception:
            return
        if text != self._last_status:
            self._last_status = text
            self.notifier.send("STATUS=" + text)

    # The life.

    def start(self) -> None:
        """
        Begin the watchdog pings (if asked for); nothing else is said yet.
        """
        if not self.enabled:
            return
        if self.watchdog is not None and "watchdog" not in self._calls:
            self._ping()

    def _event(self, event: _Event) -> bool:
        self.phase, notify = _TRANSITIONS[(self.phase, event)]
        return notify and self.enabled

    def wait_ready(self, pending: Callable[[], Sequence[str]], timeout: float) -> None:
        """
        Send C{READY=1} once C{pending()} (what is not ready yet, e.g. UPS
        names) is empty, polling every L{POLL} seconds, or after
        C{timeout} seconds with the stragglers named in C{STATUS=}.
        """
        if not self.enabled:
            return
        deadline = self.clock.seconds() + timeout

        def check() -> None:
            if self.phase is not Phase.STARTING:
                return
            waiting = list(pending())
            if waiting and self.clock.seconds() < deadline:
                self._later("ready", self.POLL, check)
                return
            if waiting:
                self._log.warn("Ready without data from {names} after {timeout} s",
                               names=", ".join(waiting), timeout=timeout)
            self.ready(waiting)

        check()

    def ready(self, waiting: Sequence[str] = ()) -> None:
        """
        C{READY=1} now (normally through L{wait_ready}).
        """
        if not self._event(_Event.READY):
            return
        status = self._status_field()
        if waiting:
            status += f" (no data yet from {', '.join(waiting)})"
        self.notifier.send("READY=1", status)
        self._later("status", self.status_interval, self._refresh_status)

    def reloading(self) -> None:
        """
        A reload begins (SIGHUP).
        """
        if self._event(_Event.RELOAD):
            self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={self.monotonic_usec()}",
                               "STATUS=Reloading the configuration")

    def reloaded(self, ok: bool) -> None:
        """
        The reload is done; C{ok} is whether the new files were applied.
        """
        if not self._event(_Event.RELOADED):
            return
        status = self._status_field()
        if not ok:
            status += " (reload refused: running configuration kept)"
        self.notifier.send("READY=1", status)

    def stopping(self) -> None:
        """
        The daemon begins to stop: say so, and stop the status updates
        (the watchdog keeps pinging while the reactor runs).
        """
        self._cancel("ready")
        self._cancel("status")
        if self._event(_Event.STOP):
            self.notifier.send("STOPPING=1", "STATUS=Stopping")

    def close(self) -> None:
        """
        Cancel every timer and close the socket.
        """
        for name in list(self._calls):
            self._cancel(name)
        self.notifier.close()


def reload_told(notifier: Optional[ServiceNotifier], reload: Callable[[], bool]) -> bool:
    """
    Run a daemon's C{reload} between C{RELOADING=1} and C{READY=1} (sent
    whether the new configuration was applied or refused, and also if the
    reload raised); without a notifier, just the reload.

    @return: what C{reload} returned.
    """
    if notifier is not None:
        notifier.reloading()
    ok = False
    try:
        ok = reload()
    finally:
        if notifier is not None:
            notifier.reloaded(ok)
    return ok
