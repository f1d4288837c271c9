# -*- test-case-name: nutshim.test.test_config -*-
"""
Tests for L{nutshim.config}: NUT's configuration files read as NUT 2.8.0
reads them.
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional, Sequence

from twisted.trial.unittest import SynchronousTestCase

from nutshim.config import (
    CmdVarTab,
    ConfigError,
    ConfigWarning,
    DEFAULT_LISTEN,
    Listen,
    UpsConf,
    UpsdConf,
    Users,
    load_cmdvartab,
    load_config,
    load_ups_conf,
    load_upsd_conf,
    load_users,
    normalize_fingerprint,
    parse_cmdvartab,
    parse_ups_conf,
    parse_upsd_conf,
    parse_users,
    paths,
)
from nutshim.config._errors import read_config_file
from nutshim.testing import skip_or_fail

DEBIAN_CMDVARTAB = "/usr/share/nut/cmdvartab"
FP = "AB:" * 31 + "CD"
FP_CANONICAL = "sha256:" + "ab" * 31 + "cd"


def messages(warnings: Sequence[ConfigWarning]) -> List[str]:
    return [w.message for w in warnings]


def lines(warnings: Sequence[ConfigWarning]) -> List[Optional[int]]:
    return [w.lineno for w in warnings]


def refused(
    testcase: SynchronousTestCase, parse: Callable[[bytes], object], data: bytes, lineno: int,
    fragment: str,
) -> ConfigError:
    """
    Assert that C{parse(data)} raises L{ConfigError} at C{lineno} with
    C{fragment} in its message.
    """
    error = testcase.assertRaises(ConfigError, parse, data)
    testcase.assertEqual(error.lineno, lineno, str(error))
    testcase.assertIn(fragment, error.message)
    return error


class FileTestCase(SynchronousTestCase):
    """
    Writing scratch files for the C{load_*} functions.
    """

    def write(self, data: bytes, name: Optional[str] = None, mode: int = 0o600) -> str:
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, name or "file")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path


class ErrorsTests(FileTestCase):
    """
    L{ConfigWarning}, L{ConfigError} and reading files.
    """

    def test_warningStr(self) -> None:
        """
        A warning reads C{path:line: message}, or C{path: message}.
        """
        self.assertEqual(str(ConfigWarning("a.conf", 3, "bad")), "a.conf:3: bad")
        self.assertEqual(str(ConfigWarning("a.conf", None, "bad")), "a.conf: bad")

    def test_errorStr(self) -> None:
        """
        An error carries its path, line and message, and prints like a warning.
        """
        error = ConfigError("a.conf", 7, "broken")
        self.assertEqual((error.path, error.lineno, error.message), ("a.conf", 7, "broken"))
        self.assertEqual(str(error), "a.conf:7: broken")
        self.assertEqual(str(ConfigError("a.conf", None, "gone")), "a.conf: gone")

    def test_missingFile(self) -> None:
        """
        A missing file reads as L{None}.
        """
        self.assertIsNone(read_config_file(os.path.join(self.mktemp(), "nope")))

    def test_unreadableFile(self) -> None:
        """
        A file that exists but cannot be read raises L{ConfigError}.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        error = self.assertRaises(ConfigError, read_config_file, directory)
        self.assertEqual(error.path, directory)
        self.assertIn("cannot read", error.message)

    def test_worldReadableSecret(self) -> None:
        """
        A secret file readable by everybody gives a warning, as NUT's
        C{check_perms} does; a private one does not.
        """
        warnings: List[ConfigWarning] = []
        path = self.write(b"x\n", mode=0o644)
        self.assertEqual(read_config_file(path, warnings, secret=True), b"x\n")
        self.assertEqual(messages(warnings), ["is world readable"])
        warnings = []
        read_config_file(self.write(b"x\n", mode=0o640), warnings, secret=True)
        self.assertEqual(warnings, [])


class PathsTests(SynchronousTestCase):
    """
    L{paths}: option, then environment, then file, then default.
    """

    def test_confdir(self) -> None:
        """
        An explicit directory beats C{NUT_CONFPATH}, which beats C{/etc/nut};
        an empty variable counts as unset.
        """
        env = {"NUT_CONFPATH": "/env"}
        self.assertEqual(paths.confdir("/opt", env), "/opt")
        self.assertEqual(paths.confdir(None, env), "/env")
        self.assertEqual(paths.confdir(None, {}), "/etc/nut")
        self.assertEqual(paths.confdir(None, {"NUT_CONFPATH": ""}), "/etc/nut")

    def test_statepath(self) -> None:
        """
        Option, then C{NUT_STATEPATH} (even over upsd.conf, as in NUT), then
        C{STATEPATH}, then C{/var/run/nut}.
        """
        env = {"NUT_STATEPATH": "/env"}
        cases = [
            (("/opt", "/file", env), "/opt"),
            ((None, "/file", env), "/env"),
            ((None, "/file", {}), "/file"),
            ((None, None, {}), "/var/run/nut"),
            ((None, None, {"NUT_STATEPATH": ""}), "/var/run/nut"),
        ]
        for (explicit, value, environ), expected in cases:
            self.assertEqual(paths.statepath(explicit, value, environ), expected)

    def test_datapath(self) -> None:
        """
        Option, then C{DATAPATH}, then C{/usr/share/nut}.
        """
        self.assertEqual(paths.datapath("/opt", "/file"), "/opt")
        self.assertEqual(paths.datapath(None, "/file"), "/file")
        self.assertEqual(paths.datapath(), "/usr/share/nut")


UPS_CONF = b"""\
# a comment
maxretry = 3
StatePath = /run/nut

[myups]
\tdriver = dummy-ups
\tport = "evolution500.seq"
\tdesc = "Server room UPS"
\tpollinterval=2
\tnolock
"""


class UpsConfTests(FileTestCase):
    """
    L{parse_ups_conf} and L{load_ups_conf}.
    """

    def parse(self, text: bytes) -> UpsConf:
        return parse_ups_conf(text, "ups.conf")

    def test_section(self) -> None:
        """
        A section gives its driver, port, description and every key as
        written, flags mapping to C{""}.
        """
        conf = self.parse(UPS_CONF)
        [ups] = conf.sections
        self.assertEqual(
            (ups.name, ups.driver, ups.port, ups.desc, ups.lineno),
            ("myups", "dummy-ups", "evolution500.seq", "Server room UPS", 5),
        )
        self.assertEqual(
            dict(ups.options),
            {
                "driver": "dummy-ups",
                "port": "evolution500.seq",
                "desc": "Server room UPS",
                "pollinterval": "2",
                "nolock": "",
            },
        )
        self.assertEqual(ups.socket_name, "dummy-ups-myups")
        self.assertEqual(conf.warnings, ())

    def test_globals(self) -> None:
        """
        Keys before the first section are globals; C{STATEPATH} is found in
        any case.
        """
        conf = self.parse(UPS_CONF)
        self.assertEqual(dict(conf.globals), {"maxretry": "3", "StatePath": "/run/nut"})
        self.assertEqual(conf.statepath, "/run/nut")
        self.assertIsNone(self.parse(b"[a]\ndriver=d\nport=p\n").statepath)

    def test_spacingAndQuoting(self) -> None:
        """
        C{=} is a word of its own, so every spacing works; quotes and
        backslash escapes give values with spaces, quotes, C{#} and C{=}.
        """
        cases = [
            (b"desc = x", "x"),
            (b"desc=x", "x"),
            (b"desc =x", "x"),
            (b"desc= x", "x"),
            (b'"desc" = "x"', "x"),
            (b'desc = "two words"', "two words"),
            (b'desc = "say \\"hi\\""', 'say "hi"'),
            (b'desc = "a \\# b"', "a # b"),
            (b"desc = a\\ b", "a b"),
            (b'desc = "a = b"', "a = b"),
            (b"desc = x # comment", "x"),
            (b"desc\\=x", "x"),
            (b'desc = ""', ""),
            (b'desc = "long \\\nline"', "long line"),
        ]
        for line, expected in cases:
            conf = self.parse(b"[u]\ndriver = d\nport = p\n" + line + b"\n")
            self.assertEqual(conf.sections[0].desc, expected, line)

    def test_extraWords(self) -> None:
        """
        Only three words count: an unquoted value with spaces is cut, with a
        warning naming the line.
        """
        conf = self.parse(b"[u]\ndriver = d\nport = p\ndesc = My UPS\n")
        self.assertEqual(conf.sections[0].desc, "My")
        self.assertEqual(lines(conf.warnings), [4])
        self.assertIn("quote values", conf.warnings[0].message)

    def test_malformedLines(self) -> None:
        """
        Two-word lines, lines whose second word is not C{=} and C{key =}
        without a value are errors naming the line (NUT ignores them, and a
        C{driver usbhid-ups} without C{=} drops the UPS).
        """
        base = b"[u]\ndriver = d\nport = p\n"
        refused(self, self.parse, base + b"desc x\n", 4, "neither 'key = value' nor a flag")
        refused(self, self.parse, base + b"desc x y\n", 4, "neither")
        refused(self, self.parse, base + b"desc =\n", 4, "without a value")
        refused(self, self.parse, b"[u]\ndriver usbhid-ups\nport = p\n", 2, "driver")

    def test_keysCaseSensitive(self) -> None:
        """
        C{Driver} is not C{driver}: the section has no driver, an error at
        its header (NUT would drop the UPS).
        """
        refused(self, self.parse, b"# c\n[u]\nDriver = d\nport = p\n", 2, "[u] has no driver")

    def test_merge(self) -> None:
        """
        Sections with exactly the same name merge, later keys overriding;
        the section keeps its first header's line and place.
        """
        conf = self.parse(
            b"[a]\ndriver = d1\nport = p\n[b]\ndriver = d\nport = p\n[a]\ndriver = d2\ndesc = x\n"
        )
        self.assertEqual([s.name for s in conf.sections], ["a", "b"])
        a = conf.sections[0]
        self.assertEqual((a.driver, a.port, a.desc, a.lineno), ("d2", "p", "x", 1))
        self.assertEqual(conf.warnings, ())

    def test_caseClash(self) -> None:
        """
        Names differing only in case clash (NUT drops one of them): an error
        at the later section naming the earlier one.
        """
        error = refused(
            self, self.parse, b"[ups]\ndriver = d1\nport = p\n[UPS]\ndriver = d2\nport = p\n",
            4, "already in use by [ups] on line 1",
        )
        self.assertEqual(str(error).split(":")[0], "ups.conf")
        conf = self.parse(b"[ups]\ndriver = d1\nport = p\n")
        self.assertEqual(conf.get("Ups"), conf.sections[0])
        self.assertIsNone(conf.get("other"))

    def test_incomplete(self) -> None:
        """
        A section without driver or port is an error at its header, naming
        what is missing: a file whose sections are all unusable is never
        served (nor the demo in its place).
        """
        refused(self, self.parse, b"[a]\ndriver = d\nport = p\n[b]\ndesc = x\n", 4,
                "[b] has no driver and no port")
        refused(self, self.parse, b"[b]\nport = p\n", 1, "[b] has no driver")
        refused(self, self.parse, b"[b]\ndriver = d\n", 1, "[b] has no port")

    def test_order(self) -> None:
        """
        Sections come in file order, and their names keep their case.
        """
        text = b"".join(b"[%s]\ndriver=d\nport=p\n" % name for name in [b"Zed", b"alpha", b"Mid"])
        self.assertEqual([s.name for s in self.parse(text).sections], ["Zed", "alpha", "Mid"])

    def test_emptyAndNone(self) -> None:
        """
        An empty section is incomplete (an error); a file without any
        section, like Debian's all-comments one, is a warning.
        """
        refused(self, self.parse, b"[empty]\n", 1, "[empty] has no driver")
        conf = self.parse(b"# nothing here\n  maxretry = 3\n")
        self.assertEqual((conf.sections, messages(conf.warnings)),
                         ((), ["no UPS definitions in ups.conf"]))

    def test_flagWithoutValue(self) -> None:
        """
        A lone C{driver} flag is an error (NUT: the section loses its
        driver).
        """
        refused(self, self.parse, b"[u]\ndriver = d\nport = p\ndriver\n", 4,
                "driver without a value in [u]")

    def test_brokenHeader(self) -> None:
        """
        A header missing a bracket, a name with a space, an empty name, or
        words after a header are errors (NUT reads C{[ups2} as a flag and
        gives the lines after it to the UPS above).
        """
        base = b"[a]\ndriver = d\nport = p\n"
        for header in (b"[b", b"b]", b"[b c]", b"[]"):
            refused(self, self.parse, base + header + b"\ndriver = e\nport = q\n", 4, "")
        refused(self, self.parse, base + b"[b] driver = e\n", 4, "words after the section header")

    def test_parseError(self) -> None:
        """
        An unescaped C{#} in quotes, or a quote not closed on its line, is
        an error naming the line of the fault (NUT reads on and loses data).
        """
        refused(self, self.parse, b'[u]\ndriver = d\ndesc = "has # hash"\nport = p\n', 3,
                "parse error: Unbalanced word due to unescaped # in quotes")
        refused(self, self.parse, b'[u]\ndriver = d\ndesc = "open\nport = p\n', 3,
                "quote not closed")

    def test_load(self) -> None:
        """
        L{load_ups_conf} reads a file, or gives L{None} if there is none.
        """
        conf = load_ups_conf(self.write(UPS_CONF))
        assert conf is not None
        self.assertEqual(conf.sections[0].name, "myups")
        self.assertIsNone(load_ups_conf(os.path.join(self.mktemp(), "ups.conf")))


class UpsdConfTests(FileTestCase):
    """
    L{parse_upsd_conf} and L{load_upsd_conf}.
    """

    def parse(self, text: bytes) -> UpsdConf:
        return parse_upsd_conf(text, "upsd.conf")

    def test_defaults(self) -> None:
        """
        An empty file gives NUT's defaults and nutshim's.
        """
        conf = self.parse(b"# nothing\n")
        self.assertEqual(conf, UpsdConf())
        self.assertEqual(
            (conf.maxage, conf.maxconn, conf.trackingdelay, conf.certrequest),
            (15, None, 3600, 0),
        )
        self.assertEqual(
            (conf.idle_timeout, conf.maxline, conf.tls_min_version, conf.tls_required),
            (60, 4096, "1.3", None),
        )
        self.assertEqual(conf.listeners(), DEFAULT_LISTEN)
        self.assertEqual(
            set(DEFAULT_LISTEN), {Listen("127.0.0.1", 3493), Listen("::1", 3493)}
        )

    def test_listen(self) -> None:
        """
        C{LISTEN <addr> [<port>]}: port 3493 by default, C{*} and IPv6
        literals as written, in file order.
        """
        conf = self.parse(
            b"LISTEN 127.0.0.1\nLISTEN ::1 3494\nLISTEN * 3495\nLISTEN host.example \"3496\"\n"
        )
        self.assertEqual(
            conf.listen,
            (
                Listen("127.0.0.1", 3493),
                Listen("::1", 3494),
                Listen("*", 3495),
                Listen("host.example", 3496),
            ),
        )
        self.assertEqual(conf.listeners(), conf.listen)
        self.assertEqual(conf.warnings, ())

    def test_listenTls(self) -> None:
        """
        C{LISTEN_TLS <addr> [<port>]} (port 401 by default) adds TLS-only
        listeners after the C{LISTEN} lines or their loopback default; it
        needs CERTFILE.
        """
        conf = self.parse(b"CERTFILE c.pem\nLISTEN_TLS 0.0.0.0\nLISTEN_TLS :: 4401\n")
        self.assertEqual(conf.listen, ())
        self.assertEqual(conf.listen_tls, (Listen("0.0.0.0", 401, True), Listen("::", 4401, True)))
        self.assertEqual([l.lineno for l in conf.listen_tls], [2, 3])
        self.assertEqual(conf.listeners(), DEFAULT_LISTEN + conf.listen_tls)
        conf = self.parse(b"CERTFILE c.pem\nLISTEN 127.0.0.1\nLISTEN_TLS 0.0.0.0\n")
        self.assertEqual(conf.listeners(), (Listen("127.0.0.1"), Listen("0.0.0.0", 401, True)))
        self.assertEqual(conf.listeners()[1].directive, "LISTEN_TLS 0.0.0.0 401")
        # A TLS-only listener on a default address takes the default's place.
        conf = self.parse(b"CERTFILE c.pem\nLISTEN_TLS 127.0.0.1 3493\n")
        self.assertEqual(conf.listeners(), (Listen("::1"), Listen("127.0.0.1", 3493, True)))
        self.assertEqual(conf.warnings, ())

    def test_listenTlsErrors(self) -> None:
        """
        LISTEN_TLS without CERTFILE, words after a port, and one address
        and port with both policies are errors naming the line.
        """
        refused(self, self.parse, b"MAXAGE 5\nLISTEN_TLS 0.0.0.0 401\n", 2, "needs CERTFILE")
        refused(self, self.parse, b"LISTEN 0.0.0.0 401 TLS\n", 1, "LISTEN_TLS <address>")
        refused(self, self.parse, b"CERTFILE c\nLISTEN_TLS 0.0.0.0 401 x\n", 2, "takes an address")
        refused(self, self.parse, b"CERTFILE c\nLISTEN_TLS 0.0.0.0 nut\n", 2, "LISTEN_TLS port")
        refused(self, self.parse, b"CERTFILE c\nLISTEN ::1 401\n\nLISTEN_TLS ::1\n", 4,
                "clashes with LISTEN ::1 401 on line 2")
        conf = self.parse(b"CERTFILE c\nLISTEN_TLS ::1\nLISTEN_TLS ::1 401\n")
        self.assertEqual((len(conf.listen_tls), lines(conf.warnings)), (1, [3]))

    def test_listenDuplicate(self) -> None:
        """
        The same listener twice is kept once, with a warning.
        """
        conf = self.parse(b"LISTEN ::1\nLISTEN ::1 3493\n")
        self.assertEqual(conf.listen, (Listen("::1"),))
        self.assertEqual(lines(conf.warnings), [2])

    def test_listenBadPort(self) -> None:
        """
        A port that is not a number from 0 to 65535 is fatal.
        """
        for port in [b"nut", b"65536", b"-1", b'""']:
            error = self.assertRaises(
                ConfigError, self.parse, b"\nLISTEN 127.0.0.1 " + port + b"\n"
            )
            self.assertEqual((error.path, error.lineno), ("upsd.conf", 2))

    def test_numbers(self) -> None:
        """
        MAXAGE, MAXCONN and TRACKINGDELAY are read like C{atoi} once the
        first character is a digit; otherwise a warning and the default.
        """
        conf = self.parse(b"MAXAGE 30\nMAXCONN 1024\nTRACKINGDELAY 10s\n")
        self.assertEqual((conf.maxage, conf.maxconn, conf.trackingdelay), (30, 1024, 10))
        for line, message in [
            (b"MAXAGE abc", "MAXAGE has non numeric value (abc)!"),
            (b"MAXCONN -5", "MAXCONN has non numeric value (-5)!"),
            (b'TRACKINGDELAY " 1"', "TRACKINGDELAY has non numeric value ( 1)!"),
        ]:
            error = refused(self, self.parse, b"MAXAGE 20\n" + line + b"\n", 2, message)
            self.assertEqual(str(error), "upsd.conf:2: " + message)

    def test_booleans(self) -> None:
        """
        ALLOW_NO_DEVICE and ALLOW_NOT_ALL_LISTENERS take numbers or words;
        DISABLE_WEAK_SSL only the words (and 0/1).
        """
        cases = [
            (b"ALLOW_NO_DEVICE", b"true", True),
            (b"ALLOW_NO_DEVICE", b"On", True),
            (b"ALLOW_NO_DEVICE", b"YES", True),
            (b"ALLOW_NO_DEVICE", b"1", True),
            (b"ALLOW_NO_DEVICE", b"2", True),
            (b"ALLOW_NO_DEVICE", b"0", False),
            (b"ALLOW_NO_DEVICE", b"off", False),
            (b"ALLOW_NOT_ALL_LISTENERS", b"yes", True),
            (b"ALLOW_NOT_ALL_LISTENERS", b"07", True),
            (b"DISABLE_WEAK_SSL", b"true", True),
            (b"DISABLE_WEAK_SSL", b"1", True),
            (b"DISABLE_WEAK_SSL", b"no", False),
        ]
        for key, value, expected in cases:
            conf = self.parse(key + b" " + value + b"\n")
            self.assertEqual(getattr(conf, key.decode().lower()), expected, (key, value))
            self.assertEqual(conf.warnings, ())
        for key, value in [
            (b"ALLOW_NO_DEVICE", b"maybe"),
            (b"ALLOW_NOT_ALL_LISTENERS", b"y"),
            (b"DISABLE_WEAK_SSL", b"2"),
        ]:
            refused(self, self.parse, key + b" " + value + b"\n", 1, key.decode())

    def test_paths(self) -> None:
        """
        STATEPATH, DATAPATH, CERTFILE and CERTPATH are kept as written.
        """
        conf = self.parse(
            b"STATEPATH /s\nDATAPATH /d\nCERTFILE /c.pem\nCERTPATH \"/ca dir\"\n"
        )
        self.assertEqual(
            (conf.statepath, conf.datapath, conf.certfile, conf.certpath),
            ("/s", "/d", "/c.pem", "/ca dir"),
        )

    def test_certident(self) -> None:
        """
        C{CERTIDENT <name> <password>}; a malformed one is a warning that
        does not show the password.
        """
        conf = self.parse(b'CERTIDENT "My Server" s3cret\n')
        self.assertEqual(conf.certident, ("My Server", "s3cret"))
        error = refused(self, self.parse, b"CERTIDENT onlyname\n", 1, "CERTIDENT needs")
        self.assertNotIn("onlyname", str(error))
        conf = self.parse(b"certident name s3cret\n")
        self.assertIsNone(conf.certident)
        self.assertEqual(len(conf.warnings), 1)
        self.assertNotIn("s3cret", str(conf.warnings[0]))

    def test_certrequest(self) -> None:
        """
        CERTREQUEST takes 0, 1, 2 or NO, REQUEST, REQUIRE (any case).
        """
        for value, expected in [
            (b"0", 0), (b"1", 1), (b"2", 2), (b"NO", 0), (b"request", 1), (b"Require", 2),
        ]:
            conf = self.parse(b"CERTREQUEST " + value + b"\n")
            self.assertEqual((conf.certrequest, conf.warnings), (expected, ()))
        for value in [b"3", b"maybe"]:
            refused(self, self.parse, b"CERTREQUEST 2\nCERTREQUEST " + value + b"\n", 2,
                    "CERTREQUEST must be")

    def test_caseSensitive(self) -> None:
        """
        Keywords are case-sensitive: C{maxage} is an invalid directive.
        """
        conf = self.parse(b"maxage 30\nListen 0.0.0.0\n")
        self.assertEqual((conf.maxage, conf.listen), (15, ()))
        self.assertEqual(
            messages(conf.warnings),
            ["invalid directive maxage 30", "invalid directive Listen 0.0.0.0"],
        )

    def test_debugMin(self) -> None:
        """
        DEBUG_MIN is accepted in any case and ignored; a bad value warns.
        """
        self.assertEqual(self.parse(b"DEBUG_MIN 3\ndebug_min 1\n"), UpsdConf())
        self.assertEqual(lines(self.parse(b"\nDEBUG_MIN x\n").warnings), [2])

    def test_obsolete(self) -> None:
        """
        ACCEPT, REJECT and ACL are accepted with NUT's warning.
        """
        conf = self.parse(b"ACCEPT all\nREJECT all\nACL all 0.0.0.0/0\n")
        self.assertEqual(
            messages(conf.warnings),
            [
                "%s in upsd.conf is no longer supported - switch to LISTEN" % (key,)
                for key in ["ACCEPT", "REJECT", "ACL"]
            ],
        )

    def test_invalid(self) -> None:
        """
        Unknown keywords are "invalid directive" warnings naming the line,
        as in NUT; the lines after still count.
        """
        conf = self.parse(b"FOO bar baz\nACL all\n\nMAXAGE 5\n")
        self.assertEqual(
            [str(w) for w in conf.warnings],
            [
                "upsd.conf:1: invalid directive FOO bar baz",
                "upsd.conf:2: invalid directive ACL all",
            ],
        )
        self.assertEqual(conf.maxage, 5)

    def test_missingValue(self) -> None:
        """
        A known keyword without its value is an error (NUT: "invalid
        directive", and the setting silently keeps its old value).
        """
        for key in (b"MAXAGE", b"MAXCONN", b"STATEPATH", b"CERTFILE", b"CERTREQUEST",
                    b"ALLOW_NO_DEVICE"):
            refused(self, self.parse, b"MAXAGE 5\n" + key + b"\n", 2, key.decode() + " needs a value")
        refused(self, self.parse, b"\nLISTEN\n", 2, "LISTEN needs an address")
        refused(self, self.parse, b"\nLISTEN_TLS\n", 2, "LISTEN_TLS needs an address")

    def test_parseError(self) -> None:
        """
        A line the tokenizer rejects is an error with the line of the fault:
        the line of an unescaped C{#} in quotes, the line where an unclosed
        quote opened (also on the last line of a file, with or without its
        newline).
        """
        refused(self, self.parse, b'MAXAGE 20\nSTATEPATH "/a#b"\nMAXCONN 9\n', 2, "parse error")
        refused(self, self.parse, b'MAXAGE 20\nSTATEPATH "/a\n', 2, "quote not closed")
        refused(self, self.parse, b'MAXAGE 20\nSTATEPATH "/a', 2, "quote not closed")
        refused(self, self.parse, b'MAXAGE 2\\\n0\nSTATEPATH "/a\nMAXCONN 9\n', 3,
                "quote not closed")

    def test_extensions(self) -> None:
        """
        nutshim's own keys.
        """
        conf = self.parse(
            b"IDLE_TIMEOUT 0\nMAXLINE 512\nTLS_MIN_VERSION 1.2\n"
            b"TLS_REQUIRED All\nCMDVARTAB /x/cmdvartab\n"
        )
        self.assertEqual(
            (conf.idle_timeout, conf.maxline, conf.tls_min_version, conf.tls_required),
            (0, 512, "1.2", "all"),
        )
        self.assertEqual((conf.cmdvartab, conf.warnings), ("/x/cmdvartab", ()))

    def test_extensionErrors(self) -> None:
        """
        A bad value for one of nutshim's keys raises L{ConfigError} naming
        the key and the line.
        """
        for line in [
            b"IDLE_TIMEOUT -1", b"IDLE_TIMEOUT 5s", b"IDLE_TIMEOUT", b"IDLE_TIMEOUT 1 2",
            b"MAXLINE 511", b"MAXLINE 2000000", b"MAXLINE big",
            b"TLS_MIN_VERSION 1.1", b"TLS_MIN_VERSION 1.4",
            b"TLS_REQUIRED sometimes", b'CMDVARTAB ""',
        ]:
            error = self.assertRaises(ConfigError, self.parse, b"# x\n" + line + b"\n")
            self.assertEqual(error.lineno, 2, line)
            self.assertIn(line.split()[0].decode(), error.message)

    def test_effectiveTlsRequired(self) -> None:
        """
        Unset TLS_REQUIRED means C{remote} with a certificate, else C{off}.
        """
        self.assertEqual(UpsdConf().effective_tls_required, "off")
        self.assertEqual(UpsdConf(certfile="/c.pem").effective_tls_required, "remote")
        self.assertEqual(
            UpsdConf(certfile="/c.pem", tls_required="off").effective_tls_required, "off"
        )

    def test_load(self) -> None:
        """
        L{load_upsd_conf} reads a file (warning if it is world readable), or
        gives L{None}.
        """
        conf = load_upsd_conf(self.write(b"MAXAGE 9\n", mode=0o644))
        assert conf is not None
        self.assertEqual((conf.maxage, messages(conf.warnings)), (9, ["is world readable"]))
        self.assertIsNone(load_upsd_conf(os.path.join(self.mktemp(), "upsd.conf")))


USERS = b"""\
[admin]
\tpassword = "pa ss"
\tactions = SET FSD
\tinstcmds = ALL

[monuser]
\tpassword = secret
\tupsmon primary

[viewer]
\tpassword=v
\tinstcmds = beeper.toggle Test.Battery.Start
"""


class UsersTests(FileTestCase):
    """
    L{parse_users}, L{load_users} and the checks of L{Users}.
    """

    def parse(self, text: bytes) -> Users:
        return parse_users(text, "upsd.users")

    def test_example(self) -> None:
        """
        Sections become users with lower-case actions and commands.
        """
        users = self.parse(USERS)
        self.assertEqual(list(users.users), ["admin", "monuser", "viewer"])
        admin = users.users["admin"]
        self.assertEqual(admin.password, "pa ss")
        self.assertEqual(admin.actions, frozenset({"set", "fsd"}))
        self.assertEqual(admin.instcmds, frozenset({"all"}))
        self.assertEqual(users.users["monuser"].actions, frozenset({"login", "master", "fsd"}))
        self.assertEqual(
            users.users["viewer"].instcmds,
            frozenset({"beeper.toggle", "test.battery.start"}),
        )
        self.assertEqual(users.warnings, ())

    def test_upsmon(self) -> None:
        """
        Every way of writing C{upsmon} grants login (secondary/slave) or
        login, master and fsd (primary/master).
        """
        primary = frozenset({"login", "master", "fsd"})
        secondary = frozenset({"login"})
        cases = [
            (b"upsmon primary", primary),
            (b"upsmon master", primary),
            (b"UPSMON PRIMARY", primary),
            (b"upsmon = primary", primary),
            (b"upsmon=master", primary),
            (b"upsmon primary extra", primary),
            (b"upsmon secondary", secondary),
            (b"upsmon slave", secondary),
            (b"Upsmon = Slave", secondary),
            (b"upsmon = secondary primary", primary),
        ]
        for line, expected in cases:
            users = self.parse(b"[u]\npassword = p\n" + line + b"\n")
            self.assertEqual(users.users["u"].actions, expected, line)
            self.assertEqual(users.warnings, (), line)

    def test_upsmonUnknown(self) -> None:
        """
        An unknown upsmon type is an error (NUT grants nothing: the user
        silently loses LOGIN and FSD).
        """
        for line in (b"upsmon = boss", b"upsmon primry"):
            refused(self, self.parse, b"[u]\n" + line + b"\n", 2, "Unknown upsmon type")

    def test_keysCaseInsensitive(self) -> None:
        """
        Keys are case-insensitive and every spacing of C{=} works.
        """
        users = self.parse(b"[u]\nPASSWORD=p\nActions =login\nINSTCMDS= load.off\n")
        user = users.users["u"]
        self.assertEqual(
            (user.password, user.actions, user.instcmds),
            ("p", frozenset({"login"}), frozenset({"load.off"})),
        )

    def test_secondPassword(self) -> None:
        """
        A second password is an error naming both lines (NUT keeps the first
        and logs it).
        """
        error = refused(self, self.parse, b"[u]\npassword = one\npassword = two\n", 3,
                        "second password for u (the first is on line 2)")
        self.assertNotIn("one", str(error))
        self.assertNotIn("two", str(error))

    def test_duplicateUser(self) -> None:
        """
        A duplicate header is an error naming the first one (NUT ignores it
        and gives its lines to the user parsed before it).
        """
        refused(self, self.parse,
                b"[a]\npassword = pa\n[b]\npassword = pb\n[a]\npassword = x\nactions = set\n",
                5, "user [a] defined twice (first on line 1)")

    def test_brokenHeader(self) -> None:
        """
        A header missing its bracket, with a space in it, empty, or followed
        by words is an error (NUT ignores C{[bob} and gives bob's password
        and actions to the user above).
        """
        base = b"[alice]\npassword = a\n"
        for header in (b"[bob", b"bob]", b"[bob smith]", b"[]", b"[bob] password = b"):
            error = refused(self, self.parse, base + header + b"\npassword = b\nactions = FSD\n",
                            3, "")
            self.assertNotIn("password = b", str(error))

    def test_namesCaseSensitive(self) -> None:
        """
        C{[Admin]} and C{[admin]} are two users.
        """
        users = self.parse(b"[Admin]\npassword = 1\n[admin]\npassword = 2\n")
        self.assertEqual(list(users.users), ["Admin", "admin"])

    def test_ignoredLines(self) -> None:
        """
        allowfrom, unknown keys, lines outside a section and old-format
        lines give warnings with their line, as in NUT.
        """
        users = self.parse(
            b"password = early\nupsmon primary\n[u]\nallowfrom = localhost\n"
            b"colour = blue\nuser foo\n"
        )
        self.assertEqual(
            [str(w) for w in users.warnings],
            [
                "upsd.users:1: ignoring password outside any user section",
                "upsd.users:2: Ignoring action definition outside user section",
                "upsd.users:4: allowfrom in upsd.users is no longer used",
                "upsd.users:5: Unrecognized user setting colour",
                "upsd.users:6: ignoring line in the old file format",
            ],
        )
        user = users.users["u"]
        self.assertEqual((user.password, user.actions), (None, frozenset()))

    def test_malformedLines(self) -> None:
        """
        A line that is neither C{[user]} nor C{key = value} is an error
        that does not echo the line (it may hold a password): NUT ignores
        C{password secret} and the user cannot log in.
        """
        for line in (b"password secret", b"password", b"password =", b"actions set", b"upsmon"):
            error = refused(self, self.parse, b"[u]\n" + line + b"\n", 2, "neither [user] nor")
            self.assertNotIn("secret", str(error))

    def test_parseErrors(self) -> None:
        """
        An unbalanced quote on line 8 is an error at line 8 (NUT: every user
        after it vanishes into one word), also when a later quote would
        close it, and on the last line of the file.
        """
        text = (b"[a]\npassword = a\n[b]\npassword = b\n[c]\npassword = c\n[d]\n"
                b"password = \"d\n[e]\npassword = e\n")
        refused(self, self.parse, text, 8, "quote not closed")
        refused(self, self.parse, text + b'[f]\ndesc = "f"\n', 8, "quote not closed")
        refused(self, self.parse, b'[a]\npassword = "a\n', 2, "quote not closed")
        refused(self, self.parse, b'[a]\npassword = "a#"\n', 2, "unescaped #")

    def test_checkAction(self) -> None:
        """
        L{Users.check_action}: exact name, exact password, action in any case.
        """
        users = self.parse(USERS + b"[nopass]\nactions = set\n")
        cases = [
            ("admin", "pa ss", "SET", True),
            ("admin", "pa ss", "set", True),
            ("admin", "pa ss", "fsd", True),
            ("admin", "pa ss", "login", False),
            ("admin", "PA SS", "set", False),
            ("Admin", "pa ss", "set", False),
            ("monuser", "secret", "LOGIN", True),
            ("monuser", "secret", "MASTER", True),
            ("monuser", "secret", "PRIMARY", False),
            ("monuser", "secret", "SET", False),
            ("nobody", "x", "login", False),
            ("nopass", "", "set", False),
            (None, "pa ss", "set", False),
            ("admin", None, "set", False),
        ]
        for name, password, action, expected in cases:
            self.assertEqual(
                users.check_action(name, password, action), expected, (name, password, action)
            )

    def test_checkInstcmd(self) -> None:
        """
        L{Users.check_instcmd}: the command in any case, or C{all}.
        """
        users = self.parse(USERS)
        cases = [
            ("viewer", "v", "beeper.toggle", True),
            ("viewer", "v", "BEEPER.TOGGLE", True),
            ("viewer", "v", "test.battery.start", True),
            ("viewer", "v", "load.off", False),
            ("viewer", "w", "beeper.toggle", False),
            ("admin", "pa ss", "load.off", True),
            ("monuser", "secret", "load.off", False),
            (None, None, "load.off", False),
        ]
        for name, password, cmd, expected in cases:
            self.assertEqual(users.check_instcmd(name, password, cmd), expected, (name, cmd))

    def test_emptyPassword(self) -> None:
        """
        An explicitly empty password is a password.
        """
        users = self.parse(b'[u]\npassword = ""\nactions = login\n')
        self.assertTrue(users.check_action("u", "", "login"))

    def test_certificates(self) -> None:
        """
        C{certificate} names CNs and SHA-256 fingerprints (normalized);
        fingerprints are matched before CNs.
        """
        users = self.parse(
            b"[a]\ncertificate = client-a other.example\n"
            b"[b]\nCertificate = SHA256:" + FP.encode() + b"\ncertificate = client-b\n"
        )
        self.assertEqual(users.users["a"].certificates, ("client-a", "other.example"))
        self.assertEqual(users.users["b"].certificates, (FP_CANONICAL, "client-b"))
        b = users.users["b"]
        self.assertIs(users.user_for_certificate("client-a", FP.replace(":", "")), b)
        self.assertIs(users.user_for_certificate("client-a", "00" * 32), users.users["a"])
        self.assertIs(users.user_for_certificate("client-b", "nonsense"), b)
        self.assertIsNone(users.user_for_certificate("Client-A", "00" * 32))
        self.assertIsNone(users.user_for_certificate("", ""))

    def test_certificateClaimedTwice(self) -> None:
        """
        A certificate named by two users is an error: it authenticates one.
        """
        refused(self, self.parse, b"[a]\ncertificate = c\n[b]\ncertificate = c\n", 4,
                "already belongs to a")

    def test_badCertificate(self) -> None:
        """
        A malformed fingerprint or an empty name raises L{ConfigError}.
        """
        for value in [b"sha256:abcd", b"sha256:" + b"zz" * 32, b'""']:
            error = self.assertRaises(
                ConfigError, self.parse, b"[a]\ncertificate = " + value + b"\n"
            )
            self.assertEqual(error.lineno, 2, value)

    def test_normalizeFingerprint(self) -> None:
        """
        Fingerprints are accepted with or without prefix and colons, in any
        case.
        """
        for text in [FP, FP.lower(), FP.replace(":", ""), "sha256:" + FP, "SHA256:" + FP]:
            self.assertEqual(normalize_fingerprint(text), FP_CANONICAL, text)
        for text in ["", "ab", "sha1:" + FP, FP + "00"]:
            self.assertIsNone(normalize_fingerprint(text), text)

    def test_load(self) -> None:
        """
        L{load_users} reads a file; a missing file means nobody can
        authenticate, with a warning.
        """
        users = load_users(self.write(USERS))
        self.assertTrue(users.check_action("admin", "pa ss", "set"))
        missing = load_users(os.path.join(self.mktemp(), "upsd.users"))
        self.assertEqual(dict(missing.users), {})
        self.assertEqual(len(missing.warnings), 1)
        self.assertFalse(missing.check_action("admin", "pa ss", "set"))


class CmdVarTabTests(FileTestCase):
    """
    L{parse_cmdvartab} and L{load_cmdvartab}.
    """

    def test_parse(self) -> None:
        """
        Names are found in any case; later lines replace earlier ones;
        keywords are case-sensitive; short lines are ignored.
        """
        table = parse_cmdvartab(
            b'VARDESC ups.status "UPS status"\n'
            b'CMDDESC Load.Off "Turn off the load"\n'
            b'VARDESC UPS.STATUS "Status"\n'
            b'vardesc ups.load "Load"\n'
            b"VARDESC ups.temperature\n",
            "cmdvartab",
        )
        self.assertEqual(table.describe_var("Ups.Status"), "Status")
        self.assertEqual(table.describe_cmd("load.off"), "Turn off the load")
        self.assertIsNone(table.describe_var("ups.load"))
        self.assertIsNone(table.describe_var("ups.temperature"))
        self.assertIsNone(table.describe_cmd("ups.status"))
        self.assertEqual(lines(table.warnings), [4, 5])

    def test_debian(self) -> None:
        """
        Debian's NUT 2.8.0 C{cmdvartab} loads without warnings: 167
        variables and 36 commands.
        """
        if not os.path.exists(DEBIAN_CMDVARTAB):
            skip_or_fail(self, "no " + DEBIAN_CMDVARTAB)
        table = load_cmdvartab(DEBIAN_CMDVARTAB)
        self.assertEqual(table.warnings, ())
        self.assertEqual(table.describe_var("ups.status"), "UPS status")
        self.assertEqual(table.describe_cmd("load.off"), "Turn off the load immediately")
        self.assertEqual((len(table.vardesc), len(table.cmddesc)), (167, 36))

    def test_missing(self) -> None:
        """
        A missing file means no descriptions, with a warning.
        """
        table = load_cmdvartab(os.path.join(self.mktemp(), "cmdvartab"))
        self.assertEqual((dict(table.vardesc), dict(table.cmddesc)), ({}, {}))
        self.assertEqual(len(table.warnings), 1)
        self.assertEqual(CmdVarTab().describe_var("ups.status"), None)


class LoadConfigTests(SynchronousTestCase):
    """
    L{load_config}.
    """

    def confdir(self, **files: bytes) -> str:
        directory = self.mktemp()
        os.makedirs(directory)
        for name, data in files.items():
            path = os.path.join(directory, name.replace("_", "."))
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o600)
        return directory

    def test_all(self) -> None:
        """
        All three files are read, and CMDVARTAB in upsd.conf names the
        descriptions file.
        """
        tab = self.confdir(cmdvartab=b'VARDESC x "the x"\n')
        confdir = self.confdir(
            ups_conf=UPS_CONF,
            upsd_conf=b"CMDVARTAB " + os.path.join(tab, "cmdvartab").encode() + b"\nBOGUS 1\n",
            upsd_users=USERS,
        )
        config = load_config(confdir)
        self.assertEqual(config.confdir, confdir)
        assert config.ups is not None
        self.assertEqual(config.ups.sections[0].name, "myups")
        self.assertTrue(config.users.check_action("monuser", "secret", "login"))
        self.assertEqual(config.cmdvartab.describe_var("X"), "the x")
        self.assertEqual(config.cmdvartab_path, os.path.join(tab, "cmdvartab"))
        self.assertEqual(messages(config.warnings), ["invalid directive BOGUS 1"])

    def test_datapath(self) -> None:
        """
        Without CMDVARTAB the descriptions come from DATAPATH; an explicit
        path beats both.
        """
        tab = self.confdir(cmdvartab=b'VARDESC x "from datapath"\n')
        other = self.confdir(cmdvartab=b'VARDESC x "explicit"\n')
        confdir = self.confdir(upsd_conf=b"DATAPATH " + tab.encode() + b"\n", upsd_users=b"")
        self.assertEqual(load_config(confdir).cmdvartab.describe_var("x"), "from datapath")
        explicit = load_config(confdir, os.path.join(other, "cmdvartab"))
        self.assertEqual(explicit.cmdvartab.describe_var("x"), "explicit")

    def test_missingFiles(self) -> None:
        """
        Without files: no ups.conf, upsd.conf defaults, no users, and a
        warning for each missing file.
        """
        confdir = self.confdir()
        config = load_config(confdir, os.path.join(confdir, "cmdvartab"))
        self.assertIsNone(config.ups)
        self.assertEqual(config.upsd.listeners(), DEFAULT_LISTEN)
        self.assertEqual(dict(config.users.users), {})
        self.assertEqual(
            [os.path.basename(w.path) for w in config.warnings],
            ["upsd.conf", "upsd.users", "cmdvartab"],
        )

    def test_fatal(self) -> None:
        """
        A fatal problem in any file raises L{ConfigError}.
        """
        confdir = self.confdir(upsd_conf=b"MAXLINE 1\n")
        error = self.assertRaises(ConfigError, load_config, confdir)
        self.assertEqual(error.path, os.path.join(confdir, "upsd.conf"))
