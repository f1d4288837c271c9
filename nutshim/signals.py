# -*- test-case-name: nutshim.test.test_signals -*-
"""
One place for the signal rules every nutshim daemon follows.

An administrator's signal must never kill a daemon by accident: under
C{twistd -n} without C{--logfile}, with C{--syslog} and in the systemd units
nobody installs a handler for SIGHUP, SIGUSR1 or SIGUSR2, so their default
action (terminate) would end monitoring in the middle of an outage.  Every
daemon therefore calls L{install_signal_handlers} from C{startService} —
after twistd has set up logging, so a handler twistd installed (SIGUSR1
rotating a C{--logfile}, SIGUSR2 dropping into pdb under C{--debug}) is
seen and kept — and names what each signal does for it:

  - SIGHUP always belongs to the daemon (reload), as in NUT;
  - SIGUSR1 and SIGUSR2 do the daemon's action when it has one and nobody
    else owns the signal, and are otherwise logged and ignored — never left
    at their default.

The handler only schedules the action with C{callFromThread}: a Python
signal handler runs between two bytecodes of whatever the reactor was
doing, and C{callFromThread} is the reactor's safe way in.
"""

from __future__ import annotations

import signal as _signal
from types import ModuleType
from typing import Any, Callable, Dict, Mapping, Optional

from twisted.logger import Logger

__all__ = ["install_signal_handlers", "OURS", "KEPT", "IGNORED", "DAEMON_SIGNALS"]

#: The signals every daemon handles.
DAEMON_SIGNALS = ("SIGHUP", "SIGUSR1", "SIGUSR2")
#: Outcomes reported by L{install_signal_handlers}, per signal name.
OURS = "ours"
KEPT = "kept"
IGNORED = "ignored"

_log = Logger()


def _foreign(current: Any, sig: ModuleType) -> bool:
    """
    Whether C{current} is a handler somebody installed (not a default).
    """
    if getattr(current, "_nutshim_daemon", None) is not None:
        return False  # ours, from an earlier call: replaced
    return current not in (sig.SIG_DFL, sig.SIG_IGN, None)


def install_signal_handlers(
    reactor: Any,
    actions: Mapping[str, Optional[Callable[[], object]]],
    daemon: str,
    log: Logger = _log,
    sig: ModuleType = _signal,
) -> Dict[str, str]:
    """
    Install the handlers of L{DAEMON_SIGNALS} for one daemon.

    @param reactor: the reactor the actions run in (C{callFromThread}).
    @param actions: what each signal does, by name (C{"SIGHUP"}, ...); a
        name mapped to L{None} or absent is logged and ignored.  SIGHUP's
        action replaces any earlier handler; the others give way to one
        (twistd's log rotation and pdb).
    @param daemon: the daemon's name, for the log.
    @param sig: the C{signal} module (tests pass a fake).
    @return: per signal name, L{OURS}, L{KEPT} (somebody else's handler was
        left in place) or L{IGNORED}; signals this platform lacks are
        missing.  Nothing is installed outside the main thread.
    """
    done: Dict[str, str] = {}
    for name in DAEMON_SIGNALS:
        signum = getattr(sig, name, None)
        if signum is None:
            continue
        action = actions.get(name)
        current = sig.getsignal(signum)
        if name != "SIGHUP" and _foreign(current, sig):
            done[name] = KEPT
            continue

        handler = _handler(reactor, log, daemon, name, action)
        outcome = IGNORED if action is None else OURS
        try:
            sig.signal(signum, handler)
        except ValueError:
            return {}  # not the main thread: nothing can be installed
        done[name] = outcome
    return done


def _handler(reactor: Any, log: Logger, daemon: str, name: str,
             action: Optional[Callable[[], object]]) -> Callable[[int, Any], None]:
    """
    The Python-level handler: it only hands the work to the reactor.
    """
    def handler(signo: int, frame: Any) -> None:
        if action is None:
            reactor.callFromThread(
                log.info, "{daemon}: {signal} received and ignored", daemon=daemon, signal=name
            )
        else:
            reactor.callFromThread(_run, log, daemon, name, action)
    handler._nutshim_daemon = daemon  # type: ignore[attr-defined]
    return handler


def _run(log: Logger, daemon: str, name: str, action: Callable[[], object]) -> None:
    """
    Run a signal's action in the reactor; a failing action is logged, never
    raised into the reactor loop.
    """
    log.info("{daemon}: {signal} received", daemon=daemon, signal=name)
    try:
        action()
    except Exception:
        log.failure("{daemon}: handling {signal} failed", daemon=daemon, signal=name)
