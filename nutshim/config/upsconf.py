# -*- test-case-name: nutshim.test.test_config -*-
"""
C{ups.conf}, read the way NUT 2.8.0's upsd reads it.

Why it matters: the set and the order of UPSes upsd serves (C{LIST UPS}),
their descriptions (C{GET UPSDESC}) and the name of each driver's socket
(C{<driver>-<name>} in the state directory) all come from here, and NUT's
rules have corners people rely on without knowing:

 - C{[name]} starts a section; the name keeps its case.  Sections with
   I{exactly} the same name merge, later keys overriding earlier ones.
 - Two names differing only in case clash: NUT logs
   C{UPS name [x] is already in use!} and, because it walks its list in
   reverse file order, the I{later} section survives.
 - A section without both C{driver} and C{port} is dropped
   (C{ignoring incomplete configuration}); it does not take part in the clash
   above.
 - C{key = value} uses exactly three words (quote values with spaces);
   C{key=value} is the same thing since C{=} is always a word of its own;
   a lone word is a flag.  C{driver}, C{port} and C{desc} are case-sensitive
   keys; everything else is for the drivers and kept in
   L{UpsSection.options} as written.
 - Before the first section, only C{STATEPATH} (case-insensitive) matters.

nutshim adds warnings where NUT silently ignores a line (a two-word line,
extra words after a value): a misquoted C{desc} is the commonest mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional

from ._errors import ConfigWarning, logical_lines, read_config_file

__all__ = ["UpsSection", "UpsConf", "parse_ups_conf", "load_ups_conf"]


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class UpsSection:
    """
    One complete UPS definition.

    @ivar name: the section name, case preserved.
    @ivar driver: the C{driver} key (never L{None} in a L{UpsConf}).
    @ivar port: the C{port} key (never L{None} in a L{UpsConf}).
    @ivar desc: the C{desc} key, or L{None}.
    @ivar options: every key of the section as written, flags mapped to C{""}.
    @ivar lineno: the line of the section's first header.
    """

    name: str
    driver: Optional[str]
    port: Optional[str]
    desc: Optional[str]
    options: Mapping[str, str] = field(default_factory=_empty)
    lineno: int = 0

    @property
    def socket_name(self) -> str:
        """
        The driver socket's file name in the state directory.
        """
        return "%s-%s" % (self.driver, self.name)


@dataclass(frozen=True)
class UpsConf:
    """
    The parsed file.

    @ivar sections: the usable UPSes, in file order.
    @ivar globals: the keys before the first section, as written.
    @ivar warnings: what NUT would have logged.
    """

    sections: tuple[UpsSection, ...] = ()
    globals: Mapping[str, str] = field(default_factory=_empty)
    warnings: tuple[ConfigWarning, ...] = ()

    @property
    def statepath(self) -> Optional[str]:
        """
        The global C{STATEPATH} (key matched case-insensitively; last wins).
        """
        found = None
        for key, value in self.globals.items():
            if key.lower() == "statepath":
                found = value
        return found

    def get(self, name: str) -> Optional[UpsSection]:
        """
        The section called C{name}, compared case-insensitively as upsd does.
        """
        folded = name.lower()
        for section in self.sections:
            if section.name.lower() == folded:
                return section
        return None


class _Builder:
    __slots__ = ("name", "lineno", "driver", "port", "desc", "options")

    def __init__(self, name: str, lineno: int) -> None:
        self.name = name
        self.lineno = lineno
        self.driver: Optional[str] = None
        self.port: Optional[str] = None
        self.desc: Optional[str] = None
        self.options: Dict[str, str] = {}

    def set(self, key: str, value: Optional[str]) -> None:
        if key == "driver":
            self.driver = value
        elif key == "port":
            self.port = value
        elif key == "desc":
            self.desc = value
        self.options[key] = "" if value is None else value

    def build(self) -> UpsSection:
        return UpsSection(
            name=self.name,
            driver=self.driver,
            port=self.port,
            desc=self.desc,
            options=MappingProxyType(dict(self.options)),
            lineno=self.lineno,
        )


def _is_header(word: str) -> bool:
    return len(word) >= 2 and word[0] == "[" and word[-1] == "]"


def parse_ups_conf(data: bytes, path: str) -> UpsConf:
    """
    Parse the contents of C{ups.conf}.

    @param path: the file name, for warnings.
    """
    warnings: List[ConfigWarning] = []
    globals_: Dict[str, str] = {}
    # Keyed by the exact name; insertion order is the order of first use.
    table: Dict[str, _Builder] = {}
    # Sections seen, even empty ones: (name, header line), first header only.
    headers: Dict[str, int] = {}
    current: Optional[str] = None

    def warn(lineno: Optional[int], message: str) -> None:
        warnings.append(ConfigWarning(path, lineno, message))

    def assign(lineno: int, key: str, value: Optional[str]) -> None:
        if current is None:
            globals_[key] = "" if value is None else value
            return
        builder = table.get(current)
        if builder is None:
            builder = table[current] = _Builder(current, headers[current])
        if value is None and key in ("driver", "port", "desc"):
            warn(lineno, "%s without a value in [%s]" % (key, current))
        builder.set(key, value)

    for lineno, words in logical_lines(data, path, warnings):
        first = words[0]
        if _is_header(first):
            current = first[1:-1]
            headers.setdefault(current, lineno)
            if len(words) > 1:
                warn(lineno, "ignoring words after section header %s" % (first,))
        elif "=" in first:
            # Only an escaped "\=" can put "=" inside a word.
            key, _, value = first.partition("=")
            assign(lineno, key, value)
        elif len(words) == 1:
            assign(lineno, first, None)
        elif len(words) >= 3 and words[1] == "=":
            assign(lineno, first, words[2])
            if len(words) > 3:
                warn(
                    lineno,
                    "ignoring words after the value of %s"
                    " (quote values that contain spaces)" % (first,),
                )
        else:
            warn(lineno, "ignoring line that is neither 'key = value' nor a flag")

    # upsd walks the table in reverse and keeps the first name it sees in
    # each letter case, i.e. the later section of the file.
    kept: List[UpsSection] = []
    taken: set[str] = set()
    for name, builder in reversed(list(table.items())):
        if builder.driver is None or builder.port is None:
            warn(builder.lineno, "ignoring incomplete configuration for UPS [%s]" % (name,))
        elif name.lower() in taken:
            warn(builder.lineno, "UPS name [%s] is already in use!" % (name,))
        else:
            taken.add(name.lower())
            kept.append(builder.build())
    for name, lineno in headers.items():
        if name not in table:
            warn(lineno, "ignoring incomplete configuration for UPS [%s]" % (name,))
    kept.reverse()
    if not kept:
        warn(None, "no usable UPS definitions in ups.conf")
    warnings.sort(key=lambda w: (w.lineno is None, w.lineno or 0))
    return UpsConf(
        sections=tuple(kept),
        globals=MappingProxyType(globals_),
        warnings=tuple(warnings),
    )


def load_ups_conf(path: str) -> Optional[UpsConf]:
    """
    Read and parse C{ups.conf}.

    @return: L{None} if the file does not exist.
    @raise ConfigError: if it exists but cannot be read.
    """
    data = read_config_file(path)
    if data is None:
        return None
    return parse_ups_conf(data, path)
