# -*- test-case-name: nutshim.test.test_upsmonconf -*-
"""
Tests for L{nutshim.config.upsmonconf}, L{nutshim.upsmon.tls} and
L{nutshim.upsmon.tap}: NUT's upsmon.conf as nut-upsmon reads it.
"""

from __future__ import annotations

import os
from typing import List

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from nutshim.client.tls import TLSConfigError, TLSSettings
from nutshim.config import ConfigError, UpsmonConf, load_upsmon_conf, parse_upsmon_conf
from nutshim.config.upsmonconf import split_system
from nutshim.pki._certs import certificate_pem, make_ca
from nutshim.upsmon.service import UpsmonService
from nutshim.upsmon.tap import Options, default_config, makeService
from nutshim.upsmon.tls import CADirectorySettings, tls_settings

PIN = "sha256:" + "ab" * 32


def parse(text: str) -> UpsmonConf:
    return parse_upsmon_conf(text.encode(), "upsmon.conf")


def messages(conf: UpsmonConf) -> List[str]:
    return [w.message for w in conf.warnings]


class ParseTests(SynchronousTestCase):
    """
    The keys of upsmon.conf, NUT's defaults and NUT's leniency.
    """

    def test_defaults(self) -> None:
        """
        An empty file has NUT upsmon's defaults.
        """
        conf = parse("")
        self.assertEqual(
            (conf.pollfreq, conf.pollfreqalert, conf.hostsync, conf.deadtime, conf.finaldelay,
             conf.rbwarntime, conf.nocommwarntime, conf.minsupplies),
            (5, 5, 15, 15, 5, 43200, 300, 1),
        )
        self.assertIsNone(conf.powerdownflag)
        self.assertIsNone(conf.shutdowncmd)
        self.assertEqual(conf.flags("ONBATT"), frozenset(["SYSLOG", "WALL"]))
        self.assertEqual(conf.flags("NOTCHRG"), frozenset(["SYSLOG"]))
        self.assertEqual(conf.message("ONBATT"), "UPS %s on battery")

    def test_monitor(self) -> None:
        """
        MONITOR reads the system name as upscli_splitname does, the power
        value, the credentials and both spellings of each role.
        """
        conf = parse(
            "MONITOR ups1 1 u p primary\n"
            "MONITOR ups2@host 2 u p MASTER\n"
            "MONITOR ups3@host:3500 0 u p secondary\n"
            'MONITOR ups4@[::1]:3501 1 u "p w" slave\n'
        )
        got = [(m.system, m.upsname, m.host, m.port, m.powervalue, m.primary)
               for m in conf.monitors]
        self.assertEqual(got, [
            ("ups1", "ups1", "localhost", 3493, 1, True),
            ("ups2@host", "ups2", "host", 3493, 2, True),
            ("ups3@host:3500", "ups3", "host", 3500, 0, False),
            ("ups4@[::1]:3501", "ups4", "::1", 3501, 1, False),
        ])
        self.assertEqual(conf.monitors[3].password, "p w")
        self.assertNotIn("p w", repr(conf.monitors[3]))
        self.assertEqual(conf.warnings, ())

    def test_monitor_problems(self) -> None:
        """
        A MONITOR line that would be dropped or misread is an error naming
        the line, never showing the password: too few values, a system that
        cannot be split, a bad power value, an unknown role (NUT silently
        makes it a secondary), a repeated system.
        """
        for line, fragment in [
            ("MONITOR ups 1 u secret", "MONITOR needs"),
            ("MONITOR ups@host:x 1 u secret primary", "cannot read"),
            ("MONITOR ups -1 u secret primary", "invalid power value"),
            ("MONITOR ups 1 u secret boss", "unknown role 'boss'"),
            ("MONITOR ok 1 u secret primary", "already monitored"),
        ]:
            error = self.assertRaises(
                ConfigError, parse, "MONITOR ok 1 u secret slave\n" + line + "\n")
            self.assertEqual(error.lineno, 2, line)
            self.assertIn(fragment, error.message)
            self.assertNotIn("secret", str(error))

    def test_split_system(self) -> None:
        """
        Bad system names cannot be split.
        """
        for bad in ("@host", "ups@", "ups@[::1", "ups@host:", "ups@host:0", "ups@host:70000"):
            self.assertIsNone(split_system(bad), bad)
        self.assertEqual(split_system("u@[::1]"), ("u", "::1", 3493))

    def test_numbers(self) -> None:
        """
        Numbers are read like atoi when they start with a digit; a number
        that does not (NUT: 0) or is below its minimum is an error.
        """
        conf = parse("DEADTIME 6s\nPOLLFREQALERT 2\nFINALDELAY 0\n")
        self.assertEqual((conf.deadtime, conf.pollfreqalert, conf.finaldelay), (6, 2, 0))
        self.assertEqual(conf.warnings, ())
        for line, fragment in [("HOSTSYNC x", "HOSTSYNC has non numeric value (x)"),
                               ("POLLFREQ 0", "POLLFREQ must be at least 1, not 0"),
                               ("DEADTIME", "DEADTIME needs a value")]:
            error = self.assertRaises(ConfigError, parse, "DEADTIME 6\n" + line + "\n")
            self.assertEqual((error.lineno, error.message), (2, fragment))

    def test_commands_and_paths(self) -> None:
        """
        SHUTDOWNCMD, NOTIFYCMD and POWERDOWNFLAG keep the (quoted) text.
        """
        conf = parse('SHUTDOWNCMD "/sbin/shutdown -h +0"\nNOTIFYCMD /bin/notify\n'
                     "POWERDOWNFLAG /etc/killpower\nMINSUPPLIES 2\n")
        self.assertEqual(conf.shutdowncmd, "/sbin/shutdown -h +0")
        self.assertEqual(conf.notifycmd, "/bin/notify")
        self.assertEqual(conf.powerdownflag, "/etc/killpower")
        self.assertEqual(conf.minsupplies, 2)

    def test_notify(self) -> None:
        """
        NOTIFYMSG and NOTIFYFLAG take NUT's and nutshim's event names in any
        case; flags join with +, IGNORE silences; bad names and flags warn.
        """
        conf = parse(
            'NOTIFYMSG onbatt "On battery: %s"\n'
            "NOTIFYFLAG ONBATT SYSLOG+EXEC\n"
            "NOTIFYFLAG LOWBATT IGNORE\n"
            "NOTIFYFLAG NOTBYPASS EXEC\n"
        )
        self.assertEqual(conf.message("ONBATT"), "On battery: %s")
        self.assertEqual(conf.flags("ONBATT"), frozenset(["SYSLOG", "EXEC"]))
        self.assertEqual(conf.flags("LOWBATT"), frozenset())
        self.assertEqual(conf.flags("NOTBYPASS"), frozenset(["EXEC"]))
        self.assertEqual(conf.warnings, ())
        for line, fragment in [("NOTIFYFLAG BOGUS EXEC", "'BOGUS' is not a valid notify event"),
                               ("NOTIFYMSG ONBAT x", "'ONBAT' is not a valid notify event"),
                               ("NOTIFYFLAG ONLINE SYSLOG+LOUD", "Invalid notify flag: [LOUD]"),
                               ("NOTIFYFLAG ONLINE", "NOTIFYFLAG needs")]:
            error = self.assertRaises(ConfigError, parse, "# x\n" + line + "\n")
            self.assertEqual(error.lineno, 2, line)
            self.assertIn(fragment, error.message)

    def test_unknown_and_ignored(self) -> None:
        """
        Unknown keys and keys in the wrong case are invalid directives;
        RUN_AS_USER and CERTIDENT are accepted and ignored with a note.
        """
        conf = parse("FOO bar\npollfreq 2\nRUN_AS_USER nut\nCERTIDENT name secret\nDEBUG_MIN 3\n")
        self.assertEqual(conf.pollfreq, 5)
        self.assertEqual(conf.run_as_user, "nut")
        self.assertEqual(len(conf.warnings), 4)
        self.assertTrue(all("secret" not in m for m in messages(conf)))

    def test_switches(self) -> None:
        """
        CERTVERIFY, FORCESSL and CERTHOST's switches are numbers; a word is
        an error (NUT's atoi makes C{CERTVERIFY yes} 0: no verification).
        """
        for line in ("CERTVERIFY yes", "FORCESSL on", "CERTHOST h h yes 1", "CERTHOST h h 1 x"):
            error = self.assertRaises(ConfigError, parse, "# x\n" + line + "\n")
            self.assertEqual(error.lineno, 2, line)
            self.assertIn("must be 0 or 1", error.message)

    def test_parse_errors(self) -> None:
        """
        A quote not closed on its line is an error at that line (NUT: the
        MONITOR lines after it vanish into one word).
        """
        error = self.assertRaises(
            ConfigError, parse,
            'SHUTDOWNCMD "/sbin/shutdown -h\nMONITOR u 1 a b primary\nMONITOR v 1 a "b" primary\n')
        self.assertEqual(error.lineno, 1)
        self.assertIn("quote not closed", error.message)

    def test_tls_keys(self) -> None:
        """
        CERTPATH, CERTVERIFY, FORCESSL, CERTHOST and nutshim's CERTPIN,
        CERTFILE and TLS_MIN_VERSION.
        """
        conf = parse(
            "CERTPATH /etc/nut/ca.pem\nCERTVERIFY 1\nFORCESSL 0\n"
            "CERTHOST upsd.lan upsd.lan 0 1\n"
            f"CERTPIN upsd.lan {PIN}\nCERTFILE /etc/nut/me.pem\nTLS_MIN_VERSION 1.2\n"
        )
        self.assertEqual((conf.certpath, conf.certverify, conf.forcessl),
                         ("/etc/nut/ca.pem", True, False))
        entry = conf.certhost("upsd.lan")
        assert entry is not None
        self.assertEqual((entry.certname, entry.verify, entry.forcessl), ("upsd.lan", False, True))
        self.assertEqual(conf.pin("upsd.lan"), PIN)
        self.assertEqual((conf.certfile, conf.tls_min_version), ("/etc/nut/me.pem", "1.2"))

    def test_bad_extensions(self) -> None:
        """
        Bad values of nutshim's own keys are errors.
        """
        self.assertRaises(ConfigError, parse, "CERTPIN host sha256:abcd\n")
        self.assertRaises(ConfigError, parse, "CERTPIN host md5:" + "ab" * 32 + "\n")
        self.assertRaises(ConfigError, parse, "TLS_MIN_VERSION 1.1\n")

    def test_check(self) -> None:
        """
        What stops NUT's upsmon from starting stops nut-upsmon too.
        """
        self.assertRaises(ConfigError, parse("").check, "f")
        self.assertRaises(ConfigError, parse("MONITOR u 0 a b primary\n").check, "f")
        self.assertRaises(ConfigError, parse("MONITOR u 1 a b primary\nMINSUPPLIES 2\n").check, "f")
        self.assertRaises(ConfigError, parse("MONITOR u 1 a b primary\nCERTVERIFY 1\n").check, "f")
        parse(f"MONITOR u 1 a b primary\nCERTVERIFY 1\nCERTPIN localhost {PIN}\n").check("f")
        parse("MONITOR u 1 a b primary\nMINSUPPLIES 0\n").check("f")


class LoadTests(SynchronousTestCase):
    """
    Reading the file.
    """

    def test_missing(self) -> None:
        """
        A missing file is an error.
        """
        self.assertRaises(ConfigError, load_upsmon_conf, self.mktemp())

    def test_world_readable(self) -> None:
        """
        The file holds passwords: a world-readable one gives a warning.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("MONITOR u 1 a b primary\n")
        os.chmod(path, 0o644)
        conf = load_upsmon_conf(path)
        self.assertEqual(messages(conf), ["is world readable"])
        self.assertEqual(len(conf.monitors), 1)


class TLSSettingsTests(SynchronousTestCase):
    """
    upsmon.conf's TLS keys as the client library's settings.
    """

    def ca_file(self) -> str:
        cert, _ = make_ca("upsmon test CA", days=30)
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "ca.pem")
        with open(path, "wb") as f:
            f.write(certificate_pem(cert))
        return path

    def test_default_opportunistic(self) -> None:
        """
        By default, as NUT: STARTTLS tried, certificate not checked,
        plaintext accepted.
        """
        settings = tls_settings(parse(""), "host")
        self.assertEqual(settings, TLSSettings(insecure=True))

    def test_forcessl_and_verify(self) -> None:
        """
        FORCESSL requires TLS; CERTVERIFY with a CA file verifies with it.
        """
        settings = tls_settings(parse("CERTPATH /ca.pem\nCERTVERIFY 1\nFORCESSL 1\n"), "h")
        self.assertEqual(settings, TLSSettings(cafile="/ca.pem", required=True))

    def test_certhost(self) -> None:
        """
        CERTHOST overrides the global switches for its host and names the
        certificate expected.
        """
        conf = parse("CERTPATH /ca.pem\nCERTVERIFY 0\nCERTHOST h cert.name 1 1\n")
        self.assertEqual(tls_settings(conf, "h"),
                         TLSSettings(cafile="/ca.pem", server_name="cert.name", required=True))
        self.assertEqual(tls_settings(conf, "other"), TLSSettings(insecure=True))

    def test_pin(self) -> None:
        """
        A CERTPIN verifies its host even without CERTVERIFY.
        """
        conf = parse(f"CERTPIN h {PIN}\nTLS_MIN_VERSION 1.2\n")
        self.assertEqual(tls_settings(conf, "h"), TLSSettings(pin=PIN, min_tls="1.2"))

    def test_directory(self) -> None:
        """
        A CERTPATH directory trusts every PEM certificate in it; one with
        none cannot be used.
        """
        path = os.path.dirname(self.ca_file())
        with open(os.path.join(path, "README"), "w") as f:
            f.write("not a certificate\n")
        settings = tls_settings(parse(f"CERTPATH {path}\nCERTVERIFY 1\n"), "h")
        self.assertIsInstance(settings, CADirectorySettings)
        self.assertIsNotNone(settings.options("h"))
        empty = self.mktemp()
        os.makedirs(empty)
        settings = tls_settings(parse(f"CERTPATH {empty}\nCERTVERIFY 1\n"), "h")
        self.assertRaises(TLSConfigError, settings.options, "h")


class TapTests(SynchronousTestCase):
    """
    C{twistd nut-upsmon}'s options and service.
    """

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def test_default_path(self) -> None:
        """
        The default file is in $NUT_CONFPATH, else /etc/nut.
        """
        self.assertEqual(default_config({"NUT_CONFPATH": "/x"}), "/x/upsmon.conf")
        self.assertEqual(default_config({}), "/etc/nut/upsmon.conf")

    def test_options(self) -> None:
        """
        --config is read and checked; the service is a MultiService holding
        the monitor service, built without I/O.
        """
        path = self.write("MONITOR ups@127.0.0.1:3493 1 u p primary\n")
        options = Options()
        options.parseOptions(["--config", path])
        self.assertEqual(options["conf"].monitors[0].upsname, "ups")
        reactor = MemoryReactorClock()
        service = makeService(options, reactor)
        self.assertIsInstance(service, MultiService)
        children = list(service)  # type: ignore[call-overload]
        self.assertEqual(len(children), 1)
        self.assertIsInstance(children[0], UpsmonService)
        self.assertEqual(reactor.tcpClients, [])

    def test_errors(self) -> None:
        """
        A missing file, a check failure or an unusable CA file stop twistd
        with one line naming the file (not a usage error: twistd would print
        its --help first).
        """
        for text in (None, "", "MONITOR u 1 a b primary\nCERTPATH /nonexistent\nCERTVERIFY 1\n"):
            path = self.mktemp() if text is None else self.write(text)
            e = self.assertRaises(SystemExit, Options().parseOptions, ["--config", path])
            self.assertTrue(str(e.code).startswith(f"nut-upsmon: {path}"), e.code)
            self.assertNotIn("\n", str(e.code))
