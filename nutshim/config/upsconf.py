# -*- test-case-name: nutshim.test.test_config -*-
"""
C{ups.conf}, read the way NUT 2.8.0's upsd reads it.

Why it matters: the set and the order of UPSes upsd serves (C{LIST UPS}),
their descriptions (C{GET UPSDESC}) and the name of each driver's socket
(C{<driver>-<name>} in the state directory) all come from here, and NUT's
rules have corners people rely on without knowing:

 - C{[name]} starts a section; the name keeps its case.  Sections with
   I{exactly} the same name merge, later keys overriding earlier ones.
 - C{key = value} uses exactly three words (quote values with spaces);
   C{key=value} is the same thing since C{=} is always a word of its own;
   a lone word is a flag.  C{driver}, C{port} and C{desc} are case-sensitive
   keys; everything else is for the drivers and kept in
   L{UpsSection.options} as written.
 - Before the first section, only C{STATEPATH} (case-insensitive) matters.

What would drop or change a UPS is a L{ConfigError} naming the line (at
start nut-upsd stops; a reload keeps the running UPSes), where NUT logs a
warning, or nothing, and serves the rest: a parse error; a broken section
header such as C{[ups2} (NUT reads it as a flag and gives the lines after
it to the UPS above); words after a header; a line that is neither
C{key = value} nor a flag (C{driver usbhid-ups}: NUT ignores it); C{driver},
C{port} or C{desc} without a value; a section without C{driver} or
C{port} (NUT: "ignoring incomplete configuration"); two names differing
only in case (NUT: "UPS name [x] is already in use!", one of them
dropped).  So a file whose sections are all unusable never starts the
daemon.  Warnings: words after a value (C{desc = My UPS} is C{My} in NUT
too: quote it), and a file without any section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional

from ._errors import ConfigError, ConfigWarning, logical_lines, read_config_file

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

    @param path: the file name, for warnings and errors.
    @raise ConfigError: for anything that would drop or change a UPS (see
        the module docstring).
    """
    warnings: List[ConfigWarning] = []
    globals_: Dict[str, str] = {}
    # Keyed by the exact name; insertion order is the order of first use.
    table: Dict[str, _Builder] = {}
    current: Optional[_Builder] = None

    def fail(lineno: int, message: str) -> ConfigError:
        return ConfigError(path, lineno, message)

    def assign(lineno: int, key: str, value: Optional[str]) -> None:
        if current is None:
            globals_[key] = "" if value is None else value
            return
        if value is None and key in ("driver", "port", "desc"):
            raise fail(lineno, "%s without a value in [%s]" % (key, current.name))
        current.set(key, value)

    for lineno, words in logical_lines(data, path, warnings):
        first = words[0]
        if _is_header(first):
            name = first[1:-1]
            if not name:
                raise fail(lineno, "empty UPS name []")
            if len(words) > 1:
                raise fail(
                    lineno,
                    "words after the section header %s: put each key on a line of its own"
                    % (first,),
                )
            current = table.get(name)
            if current is None:
                current = table[name] = _Builder(name, lineno)
        elif first[:1] == "[" or first[-1:] == "]":
            raise fail(lineno, "broken section header %s: a UPS is [name], in one word" % (first,))
        elif "=" in first:
            # Only an escaped "\=" can put "=" inside a word.
            key, _, value = first.partition("=")
            assign(lineno, key, value)
        elif len(words) == 1:
            assign(lineno, first, None)
        elif len(words) >= 3 and words[1] == "=":
            assign(lineno, first, words[2])
            if len(words) > 3:
                warnings.append(ConfigWarning(
                    path, lineno,
                    "ignoring words after the value of %s"
                    " (quote values that contain spaces)" % (first,),
                ))
        elif len(words) == 2 and words[1] == "=":
            raise fail(lineno, "%s = without a value" % (first,))
        else:
            raise fail(lineno, "%s: neither 'key = value' nor a flag" % (first,))

    taken: Dict[str, _Builder] = {}
    for name, builder in table.items():
        missing = [key for key in ("driver", "port") if getattr(builder, key) is None]
        if missing:
            raise fail(
                builder.lineno,
                "[%s] has no %s: NUT would ignore this UPS" % (name, " and no ".join(missing)),
            )
        other = taken.get(name.lower())
        if other is not None:
            raise fail(
                builder.lineno,
                "UPS name [%s] is already in use by [%s] on line %d"
                " (upsd compares UPS names ignoring case)" % (name, other.name, other.lineno),
            )
        taken[name.lower()] = builder
    if not table:
        warnings.append(ConfigWarning(path, None, "no UPS definitions in ups.conf"))
    return UpsConf(
        sections=tuple(builder.build() for builder in table.values()),
        globals=MappingProxyType(globals_),
        warnings=tuple(warnings),
    )


def load_ups_conf(path: str) -> Optional[UpsConf]:
    """
    Read and parse C{ups.conf}.

    @return: L{None} if the file does not exist.
    @raise ConfigError: if it exists but cannot be read, or see
        L{parse_ups_conf}.
    """
    data = read_config_file(path)
    if data is None:
        return None
    return parse_ups_conf(data, path)
