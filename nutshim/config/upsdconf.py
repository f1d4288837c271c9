# -*- test-case-name: nutshim.test.test_config -*-
"""
C{upsd.conf}, read the way NUT 2.8's upsd reads it, plus nutshim's own keys.

Why the NUT rules are kept to the letter: an existing NUT installation should
be able to point nutshim at its C{/etc/nut} and get the same listeners, the
same staleness limit and the same TLS files.  So, as in NUT's
C{server/conf.c}:

 - keywords are case-sensitive (only C{DEBUG_MIN} is not, and it is accepted
   and ignored here);
 - nothing is fatal: an unknown keyword, a missing argument or a value NUT
   cannot use gives a warning (C{invalid directive ...}, C{MAXAGE has non
   numeric value (x)!}) and the line is skipped;
 - numbers are read like C{atoi} once their first character is a digit
   (C{MAXAGE 15s} is 15);
 - C{ACCEPT}, C{REJECT} and C{ACL} are accepted with NUT's warning that they
   are no longer supported;
 - C{LISTEN <addr> [<port>]} adds a listener (port 3493 by default, C{*} for
   every address, IPv6 literals as they are).  With no C{LISTEN} line NUT
   listens on the loopback addresses: see L{UpsdConf.listeners}.

Two deliberate differences: a C{LISTEN} port that is not a number raises
L{ConfigError} (NUT fails at startup when it cannot resolve it), and a
C{CERTREQUEST} outside 0-2 is ignored with a warning.  C{CERTIDENT}'s
password never appears in a warning.

nutshim extensions (NUT 2.8 would warn C{invalid directive} on each; bad
values raise L{ConfigError} since there is no NUT behaviour to preserve):

 - C{IDLE_TIMEOUT <seconds>}: drop clients silent for longer (NUT hard-codes
   60); C{0} never drops them.
 - C{MAXLINE <bytes>}: the longest request line accepted (default 4096,
   512 to 1048576), so a client cannot make the daemon buffer forever.
 - C{TLS_MIN_VERSION 1.2|1.3}: the oldest TLS offered (default 1.3).
 - C{TLS_HANDSHAKE_TIMEOUT <seconds>}: how long a client may take to finish
   the TLS handshake after C{OK STARTTLS} (default 10, 1 to 300).
 - C{TLS_REQUIRED off|remote|all}: refuse commands other than C{STARTTLS}
   before TLS, from nobody, from non-loopback clients, or from everybody.
   Unset means C{remote} when C{CERTFILE} is set, else C{off}: see
   L{UpsdConf.effective_tls_required}.
 - C{CMDVARTAB <path>}: the descriptions file, instead of
   C{<DATAPATH>/cmdvartab}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional

from ._errors import ConfigWarning, LineReader, logical_lines, read_config_file

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_LISTEN",
    "Listen",
    "UpsdConf",
    "parse_upsd_conf",
    "load_upsd_conf",
]

#: NUT's registered port.
DEFAULT_PORT = 3493

_DIGITS = "0123456789"
_NUMBER = re.compile(r"[0-9]+\Z")
_TRUE = frozenset(["true", "on", "yes", "1"])
_FALSE = frozenset(["false", "off", "no", "0"])
_CERTREQUEST = {"no": 0, "request": 1, "require": 2}
_TLS_REQUIRED = ("off", "remote", "all")
_TLS_VERSIONS = ("1.2", "1.3")
MIN_MAXLINE = 512
MAX_HANDSHAKE_TIMEOUT = 300
MAX_MAXLINE = 1048576


@dataclass(frozen=True)
class Listen:
    """
    One C{LISTEN} line.

    @ivar address: a host name or address as written; C{*} means every
        address (IPv6 and IPv4).
    @ivar port: the TCP port.
    """

    address: str
    port: int = DEFAULT_PORT


#: What upsd listens on when the file has no C{LISTEN} line.
DEFAULT_LISTEN = (Listen("127.0.0.1"), Listen("::1"))


@dataclass(frozen=True)
class UpsdConf:
    """
    The parsed file; every field has NUT's (or nutshim's) default.

    @ivar listen: the C{LISTEN} lines in order, without exact duplicates;
        empty when there were none (see L{listeners}).
    @ivar maxconn: L{None} means the open-files limit.
    @ivar certident: C{(name, password)}.
    @ivar certrequest: 0 (no client certificate), 1 (request), 2 (require).
    @ivar tls_required: L{None} when unset; see L{effective_tls_required}.
    """

    listen: tuple[Listen, ...] = ()
    maxage: int = 15
    maxconn: Optional[int] = None
    statepath: Optional[str] = None
    datapath: Optional[str] = None
    trackingdelay: int = 3600
    allow_no_device: bool = False
    allow_not_all_listeners: bool = False
    certfile: Optional[str] = None
    certpath: Optional[str] = None
    certident: Optional[tuple[str, str]] = None
    certrequest: int = 0
    disable_weak_ssl: bool = False
    idle_timeout: int = 60
    maxline: int = 4096
    tls_min_version: str = "1.3"
    tls_handshake_timeout: int = 10
    tls_required: Optional[str] = None
    cmdvartab: Optional[str] = None
    warnings: tuple[ConfigWarning, ...] = ()

    def listeners(self) -> tuple[Listen, ...]:
        """
        The addresses to listen on: the C{LISTEN} lines or NUT's default.
        """
        return self.listen or DEFAULT_LISTEN

    @property
    def effective_tls_required(self) -> str:
        """
        C{TLS_REQUIRED}, or its default: C{remote} when a certificate is
        configured (C{CERTFILE}), else C{off}.
        """
        if self.tls_required is not None:
            return self.tls_required
        return "remote" if self.certfile else "off"


def _atoi(text: str) -> int:
    end = 0
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    return int(text[:end])


def _digit_first(text: str) -> bool:
    return text[:1] != "" and text[0] in _DIGITS


def _boolean(text: str, digits: bool) -> Optional[bool]:
    if digits and _digit_first(text):
        return _atoi(text) != 0
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


class _Parser(LineReader):
    """
    One pass over the file, collecting fields for L{UpsdConf}.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.fields: Dict[str, Any] = {}
        self.listen: List[Listen] = []

    def line(self, lineno: int, words: List[str]) -> None:
        self.lineno = lineno
        key = words[0]
        extension = _EXTENSIONS.get(key)
        if extension is not None:
            if len(words) != 2:
                raise self.fail("%s takes exactly one value" % (key,))
            extension(self, words[1])
        elif not self.directive(words):
            if key.upper() == "CERTIDENT":
                shown = key + " (arguments hidden)"
            else:
                shown = " ".join(words)
            self.warn("invalid directive %s" % (shown,))

    def directive(self, words: List[str]) -> bool:
        """
        NUT's C{parse_upsd_conf_args}: C{False} means "invalid directive".
        """
        if len(words) < 2:
            return False
        key, value = words[0], words[1]
        if key.upper() == "DEBUG_MIN":
            if not _NUMBER.match(value):
                self.warn("DEBUG_MIN has non numeric or negative value in upsd.conf")
            return True
        if key in ("MAXAGE", "TRACKINGDELAY", "MAXCONN"):
            if not _digit_first(value):
                self.warn("%s has non numeric value (%s)!" % (key, value))
                return True
            self.fields[key.lower()] = _atoi(value)
            return True
        if key in ("ALLOW_NO_DEVICE", "ALLOW_NOT_ALL_LISTENERS", "DISABLE_WEAK_SSL"):
            numeric = key != "DISABLE_WEAK_SSL"
            flag = _boolean(value, digits=numeric)
            if flag is None:
                kind = "non numeric and non boolean" if numeric else "non boolean"
                self.warn("%s has %s value (%s)!" % (key, kind, value))
                return True
            self.fields[key.lower()] = flag
            return True
        if key in ("STATEPATH", "DATAPATH", "CERTFILE", "CERTPATH"):
            self.fields[key.lower()] = value
            return True
        if key == "CERTREQUEST":
            self.certrequest(value)
            return True
        if key in ("ACCEPT", "REJECT"):
            self.warn("%s in upsd.conf is no longer supported - switch to LISTEN" % (key,))
            return True
        if key == "LISTEN":
            self.add_listen(words)
            return True
        if len(words) < 3:
            return False
        if key == "ACL":
            self.warn("ACL in upsd.conf is no longer supported - switch to LISTEN")
            return True
        if key == "CERTIDENT":
            self.fields["certident"] = (words[1], words[2])
            return True
        return False

    def certrequest(self, value: str) -> None:
        if _digit_first(value):
            level: Optional[int] = _atoi(value)
        else:
            level = _CERTREQUEST.get(value.lower())
        if level is None or level > 2:
            self.warn(
                "CERTREQUEST must be 0, 1, 2, NO, REQUEST or REQUIRE, not %s" % (value,)
            )
        else:
            self.fields["certrequest"] = level

    def add_listen(self, words: List[str]) -> None:
        address = words[1]
        if not address:
            raise self.fail("LISTEN needs an address")
        port = DEFAULT_PORT
        if len(words) >= 3:
            text = words[2]
            if not _NUMBER.match(text) or int(text) > 65535:
                raise self.fail("LISTEN port must be a number from 0 to 65535, not %r" % (text,))
            port = int(text)
        if len(words) > 3:
            self.warn("ignoring words after LISTEN %s %s" % (words[1], words[2]))
        listener = Listen(address, port)
        if listener in self.listen:
            self.warn("duplicate LISTEN %s %d ignored" % (address, port))
        else:
            self.listen.append(listener)

    # nutshim extensions

    def idle_timeout(self, value: str) -> None:
        if not _NUMBER.match(value):
            raise self.fail(
                "IDLE_TIMEOUT must be a whole number of seconds (0: never), not %r" % (value,)
            )
        self.fields["idle_timeout"] = int(value)

    def maxline(self, value: str) -> None:
        if not _NUMBER.match(value) or not MIN_MAXLINE <= int(value) <= MAX_MAXLINE:
            raise self.fail(
                "MAXLINE must be a number of bytes from %d to %d, not %r"
                % (MIN_MAXLINE, MAX_MAXLINE, value)
            )
        self.fields["maxline"] = int(value)

    def tls_min_version(self, value: str) -> None:
        if value not in _TLS_VERSIONS:
            raise self.fail("TLS_MIN_VERSION must be 1.2 or 1.3, not %r" % (value,))
        self.fields["tls_min_version"] = value

    def tls_handshake_timeout(self, value: str) -> None:
        if not _NUMBER.match(value) or not 1 <= int(value) <= MAX_HANDSHAKE_TIMEOUT:
            raise self.fail(
                "TLS_HANDSHAKE_TIMEOUT must be a whole number of seconds from 1 to %d, not %r"
                % (MAX_HANDSHAKE_TIMEOUT, value)
            )
        self.fields["tls_handshake_timeout"] = int(value)

    def tls_required(self, value: str) -> None:
        if value.lower() not in _TLS_REQUIRED:
            raise self.fail("TLS_REQUIRED must be off, remote or all, not %r" % (value,))
        self.fields["tls_required"] = value.lower()

    def cmdvartab(self, value: str) -> None:
        if not value:
            raise self.fail("CMDVARTAB needs a file name")
        self.fields["cmdvartab"] = value


_EXTENSIONS = {
    "IDLE_TIMEOUT": _Parser.idle_timeout,
    "MAXLINE": _Parser.maxline,
    "TLS_MIN_VERSION": _Parser.tls_min_version,
    "TLS_HANDSHAKE_TIMEOUT": _Parser.tls_handshake_timeout,
    "TLS_REQUIRED": _Parser.tls_required,
    "CMDVARTAB": _Parser.cmdvartab,
}


def parse_upsd_conf(data: bytes, path: str) -> UpsdConf:
    """
    Parse the contents of C{upsd.conf}.

    @param path: the file name, for warnings and errors.
    @raise ConfigError: for a C{LISTEN} port that is not a number, or a bad
        value for one of nutshim's own keys.
    """
    parser = _Parser(path)
    for lineno, words in logical_lines(data, path, parser.warnings):
        parser.line(lineno, words)
    return replace(
        UpsdConf(),
        listen=tuple(parser.listen),
        warnings=tuple(parser.warnings),
        **parser.fields,
    )


def load_upsd_conf(path: str) -> Optional[UpsdConf]:
    """
    Read and parse C{upsd.conf}.

    @return: L{None} if the file does not exist (NUT refuses to start then;
        the caller decides).
    @raise ConfigError: if it cannot be read, or see L{parse_upsd_conf}.
    """
    warnings: List[ConfigWarning] = []
    data = read_config_file(path, warnings, secret=True)
    if data is None:
        return None
    conf = parse_upsd_conf(data, path)
    if warnings:
        conf = replace(conf, warnings=tuple(warnings) + conf.warnings)
    return conf
