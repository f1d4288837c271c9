# -*- test-case-name: nutshim.test.test_config -*-
"""
What can go wrong while reading NUT's configuration, and the helpers every
reader here shares to report it.

Two kinds of problems, because a reload must be atomic:

 - L{ConfigError}: the file says something nutshim cannot apply as written
   -- a line the tokenizer rejects (an unescaped C{#} in quotes, a quote
   not closed on its line), a broken section header, a known key with a
   missing or unusable value, a section that cannot be used.  NUT logs most
   of these and goes on with the rest of the file, which silently drops or
   changes users, UPSes and listeners (an unbalanced quote on line 8 of
   C{upsd.users} swallows every user after it).  nutshim refuses the whole
   file instead: at start the daemon stops with C{FILE:LINE: message}, on
   reload it keeps the running configuration.
 - L{ConfigWarning}: what NUT also tolerates and nutshim can read exactly
   as NUT does -- an unknown key, an obsolete one, a duplicate that changes
   nothing.  The pure parsers return these for the daemon to log.

Each reader's docstring says which constructs fall in which class.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterator, List, Optional

from nutshim.protocol._tokenizer import _QLITERAL, _QUOTE, ParseError, Result, _Machine

__all__ = [
    "ConfigError",
    "ConfigWarning",
    "LineReader",
    "logical_lines",
    "read_config_file",
    "tokenize_config",
]


def _where(path: str, lineno: Optional[int]) -> str:
    if lineno is None:
        return path
    return "%s:%d" % (path, lineno)


@dataclass(frozen=True)
class ConfigWarning:
    """
    A problem NUT would log and then ignore.

    @ivar path: the file (as the caller named it).
    @ivar lineno: the logical line number, or L{None} for the whole file.
    @ivar message: what is wrong, in NUT's words where NUT has any.
    """

    path: str
    lineno: Optional[int]
    message: str

    def __str__(self) -> str:
        return "%s: %s" % (_where(self.path, self.lineno), self.message)


class ConfigError(Exception):
    """
    A configuration problem that stops nutshim from starting.

    @ivar path: the file.
    @ivar lineno: the logical line number, or L{None}.
    @ivar message: what is wrong.
    """

    def __init__(self, path: str, lineno: Optional[int], message: str) -> None:
        super().__init__(path, lineno, message)
        self.path = path
        self.lineno = lineno
        self.message = message

    def __str__(self) -> str:
        return "%s: %s" % (_where(self.path, self.lineno), self.message)


class LineReader:
    """
    Base of the one-pass readers of NUT's files: knows which file and line
    it is at, so that every warning and error names them.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.warnings: List[ConfigWarning] = []
        self.lineno = 0

    def warn(self, message: str) -> None:
        self.warnings.append(ConfigWarning(self.path, self.lineno, message))

    def fail(self, message: str) -> ConfigError:
        return ConfigError(self.path, self.lineno, message)


def read_config_file(
    path: str, warnings: Optional[List[ConfigWarning]] = None, secret: bool = False
) -> Optional[bytes]:
    """
    Read a whole configuration file.

    @param warnings: where to add a warning if C{secret} is set and the file
        is readable by everybody (NUT's C{check_perms} does the same).
    @return: the bytes, or L{None} if the file does not exist.
    @raise ConfigError: if it exists but cannot be read.
    """
    try:
        with open(path, "rb") as f:
            if secret and warnings is not None:
                mode = os.fstat(f.fileno()).st_mode
                if mode & (stat.S_IROTH | stat.S_IXOTH):
                    warnings.append(ConfigWarning(path, None, "is world readable"))
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(path, None, "cannot read: %s" % (e.strerror or e,)) from e


#: Why a quote must close on its own line: NUT deletes the newline and reads
#: on, so one missing quote silently swallows the lines after it.
UNCLOSED_QUOTE = (
    "quote not closed on this line (a quoted value may go on to the next line"
    " only after a backslash)"
)


def tokenize_config(data: bytes) -> Iterator[tuple[int, Result]]:
    """
    The logical lines of a configuration file, each with the physical line
    it starts on, tokenized by NUT's machine.

    Unlike NUT (and L{nutshim.protocol.tokenize_file}), a quote still open
    at the end of a physical line is a L{ParseError} reported at the line
    where the quote opened, and parsing resumes on the next line: NUT would
    read on until some later quote and lose everything in between.  After
    an unescaped C{#} in quotes the rest of the physical line is a new
    logical line, as in NUT.
    """
    machine = _Machine()
    lineno = start = quote_line = 1
    for byte in data:
        before = machine.state
        if byte == 0x0A and before == _QUOTE:
            machine.reset()
            yield quote_line, ParseError(UNCLOSED_QUOTE, quote_line)
            lineno += 1
            start = lineno
            continue
        finished = False
        for result in machine.feed(bytes((byte,))):
            finished = True
            if isinstance(result, ParseError):
                yield lineno, ParseError(result.reason, lineno)
            elif result:
                yield start, result
        if machine.state == _QUOTE and before not in (_QUOTE, _QLITERAL):
            quote_line = lineno
        if byte == 0x0A:
            lineno += 1
        if finished:
            start = lineno
    if machine.state in (_QUOTE, _QLITERAL):
        yield quote_line, ParseError(UNCLOSED_QUOTE, quote_line)
    elif machine.words or machine.in_word:
        # A last line without its newline still counts.
        if machine.in_word:
            machine._end_word()
        yield start, machine.words


def logical_lines(
    data: bytes, path: str, warnings: List[ConfigWarning], strict: bool = True
) -> Iterator[tuple[int, List[str]]]:
    """
    The non-empty logical lines of a file, with the line each starts on.

    @param strict: a line the tokenizer rejects raises L{ConfigError} (the
        daemon's files); without it (data files such as C{cmdvartab}) it
        becomes a warning and is skipped, as in NUT.
    @raise ConfigError: see C{strict}.
    """
    for lineno, result in tokenize_config(data):
        if isinstance(result, ParseError):
            if strict:
                raise ConfigError(path, lineno, "parse error: " + result.reason)
            warnings.append(ConfigWarning(path, lineno, "parse error: " + result.reason))
        elif result:
            yield lineno, result
