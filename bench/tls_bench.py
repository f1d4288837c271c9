#!/usr/bin/env python3
"""
STARTTLS throughput of nut-upsd: handshakes per second and steady-state
requests per second over TLS versus plaintext.  Not a test: it prints
figures (recorded in docs/tls.md).

Why it is built this way:

 - nut-upsd is one Python process, so it gets one core (taskset) and the
   load generator another: the "2-core budget" of a small UPS server.
 - The load generator must not be the bottleneck, so it is a small C
   program (bench/nutload.c, OpenSSL, epoll), compiled on first use into
   bench/out/.  Its own CPU time is printed next to the server's, so the
   table shows which side saturated.  Without gcc/libssl-dev a Python
   multiprocess client is used instead (and the figures say so).
 - Each handshake is a full one (no session resumption), verifying the
   server's certificate like a careful client, followed by PROTVER.
 - The server runs as administrators run it: twistd, logging to a file
   (two log lines per TLS connection).

Usage:
    python bench/tls_bench.py [--duration 5] [--concurrency 1,8,32,128]
                              [--req-concurrency 1,16,64] [--profile]

Needs nutshim importable by the twistd next to sys.executable (installed,
or PYTHONPATH pointing at the checkout).
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import Pool
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
UPS = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_client() -> Optional[str]:
    """
    Compile nutload.c (once); None if there is no compiler or OpenSSL.
    """
    os.makedirs(OUT, exist_ok=True)
    exe = os.path.join(OUT, "nutload")
    src = os.path.join(HERE, "nutload.c")
    if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(src):
        return exe
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    r = subprocess.run([cc, "-O2", "-o", exe, src, "-lssl", "-lcrypto"], capture_output=True, text=True)
    if r.returncode != 0:
        print("cannot build nutload (apt-get install -y libssl-dev?):", r.stderr.strip()[-300:])
        return None
    return exe


def make_confdir(directory: str, min_version: str) -> str:
    """
    A CA, a server certificate for localhost/127.0.0.1, one static
    simulated UPS, CERTFILE.  Returns the CA file clients trust.
    """
    from nutshim.pki import _certs

    ca, ca_key = _certs.make_ca("bench CA")
    cert, key = _certs.make_leaf(ca, ca_key, "localhost", ["127.0.0.1"], "server")
    files = {
        "server.pem": _certs.leaf_pem(cert, key, [ca]),
        "ca.pem": _certs.certificate_pem(ca),
        "ups.conf": f"[{UPS}]\n  driver = nutshim-sim\n  port = bench.dev\n".encode(),
        "bench.dev": b"ups.status: OL\nbattery.charge: 100\n",
        "upsd.conf": f"CERTFILE server.pem\nTLS_MIN_VERSION {min_version}\n".encode(),
        "upsd.users": b"[mon]\n  password = pw\n  upsmon primary\n",
    }
    for name, data in files.items():
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600 if name != "ca.pem" else 0o644)
    return os.path.join(directory, "ca.pem")


def twistd() -> str:
    candidate = os.path.join(os.path.dirname(sys.executable), "twistd")
    return candidate if os.path.exists(candidate) else "twistd"


def pin(cpus: Optional[set[int]]) -> Callable[[], None]:
    """
    A preexec_fn/initializer that confines a process to C{cpus}.
    """

    def apply() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    return apply


class Server:
    """
    twistd -n nut-upsd on 127.0.0.1:port, pinned to its core.
    """

    def __init__(self, confdir: str, port: int, cpus: Optional[set[int]], profile: Optional[str]) -> None:
        args = [twistd(), "-n", "--pidfile=", "--logfile", os.path.join(confdir, "nutshim.log")]
        if profile:
            args += ["--profile", profile, "--profiler", "cprofile", "--savestats"]
        args += ["nut-upsd", "--confdir", confdir, "--listen", f"tcp:{port}:interface=127.0.0.1:backlog=1024"]
        self.log = os.path.join(confdir, "nutshim.log")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=pin(cpus),
            env=dict(os.environ, NUT_CONFPATH=confdir),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("nut-upsd did not start; log:\n" + self.read_log())
                time.sleep(0.2)

    def read_log(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cpu(self) -> float:
        """Seconds of CPU the server has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# A Python fallback load generator (only without a C compiler).


def _py_worker(job: Tuple[str, int, int, float, str, int]) -> Tuple[int, int, List[float]]:
    mode, port, threads, seconds, cafile, _ = job
    ctx = ssl.create_default_context(cafile=cafile)
    end = time.monotonic() + seconds
    done = [0, 0]
    lat: List[float] = []
    lock = threading.Lock()

    def loop() -> None:
        sock = None
        tls = None
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                if mode in ("handshake", "plain-conn") or sock is None:
                    sock = socket.create_connection(("127.0.0.1", port))
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conn: socket.socket = sock
                    if mode in ("handshake", "tls-req"):
                        sock.sendall(b"STARTTLS\n")
                        if sock.recv(64) != b"OK STARTTLS\n":
                            raise OSError("STARTTLS refused")
                        tls = ctx.wrap_socket(sock, server_hostname="localhost")
                        conn = tls
                    req = b"PROTVER\n" if mode in ("handshake", "plain-conn") else f"GET VAR {UPS} ups.status\n".encode()
                    current = conn
                current.sendall(req)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = current.recv(1024)
                    if not chunk:
                        raise OSError("closed")
                    data += chunk
                with lock:
                    if time.monotonic() <= end:
                        done[0] += 1
                        if mode in ("handshake", "plain-conn"):
                            lat.append(time.monotonic() - t0)
                if mode in ("handshake", "plain-conn"):
                    current.close()
                    sock = None
            except OSError:
                with lock:
                    done[1] += 1
                sock = None

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0], done[1], lat


def run_python(mode: str, port: int, conc: int, seconds: float, cafile: str, cpus: Optional[set[int]]) -> Dict[str, float]:
    procs = max(1, min(conc, 2 * (len(cpus) if cpus else os.cpu_count() or 1)))
    per = [conc // procs + (1 if i < conc % procs else 0) for i in range(procs)]
    with Pool(procs, initializer=pin(cpus)) as pool:
        results = pool.map(_py_worker, [(mode, port, n, seconds, cafile, i) for i, n in enumerate(per)])
    completed = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[2])
    return {
        "rate": completed / seconds,
        "errors": sum(r[1] for r in results),
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else 0.0,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else 0.0,
        "client_cpu": float("nan"),
    }


def run_c(exe: str, mode: str, port: int, conc: int, seconds: float, cafile: str, cpus: Optional[set[int]]) -> Dict[str, float]:
    out = subprocess.run(
        [exe, "127.0.0.1", str(port), mode, str(conc), str(seconds), cafile, "localhost", UPS],
        capture_output=True, text=True, preexec_fn=pin(cpus), timeout=seconds + 60,
    )
    if out.returncode != 0:
        raise SystemExit(f"nutload failed: {out.stderr}")
    fields = dict(kv.split("=", 1) for kv in out.stdout.split())
    return {k: float(fields[k]) for k in ("rate", "errors", "p50_ms", "p99_ms", "client_cpu")}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,8,32,128", help="handshake runs")
    parser.add_argument("--req-concurrency", default="1,16,64", help="request runs")
    parser.add_argument("--min-version", default="1.3", choices=["1.2", "1.3"])
    parser.add_argument("--python-client", action="store_true", help="use the Python load generator")
    parser.add_argument("--profile", action="store_true", help="cProfile the server during one handshake run")
    parser.add_argument("--keep-profile", metavar="FILE", help="also save the profile to FILE")
    args = parser.parse_args(argv)

    ncpu = len(os.sched_getaffinity(0))
    server_cpus = {0} if ncpu >= 2 else None
    client_cpus = set(range(1, ncpu)) if ncpu >= 2 else None
    exe = None if args.python_client else build_client()
    work = tempfile.mkdtemp(prefix="nutshim-bench-")
    cafile = make_confdir(work, args.min_version)
    port = free_port()
    profile = os.path.join(work, "server.prof") if args.profile else None
    server = Server(work, port, server_cpus, profile)
    print(f"nut-upsd on 127.0.0.1:{port}, server CPUs {sorted(server_cpus) if server_cpus else 'any'},"
          f" load generator CPUs {sorted(client_cpus) if client_cpus else 'any'}"
          f" ({'C nutload' if exe else 'Python multiprocess'}), {args.duration:g} s per run,"
          f" TLS_MIN_VERSION {args.min_version}, OpenSSL {ssl.OPENSSL_VERSION}")

    runs: List[Tuple[str, int]] = []
    if args.profile:
        runs = [("handshake", 32)]
    else:
        runs += [("plain-conn", c) for c in [int(x) for x in args.concurrency.split(",")]]
        runs += [("handshake", c) for c in [int(x) for x in args.concurrency.split(",")]]
        for c in [int(x) for x in args.req_concurrency.split(",")]:
            runs += [("plain-req", c), ("tls-req", c)]

    rows = []
    try:
        for mode, conc in runs:
            before = server.cpu()
            if exe:
                r = run_c(exe, mode, port, conc, args.duration, cafile, client_cpus)
            else:
                r = run_python(mode, port, conc, args.duration, cafile, client_cpus)
            r["server_cpu"] = (server.cpu() - before) / args.duration * 100
            r["client_cpu"] = r["client_cpu"] / args.duration * 100
            rows.append((mode, conc, r))
            print(f"  {mode:<10} conc={conc:<4} {r['rate']:>9.1f}/s", flush=True)
            time.sleep(0.5)
    finally:
        server.stop()

    what = {
        "plain-conn": "connect+PROTVER+close, plaintext",
        "handshake": "connect+STARTTLS+handshake+PROTVER+close",
        "plain-req": "GET VAR, plaintext, steady state",
        "tls-req": "GET VAR, TLS, steady state",
    }
    print()
    print(f"| {'test':<42} | conc | {'per second':>10} | p50 ms | p99 ms | server CPU | client CPU |"
          f" per server CPU-s | errors |")
    print(f"|{'-' * 44}|------|{'-' * 12}|--------|--------|------------|------------|{'-' * 18}|--------|")
    for mode, conc, r in rows:
        lat = mode in ("handshake", "plain-conn")
        p50 = f"{r['p50_ms']:6.2f}" if lat else "     -"
        p99 = f"{r['p99_ms']:6.2f}" if lat else "     -"
        ccpu = f"{r['client_cpu']:9.0f}%" if r["client_cpu"] == r["client_cpu"] else "        n/a"
        # What one fully used core would do at this cost per operation: the
        # figure that does not depend on how much CPU the machine spared.
        per_core = r["rate"] / (r["server_cpu"] / 100) if r["server_cpu"] > 0 else float("nan")
        print(f"| {what[mode]:<42} | {conc:>4} | {r['rate']:>10.1f} | {p50} | {p99} |"
              f" {r['server_cpu']:>9.0f}% | {ccpu} | {per_core:>16.0f} | {int(r['errors']):>6} |")
    print()
    print("server CPU: share of one core nut-upsd used during the run (100% = saturated);"
          " per server CPU-s: operations per second of nut-upsd CPU time")
    if profile:
        time.sleep(1)
        if os.path.exists(profile):
            print()
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
            if args.keep_profile:
                shutil.copy(profile, args.keep_profile)
        else:
            print("no profile written (twistd --savestats)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
