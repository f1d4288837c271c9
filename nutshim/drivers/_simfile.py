# -*- test-case-name: nutshim.test.test_sim -*-
"""
The file format of the simulation driver: NUT C{dummy-ups}'s, plus declarations.

C{dummy-ups} files are what people already have (C{upsc} dumps, NUT's own
C{.seq} samples, NIT's test data), so they must mean here exactly what they
mean to C{dummy-ups}: the same tokenizer (parseconf), the same cut of the
first word at its first colon, the same C{TIMER} prefix match, the same
127-character values.  What C{dummy-ups} cannot express (read-only variables,
enums, ranges, instant commands) is added with upper-case keywords that no
C{upsc} dump contains.

This module only turns bytes into statements and problems; it neither logs
nor touches the file system, so the driver decides what to do with both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from nutshim.protocol._tokenizer import ParseError, tokenize_file

__all__ = [
    "MAX_VALUE_LENGTH",
    "MAX_STATUS_LENGTH",
    "Set",
    "Timer",
    "TypeDecl",
    "EnumDecl",
    "RangeDecl",
    "CommandDecl",
    "Problem",
    "Declarations",
    "SimFile",
    "NO_DECLARATIONS",
    "DEFAULT_STRING_AUX",
    "Statement",
    "is_status",
    "parse",
]

#: C{dummy-ups} builds values in a 128-byte buffer (C{MAX_STRING_SIZE}).
MAX_VALUE_LENGTH = 127
#: C{ups.status} goes through the status buffer (C{ST_MAX_VALUE_LEN} 256).
MAX_STATUS_LENGTH = 255

_INT = re.compile(r"[+-]?[0-9]+\Z")
_SECONDS = re.compile(r"\+?[0-9]+\Z")
_STRING_AUX = re.compile(r"STRING:([0-9]+)\Z", re.IGNORECASE)
_DIRECTIVE = re.compile(r"[A-Z][A-Z0-9_]*\Z")


@dataclass(frozen=True)
class Set:
    """
    C{<var>: <value…>}: set a variable (delete it if C{value} is empty;
    C{ups.status} is rebuilt from its words instead and never deleted).

    Statements compare equal regardless of their line numbers, so that
    moving lines around does not count as a change of declarations.
    """

    var: str
    value: str
    lineno: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Timer:
    """
    C{TIMER <seconds>}: stop here and go on after C{seconds}.
    """

    seconds: int
    lineno: int = field(default=0, compare=False)


@dataclass(frozen=True)
class TypeDecl:
    """
    C{TYPE <var> [RW] [STRING:<n>|NUMBER]}: the variable's flags and aux.
    """

    var: str
    rw: bool
    string: bool
    aux: int
    lineno: int = field(default=0, compare=False)


@dataclass(frozen=True)
class EnumDecl:
    """
    C{ENUM <var> <value> [<value>…]}: allowed values, in order.
    """

    var: str
    values: Tuple[str, ...]
    lineno: int = field(default=0, compare=False)


@dataclass(frozen=True)
class RangeDecl:
    """
    C{RANGE <var> <min> <max>}: one allowed range (repeatable).
    """

    var: str
    low: int
    high: int
    lineno: int = field(default=0, compare=False)


@dataclass(frozen=True)
class CommandDecl:
    """
    C{CMD <name> [<var>: <value…>]}: an instant command and one effect.
    """

    name: str
    effect: Optional[Set]
    lineno: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Problem:
    """
    A line that was skipped, and why.
    """

    lineno: int
    message: str


Statement = Union[Set, Timer, TypeDecl, EnumDecl, RangeDecl, CommandDecl]


# dummy-ups.h nut_data[] in NUT 2.8.0: the variables it knows, with the aux
# of the STRING ones (0: a number).  Every one of them is RW.
_KNOWN_AUX: Dict[str, int] = {
    "ups.mfr": 32, "ups.model": 32, "ups.status": 32, "ups.serial": 32,
    "ups.load": 0, "ups.alarm": 32, "ups.time": 16, "ups.date": 16,
    "ups.mfr.date": 16, "ups.firmware": 16, "ups.firmware.aux": 16,
    "ups.temperature": 0, "ups.id": 16, "ups.delay.start": 0,
    "ups.delay.reboot": 0, "ups.delay.shutdown": 0, "ups.test.interval": 0,
    "ups.test.result": 16, "input.voltage": 0, "input.voltage.maximum": 0,
    "input.voltage.minimum": 0, "input.voltage.nominal": 0,
    "input.transfer.reason": 1, "input.transfer.low": 0, "input.transfer.high": 0,
    "input.sensitivity": 1, "input.quality": 6, "input.frequency": 0,
    "input.transfer.boost.low": 0, "input.transfer.boost.high": 0,
    "input.transfer.trim.low": 0, "input.transfer.trim.high": 0,
    "output.voltage": 0, "output.frequency": 0, "output.current": 0,
    "battery.charge": 0, "battery.charge.low": 0, "battery.voltage": 0,
    "battery.current": 0, "battery.runtime": 0, "battery.runtime.low": 0,
    "battery.charge.restart": 0, "battery.temperature": 0,
    "battery.voltage.nominal": 0, "ambient.temperature": 0,
    "ambient.temperature.alarm": 0, "ambient.temperature.high": 0,
    "ambient.temperature.low": 0, "ambient.humidity": 0,
    "ambient.humidity.alarm": 0, "ambient.humidity.high": 0,
    "ambient.humidity.low": 0,
}
#: Unknown variables are C{RW STRING} of this length, as in C{dummy-ups}.
DEFAULT_STRING_AUX = 32


@dataclass(frozen=True)
class Declarations:
    """
    What a file declares, keyed by lower-cased name; position-independent.

    @ivar types: C{TYPE} per variable (the last one wins).
    @ivar enums: C{ENUM} values per variable, all lines merged in order.
    @ivar ranges: C{RANGE}s per variable, in order.
    @ivar commands: per command, its spelling and its effects in order.
    """

    types: Mapping[str, TypeDecl]
    enums: Mapping[str, Tuple[str, ...]]
    ranges: Mapping[str, Tuple[Tuple[int, int], ...]]
    commands: Mapping[str, Tuple[str, Tuple[Set, ...]]]

    def type_of(self, var: str) -> Tuple[bool, bool, int]:
        """
        C{(rw, string, aux)} of a variable: declared, else C{dummy-ups}'s.
        """
        decl = self.types.get(var.lower())
        if decl is not None:
            return decl.rw, decl.string, decl.aux
        aux = _KNOWN_AUX.get(var.lower(), DEFAULT_STRING_AUX)
        return True, aux > 0, aux

    def changed_variables(self, other: Declarations) -> List[str]:
        """
        Lower-cased names of variables whose TYPE, ENUM or RANGE differ.
        """
        changed = set()
        pairs: List[Tuple[Mapping[str, object], Mapping[str, object]]] = [
            (self.types, other.types), (self.enums, other.enums), (self.ranges, other.ranges)]
        for mine, theirs in pairs:
            for key in set(mine) | set(theirs):
                if mine.get(key) != theirs.get(key):
                    changed.add(key)
        return sorted(changed)


NO_DECLARATIONS = Declarations({}, {}, {}, {})


def _declarations(statements: Sequence[Statement]) -> Declarations:
    types: Dict[str, TypeDecl] = {}
    enums: Dict[str, Tuple[str, ...]] = {}
    ranges: Dict[str, Tuple[Tuple[int, int], ...]] = {}
    cmds: Dict[str, Tuple[str, Tuple[Set, ...]]] = {}
    for st in statements:
        if isinstance(st, TypeDecl):
            types[st.var.lower()] = st
        elif isinstance(st, EnumDecl):
            enums[st.var.lower()] = enums.get(st.var.lower(), ()) + st.values
        elif isinstance(st, RangeDecl):
            ranges[st.var.lower()] = ranges.get(st.var.lower(), ()) + ((st.low, st.high),)
        elif isinstance(st, CommandDecl):
            name, effects = cmds.get(st.name.lower(), (st.name, ()))
            cmds[st.name.lower()] = (name, effects + (() if st.effect is None else (st.effect,)))
    return Declarations(types, enums, ranges, cmds)


@dataclass(frozen=True)
class SimFile:
    """
    A parsed file.

    @ivar statements: every statement, in file order.
    @ivar problems: the lines left out, and why.
    @ivar timeline: the L{Set}s and L{Timer}s, in file order: what is played.
    @ivar declarations: the L{Declarations}, which apply to the whole file.
    """

    statements: Tuple[Statement, ...]
    problems: Tuple[Problem, ...]
    timeline: Tuple[Union[Set, Timer], ...] = ()
    declarations: Declarations = NO_DECLARATIONS


def is_status(var: str) -> bool:
    """
    Whether C{var} names C{ups.status} (which is rebuilt, not stored).
    """
    return var.lower() == "ups.status"


def _assignment(words: Sequence[str], lineno: int) -> Union[Set, Problem, None]:
    """
    C{dummy-ups}'s reading of C{<var>: <value…>}.

    @return: the L{Set}, a L{Problem}, or L{None} for C{driver.*} lines.
    """
    first = words[0]
    var, colon, _ = first.partition(":")
    if not colon and len(words) == 1:
        if _DIRECTIVE.match(first):
            return Problem(lineno, f"unknown keyword {first!r}")
        return Problem(lineno, f"expected '<variable>: <value>', got {first!r}")
    if not var:
        return Problem(lineno, "missing variable name before ':'")
    if var.lower().startswith("driver."):
        # The driver publishes its own driver.* variables.
        return None
    value = " ".join(words[1:])
    if is_status(var):
        value = " ".join(value.split())[:MAX_STATUS_LENGTH]
    else:
        value = value[:MAX_VALUE_LENGTH]
    return Set(var, value, lineno)


def _type(words: Sequence[str], lineno: int) -> Union[TypeDecl, Problem]:
    if len(words) < 2:
        return Problem(lineno, "TYPE needs a variable name")
    rw = False
    kind: Optional[Tuple[bool, int]] = None
    for word in words[2:]:
        string = _STRING_AUX.match(word)
        if word.upper() == "RW" and not rw:
            rw = True
        elif word.upper() == "NUMBER" and kind is None:
            kind = (False, 0)
        elif string and kind is None and int(string.group(1)) > 0:
            kind = (True, int(string.group(1)))
        else:
            return Problem(lineno, f"TYPE: unexpected {word!r} "
                           "(expected RW, STRING:<length> or NUMBER, once each)")
    string_flag, aux = kind if kind is not None else (False, 0)
    return TypeDecl(words[1], rw, string_flag, aux, lineno)


def _enum(words: Sequence[str], lineno: int) -> Union[EnumDecl, Problem]:
    if len(words) < 3:
        return Problem(lineno, "ENUM needs a variable name and at least one value")
    return EnumDecl(words[1], tuple(words[2:]), lineno)


def _range(words: Sequence[str], lineno: int) -> Union[RangeDecl, Problem]:
    if len(words) != 4 or not (_INT.match(words[2]) and _INT.match(words[3])):
        return Problem(lineno, "RANGE needs a variable name, a minimum and a maximum (integers)")
    low, high = int(words[2]), int(words[3])
    if low > high:
        return Problem(lineno, f"RANGE: minimum {low} is above maximum {high}")
    return RangeDecl(words[1], low, high, lineno)


def _command(words: Sequence[str], lineno: int) -> Union[CommandDecl, Problem]:
    if len(words) < 2:
        return Problem(lineno, "CMD needs a command name")
    if len(words) == 2:
        return CommandDecl(words[1], None, lineno)
    effect = _assignment(words[2:], lineno)
    if effect is None:
        return Problem(lineno, "CMD: driver.* variables cannot be changed")
    if isinstance(effect, Problem):
        return Problem(lineno, f"CMD effect: {effect.message}")
    return CommandDecl(words[1], effect, lineno)


def _timer(words: Sequence[str], lineno: int) -> Union[Timer, Problem]:
    if len(words) < 2 or not _SECONDS.match(words[1]):
        return Problem(lineno, "TIMER needs a number of seconds (a non-negative integer)")
    return Timer(int(words[1]), lineno)


_KEYWORDS = {"TYPE": _type, "ENUM": _enum, "RANGE": _range, "CMD": _command}


def parse(data: bytes) -> SimFile:
    """
    Parse a C{.dev}/C{.seq} file.

    Lines are tokenized like every NUT configuration file.  C{TIMER} is
    recognised by prefix, as C{dummy-ups} does (C{TIMERS 5} is a timer);
    the extension keywords only as whole, upper-case first words.

    @param data: the file's bytes.
    @return: a L{SimFile}; bad lines are left out and listed as problems.
    """
    statements: List[Statement] = []
    problems: List[Problem] = []
    for lineno, words in tokenize_file(data):
        if isinstance(words, ParseError):
            problems.append(Problem(lineno, words.reason))
            continue
        first = words[0]
        result: Union[Statement, Problem, None]
        if first.startswith("TIMER"):
            result = _timer(words, lineno)
        elif first in _KEYWORDS:
            result = _KEYWORDS[first](words, lineno)
        elif first == "ALARM":
            result = Problem(lineno, "ALARM (dummy-ups 2.8.4+) is not supported")
        else:
            result = _assignment(words, lineno)
        if isinstance(result, Problem):
            problems.append(result)
        elif result is not None:
            statements.append(result)
    timeline = tuple(s for s in statements if isinstance(s, (Set, Timer)))
    return SimFile(tuple(statements), tuple(problems), timeline, _declarations(statements))
