# -*- test-case-name: nutshim.test.test_upsmon -*-
"""
Notifications, as NUT's upsmon gives them (C{do_notify} in upsmon.c).

The message is C{NOTIFYMSG} (or the stock text) with C{%s} replaced by the
UPS's C{MONITOR} name; then each flag of C{NOTIFYFLAG} acts:

  - C{SYSLOG}: the message is logged at warning level (NUT uses
    C{LOG_NOTICE}); run C{twistd --syslog} to send the log to syslog;
  - C{WALL}: the message is written to C{wall}'s standard input;
  - C{EXEC}: C{NOTIFYCMD} runs with the message as its one argument and
    C{NOTIFYTYPE} and C{UPSNAME} in its environment, as NUT sets them:
    C{UPSNAME} is the UPS as written in C{MONITOR}, and empty (set, not
    unset) for C{SHUTDOWN}, which concerns no single UPS -- NUT's
    C{upssched} refuses to run when C{UPSNAME} is unset, so an
    C{AT SHUTDOWN * ...} line depends on it.  nutshim adds C{UPSGROUP}, the
    RFC 9271 group of the C{MONITOR} name (C{HB} of C{HB:hb@host}), empty
    when there is none, so that C{bash -u} scripts can read it;
  - C{IGNORE}, or no flag: only a debug line.

Commands run in the background: a slow C{NOTIFYCMD} never holds up the
monitor, as NUT forks for the same reason.
"""

from __future__ import annotations

import os
from typing import List, Mapping, Optional

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from nutshim.config.upsmonconf import UpsmonConf
from nutshim.upsmon.runner import IRunner, shell

__all__ = ["Notifier", "WALL", "format_message"]

#: NUT's C{WALLCMD}.
WALL = "/usr/bin/wall"


def format_message(template: str, system: Optional[str]) -> str:
    """
    The text of a notification: the first C{%s} is the UPS (empty for
    events about no UPS), C{%%} is C{%}, as NUT's C{snprintf} gives it.
    """
    out: List[str] = []
    used = False
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "%" and i + 1 < len(template):
            nxt = template[i + 1]
            if nxt == "%":
                out.append("%")
                i += 2
                continue
            if nxt == "s" and not used:
                out.append(system or "")
                used = True
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


class Notifier:
    """
    Send notifications as C{upsmon.conf} asks.

    @ivar pending: the commands started and not yet ended (for tests and
        for an orderly stop).
    """

    log = Logger()

    def __init__(self, conf: UpsmonConf, runner: IRunner,
                 environ: Optional[Mapping[str, str]] = None, wall: str = WALL) -> None:
        self._conf = conf
        self._runner = runner
        self._environ = environ
        self._wall = wall
        self.pending: List[Deferred[int]] = []

    def reconfigure(self, conf: UpsmonConf) -> None:
        """
        Use a reloaded C{upsmon.conf} from the next notification on
        (commands already started run on).
        """
        self._conf = conf

    def notify(self, notify_type: str, system: Optional[str],
               group: Optional[str] = None) -> str:
        """
        Give one notification.

        @param system: the UPS concerned (its C{MONITOR} name), or L{None}.
        @param group: the group of that name, or L{None}.
        @return: the message.
        """
        message = format_message(self._conf.message(notify_type), system)
        flags = self._conf.flags(notify_type)
        if "SYSLOG" in flags:
            self.log.warn("{text}", text=message, notify_type=notify_type, ups=system)
        else:
            self.log.debug("{notify_type} ({ups}): {text}", text=message,
                           notify_type=notify_type, ups=system)
        if "WALL" in flags:
            self._track(self._runner.run([self._wall], self._env(), (message + "\n").encode()))
        if "EXEC" in flags:
            if self._conf.notifycmd:
                env = self._env()
                env["NOTIFYTYPE"] = notify_type
                env["UPSNAME"] = system or ""
                env["UPSGROUP"] = group or ""
                self._track(self._runner.run(shell(self._conf.notifycmd, message), env))
            else:
                self.log.debug("{notify_type}: EXEC without NOTIFYCMD", notify_type=notify_type)
        return message

    def _env(self) -> dict[str, str]:
        return dict(os.environ if self._environ is None else self._environ)

    def _track(self, d: Deferred[int]) -> None:
        self.pending.append(d)

        def ended(status: int) -> int:
            self.pending.remove(d)
            if status != 0:
                self.log.warn("notification command exited with status {status}", status=status)
            return status

        d.addCallback(ended)

    def flush(self) -> Deferred[List[int]]:
        """Fires once every command started so far has ended."""
        return gatherResults(list(self.pending))
