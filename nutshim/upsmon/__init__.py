# -*- test-case-name: nutshim.test.test_upsmon -*-
"""
nutshim's Management Daemon, C{twistd nut-upsmon}: NUT's upsmon on Twisted.

It watches UPSes through their Attachment Daemons (NUT's upsd or
nutshim's), turns every change of C{ups.status} into an event (RFC 9271,
section 5.2), notifies as NUT's upsmon does, and shuts the system down
when too few power supplies are left (Appendix B, "The Shutdown Story").

The modules, from the pure to the wired:

  - L{nutshim.upsmon.events}: status symbols, event names and messages;
  - L{nutshim.upsmon.runner}: running commands through the reactor;
  - L{nutshim.upsmon.notify}: C{NOTIFYCMD}, C{NOTIFYFLAG}, C{NOTIFYMSG};
  - L{nutshim.upsmon.heartbeat}: watching an RFC 9271 heartbeat UPS;
  - L{nutshim.upsmon.monitor}: one C{MONITOR} line: session, polls,
    contact, criticality;
  - L{nutshim.upsmon.shutdown}: FSD, waiting for the Secondaries,
    C{POWERDOWNFLAG} and C{SHUTDOWNCMD};
  - L{nutshim.upsmon.service}: the power accounting that ties them;
  - L{nutshim.upsmon.tap}: C{twistd nut-upsmon}.

Only the pure event vocabulary is re-exported here, so that the
configuration reader can use it without importing Twisted's networking.
"""

from nutshim.upsmon.events import (
    NOTIFY_TYPES,
    NUT_NOTIFY_TYPES,
    SYMBOLS,
    StatusEvent,
    default_flags,
    default_message,
    parse_status,
    status_events,
)

__all__ = [
    "NOTIFY_TYPES",
    "NUT_NOTIFY_TYPES",
    "SYMBOLS",
    "StatusEvent",
    "default_flags",
    "default_message",
    "parse_status",
    "status_events",
]
