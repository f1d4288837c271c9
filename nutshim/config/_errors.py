# -*- test-case-name: nutshim.test.test_config -*-
"""
What can go wrong while reading NUT's configuration, and the two helpers
every parser here shares to report it.

NUT is forgiving: a bad line in C{upsd.conf}, C{ups.conf} or C{upsd.users}
is logged and skipped, never fatal.  nutshim keeps that behaviour (so a file
NUT accepts is accepted here) but returns the complaints as
L{ConfigWarning} values instead of logging them, so the pure parsers stay
free of side effects and the daemon decides where they go.  L{ConfigError}
is kept for what cannot be worked around: a file that exists but cannot be
read, and bad values for nutshim's own keys (which NUT does not know, so
there is no NUT behaviour to preserve and failing loudly is kinder).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterator, List, Optional

from nutshim.protocol._tokenizer import ParseError, tokenize_file

__all__ = ["ConfigError", "ConfigWarning", "LineReader", "logical_lines", "read_config_file"]


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


def logical_lines(
    data: bytes, path: str, warnings: List[ConfigWarning]
) -> Iterator[tuple[int, List[str]]]:
    """
    The non-empty logical lines of a file, as NUT's C{pconf_file_next} sees
    them; lines it cannot parse become warnings and are skipped.
    """
    for lineno, result in tokenize_file(data):
        if isinstance(result, ParseError):
            warnings.append(ConfigWarning(path, lineno, "parse error: " + result.reason))
        elif result:
            yield lineno, result
