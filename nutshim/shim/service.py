# -*- test-case-name: nutshim.test.test_shim -*-
"""
A shim's services: its signals and reload (L{ShimService}), and its
listeners (L{ListenerService}).

Signals (L{nutshim.signals}, installed in C{startService}, after twistd has
set up logging): SIGHUP reloads -- C{systemctl reload} and logrotate send
it, and NUT's daemons reload on it, so it must never end the process (its
default action) -- and SIGUSR1/SIGUSR2 are logged and ignored unless twistd
owns them (SIGUSR1 rotates a C{--logfile}).  A reload re-reads the files the
options name and applies them to new sessions only; sessions already open
keep the TLS they have.  If anything is wrong with the new files, nothing
changes and the log says what, in the words a start would have used.

Under systemd (C{Type=notify}, L{nutshim.sdnotify}) a shim says C{READY=1}
once its listeners are bound -- a shim has no data to wait for --,
C{RELOADING=1}/C{READY=1} around a reload, C{STOPPING=1}, a C{STATUS=}
line with its open sessions, and the watchdog pings.

The listeners are bound in C{privilegedStartService}: before twistd
drops privileges (C{--uid}/C{--gid}), so port 401 can be bound by root (or
with C{CAP_NET_BIND_SERVICE}) and served as an unprivileged user.

A listener the administrator asked for (C{--listen}) that cannot be bound
stops the shim.  The defaults are tried all, and one may fail: on Linux a
C{tcp6} listener on C{::} already takes IPv4 too, so the matching C{tcp}
listener on 0.0.0.0 finds its port in use; without IPv6, the C{tcp6} one
fails instead.  Either way the shim serves, and says which listener it
skipped and why.
"""

from __future__ import annotations

import signal
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from nutshim.sdnotify import ServiceNotifier, reload_told
from nutshim.signals import install_signal_handlers

__all__ = ["ListenerError", "ListenerService", "ShimService", "systemd_notifier"]

log = Logger()


class ShimService(MultiService):
    """
    The top service of a shim: its children, its signal handlers and its
    reload.

    @ivar signals: what L{install_signal_handlers} did, per signal name.
    """

    def __init__(
        self,
        reactor: Any,
        daemon: str,
        reload: Callable[[], str],
        signal_module: ModuleType = signal,
        notifier: Optional[ServiceNotifier] = None,
        sessions: Callable[[], int] = lambda: 0,
    ) -> None:
        """
        @param notifier: tells systemd; L{None}: nobody to tell.
        @param sessions: how many client sessions are open, for C{STATUS=}.
        """
        super().__init__()
        self.reactor = reactor
        self.daemon = daemon
        self._reload = reload
        self._signal_module = signal_module
        self._systemd = notifier
        self._sessions = sessions
        self.signals: Dict[str, str] = {}

    def startService(self) -> None:
        super().startService()
        self.signals = install_signal_handlers(
            self.reactor, {"SIGHUP": self._signalled_reload}, self.daemon, log,
            self._signal_module
        )
        if self._systemd is not None:
            # The listeners were bound in privilegedStartService: serving.
            self._systemd.status = self.status_line
            self._systemd.start()
            self._systemd.ready()

    def stopService(self) -> "Deferred[Any]":
        if self._systemd is not None:
            self._systemd.stopping()
        d: Deferred[Any] = super().stopService()  # type: ignore[assignment]
        return d

    def status_line(self) -> str:
        """
        One line for C{systemctl status}.
        """
        n = self._sessions()
        return f"{n} session{'' if n == 1 else 's'}"

    def _signalled_reload(self) -> None:
        """
        SIGHUP: the reload, told to systemd.
        """
        reload_told(self._systemd, self.reload)

    def reload(self) -> bool:
        """
        SIGHUP: re-read the certificate, key, CA, pin and allow files and
        use them for new sessions; on any error keep everything as it is.

        @return: whether the new settings were applied.
        """
        try:
            summary = self._reload()
        except usage.UsageError as e:
            log.error(
                "{daemon}: reload refused, nothing changed: {error}",
                daemon=self.daemon,
                error=str(e),
            )
            return False
        log.info("{daemon}: reloaded: {summary}", daemon=self.daemon, summary=summary)
        return True


def systemd_notifier(reactor: Any, signal_module: ModuleType = signal) -> Optional[ServiceNotifier]:
    """
    The real daemon's systemd notifier, from C{$NOTIFY_SOCKET}; L{None} for
    a test that passes its own signal module (it must not consume the
    environment of the process running the tests).
    """
    if signal_module is not signal:
        return None
    return ServiceNotifier.from_environ(reactor, lambda: "")


class ListenerError(SystemExit):
    """
    A required listener could not be bound.

    A C{SystemExit}, so that twistd stops with this one line instead of a
    traceback, as nut-upsd does.
    """

    def __init__(self, message: str, daemon: str = "nutshim shim") -> None:
        super().__init__(f"{daemon}: {message}")


class ListenerService(Service):
    """
    Listen on endpoint strings, each with its factory.

    @ivar groups: C{(factory, endpoints, explicit)}: at least one endpoint
        of each group must be bound; with C{explicit}, all of them.
    @ivar ports: what is listening.
    """

    def __init__(
        self,
        reactor: Any,
        groups: Sequence[Tuple[Factory, Sequence[str], bool]],
        banner: Sequence[str] = (),
        daemon: str = "nutshim shim",
    ) -> None:
        self.reactor = reactor
        self.daemon = daemon
        self.banner = list(banner)
        self.groups = [(f, list(e), x) for f, e, x in groups]
        self.ports: List[IListeningPort] = []

    def privilegedStartService(self) -> None:
        """
        Bind every listener now (synchronously for TCP and systemd
        endpoints), or raise L{ListenerError} so that twistd exits.
        """
        super().privilegedStartService()
        for line in self.banner:
            log.info("{line}", line=line)
        for factory, endpoints, explicit in self.groups:
            bound = 0
            failures: List[str] = []
            for description in endpoints:
                result: List[Any] = []
                d = serverFromString(self.reactor, description).listen(factory)
                d.addBoth(result.append)
                if not result:
                    raise ListenerError(
                        f"{description}: listening did not finish at once", self.daemon
                    )
                if isinstance(result[0], Failure):
                    failures.append(f"{description}: {result[0].getErrorMessage()}")
                    continue
                self.ports.append(result[0])
                bound += 1
                log.info("Listening on {endpoint}", endpoint=description)
            if failures and (explicit or not bound):
                self.stopListening()
                raise ListenerError("cannot listen on " + "; ".join(failures), self.daemon)
            for failure in failures:
                log.info("Default listener skipped, the others serve: {failure}",
                         failure=failure)

    def stopListening(self) -> "Deferred[Any]":
        """
        Close every listener.
        """
        ports, self.ports = self.ports, []
        return DeferredList([d for d in (p.stopListening() for p in ports) if d is not None])

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        return self.stopListening()
