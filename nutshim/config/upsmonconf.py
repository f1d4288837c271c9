# -*- test-case-name: nutshim.test.test_upsmonconf -*-
"""
C{upsmon.conf}, read the way NUT 2.8.0's upsmon reads it, plus a few
nutshim keys for TLS.

nut-upsmon is meant to take over an existing NUT installation's
C{upsmon.conf} unchanged, so NUT's rules are kept (C{clients/upsmon.c}):
keywords are case-sensitive, defaults are NUT's (C{POLLFREQ 5}, C{POLLFREQALERT 5}, C{HOSTSYNC 15}, C{DEADTIME 15},
C{FINALDELAY 5}, C{RBWARNTIME 43200}, C{NOCOMMWARNTIME 300},
C{MINSUPPLIES 1}, no C{POWERDOWNFLAG}), C{NOTIFYFLAG} takes
C{SYSLOG}/C{WALL}/C{EXEC}/C{IGNORE} joined by C{+}, and a C{MONITOR} role
of C{primary}/C{master} or C{secondary}/C{slave}.

Errors and warnings (a reload is atomic: see L{nutshim.config._errors}).
NUT logs a bad line, or reads it with C{atoi}, and goes on; what would
drop a C{MONITOR} or change a setting against what the file says is a
L{ConfigError} naming the line here, so that a reload keeps the running
configuration and monitoring goes on: a parse error; a known keyword with
too few values (NUT: "invalid directive", or fatal for a C{MONITOR}
without a user); a C{MONITOR} whose system cannot be split, whose power
value is not a number, whose role is not C{primary}/C{master}/
C{secondary}/C{slave} (NUT silently makes it a secondary) or that repeats
a system; a number that does not start with a digit (NUT: C{atoi}, so
C{DEADTIME x} is 0) or is below its minimum; an unknown notify event or
flag; a C{CERTVERIFY}/C{FORCESSL}/C{CERTHOST} switch that is not a
number (NUT: C{CERTVERIFY yes} is 0).  C{DEADTIME 15s} is 15, as in NUT.
Warnings: unknown keywords; C{RUN_AS_USER} (accepted and ignored:
twistd's C{--uid}/C{--gid} or the service manager decide whom the daemon
runs as); C{CERTIDENT} (an NSS nickname and password: ignored, see below
for client certificates).  A password never appears in a message.

TLS: C{CERTPATH} names a PEM file of CA certificates or a directory of PEM
files (every certificate found is trusted).  NUT's Debian build reads an
NSS database there instead, which nutshim cannot read: export the CA with
C{certutil -L -d DIR -n NAME -a > ca.pem} and point C{CERTPATH} at the
file.  C{CERTVERIFY 1} verifies the server's chain and name, C{FORCESSL 1}
refuses plaintext, C{CERTHOST <host> <certname> <certverify> <forcessl>}
sets both for one host (C{certname} is the name checked in the
certificate).  Without C{CERTVERIFY}, like NUT's upsmon, STARTTLS is
tried and the certificate is not checked.

nutshim extensions (NUT 2.8.0 would warn C{invalid directive}; a bad value
raises L{ConfigError}, there is no NUT behaviour to keep):

 - C{CERTPIN <host> sha256:<hex>}: accept only this server certificate
   from C{host} (as C{nutshim-pki fingerprint} prints it); implies
   verification, needs no C{CERTPATH};
 - C{CERTFILE <path>}: this client's certificate and key (PEM), for
   servers that ask for one (C{CERTREQUEST});
 - C{TLS_MIN_VERSION 1.2|1.3}: the oldest TLS accepted (default 1.3);
 - C{HEARTBEAT <system> [<window>]}: the UPS of the C{MONITOR} line
   above with this system (power value 0) is an RFC 9271 heartbeat,
   watched from the start (see L{nutshim.upsmon.heartbeat}).

A C{MONITOR} system may carry an RFC 9271 group (C{HB:hb@host}): a label
for logs and notifications, never sent to the server; a malformed one is
an error (L{nutshim.protocol.upsname}).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from nutshim.protocol.upsname import UPSNameError, parse_upsname
from nutshim.upsmon.events import NOTIFY_TYPES, default_flags, default_message

from ._errors import ConfigError, ConfigWarning, LineReader, logical_lines, read_config_file

__all__ = [
    "CertHost",
    "Monitor",
    "UpsmonConf",
    "NOTIFY_FLAGS",
    "parse_upsmon_conf",
    "load_upsmon_conf",
    "split_system",
]

#: The C{NOTIFYFLAG} words.
NOTIFY_FLAGS = frozenset(["SYSLOG", "WALL", "EXEC", "IGNORE"])
_PRIMARY = ("primary", "master")
_SECONDARY = ("secondary", "slave")
_DEFAULT_PORT = 3493
_PIN = re.compile(r"sha256:[0-9a-fA-F:]+\Z")


@dataclass(frozen=True)
class Monitor:
    """
    One C{MONITOR} line.

    @ivar system: the UPS as written (C{[group:]ups@host:port}); NUT's
        C{UPSNAME} and the C{%s} of messages.
    @ivar upsname: the UPS name on its server (never the group).
    @ivar host: the server (C{localhost} when not given).
    @ivar powervalue: how many of this system's power supplies the UPS
        feeds (0: only watched).
    @ivar primary: whether this system is the UPS's Primary.
    @ivar group: the RFC 9271 group of C{system} (C{$UPSGROUP}), or L{None}.
    @ivar heartbeat: whether a C{HEARTBEAT} line declares this UPS a
        heartbeat (see L{nutshim.upsmon.heartbeat}).
    @ivar heartbeat_window: that line's window in seconds, or L{None}
        for the default.
    """

    system: str
    upsname: str
    host: str
    port: int
    powervalue: int
    username: str
    password: str = field(repr=False)
    primary: bool
    group: Optional[str] = None
    heartbeat: bool = False
    heartbeat_window: Optional[int] = None


@dataclass(frozen=True)
class CertHost:
    """
    One C{CERTHOST} line: TLS settings for one server.

    @ivar certname: the name the server's certificate must carry.
    """

    host: str
    certname: str
    verify: bool
    forcessl: bool


@dataclass(frozen=True)
class UpsmonConf:
    """
    The parsed file; every field has NUT's default.

    @ivar notifymsg: C{(type, message)} pairs set by C{NOTIFYMSG}.
    @ivar notifyflag: C{(type, flags)} pairs set by C{NOTIFYFLAG}.
    @ivar certpins: C{(host, pin)} pairs (nutshim's C{CERTPIN}).
    """

    monitors: Tuple[Monitor, ...] = ()
    minsupplies: int = 1
    shutdowncmd: Optional[str] = None
    notifycmd: Optional[str] = None
    notifymsg: Tuple[Tuple[str, str], ...] = ()
    notifyflag: Tuple[Tuple[str, FrozenSet[str]], ...] = ()
    pollfreq: int = 5
    pollfreqalert: int = 5
    hostsync: int = 15
    deadtime: int = 15
    finaldelay: int = 5
    powerdownflag: Optional[str] = None
    rbwarntime: int = 43200
    nocommwarntime: int = 300
    certpath: Optional[str] = None
    certverify: bool = False
    forcessl: bool = False
    certhosts: Tuple[CertHost, ...] = ()
    certpins: Tuple[Tuple[str, str], ...] = ()
    certfile: Optional[str] = None
    tls_min_version: str = "1.3"
    run_as_user: Optional[str] = None
    warnings: Tuple[ConfigWarning, ...] = ()

    def message(self, notify_type: str) -> str:
        """
        The message format of a notification type (C{%s}: the UPS).
        """
        return dict(self.notifymsg).get(notify_type) or default_message(notify_type)

    def flags(self, notify_type: str) -> FrozenSet[str]:
        """
        The flags of a notification type; C{IGNORE} makes them empty.
        """
        flags = dict(self.notifyflag).get(notify_type)
        if flags is None:
            flags = default_flags(notify_type)
        return frozenset() if "IGNORE" in flags else flags

    def certhost(self, host: str) -> Optional[CertHost]:
        """The C{CERTHOST} line for C{host}, if any."""
        for entry in self.certhosts:
            if entry.host == host:
                return entry
        return None

    def pin(self, host: str) -> Optional[str]:
        """The C{CERTPIN} of C{host}, if any."""
        return dict(self.certpins).get(host)

    def total_power(self) -> int:
        """The sum of the power values of every C{MONITOR}."""
        return sum(m.powervalue for m in self.monitors)

    def check(self, path: str) -> None:
        """
        What makes NUT's upsmon refuse to start.

        @raise ConfigError: no C{MONITOR} line with power, or fewer power
            supplies than C{MINSUPPLIES}, or C{CERTVERIFY} without any
            way to verify.
        """
        if not self.monitors:
            raise ConfigError(path, None, "no MONITOR line: nothing to monitor")
        if self.total_power() < self.minsupplies:
            raise ConfigError(
                path, None,
                "total power value (%d) less than MINSUPPLIES (%d)"
                % (self.total_power(), self.minsupplies),
            )
        for monitor in self.monitors:
            entry = self.certhost(monitor.host)
            verify = entry.verify if entry is not None else self.certverify
            if verify and not self.certpath and self.pin(monitor.host) is None:
                raise ConfigError(
                    path, None,
                    "CERTVERIFY is set for %s, but neither CERTPATH nor CERTPIN is" % monitor.host,
                )


def split_system(system: str) -> Optional[Tuple[str, str, int]]:
    """
    C{[group:]ups[@host[:port]]} as NUT's C{upscli_splitname} splits it
    (IPv6 literals in brackets: C{ups@[::1]:3493}; the group is dropped, see
    L{nutshim.protocol.upsname}).

    @return: C{(upsname, host, port)}, or L{None} if it cannot be split.
    """
    try:
        name = parse_upsname(system)
    except UPSNameError:
        return None
    return name.ups, name.host, name.port


class _Parser(LineReader):
    """
    One pass over the file, collecting fields for L{UpsmonConf}.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.fields: Dict[str, Any] = {}
        self.monitors: List[Monitor] = []
        self.notifymsg: Dict[str, str] = {}
        self.notifyflag: Dict[str, FrozenSet[str]] = {}
        self.certhosts: Dict[str, CertHost] = {}
        self.certpins: Dict[str, str] = {}

    def line(self, lineno: int, words: List[str]) -> None:
        self.lineno = lineno
        key = words[0]
        handler = _KEYS.get(key)
        if handler is None:
            shown = key if key in ("CERTIDENT",) else " ".join(words)
            self.warn("invalid directive %s" % (shown,))
            return
        minimum = _ARGS.get(key, 1)
        if len(words) - 1 < minimum:
            raise self.fail("%s needs %s" % (key, _USAGE.get(key, "a value")))
        handler(self, words[1:])

    def number(self, key: str, text: str, minimum: int) -> None:
        if not text[:1].isdigit():
            raise self.fail("%s has non numeric value (%s)" % (key, text))
        value = int(re.match(r"[0-9]+", text).group())  # type: ignore[union-attr]
        if value < minimum:
            raise self.fail("%s must be at least %d, not %d" % (key, minimum, value))
        self.fields[key.lower()] = value

    def switch(self, key: str, text: str) -> bool:
        """
        A 0/1 switch read like NUT's C{atoi}, refusing words (C{yes} is 0
        for NUT: never what was meant).
        """
        if not text[:1].isdigit():
            raise self.fail("%s must be 0 or 1, not %r" % (key, text))
        return int(re.match(r"[0-9]+", text).group()) != 0  # type: ignore[union-attr]

    def string(self, key: str, args: List[str]) -> None:
        self.fields[key.lower()] = args[0]

    def flag(self, key: str, args: List[str]) -> None:
        self.fields[key.lower()] = self.switch(key, args[0])

    def monitor(self, args: List[str]) -> None:
        system, power, user, password, role = args[:5]
        try:
            name = parse_upsname(system)
        except UPSNameError as e:
            raise self.fail("MONITOR %s: cannot read the UPS name, host or port: %s"
                            % (system, e))
        if not re.match(r"[0-9]+\Z", power):
            raise self.fail("MONITOR %s: invalid power value %r" % (system, power))
        if role.lower() in _PRIMARY:
            primary = True
        elif role.lower() in _SECONDARY:
            primary = False
        else:
            raise self.fail(
                "MONITOR %s: unknown role %r (primary or secondary; also master or slave)"
                % (system, role)
            )
        if any(m.system == system for m in self.monitors):
            raise self.fail("MONITOR %s: already monitored on an earlier line" % (system,))
        self.monitors.append(Monitor(system, name.ups, name.host, name.port, int(power), user,
                                     password, primary, name.group))

    def heartbeat(self, args: List[str]) -> None:
        """
        C{HEARTBEAT <system> [<window>]} (nutshim): the UPS of an earlier
        C{MONITOR} line with power value 0 is a heartbeat.
        """
        system = args[0]
        found = [i for i, m in enumerate(self.monitors) if m.system == system]
        if not found:
            raise self.fail("HEARTBEAT %s: no MONITOR line for %s above this line"
                            % (system, system))
        monitor = self.monitors[found[0]]
        if monitor.powervalue != 0:
            raise self.fail("HEARTBEAT %s: its MONITOR line has power value %d; a heartbeat "
                            "supplies no power (use 0)" % (system, monitor.powervalue))
        if monitor.heartbeat:
            raise self.fail("HEARTBEAT %s: already declared on an earlier line" % (system,))
        window: Optional[int] = None
        if len(args) > 1:
            digits = re.match(r"[0-9]+", args[1])
            window = int(digits.group()) if digits else 0
            if window < 1:
                raise self.fail("HEARTBEAT %s: the window must be a number of seconds (at "
                                "least 1), not %r" % (system, args[1]))
        self.monitors[found[0]] = replace(monitor, heartbeat=True, heartbeat_window=window)

    def notify_type(self, name: str) -> str:
        upper = name.upper()
        if upper not in NOTIFY_TYPES:
            raise self.fail("'%s' is not a valid notify event name" % (name,))
        return upper

    def notify_message(self, args: List[str]) -> None:
        self.notifymsg[self.notify_type(args[0])] = args[1]

    def notify_flag(self, args: List[str]) -> None:
        name = self.notify_type(args[0])
        flags = set()
        for word in args[1].split("+"):
            if word.upper() not in NOTIFY_FLAGS:
                raise self.fail(
                    "Invalid notify flag: [%s] (SYSLOG, WALL, EXEC or IGNORE, joined by +)"
                    % (word,)
                )
            flags.add(word.upper())
        self.notifyflag[name] = frozenset(flags)

    def certhost(self, args: List[str]) -> None:
        host, certname, verify, force = args[:4]
        self.certhosts[host] = CertHost(
            host, certname, self.switch("CERTHOST certverify", verify),
            self.switch("CERTHOST forcessl", force),
        )

    def ignored(self, key: str, why: str) -> None:
        self.warn("%s is ignored: %s" % (key, why))

    def certpin(self, args: List[str]) -> None:
        host, pin = args[:2]
        if not _PIN.match(pin) or len(pin.replace(":", "")) != len("sha256") + 64:
            raise self.fail("CERTPIN %s: the pin must look like sha256:<64 hex digits>" % (host,))
        self.certpins[host] = pin

    def tls_min_version(self, args: List[str]) -> None:
        if args[0] not in ("1.2", "1.3"):
            raise self.fail("TLS_MIN_VERSION must be 1.2 or 1.3, not %r" % (args[0],))
        self.fields["tls_min_version"] = args[0]


_KEYS: Dict[str, Any] = {
    "MONITOR": _Parser.monitor,
    "MINSUPPLIES": lambda p, a: p.number("MINSUPPLIES", a[0], 0),
    "SHUTDOWNCMD": lambda p, a: p.string("SHUTDOWNCMD", a),
    "NOTIFYCMD": lambda p, a: p.string("NOTIFYCMD", a),
    "POWERDOWNFLAG": lambda p, a: p.string("POWERDOWNFLAG", a),
    "NOTIFYMSG": _Parser.notify_message,
    "NOTIFYFLAG": _Parser.notify_flag,
    "POLLFREQ": lambda p, a: p.number("POLLFREQ", a[0], 1),
    "POLLFREQALERT": lambda p, a: p.number("POLLFREQALERT", a[0], 1),
    "HOSTSYNC": lambda p, a: p.number("HOSTSYNC", a[0], 0),
    "DEADTIME": lambda p, a: p.number("DEADTIME", a[0], 0),
    "FINALDELAY": lambda p, a: p.number("FINALDELAY", a[0], 0),
    "RBWARNTIME": lambda p, a: p.number("RBWARNTIME", a[0], 0),
    "NOCOMMWARNTIME": lambda p, a: p.number("NOCOMMWARNTIME", a[0], 0),
    "CERTPATH": lambda p, a: p.string("CERTPATH", a),
    "CERTVERIFY": lambda p, a: p.flag("CERTVERIFY", a),
    "FORCESSL": lambda p, a: p.flag("FORCESSL", a),
    "CERTHOST": _Parser.certhost,
    "CERTIDENT": lambda p, a: p.ignored(
        "CERTIDENT", "NSS databases are not used; see CERTFILE for a client certificate"),
    "RUN_AS_USER": lambda p, a: (p.string("RUN_AS_USER", a), p.ignored(
        "RUN_AS_USER", "use twistd --uid/--gid or the service manager")),
    "DEBUG_MIN": lambda p, a: None,
    "CERTPIN": _Parser.certpin,
    "CERTFILE": lambda p, a: p.string("CERTFILE", a),
    "TLS_MIN_VERSION": _Parser.tls_min_version,
    "HEARTBEAT": _Parser.heartbeat,
}

_ARGS = {"MONITOR": 5, "NOTIFYMSG": 2, "NOTIFYFLAG": 2, "CERTHOST": 4, "CERTIDENT": 2,
         "CERTPIN": 2}
#: What a short line lacks, in the words of NUT's man page.
_USAGE = {
    "MONITOR": "<system> <powervalue> <username> <password> <primary|secondary>",
    "NOTIFYMSG": "<notify type> <message>",
    "NOTIFYFLAG": "<notify type> <flag>[+<flag>...]",
    "CERTHOST": "<hostname> <certname> <certverify> <forcessl>",
    "CERTIDENT": "<name> <password>",
    "CERTPIN": "<host> sha256:<hex>",
    "HEARTBEAT": "<system> [<window seconds>]",
}


def parse_upsmon_conf(data: bytes, path: str) -> UpsmonConf:
    """
    Parse the contents of C{upsmon.conf}.

    @param path: the file name, for warnings and errors.
    @raise ConfigError: see the module docstring.
    """
    parser = _Parser(path)
    for lineno, words in logical_lines(data, path, parser.warnings):
        parser.line(lineno, words)
    return replace(
        UpsmonConf(),
        monitors=tuple(parser.monitors),
        notifymsg=tuple(parser.notifymsg.items()),
        notifyflag=tuple(parser.notifyflag.items()),
        certhosts=tuple(parser.certhosts.values()),
        certpins=tuple(parser.certpins.items()),
        warnings=tuple(parser.warnings),
        **parser.fields,
    )


def load_upsmon_conf(path: str) -> UpsmonConf:
    """
    Read and parse C{upsmon.conf} (it holds passwords: a world-readable
    file gives a warning, as NUT's C{check_perms} does).

    @raise ConfigError: if it is missing or unreadable, or see
        L{parse_upsmon_conf}.
    """
    warnings: List[ConfigWarning] = []
    data = read_config_file(path, warnings, secret=True)
    if data is None:
        raise ConfigError(path, None, "not found")
    conf = parse_upsmon_conf(data, path)
    if warnings:
        conf = replace(conf, warnings=tuple(warnings) + conf.warnings)
    return conf
