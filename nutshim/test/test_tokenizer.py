"""
Tests for NUT's tokenizer in L{nutshim.protocol._tokenizer}.
"""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from nutshim.protocol import (
    MAX_WORD_LENGTH,
    MAX_WORDS,
    ParseError,
    RequestTokenizer,
    encode,
    join_words,
    tokenize_file,
)

# Words a client can send: printable ASCII including quotes, backslashes,
# '#', '=' and spaces.
words_st = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


def tok(line: bytes) -> object:
    return RequestTokenizer().line(line)


class RequestTokenizerTests(SynchronousTestCase):
    """
    The rules NUT's clients depend on.
    """

    def test_table(self) -> None:
        """
        Quotes, escapes, '=', comments, dropped bytes, CR as space.
        """
        cases = [
            (b"GET VAR ups ups.status", ["GET", "VAR", "ups", "ups.status"]),
            (b'SET VAR u v "a b"', ["SET", "VAR", "u", "v", "a b"]),
            (b'SET VAR u v "a\\"b\\\\c\\#d"', ["SET", "VAR", "u", "v", 'a"b\\c#d']),
            (b'"fake"ups.status', ["fake", "ups.status"]),
            (b'a"b', ['a"b']),
            (b"USERNAME a=b", ["USERNAME", "a", "=", "b"]),
            (b"x=y", ["x", "=", "y"]),
            (b'""', [""]),
            (b"VER # comment", ["VER"]),
            (b"# only", []),
            (b"VER\r", ["VER"]),
            (b"VER\x00", ["VER"]),
            (b'"fa\tke"', ["fake"]),
            (b"GET VAR \xc3\xa9 fake", ["GET", "VAR", "", "fake"]),
            (b"VER\x7f", ["VER\x7f"]),
            (b"\t a \x0b b \x0c", ["a", "b"]),
        ]
        for line, expected in cases:
            self.assertEqual(tok(line), expected, line)

    def test_errors(self) -> None:
        """
        An unescaped # in quotes and an unterminated quote are errors.
        """
        self.assertIsInstance(tok(b'GET VAR "a#b"'), ParseError)
        self.assertIsInstance(tok(b'SET VAR "open'), ParseError)

    def test_continuation(self) -> None:
        """
        A trailing backslash continues the line; the tokenizer recovers after
        an error.
        """
        t = RequestTokenizer()
        self.assertIsNone(t.line(b"GET VAR ups ups.\\"))
        self.assertTrue(t.pending)
        self.assertEqual(t.line(b"status"), ["GET", "VAR", "ups", "ups.status"])
        self.assertIsInstance(t.line(b'"#'), ParseError)
        self.assertEqual(t.line(b"VER"), ["VER"])

    def test_limits(self) -> None:
        """
        Words past the 32nd are dropped and words are cut at 512 characters,
        on the fast path and the slow one.
        """
        many = b" ".join(b"w%d" % i for i in range(40))
        self.assertEqual(len(tok(many)), MAX_WORDS)  # type: ignore[arg-type]
        self.assertEqual(len(tok(b'"' + many + b'" ' + many)), MAX_WORDS)  # type: ignore[arg-type]
        self.assertEqual(tok(b"a" * 600), ["a" * MAX_WORD_LENGTH])
        self.assertEqual(tok(b'"' + b"a" * 600 + b'"'), ["a" * MAX_WORD_LENGTH])

    @given(st.lists(words_st, min_size=1, max_size=10))
    def test_round_trip(self, words: list[str]) -> None:
        """
        join_words then tokenize gives the words back.
        """
        self.assertEqual(tok(join_words(words).encode("ascii")), words)

    @given(words_st)
    def test_encode_quote(self, value: str) -> None:
        """
        A quoted, encoded value reads back as itself.
        """
        self.assertEqual(tok(b'X "' + encode(value).encode("ascii") + b'"'), ["X", value])

    @settings(max_examples=200)
    @given(st.binary(max_size=200))
    def test_never_crashes(self, data: bytes) -> None:
        """
        Arbitrary bytes give words, an error or a continuation; never raise.
        """
        t = RequestTokenizer()
        for line in data.split(b"\n"):
            result = t.line(line)
            self.assertTrue(result is None or isinstance(result, (list, ParseError)))


class FileTokenizerTests(SynchronousTestCase):
    """
    The same machine over whole files.
    """

    def test_lines(self) -> None:
        """
        Logical lines with their numbers; continuation joins lines.
        """
        data = b'[ups]\n  driver = dummy-ups\n\n# c\n  desc = "a \\\nb"\nlast'
        self.assertEqual(
            list(tokenize_file(data)),
            [
                (1, ["[ups]"]),
                (2, ["driver", "=", "dummy-ups"]),
                (6, ["desc", "=", "a b"]),
                (7, ["last"]),
            ],
        )

    def test_error_then_rest(self) -> None:
        """
        After a # in quotes, the rest of the physical line is a new line.
        """
        result = list(tokenize_file(b'desc = "has # hash"\nx = 1\n'))
        self.assertIsInstance(result[0][1], ParseError)
        self.assertEqual(result[0][0], 1)
        self.assertEqual(result[-1], (2, ["x", "=", "1"]))


class PurityTests(SynchronousTestCase):
    """
    The protocol core stays free of Twisted.
    """

    def test_no_twisted(self) -> None:
        """
        Importing nutshim.protocol imports nothing from Twisted.
        """
        code = "import sys, nutshim.protocol, nutshim.state; print(any(m == 'twisted' or m.startswith('twisted.') for m in sys.modules))"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        self.assertEqual(out.stdout.strip(), "False")
