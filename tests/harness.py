"""
Process harness for integration tests: nutshim's daemons and the real NUT
2.8.0 binaries, each in a private directory on a free loopback port.

Blocking by design (subprocess and polling with bounded waits): these tests
are about real processes talking over real sockets, as administrators run
them.  The real NUT binaries are required in CI: absent there, a test fails
instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from twisted.trial.unittest import SkipTest

__all__ = [
    "free_port",
    "require",
    "wait_for",
    "wait_port",
    "Process",
    "nutshim_daemon",
    "nut_env",
    "real_upsd",
    "real_driver",
    "twistd",
    "query",
    "write",
    "NUT_BIN",
    "private_run",
    "statepath_for",
    "UPSD_USERS",
]

NUT_BIN = "/lib/nut"

#: upsd.users of the interop tests: an administrator, a Primary and a
#: Secondary upsmon user.
UPSD_USERS = """
[admin]
  password = adminpw
  actions = SET FSD
  instcmds = ALL
[monpri]
  password = pripw
  upsmon primary
[monsec]
  password = secpw
  upsmon secondary
"""
IN_CI = os.environ.get("CI") == "true"


def require(*paths: str) -> None:
    """
    Skip when a binary is missing, except in CI where that is a failure.
    """
    missing = [p for p in paths if not (os.path.exists(p) or shutil.which(p))]
    if missing:
        message = f"missing: {', '.join(missing)} (install nut-server nut-client python3-nut)"
        if IN_CI:
            raise AssertionError(message)
        raise SkipTest(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    def up() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_for(up, timeout, f"port {port}")


def write(path: str, text: str, mode: int = 0o644) -> str:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def twistd() -> str:
    """
    The twistd of the environment nutshim is installed in.
    """
    candidate = os.path.join(os.path.dirname(sys.executable), "twistd")
    return candidate if os.path.exists(candidate) else "twistd"


class Process:
    """
    A child process with its output in a log file, stopped on cleanup.
    """

    def __init__(
        self, args: Sequence[str], log: str, env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None
    ) -> None:
        self.args = list(args)
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen(
            self.args,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )

    def output(self) -> str:
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._out.close()


def statepath_for(confdir: str) -> str:
    """
    Where the driver sockets of the instance in C{confdir} live: C{confdir}
    itself when short enough, else a short directory under /tmp (a Unix
    socket path has at most 107 bytes, and trial's temporary directories
    get long).
    """
    if len(confdir) <= 70:
        return confdir
    import hashlib

    short = "/tmp/nutst-" + hashlib.sha1(confdir.encode()).hexdigest()[:10]
    os.makedirs(short, exist_ok=True)
    os.chmod(short, 0o777)
    return short


def nut_env(confdir: str, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """
    The environment NUT's tools read their private instance from.
    """
    env = dict(os.environ)
    env.update(NUT_CONFPATH=confdir, NUT_STATEPATH=statepath_for(confdir), NUT_ALTPIDPATH=confdir)
    if extra:
        env.update(extra)
    return env


def nutshim_daemon(
    testcase: object, confdir: str, port: int, extra_args: Sequence[str] = (), plugin: str = "nut-upsd"
) -> Process:
    """
    Start C{twistd -n nut-upsd} (the installed package) on 127.0.0.1:port.
    """
    args = [twistd(), "-n", "--pidfile=", plugin, "--confdir", confdir]
    args += ["--listen", f"tcp:{port}:interface=127.0.0.1", *extra_args]
    proc = Process(args, os.path.join(confdir, "nutshim.log"), env=nut_env(confdir))
    testcase.addCleanup(proc.stop)  # type: ignore[attr-defined]
    try:
        wait_port(port)
    except AssertionError:
        raise AssertionError("nut-upsd did not start:\n" + proc.output())
    return proc


def real_driver(testcase: object, confdir: str, upsname: str, driver: str = "dummy-ups") -> Process:
    """
    Start one of NUT's real drivers for C{upsname} of the private ups.conf.
    """
    require(os.path.join(NUT_BIN, driver))
    proc = Process(
        [os.path.join(NUT_BIN, driver), "-u", "root", "-D", "-a", upsname],
        os.path.join(confdir, f"{driver}-{upsname}.log"),
        env=nut_env(confdir),
    )
    testcase.addCleanup(proc.stop)  # type: ignore[attr-defined]
    sock = os.path.join(statepath_for(confdir), f"{driver}-{upsname}")
    try:
        wait_for(lambda: os.path.exists(sock), 30, f"{driver} socket {sock}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{proc.output()}")
    return proc


def private_run(rundir: str, args: Sequence[str]) -> List[str]:
    """
    Wrap C{args} so the process sees C{rundir} as /run/nut: Debian's upsmon
    keeps its PID file there whatever NUT_ALTPIDPATH says, so two upsmons
    on one machine need private mount namespaces.
    """
    os.makedirs("/run/nut", exist_ok=True)
    script = 'mount --bind "$0" /run/nut && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, rundir, *args]


def real_upsd(testcase: object, confdir: str, port: int) -> Process:
    """
    Start NUT's real C upsd (foreground) on 127.0.0.1:port.
    """
    require(os.path.join(NUT_BIN, "upsd"))
    proc = Process(
        [os.path.join(NUT_BIN, "upsd"), "-u", "root", "-F"],
        os.path.join(confdir, "upsd.log"),
        env=nut_env(confdir),
    )
    testcase.addCleanup(proc.stop)  # type: ignore[attr-defined]
    try:
        wait_port(port)
    except AssertionError:
        raise AssertionError("upsd did not start:\n" + proc.output())
    return proc


def upsmon_conf(confdir: str, port: int, user: str, pw: str, role: str, tag: str) -> str:
    """
    NUT's upsmon.conf for a monitor C{tag} of UPS C{sim} on 127.0.0.1:port
    whose SHUTDOWNCMD touches C{confdir/shutdown-TAG} and whose NOTIFYCMD
    appends C{NOTIFYTYPE UPSNAME} to C{confdir/notify-TAG}.
    """
    return textwrap.dedent(
        f"""
        RUN_AS_USER root
        MONITOR sim@127.0.0.1:{port} 1 {user} {pw} {role}
        MINSUPPLIES 1
        SHUTDOWNCMD "/usr/bin/touch {confdir}/shutdown-{tag}"
        NOTIFYCMD "/bin/sh -c 'echo $NOTIFYTYPE $UPSNAME >> {confdir}/notify-{tag}'"
        NOTIFYFLAG ONLINE EXEC
        NOTIFYFLAG ONBATT EXEC
        NOTIFYFLAG LOWBATT EXEC
        NOTIFYFLAG FSD EXEC
        NOTIFYFLAG SHUTDOWN EXEC
        POLLFREQ 1
        POLLFREQALERT 1
        HOSTSYNC 10
        DEADTIME 15
        FINALDELAY 0
        POWERDOWNFLAG {confdir}/killpower-{tag}
        """
    )


def query(port: int, data: bytes, until: bytes = b"\n", timeout: float = 5.0) -> bytes:
    """
    Send raw bytes, read until C{until} ends the reply (or EOF).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while not out.endswith(until):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def run(args: List[str], env: Optional[Mapping[str, str]] = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=dict(env) if env else None
    )
