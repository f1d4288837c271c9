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
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

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
    "SimFile",
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
    """

    var: str
    value: str
    lineno: int = 0


@dataclass(frozen=True)
class Timer:
    """
    C{TIMER <seconds>}: stop here and go on after C{seconds}.
    """

    seconds: int
    lineno: int = 0


@dataclass(frozen=True)
class TypeDecl:
    """
    C{TYPE <var> [RW] [STRING:<n>|NUMBER]}: the variable's flags and aux.
    """

    var: str
    rw: bool
    string: bool
    aux: int
    lineno: int = 0


@dataclass(frozen=True)
class EnumDecl:
    """
    C{ENUM <var> <value> [<value>…]}: allowed values, in order.
    """

    var: str
    values: Tuple[str, ...]
    lineno: int = 0


@dataclass(frozen=True)
class RangeDecl:
    """
    C{RANGE <var> <min> <max>}: one allowed range (repeatable).
    """

    var: str
    low: int
    high: int
    lineno: int = 0


@dataclass(frozen=True)
class CommandDecl:
    """
    C{CMD <name> [<var>: <value…>]}: an instant command and one effect.
    """

    name: str
    effect: Optional[Set]
    lineno: int = 0


@dataclass(frozen=True)
class Problem:
    """
    A line that was skipped, and why.
    """

    lineno: int
    message: str


Statement = Union[Set, Timer, TypeDecl, EnumDecl, RangeDecl, CommandDecl]


@dataclass(frozen=True)
class SimFile:
    """
    A parsed file: statements in file order, and the problems found.
    """

    statements: Tuple[Statement, ...]
    problems: Tuple[Problem, ...]


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
    return SimFile(tuple(statements), tuple(problems))
