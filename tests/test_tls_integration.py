"""
STARTTLS end to end: the installed nut-upsd under twistd on a loopback port,
certificates made with the nutshim-pki command, and real clients -- Python's
ssl module in strict mode, Debian's NUT 2.8.0 upsmon and upsc (built with
NSS), python3-nut's PyNUTClient -- plus the stalled-handshake case NUT's
blocking upsd gets wrong.

Blocking by design, like the rest of tests/: real processes and sockets,
bounded waits.  A missing NUT binary skips a test, except in CI.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from typing import List, Optional

from twisted.trial.unittest import SynchronousTestCase

from tests.harness import (
    NUT_BIN,
    Process,
    free_port,
    nut_env,
    nutshim_daemon,
    private_run,
    query,
    require,
    run,
    twistd,
    wait_for,
    wait_port,
    write,
)

UPSD_USERS = """
[admin]
  password = adminpw
  actions = SET FSD
  instcmds = ALL
[mon]
  password = monpw
  upsmon primary
  certificate = upsmon-box
"""

LAB_DEV = """
ups.status: OL
battery.charge: 100
device.model: TLS Lab
"""


def pki(confdir: str, *args: str) -> str:
    """
    Run C{nutshim-pki} (the installed module) on the certificates of
    C{confdir}; fail the test with its output if it fails.
    """
    out = run([sys.executable, "-m", "nutshim.pki.cli", "--dir", os.path.join(confdir, "certs"), *args])
    if out.returncode != 0:
        raise AssertionError(f"nutshim-pki {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return out.stdout


def make_confdir(case: SynchronousTestCase, upsd_conf: str) -> str:
    """
    A configuration directory with a CA, a server certificate for
    localhost and 127.0.0.1, a client certificate C{upsmon-box}, one
    simulated UPS C{lab}, and C{upsd_conf}.
    """
    confdir = os.path.abspath(case.mktemp())
    os.makedirs(confdir)
    pki(confdir, "init")
    pki(confdir, "server", "localhost", "--san", "127.0.0.1")
    pki(confdir, "client", "upsmon-box")
    write(os.path.join(confdir, "ups.conf"), "[lab]\n  driver = nutshim-sim\n  port = lab.dev\n")
    write(os.path.join(confdir, "lab.dev"), LAB_DEV)
    write(os.path.join(confdir, "upsd.conf"), upsd_conf, 0o600)
    write(os.path.join(confdir, "upsd.users"), UPSD_USERS, 0o600)
    return confdir


def read_line(sock: socket.socket) -> bytes:
    """
    One reply line, read byte by byte so nothing after it is consumed (the
    TLS handshake follows C{OK STARTTLS} on the same socket).
    """
    out = b""
    while not out.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        out += byte
    return out


def read_until(sock: socket.socket, end: bytes) -> bytes:
    out = b""
    while not out.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


def strict_context(cafile: str) -> ssl.SSLContext:
    """
    What a careful Python client uses: the CA only, strict X.509 checks,
    host name (or IP) verification.
    """
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


def starttls(port: int, ctx: ssl.SSLContext, server_hostname: str) -> ssl.SSLSocket:
    """
    Connect, send STARTTLS, check C{OK STARTTLS}, do the handshake.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(b"STARTTLS\n")
        line = read_line(sock)
        if line != b"OK STARTTLS\n":
            raise AssertionError(f"STARTTLS answered {line!r}")
        return ctx.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


class DaemonTLSTestCase(SynchronousTestCase):
    """
    Starts nut-upsd with TLS configured by C{UPSD_CONF}.
    """

    UPSD_CONF = "CERTFILE certs/localhost.pem\n"

    def setUp(self) -> None:
        self.confdir = make_confdir(self, self.UPSD_CONF)
        self.port = free_port()
        self.daemon = nutshim_daemon(self, self.confdir, self.port)
        self.cafile = os.path.join(self.confdir, "certs", "ca.pem")

    def wait_log(self, *fragments: str, timeout: float = 10.0) -> str:
        """
        Wait until one line of nut-upsd's log has all the fragments.
        """

        def found() -> Optional[str]:
            for line in self.daemon.output().splitlines():
                if all(f in line for f in fragments):
                    return line
            return None

        wait_for(lambda: found() is not None, timeout, f"{fragments!r} in the log:\n{self.daemon.output()}")
        line = found()
        assert line is not None
        return line


class TwistedClientTests(DaemonTLSTestCase):
    """
    nutshim's Twisted client (C{nutshim-client upsc --tls --cafile}) verifies
    nut-upsd by DNS name and by IP address.
    """

    def upsc(self, host: str, *extra: str) -> "subprocess.CompletedProcess[str]":
        return run(
            [sys.executable, "-m", "nutshim.client.cli", "upsc", "--tls", "--cafile", self.cafile,
             *extra, f"lab@{host}:{self.port}", "ups.status"],
            env=nut_env(self.confdir),
        )

    def test_by_dns_name(self) -> None:
        """
        C{localhost} matches the certificate's DNS SAN.
        """
        out = self.upsc("localhost")
        self.assertEqual((out.returncode, out.stdout), (0, "OL\n"), out.stderr)
        self.wait_log("Client 127.0.0.1 is on TLS (TLSv1.3")

    def test_by_ip(self) -> None:
        """
        C{127.0.0.1} matches the certificate's iPAddress SAN.
        """
        out = self.upsc("127.0.0.1")
        self.assertEqual((out.returncode, out.stdout), (0, "OL\n"), out.stderr)

    def test_wrong_name(self) -> None:
        """
        Verifying another name fails before anything is sent.
        """
        out = self.upsc("127.0.0.1", "--server-name", "elsewhere.example")
        self.assertNotEqual(out.returncode, 0)
        self.assertEqual(out.stdout, "")


class PythonClientTests(DaemonTLSTestCase):
    """
    Python's ssl module, in VERIFY_X509_STRICT mode, against nut-upsd.
    """

    def test_verify_by_dns_name(self) -> None:
        """
        The certificate verifies for C{localhost}; TLS 1.3 is negotiated
        and requests are answered inside TLS; the log shows the session.
        """
        with starttls(self.port, strict_context(self.cafile), "localhost") as tls:
            self.assertEqual(tls.version(), "TLSv1.3")
            tls.sendall(b"GET VAR lab ups.status\n")
            self.assertEqual(read_until(tls, b"\n"), b'VAR lab ups.status "OL"\n')
        self.wait_log("Client 127.0.0.1 is on TLS (TLSv1.3")

    def test_verify_by_ip(self) -> None:
        """
        The certificate verifies for the address 127.0.0.1 (an iPAddress
        SAN, not a DNS name).
        """
        with starttls(self.port, strict_context(self.cafile), "127.0.0.1") as tls:
            tls.sendall(b"PROTVER\n")
            self.assertEqual(read_until(tls, b"\n"), b"1.3\n")

    def test_wrong_name_rejected(self) -> None:
        """
        A client checking another host name refuses the certificate.
        """
        with self.assertRaises(ssl.SSLCertVerificationError):
            starttls(self.port, strict_context(self.cafile), "elsewhere.example")
        self.wait_log("TLS handshake with 127.0.0.1 failed", "the client rejected the handshake")

    def test_tls12_only_refused(self) -> None:
        """
        A client that offers only TLS 1.2 is refused (TLS_MIN_VERSION
        defaults to 1.3) and the log says why.
        """
        ctx = strict_context(self.cafile)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises(ssl.SSLError):
            starttls(self.port, ctx, "localhost")
        self.wait_log("TLS handshake with 127.0.0.1 failed", "no TLS version in common")

    def test_list_client(self) -> None:
        """
        LIST CLIENT keeps NUT's format for a TLS session; the log says who
        is on TLS.
        """
        with starttls(self.port, strict_context(self.cafile), "localhost") as tls:
            tls.sendall(b"USERNAME mon\nPASSWORD monpw\nLOGIN lab\nLIST CLIENT lab\n")
            out = read_until(tls, b"END LIST CLIENT lab\n")
        self.assertTrue(out.endswith(b"BEGIN LIST CLIENT lab\nCLIENT lab 127.0.0.1\nEND LIST CLIENT lab\n"), out)

    def test_upsc_opportunistic(self) -> None:
        """
        Debian's upsc (NSS) tries STARTTLS by itself and reads over TLS.
        """
        require("upsc")
        out = run(["upsc", f"lab@127.0.0.1:{self.port}", "ups.status"], env=nut_env(self.confdir))
        self.assertEqual(out.stdout.strip(), "OL")
        self.assertIn("Connected to NUT server 127.0.0.1 in SSL", out.stderr)
        self.wait_log("Client 127.0.0.1 is on TLS")


class RequiredTLSTests(DaemonTLSTestCase):
    """
    TLS_REQUIRED all: how a non-loopback client is treated, emulated from
    loopback.
    """

    UPSD_CONF = "CERTFILE certs/localhost.pem\nTLS_REQUIRED all\n"

    def test_plaintext_refused(self) -> None:
        """
        In plaintext only STARTTLS, HELP and the protocol version are
        answered; credentials are refused, not stored.
        """
        out = query(
            self.port,
            b"LIST UPS\nUSERNAME admin\nPASSWORD adminpw\nVER\nPROTVER\n",
            until=b"1.3\n",
        )
        self.assertEqual(out, b"ERR TLS-NOT-ENABLED\n" * 4 + b"1.3\n")

    def test_served_after_starttls(self) -> None:
        """
        The same requests are served once TLS is up.
        """
        with starttls(self.port, strict_context(self.cafile), "localhost") as tls:
            tls.sendall(b"USERNAME admin\nPASSWORD adminpw\nFSD lab\n")
            self.assertEqual(read_until(tls, b"OK FSD-SET\n"), b"OK\nOK\nOK FSD-SET\n")


class PyNUTTests(DaemonTLSTestCase):
    """
    python3-nut 2.8.0's PyNUTClient has no STARTTLS: it can only talk to
    nut-upsd in plaintext, which the default TLS_REQUIRED (remote, once
    CERTFILE is set) still allows from loopback.
    """

    def test_pynut_plaintext_loopback(self) -> None:
        """
        PyNUT.py has no STARTTLS support; PyNUTClient lists and reads in
        plaintext from 127.0.0.1 while TLS is required from other hosts.
        """
        pynut = "/usr/lib/python3/dist-packages/PyNUT.py"
        require("/usr/bin/python3", pynut)
        with open(pynut, encoding="utf-8", errors="replace") as f:
            self.assertNotIn("STARTTLS", f.read())
        script = textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, "/usr/lib/python3/dist-packages")
            import PyNUT
            c = PyNUT.PyNUTClient(host="127.0.0.1", port={self.port}, login="admin", password="adminpw")
            print(sorted(c.GetUPSList()))
            print(c.GetUPSVars("lab")[b"ups.status"])
            """
        )
        out = run(["/usr/bin/python3", "-c", script])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.splitlines(), ["[b'lab']", "b'OL'"])


def upsmon_conf(port: int, nssdir: str, certident: str = "") -> str:
    text = textwrap.dedent(
        f"""
        RUN_AS_USER root
        MONITOR lab@127.0.0.1:{port} 1 mon monpw primary
        MINSUPPLIES 1
        SHUTDOWNCMD "/bin/true"
        POLLFREQ 1
        POLLFREQALERT 1
        CERTPATH {nssdir}
        CERTVERIFY 1
        FORCESSL 1
        """
    )
    if certident:
        text += f'CERTIDENT {certident} ""\n'
    return text


class UpsmonTests(SynchronousTestCase):
    """
    Debian's upsmon 2.8.0 (NSS) with CERTVERIFY 1 and FORCESSL 1.
    """

    def setUp(self) -> None:
        self.upsmon = os.path.join(NUT_BIN, "upsmon")
        require(self.upsmon, "certutil", "pk12util", "unshare")

    def start(self, upsd_conf: str, nss_args: List[str], certident: str = "", other_ca: bool = False) -> None:
        self.confdir = make_confdir(self, upsd_conf)
        self.port = free_port()
        self.daemon = nutshim_daemon(self, self.confdir, self.port)
        nssdir = os.path.join(self.confdir, "nss")
        if other_ca:
            # A database trusting some other CA: nut-upsd's certificate must
            # then fail verification.
            other = os.path.join(self.confdir, "other")
            run([sys.executable, "-m", "nutshim.pki.cli", "--dir", other, "init"])
            out = run([sys.executable, "-m", "nutshim.pki.cli", "--dir", other, "export-nss", nssdir])
        else:
            out = run([sys.executable, "-m", "nutshim.pki.cli", "--dir", os.path.join(self.confdir, "certs"),
                       "export-nss", nssdir, *nss_args])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        mdir = os.path.join(self.confdir, "upsmon")
        os.makedirs(mdir)
        write(os.path.join(mdir, "upsmon.conf"), upsmon_conf(self.port, nssdir, certident), 0o600)
        self.mon = Process(
            private_run(mdir, [self.upsmon, "-F", "-D"]),
            os.path.join(self.confdir, "upsmon.log"),
            env=nut_env(mdir),
        )
        self.addCleanup(self.mon.stop)

    def test_upsmon_over_tls(self) -> None:
        """
        upsmon verifies nut-upsd's certificate through the NSS database
        made by C{nutshim-pki export-nss}, connects in SSL and logs in;
        nut-upsd's log shows the TLS session.
        """
        self.start("CERTFILE certs/localhost.pem\n", [])
        wait_for(lambda: query(self.port, b"GET NUMLOGINS lab\n") == b"NUMLOGINS lab 1\n", 20,
                 "upsmon logged in\n" + self.mon.output())
        out = self.mon.output()
        self.assertIn("Intend to authenticate server 127.0.0.1 : SUCCESS", out)
        self.assertIn("SSL handshake done successfully with server 127.0.0.1", out)
        self.assertIn("Connected to NUT server 127.0.0.1 in SSL", out)
        self.assertIn("Client 127.0.0.1 is on TLS (TLSv1.3", self.daemon.output())

    def test_upsmon_client_certificate(self) -> None:
        """
        With CERTREQUEST 2, upsmon presents its certificate from the NSS
        database (CERTIDENT); nut-upsd verifies it and maps it to the
        upsd.users user.
        """
        self.start(
            "CERTFILE certs/localhost.pem\nCERTPATH certs/ca.pem\nCERTREQUEST 2\n",
            ["--server", "upsmon-box"],
            certident="upsmon-box",
        )
        wait_for(lambda: query(self.port, b"GET NUMLOGINS lab\n") == b"NUMLOGINS lab 1\n", 20,
                 "upsmon logged in\n" + self.mon.output() + self.daemon.output())
        self.assertIn("client certificate CN=upsmon-box", self.daemon.output())
        self.assertIn("= upsd.users user mon", self.daemon.output())

    def test_upsmon_wrong_ca(self) -> None:
        """
        upsmon trusting another CA refuses nut-upsd (FORCESSL: no fallback
        to plaintext); nut-upsd logs that the client rejected its
        certificate.
        """
        self.start("CERTFILE certs/localhost.pem\n", [], other_ca=True)
        wait_for(lambda: "Certificate validation failed" in self.mon.output(), 20,
                 "upsmon refusing\n" + self.mon.output())
        wait_for(lambda: "alert: unknown ca" in self.daemon.output(), 10, self.daemon.output())
        self.assertEqual(query(self.port, b"GET NUMLOGINS lab\n"), b"NUMLOGINS lab 0\n")


class StallTests(DaemonTLSTestCase):
    """
    NUT's upsd does the handshake blocking: one client silent after
    C{OK STARTTLS} freezes it.  nut-upsd keeps serving and drops the silent
    one after TLS_HANDSHAKE_TIMEOUT.
    """

    UPSD_CONF = "CERTFILE certs/localhost.pem\nTLS_HANDSHAKE_TIMEOUT 3\n"

    def test_silent_client_does_not_stall(self) -> None:
        """
        While a raw client sits silent after C{OK STARTTLS}, new clients get
        TLS and answers within a second each; the silent one is dropped
        after 3 s with a log line.
        """
        silent = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(silent.close)
        silent.sendall(b"STARTTLS\n")
        self.assertEqual(read_line(silent), b"OK STARTTLS\n")
        ctx = strict_context(self.cafile)
        for _ in range(5):
            started = time.monotonic()
            with starttls(self.port, ctx, "localhost") as tls:
                tls.sendall(b"GET VAR lab ups.status\n")
                self.assertEqual(read_until(tls, b"\n"), b'VAR lab ups.status "OL"\n')
            self.assertLess(time.monotonic() - started, 1.0)
            plain = query(self.port, b"PROTVER\n")
            self.assertEqual(plain, b"1.3\n")
        silent.settimeout(10)
        started = time.monotonic()
        try:
            data = silent.recv(100)
        except ConnectionResetError:
            data = b""  # dropped with abortConnection: a reset, not a FIN
        self.assertEqual(data, b"")
        self.assertLess(time.monotonic() - started, 6.0)
        self.wait_log("TLS handshake with 127.0.0.1 not finished after 3.0 s")


def read_to_eof(sock: socket.socket, timeout: float) -> "tuple[bytes, bool]":
    """
    Everything the server still sends, and whether it ended the connection
    (EOF, TLS close_notify or a reset) within C{timeout} seconds.
    """
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return out, True
    except socket.timeout:
        return out, False


class GoodbyeTests(DaemonTLSTestCase):
    """
    After C{OK Goodbye} (LOGOUT, DETACH) nut-upsd ends the connection within
    a second, in plaintext and in TLS, even for a client that stops reading,
    and nothing sent after the LOGOUT runs (issue 10, item 4: a TLS session
    used to go on executing requests until IDLE_TIMEOUT).
    """

    def numlogins(self) -> bytes:
        return query(self.port, b"GET NUMLOGINS lab\n")

    def test_plaintext_eof(self) -> None:
        """
        Plaintext: EOF follows C{OK Goodbye} at once.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"USERNAME admin\nPASSWORD adminpw\nLOGOUT\n")
            self.assertEqual(read_until(sock, b"OK Goodbye\n"), b"OK\nOK\nOK Goodbye\n")
            started = time.monotonic()
            rest, closed = read_to_eof(sock, 5)
            elapsed = time.monotonic() - started
        self.assertEqual((rest, closed), (b"", True))
        self.assertLess(elapsed, 1.0)

    def test_tls_eof(self) -> None:
        """
        TLS: LOGOUT, and DETACH, are followed by EOF within a second.
        """
        for goodbye in (b"LOGOUT\n", b"ATTACH lab\nDETACH\n"):
            with starttls(self.port, strict_context(self.cafile), "localhost") as tls:
                tls.sendall(b"USERNAME mon\nPASSWORD monpw\n")
                self.assertEqual(read_until(tls, b"OK\nOK\n"), b"OK\nOK\n")
                tls.sendall(goodbye)
                self.assertTrue(read_until(tls, b"OK Goodbye\n").endswith(b"OK Goodbye\n"))
                started = time.monotonic()
                rest, closed = read_to_eof(tls, 5)
                elapsed = time.monotonic() - started
            self.assertEqual((rest, closed), (b"", True), goodbye)
            self.assertLess(elapsed, 1.0, goodbye)

    def test_tls_nothing_after_logout(self) -> None:
        """
        A privileged request sent right behind LOGOUT, in the same TLS
        session, is not executed.
        """
        with starttls(self.port, strict_context(self.cafile), "localhost") as tls:
            tls.sendall(b"USERNAME admin\nPASSWORD adminpw\n")
            self.assertEqual(read_until(tls, b"OK\nOK\n"), b"OK\nOK\n")
            tls.sendall(b"LOGOUT\n")
            tls.sendall(b"FSD lab\n")  # its own TLS record
            rest, closed = read_to_eof(tls, 3)
        self.assertEqual(rest, b"OK Goodbye\n")
        self.assertTrue(closed)
        self.assertEqual(query(self.port, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')

    def test_tls_client_not_reading(self) -> None:
        """
        A TLS client that stops reading after LOGOUT (and so never answers
        close_notify) is gone within a second: its login no longer counts.
        """
        with starttls(self.port, strict_context(self.cafile), "localhost") as tls:
            tls.sendall(b"USERNAME mon\nPASSWORD monpw\nLOGIN lab\n")
            self.assertEqual(read_until(tls, b"OK\nOK\nOK\n"), b"OK\nOK\nOK\n")
            self.assertEqual(self.numlogins(), b"NUMLOGINS lab 1\n")
            started = time.monotonic()
            tls.sendall(b"LOGOUT\n")
            while self.numlogins() != b"NUMLOGINS lab 0\n" and time.monotonic() - started < 5:
                time.sleep(0.05)
            elapsed = time.monotonic() - started
        self.assertEqual(self.numlogins(), b"NUMLOGINS lab 0\n")
        self.assertLess(elapsed, 1.0)


class StartupTests(SynchronousTestCase):
    """
    A bad certificate stops the daemon with one line naming the file.
    """

    def test_mismatched_key(self) -> None:
        """
        CERTFILE whose key is not the certificate's: twistd exits at once
        with the file and the reason.
        """
        confdir = make_confdir(self, "CERTFILE bad.pem\n")
        certs = os.path.join(confdir, "certs")
        with open(os.path.join(certs, "localhost.pem"), "rb") as f:
            server = f.read()
        with open(os.path.join(certs, "upsmon-box.pem"), "rb") as f:
            client = f.read()
        cert = server[: server.index(b"-----END CERTIFICATE-----") + 26]
        key = client[client.index(b"-----BEGIN PRIVATE KEY-----") :]
        write(os.path.join(confdir, "bad.pem"), (cert + key).decode(), 0o600)
        out = subprocess.run(
            [twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", confdir, "--listen", "tcp:0:interface=127.0.0.1"],
            capture_output=True, text=True, timeout=60, env=nut_env(confdir),
        )
        self.assertNotEqual(out.returncode, 0)
        text = out.stdout + out.stderr
        self.assertIn(os.path.join(confdir, "bad.pem") + ": CERTFILE: the private key does not match", text)
        self.assertNotIn("Traceback", text)


class SplitListenerTests(SynchronousTestCase):
    """
    The port-401 split (issue 10, item 8): a TLS-only listener, where every
    client must STARTTLS first, beside a plaintext loopback listener for
    legacy clients, in one nut-upsd, from upsd.conf's LISTEN and LISTEN_TLS
    lines (high ports stand for 3493 and 401).
    """

    def setUp(self) -> None:
        self.plain = free_port()
        self.tls = free_port()
        self.confdir = make_confdir(
            self,
            f"CERTFILE certs/localhost.pem\nLISTEN 127.0.0.1 {self.plain}\n"
            f"LISTEN_TLS 127.0.0.1 {self.tls}\n",
        )
        self.cafile = os.path.join(self.confdir, "certs", "ca.pem")
        self.daemon = Process(
            [twistd(), "-n", "--pidfile=", "nut-upsd", "--confdir", self.confdir],
            os.path.join(self.confdir, "nutshim.log"), env=nut_env(self.confdir),
        )
        self.addCleanup(self.daemon.stop)
        for port in (self.plain, self.tls):
            try:
                wait_port(port)
            except AssertionError:
                raise AssertionError("nut-upsd did not start:\n" + self.daemon.output())

    def test_log(self) -> None:
        """
        The log names each listener with its policy and its line.
        """
        path = os.path.join(self.confdir, "upsd.conf")
        wait_for(lambda: "(TLS only; " + path + f":3: LISTEN_TLS 127.0.0.1 {self.tls})"
                 in self.daemon.output(), 10, "the TLS-only listener logged")
        self.assertIn(f"(plaintext or STARTTLS; {path}:2: LISTEN 127.0.0.1 {self.plain})",
                      self.daemon.output())

    def test_upsc_plaintext_listener(self) -> None:
        """
        NUT's own upsc reads from the plaintext loopback listener.
        """
        require("upsc")
        out = run(["upsc", f"lab@127.0.0.1:{self.plain}", "ups.status"], env=nut_env(self.confdir))
        self.assertEqual((out.returncode, out.stdout), (0, "OL\n"), out.stderr)

    def test_plaintext_refused_on_tls_listener(self) -> None:
        """
        On the TLS-only listener a loopback client without TLS gets
        ERR TLS-NOT-ENABLED for everything but STARTTLS and the discovery
        commands; the plaintext listener answers the same requests.
        """
        requests = b"LIST UPS\nUSERNAME admin\nPASSWORD adminpw\nGET VAR lab ups.status\nPROTVER\n"
        self.assertEqual(query(self.tls, requests, until=b"1.3\n"),
                         b"ERR TLS-NOT-ENABLED\n" * 4 + b"1.3\n")
        self.assertEqual(query(self.plain, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')

    def test_pynut_refused_on_tls_listener(self) -> None:
        """
        python3-nut's PyNUTClient (no STARTTLS) is refused on the TLS-only
        listener and served on the plaintext one.
        """
        require("/usr/bin/python3", "/usr/lib/python3/dist-packages/PyNUT.py")
        script = textwrap.dedent(
            """
            import sys
            sys.path.insert(0, "/usr/lib/python3/dist-packages")
            import PyNUT
            for port in (int(sys.argv[1]), int(sys.argv[2])):
                try:
                    c = PyNUT.PyNUTClient(host="127.0.0.1", port=port)
                    print(c.GetUPSVars("lab")[b"ups.status"])
                except PyNUT.PyNUTError as e:
                    print("error", e)
            """
        )
        out = run(["/usr/bin/python3", "-c", script, str(self.plain), str(self.tls)])
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(lines[0], "b'OL'")
        self.assertIn("TLS-NOT-ENABLED", lines[1])

    def test_tls_client_on_tls_listener(self) -> None:
        """
        A verifying TLS client is served on the TLS-only listener; so is
        NUT's upsc, which tries STARTTLS by itself.
        """
        with starttls(self.tls, strict_context(self.cafile), "localhost") as tls:
            tls.sendall(b"USERNAME admin\nPASSWORD adminpw\nGET VAR lab ups.status\n")
            self.assertEqual(read_until(tls, b'"OL"\n'), b'OK\nOK\nVAR lab ups.status "OL"\n')
        require("upsc")
        out = run(["upsc", f"lab@127.0.0.1:{self.tls}", "ups.status"], env=nut_env(self.confdir))
        self.assertEqual(out.stdout.strip(), "OL", out.stderr)
        self.assertIn("in SSL", out.stderr)


class SplitListenerCommandLineTests(DaemonTLSTestCase):
    """
    The same split from the command line: --listen beside --listen-tls.
    """

    def setUp(self) -> None:
        self.confdir = make_confdir(self, self.UPSD_CONF)
        self.port = free_port()
        self.tls = free_port()
        self.daemon = nutshim_daemon(
            self, self.confdir, self.port, ["--listen-tls", f"tcp:{self.tls}:interface=127.0.0.1"])
        wait_port(self.tls)
        self.cafile = os.path.join(self.confdir, "certs", "ca.pem")

    def test_split(self) -> None:
        """
        Plaintext from loopback on --listen; only STARTTLS on --listen-tls.
        """
        self.assertEqual(query(self.port, b"GET VAR lab ups.status\n"), b'VAR lab ups.status "OL"\n')
        self.assertEqual(query(self.tls, b"GET VAR lab ups.status\n"), b"ERR TLS-NOT-ENABLED\n")
        with starttls(self.tls, strict_context(self.cafile), "127.0.0.1") as tls:
            tls.sendall(b"GET VAR lab ups.status\n")
            self.assertEqual(read_until(tls, b"\n"), b'VAR lab ups.status "OL"\n')
