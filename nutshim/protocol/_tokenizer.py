# -*- test-case-name: nutshim.test.test_tokenizer -*-
"""
NUT's word tokenizer (C{common/parseconf.c}), for requests and for config files.

Every NUT program splits lines into words with one state machine: double quotes
group words, a backslash makes the next byte literal, C{#} starts a comment,
C{=} is always a word of its own, and bytes below 0x20 or above 0x7F are silently
deleted (even in the middle of a word).  Clients depend on these exact rules
(upsrw quotes and escapes values; PyNUT does not), so the same machine serves
the network and the configuration files here.

Where NUT's machine has bugs that lose data (an unescaped C{#} in quotes eats
the rest of the read chunk, an unterminated quote swallows newlines forever)
this one reports a L{ParseError} for that one logical line instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Union

__all__ = [
    "plain_words",
    "MAX_WORDS",
    "MAX_WORD_LENGTH",
    "ParseError",
    "RequestTokenizer",
    "tokenize_file",
    "encode",
    "quote",
]

#: Words past the 32nd on one line are dropped (C{PCONF_DEFAULT_ARG_LIMIT}).
MAX_WORDS = 32
#: Characters past the 512th of a word are dropped (C{PCONF_DEFAULT_WORDLEN_LIMIT}).
MAX_WORD_LENGTH = 512

_SPACE = frozenset(b" \t\r\v\f")

# States of the machine.
_START, _COLLECT, _LITERAL, _QUOTE, _QLITERAL, _EOL = range(6)

# Lines made only of printable ASCII, spaces and the whitespace class, without
# any of the four special characters, split exactly like str.split() would.
_PLAIN = re.compile(rb"[ \t\r\v\f!$-<>-\[\]-~]*\Z")


@dataclass(frozen=True)
class ParseError:
    """
    One logical line that NUT's parser rejects.

    @ivar reason: NUT's wording of the problem, for logs.
    @ivar lineno: the logical line number (config files) or 0.
    """

    reason: str
    lineno: int = 0


Result = Union[List[str], ParseError]


class _Machine:
    """
    The byte-at-a-time state machine; callers decide what a line is.
    """

    __slots__ = ("state", "words", "word", "in_word", "continued")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.state = _START
        self.words: List[str] = []
        self.word: List[int] = []
        self.in_word = False
        self.continued = False

    def _add(self, byte: int) -> None:
        if 0x20 <= byte <= 0x7F and len(self.word) < MAX_WORD_LENGTH:
            self.word.append(byte)

    def _end_word(self) -> None:
        if len(self.words) < MAX_WORDS:
            self.words.append(bytes(self.word).decode("ascii"))
        self.word = []
        self.in_word = False

    def _emit_equals(self) -> None:
        if len(self.words) < MAX_WORDS:
            self.words.append("=")

    def feed(self, data: bytes) -> Iterator[Result]:
        """
        Run C{data} through the machine, yielding each finished line.
        """
        for byte in data:
            state = self.state
            self.continued = False
            if state == _START:
                if byte == 0x0A:
                    yield self._finish()
                elif byte == 0x23:  # '#'
                    self.state = _EOL
                elif byte in _SPACE:
                    pass
                elif byte == 0x5C:  # '\'
                    self.in_word = True
                    self.state = _LITERAL
                elif byte == 0x22:  # '"'
                    self.in_word = True
                    self.state = _QUOTE
                elif byte == 0x3D:  # '='
                    self._emit_equals()
                else:
                    self.in_word = True
                    self._add(byte)
                    self.state = _COLLECT
            elif state == _COLLECT:
                if byte == 0x23:
                    self._end_word()
                    self.state = _EOL
                elif byte == 0x0A:
                    self._end_word()
                    yield self._finish()
                elif byte in _SPACE:
                    self._end_word()
                    self.state = _START
                elif byte == 0x3D:
                    self._end_word()
                    self._emit_equals()
                    self.state = _START
                elif byte == 0x5C:
                    self.state = _LITERAL
                else:
                    self._add(byte)
            elif state == _LITERAL:
                if byte == 0x0A:
                    self.continued = True
                else:
                    self._add(byte)
                self.state = _COLLECT
            elif state == _QUOTE:
                if byte == 0x22:
                    self._end_word()
                    self.state = _START
                elif byte == 0x5C:
                    self.state = _QLITERAL
                elif byte == 0x23:
                    yield self._error("Unbalanced word due to unescaped # in quotes")
                else:
                    # A newline is deleted like every control byte: the
                    # caller decides whether an open quote at end of line is
                    # an error.
                    self._add(byte)
            elif state == _QLITERAL:
                if byte == 0x0A:
                    self.continued = True
                else:
                    self._add(byte)
                self.state = _QUOTE
            else:  # _EOL
                if byte == 0x0A:
                    yield self._finish()

    def _finish(self) -> List[str]:
        words = self.words
        self.reset()
        return words

    def _error(self, reason: str) -> ParseError:
        self.reset()
        return ParseError(reason)


def plain_words(line: bytes) -> Optional[List[str]]:
    """
    The words of a line that needs no state machine, or L{None}.

    A plain line has only printable ASCII and whitespace, none of the
    characters the machine treats specially (C{"}, C{\\}, C{#}, C{=}); its
    words are what C{str.split} gives, within NUT's limits.  Such a line
    splits the same way whatever came before it, unless the previous line
    was continued.
    """
    if not _PLAIN.match(line):
        return None
    words = line.decode("ascii").split()
    if len(words) > MAX_WORDS:
        del words[MAX_WORDS:]
    for i, word in enumerate(words):
        if len(word) > MAX_WORD_LENGTH:
            words[i] = word[:MAX_WORD_LENGTH]
    return words


class RequestTokenizer:
    """
    Split request lines (without their C{\\n}) into words.

    One instance per connection: a line ending in a lone backslash continues
    on the next line, as in NUT.

    An unterminated quote at the end of a line, or an unescaped C{#} inside
    quotes, gives a L{ParseError} for that line only; NUT would instead go
    silent and lose pipelined requests.
    """

    __slots__ = ("_machine",)

    def __init__(self) -> None:
        self._machine = _Machine()

    @property
    def pending(self) -> bool:
        """
        Whether a continued line is waiting for its next part.
        """
        return self._machine.state != _START or bool(self._machine.words)

    def line(self, line: bytes) -> Optional[Result]:
        """
        Tokenize one received line.

        @return: the words, a L{ParseError}, or L{None} when the line was
            continued with a trailing backslash and more is needed.
        """
        machine = self._machine
        if machine.state == _START and not machine.words:
            words = plain_words(line)
            if words is not None:
                return words
        result: Optional[Result] = None
        for result in machine.feed(line + b"\n"):
            # The appended newline finishes at most one line; a ParseError
            # in the middle discards the rest of this logical line.
            if isinstance(result, ParseError):
                machine.reset()
                return result
        if result is not None:
            return result
        if machine.continued:
            return None
        # Still inside quotes at the end of the line.
        machine.reset()
        return ParseError("Unbalanced quotes at end of line")

    def reset(self) -> None:
        """
        Forget any partial (continued) line.
        """
        self._machine.reset()


def tokenize_file(data: bytes) -> Iterator[tuple[int, Result]]:
    """
    Tokenize a whole configuration file as C{pconf_file_next} does.

    @return: C{(lineno, words)} for each logical line that has words, or
        C{(lineno, ParseError)}; after an error the rest of the physical line
        is parsed as a new logical line, as NUT does.
    """
    machine = _Machine()
    lineno = 1
    for byte in data:
        for result in machine.feed(bytes((byte,))):
            if isinstance(result, ParseError):
                yield lineno, ParseError(result.reason, lineno)
            elif result:
                yield lineno, result
        if byte == 0x0A:
            lineno += 1
    if machine.state in (_QUOTE, _QLITERAL):
        yield lineno, ParseError("Unbalanced quotes at end of file", lineno)
    elif machine.words or machine.in_word:
        # A last line without its newline still counts.
        if machine.in_word:
            machine._end_word()
        yield lineno, machine.words


_ESCAPE = re.compile(r'([#\\"])')


def encode(value: str) -> str:
    """
    NUT's C{pconf_encode}: backslash before C{#}, C{\\} and C{"}.
    """
    if "#" in value or "\\" in value or '"' in value:
        return _ESCAPE.sub(r"\\\1", value)
    return value


def quote(value: str) -> str:
    """
    A value as a double-quoted, escaped word.
    """
    return '"' + encode(value) + '"'


def join_words(words: Sequence[str]) -> str:
    """
    Serialize words so that L{RequestTokenizer} reads them back unchanged.

    Words that need it are quoted; this is what clients such as upsrw do.
    """
    out = []
    for word in words:
        if word and _PLAIN.match(word.encode("ascii")) and " " not in word and "\t" not in word:
            out.append(word)
        else:
            out.append(quote(word))
    return " ".join(out)
