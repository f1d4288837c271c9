"""
Tests for L{nutshim.protocol.commands}: every command's parsed form.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from nutshim.protocol import RequestTokenizer, join_words, parse_request
from nutshim.protocol import commands as c
from nutshim.protocol.errors import NutError

names = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)

requests = st.one_of(
    st.just(c.Ver()),
    st.just(c.NetVer()),
    st.just(c.ProtVer()),
    st.just(c.Help()),
    st.just(c.StartTLS()),
    st.just(c.Logout()),
    st.just(c.Detach()),
    st.just(c.ListUps()),
    st.builds(c.Username, values),
    st.builds(c.Password, values),
    st.builds(c.Login, names),
    st.builds(c.Attach, names),
    st.builds(c.Primary, names),
    st.builds(c.Master, names),
    st.builds(c.Fsd, names),
    st.builds(c.GetVar, names, names),
    st.builds(c.GetType, names, names),
    st.builds(c.GetDesc, names, names),
    st.builds(c.GetCmdDesc, names, names),
    st.builds(c.GetUpsDesc, names),
    st.builds(c.GetNumLogins, names),
    st.builds(c.GetNumAttach, names),
    st.builds(c.GetTracking, st.one_of(st.none(), names)),
    st.builds(c.ListVar, names),
    st.builds(c.ListRw, names),
    st.builds(c.ListCmd, names),
    st.builds(c.ListClient, names),
    st.builds(c.ListEnum, names, names),
    st.builds(c.ListRange, names, names),
    st.builds(c.SetVar, names, names, values),
    st.builds(c.SetTracking, st.booleans()),
    st.builds(c.InstCmd, names, names, st.one_of(st.none(), values)),
)


class ParseTests(SynchronousTestCase):
    """
    NUT's argument gates.
    """

    def test_table(self) -> None:
        """
        Extra words are ignored where NUT checks "<" and rejected where it
        checks "!=".
        """
        cases = [
            (["get", "var", "u", "v", "extra"], c.GetVar("u", "v")),
            (["LIST", "UPS", "extra"], c.ListUps()),
            (["GET", "TRACKING"], c.GetTracking(None)),
            (["GET", "tracking", "id", "x"], c.GetTracking("id")),
            (["SET", "VAR", "u", "v", "1", "2"], c.SetVar("u", "v", "1")),
            (["SET", "tracking", "On"], c.SetTracking(True)),
            (["INSTCMD", "u", "c", "p"], c.InstCmd("u", "c", "p")),
            (["INSTCMD", "u", "c", "1", "2"], c.InstCmd("u", "c", None)),
            (["STARTTLS", "whatever"], c.StartTLS()),
            (["NUMLOGINS", "u"], c.Unknown(("NUMLOGINS", "u"))),
            ([], c.Unknown(())),
        ]
        for words, expected in cases:
            self.assertEqual(parse_request(words), expected, words)

    def test_invalid(self) -> None:
        """
        Malformed arguments carry the verb, for NUT's login-first checks.
        """
        for words in (["VER", "x"], ["GET"], ["GET", "VAR", "u"], ["LIST", "ENUM", "u"],
                      ["LIST", "BOGUS", "a", "b"], ["SET", "VAR", "u", "v"], ["SET", "TRACKING", "x"],
                      ["INSTCMD", "u"], ["LOGIN"], ["FSD", "a", "b"], ["USERNAME"]):
            parsed = parse_request(words)
            self.assertIsInstance(parsed, c.Invalid, words)
            assert isinstance(parsed, c.Invalid)
            self.assertEqual(parsed.verb, words[0].upper())
            self.assertEqual(parsed.error, NutError.INVALID_ARGUMENT)

    @given(requests)
    def test_round_trip(self, request: c.Request) -> None:
        """
        Serializing a request and parsing it back gives the same request.
        """
        line = join_words(request.words()).encode("ascii")
        words = RequestTokenizer().line(line)
        assert isinstance(words, list)
        self.assertEqual(parse_request(words), request)

    def test_error_lines(self) -> None:
        """
        Every error name renders as an ERR line.
        """
        self.assertEqual(NutError.UNKNOWN_UPS.line, b"ERR UNKNOWN-UPS\n")
        self.assertEqual(len({e.value for e in NutError}), len(NutError))
