# -*- test-case-name: nutshim.test.test_config -*-
"""
C{upsd.conf}, read the way NUT 2.8's upsd reads it, plus nutshim's own keys.

Why the NUT rules are kept to the letter: an existing NUT installation should
be able to point nutshim at its C{/etc/nut} and get the same listeners, the
same staleness limit and the same TLS files.  So, as in NUT's
C{server/conf.c}:

 - keywords are case-sensitive (only C{DEBUG_MIN} is not, and it is accepted
   and ignored here);
 - numbers are read like C{atoi} once their first character is a digit
   (C{MAXAGE 15s} is 15);
 - C{LISTEN <addr> [<port>]} adds a listener (port 3493 by default, C{*} for
   every address, IPv6 literals as they are).  With no C{LISTEN} line NUT
   listens on the loopback addresses: see L{UpsdConf.listeners}.

Errors and warnings (a reload is atomic: see L{nutshim.config._errors}).
NUT logs every problem and reads on; nutshim raises L{ConfigError} naming
the line for what would change a setting against what the file says: a
parse error; a known keyword without its value (C{MAXAGE} alone); a value
NUT refuses (C{MAXAGE abc}, C{ALLOW_NO_DEVICE maybe}, C{CERTREQUEST 3}: NUT
logs "has non numeric value" and keeps the old value); a C{LISTEN} port
that is not a number (NUT fails at startup) or words after it (NUT ignores
them: C{LISTEN 0.0.0.0 401 TLS} would serve plaintext); C{CERTIDENT}
without its password.  Warnings, as in NUT: unknown keywords (and known
ones in the wrong case), C{ACCEPT}/C{REJECT}/C{ACL} (no longer supported),
a bad C{DEBUG_MIN}, a duplicate C{LISTEN}.  C{CERTIDENT}'s password never
appears in a message.

nutshim extensions (NUT 2.8 warns C{invalid directive} on each and skips
it, so one file can serve both; bad values raise L{ConfigError}):

 - C{LISTEN_TLS <addr> [<port>]}: a TLS-only listener (port 401 by
   default): every client, loopback included, must STARTTLS first; needs
   C{CERTFILE}.  It adds to the C{LISTEN} lines (or to their loopback
   default, which NUT reading the same file also serves).
 - C{IDLE_TIMEOUT <seconds>}: drop clients silent for longer (NUT hard-codes
   60); C{0} never drops them.
 - C{MAXLINE <bytes>}: the longest request line accepted (default 4096,
   512 to 1048576), so a client cannot make the daemon buffer forever.
 - C{TLS_MIN_VERSION 1.2|1.3}: the oldest TLS offered (default 1.3).
 - C{TLS_HANDSHAKE_TIMEOUT <seconds>}: how long a client may take to finish
   the TLS handshake after C{OK STARTTLS} (default 10, 1 to 300).
 - C{TLS_REQUIRED off|remote|all}: refuse commands other than C{STARTTLS}
   before TLS, from nobody, from non-loopback clients, or from everybody,
   on the C{LISTEN} listeners.  Unset means C{remote} when C{CERTFILE} is
   set, else C{off}: see L{UpsdConf.effective_tls_required}.
 - C{CMDVARTAB <path>}: the descriptions file, instead of
   C{<DATAPATH>/cmdvartab}.
 - C{HTTP_LISTEN <address> <port> [TLS]}, C{HTTP_LISTEN <port>} or
   C{HTTP_LISTEN <endpoint>} (repeatable): serve the read-only HTTP side
   (Prometheus C{/metrics}, JSON, status page; docs/metrics.md) on an
   address and port (as C{LISTEN}; C{TLS}: HTTPS with C{CERTFILE}), on a
   port of 127.0.0.1 only, or on a Twisted endpoint
   (C{tcp:9199:interface=127.0.0.1}, C{tls:<endpoint>}; the tokenizer's
   C{=} words are joined back).  None by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional

from ._errors import ConfigError, ConfigWarning, LineReader, logical_lines, read_config_file

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "DEFAULT_LISTEN",
    "Listen",
    "UpsdConf",
    "parse_upsd_conf",
    "load_upsd_conf",
]

#: NUT's registered port.
DEFAULT_PORT = 3493
#: The port of TLS-only listeners (the 2022 request to IANA for NUT over TLS).
DEFAULT_TLS_PORT = 401

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
    One C{LISTEN} or C{LISTEN_TLS} line.

    @ivar address: a host name or address as written; C{*} means every
        address (IPv6 and IPv4).
    @ivar port: the TCP port.
    @ivar tls_only: C{LISTEN_TLS}: every client must STARTTLS first.
    @ivar lineno: the line in C{upsd.conf} (0: a default); not compared.
    """

    address: str
    port: int = DEFAULT_PORT
    tls_only: bool = False
    lineno: int = field(default=0, compare=False)

    @property
    def directive(self) -> str:
        """
        How the line reads in C{upsd.conf}.
        """
        return "%s %s %d" % ("LISTEN_TLS" if self.tls_only else "LISTEN", self.address, self.port)


#: What upsd listens on when the file has no C{LISTEN} line.
DEFAULT_LISTEN = (Listen("127.0.0.1"), Listen("::1"))


@dataclass(frozen=True)
class UpsdConf:
    """
    The parsed file; every field has NUT's (or nutshim's) default.

    @ivar listen: the C{LISTEN} lines in order, without exact duplicates;
        empty when there were none (see L{listeners}).
    @ivar listen_tls: the C{LISTEN_TLS} lines in order.
    @ivar maxconn: L{None} means the open-files limit.
    @ivar certident: C{(name, password)}.
    @ivar certrequest: 0 (no client certificate), 1 (request), 2 (require).
    @ivar tls_required: L{None} when unset; see L{effective_tls_required}.
    """

    listen: tuple[Listen, ...] = ()
    listen_tls: tuple[Listen, ...] = ()
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
    #: C{HTTP_LISTEN} lines: C{(endpoint, line number)}.
    http_listen: tuple[tuple[str, int], ...] = ()
    warnings: tuple[ConfigWarning, ...] = ()

    def listeners(self) -> tuple[Listen, ...]:
        """
        The addresses to listen on: the C{LISTEN} lines or NUT's loopback
        default (without a default address and port a C{LISTEN_TLS} line
        takes), then the C{LISTEN_TLS} lines.
        """
        plain = self.listen
        if not plain:
            claimed = {(l.address, l.port) for l in self.listen_tls}
            plain = tuple(l for l in DEFAULT_LISTEN if (l.address, l.port) not in claimed)
        return plain + self.listen_tls

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


#: Keywords NUT knows, and how many values each needs.
_KNOWN = {
    "MAXAGE": 1, "TRACKINGDELAY": 1, "MAXCONN": 1, "ALLOW_NO_DEVICE": 1,
    "ALLOW_NOT_ALL_LISTENERS": 1, "DISABLE_WEAK_SSL": 1, "STATEPATH": 1, "DATAPATH": 1,
    "CERTFILE": 1, "CERTPATH": 1, "CERTREQUEST": 1, "LISTEN": 1, "LISTEN_TLS": 1,
    "CERTIDENT": 2,
}


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
        if key == "HTTP_LISTEN":
            self.http_listen(_http_words(words[1:]))
            return
        extension = _EXTENSIONS.get(key)
        if extension is not None:
            if len(words) != 2:
                raise self.fail("%s takes exactly one value" % (key,))
            extension(self, words[1])
            return
        needed = _KNOWN.get(key)
        if needed is not None and len(words) - 1 < needed:
            if key == "CERTIDENT":
                raise self.fail("CERTIDENT needs a name and a password")
            what = "an address" if key.startswith("LISTEN") else "a value"
            raise self.fail("%s needs %s" % (key, what))
        if not self.directive(words):
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
                raise self.fail("%s has non numeric value (%s)!" % (key, value))
            self.fields[key.lower()] = _atoi(value)
            return True
        if key in ("ALLOW_NO_DEVICE", "ALLOW_NOT_ALL_LISTENERS", "DISABLE_WEAK_SSL"):
            numeric = key != "DISABLE_WEAK_SSL"
            flag = _boolean(value, digits=numeric)
            if flag is None:
                kind = "non numeric and non boolean" if numeric else "non boolean"
                raise self.fail("%s has %s value (%s)!" % (key, kind, value))
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
        if key in ("LISTEN", "LISTEN_TLS"):
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
            raise self.fail(
                "CERTREQUEST must be 0, 1, 2, NO, REQUEST or REQUIRE, not %s" % (value,)
            )
        self.fields["certrequest"] = level

    def add_listen(self, words: List[str]) -> None:
        key, address = words[0], words[1]
        tls_only = key == "LISTEN_TLS"
        if not address:
            raise self.fail("%s needs an address" % (key,))
        port = DEFAULT_TLS_PORT if tls_only else DEFAULT_PORT
        if len(words) >= 3:
            text = words[2]
            if not _NUMBER.match(text) or int(text) > 65535:
                raise self.fail("%s port must be a number from 0 to 65535, not %r" % (key, text))
            port = int(text)
        if len(words) > 3:
            hint = "" if tls_only else "; a TLS-only listener is LISTEN_TLS <address> [<port>]"
            raise self.fail(
                "%s takes an address and a port, not %r%s" % (key, " ".join(words[3:]), hint)
            )
        listener = Listen(address, port, tls_only, lineno=self.lineno)
        for other in self.listen:
            if (other.address, other.port) != (address, port):
                continue
            if other.tls_only == tls_only:
                self.warn("duplicate %s ignored" % (listener.directive,))
                return
            raise self.fail(
                "%s clashes with %s on line %d: one address and port has one policy"
                % (listener.directive, other.directive, other.lineno)
            )
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

    def http_listen(self, value: str) -> None:
        if not value:
            raise self.fail("HTTP_LISTEN needs a port, an address and a port, or an endpoint")
        why = _http_endpoint_problem(value)
        if why is not None:
            raise self.fail("HTTP_LISTEN %s: %s" % (value, why))
        self.fields["http_listen"] = self.fields.get("http_listen", ()) + ((value, self.lineno),)


_EXTENSIONS = {
    "IDLE_TIMEOUT": _Parser.idle_timeout,
    "MAXLINE": _Parser.maxline,
    "TLS_MIN_VERSION": _Parser.tls_min_version,
    "TLS_HANDSHAKE_TIMEOUT": _Parser.tls_handshake_timeout,
    "TLS_REQUIRED": _Parser.tls_required,
    "CMDVARTAB": _Parser.cmdvartab,
    "HTTP_LISTEN": _Parser.http_listen,
}

_HTTP_KINDS = ("tcp", "tcp6", "ssl", "unix", "systemd")


def _http_words(words: List[str]) -> str:
    """
    The endpoint an C{HTTP_LISTEN} line means: C{<address> <port> [TLS]}
    as an endpoint string, else the words joined (NUT's tokenizer makes
    C{=} a word of its own; endpoint strings hold no blanks).
    """
    if len(words) in (2, 3) and _NUMBER.match(words[1]) and "=" not in words:
        address, port = words[0], words[1]
        tls = len(words) == 3 and words[2].upper() == "TLS"
        if len(words) == 3 and not tls:
            return " ".join(words)  # refused by the check
        if ":" in address:
            kind, address = "tcp6", address.strip("[]").replace(":", "\\:")
        else:
            kind = "tcp"
        if address == "*":
            kind, address = "tcp6", "\\:\\:"
        return ("tls:" if tls else "") + f"{kind}:{port}:interface={address}"
    return "".join(words)


def _http_endpoint_problem(value: str) -> Optional[str]:
    """
    Why C{value} cannot be an C{HTTP_LISTEN} endpoint, or L{None}: a port,
    C{tls:} and a port or endpoint, or a Twisted endpoint whose kind is
    known and whose port (for tcp, tcp6, ssl) is a number.
    """
    rest = value[4:] if value.startswith("tls:") else value
    if _NUMBER.match(rest):
        return None if int(rest) <= 65535 else "port out of range"
    kind, _, args = rest.partition(":")
    if kind not in _HTTP_KINDS:
        return "expected a port or a tcp:, tcp6:, ssl:, unix: or systemd: endpoint"
    if kind in ("tcp", "tcp6", "ssl"):
        port = args.split(":", 1)[0]
        if port.startswith("port="):
            port = port[5:]
        if not _NUMBER.match(port) or int(port) > 65535:
            return "the port must be a number from 0 to 65535"
    return None


def parse_upsd_conf(data: bytes, path: str) -> UpsdConf:
    """
    Parse the contents of C{upsd.conf}.

    @param path: the file name, for warnings and errors.
    @raise ConfigError: see the module docstring.
    """
    parser = _Parser(path)
    for lineno, words in logical_lines(data, path, parser.warnings):
        parser.line(lineno, words)
    tls_only = [l for l in parser.listen if l.tls_only]
    if tls_only and not parser.fields.get("certfile"):
        raise ConfigError(
            path,
            tls_only[0].lineno,
            "%s needs CERTFILE: a TLS-only listener cannot serve anybody without a"
            " certificate (make one with: nutshim-pki server NAME)" % (tls_only[0].directive,),
        )
    return replace(
        UpsdConf(),
        listen=tuple(l for l in parser.listen if not l.tls_only),
        listen_tls=tuple(tls_only),
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
