#!/usr/bin/env python3
"""
Would several server processes help on this machine?  Measures the bare
Twisted floor (a protocol that answers every request with a canned GET VAR
reply, written straight to the socket) as 1, 2, ... processes sharing one
listening socket, nothing pinned, against bench/loadgen.c.

Not a test: never run in CI.  Loopback only, bounded runs (at most 60 s
each, at most 8 processes).  It answers the question docs/benchmarks.md
asks about multi-process designs: if N floor processes are no faster than
one, the load generator and the servers already share every core, and
workers cannot raise nutshim's rate here either.

Usage::

    python3 bench/floor_processes.py [--python /tmp/inst/bin/python] [--procs 1,2] [--conns 100,500]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from upsd_bench import FLOOR_SERVER, LOADGEN, build_loadgen  # noqa: E402

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"floor on port {port} did not start")


def run(python: str, procs: int, conns: int, seconds: int) -> float:
    port = free_port()
    server = subprocess.Popen(
        [python, "-c", FLOOR_SERVER, str(port), str(procs)], start_new_session=True
    )
    try:
        wait_listening(port)
        out = subprocess.run(
            [LOADGEN, "-p", str(port), "-u", "ups", "-m", "steady", "-c", str(conns), "-d", str(seconds)],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout
        match = re.search(r"rps=([\d.]+)", out)
        if match is None:
            raise SystemExit(f"no result from the load generator: {out!r}")
        return float(match.group(1))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="/tmp/inst/bin/python", help="a Python with Twisted")
    parser.add_argument("--procs", default="1,2", help="process counts to compare")
    parser.add_argument("--conns", default="100,500", help="connection counts")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    procs = [int(p) for p in args.procs.split(",")]
    conns = [int(c) for c in args.conns.split(",")]
    if any(not 1 <= p <= 8 for p in procs) or not 1 <= args.seconds <= 60 or not 1 <= args.repeat <= 10:
        parser.error("1-8 processes, 1-60 s, 1-10 repeats")
    build_loadgen()
    print(f"{os.cpu_count()} CPUs, nothing pinned; median of {args.repeat} runs of {args.seconds} s")
    for c in conns:
        for p in procs:
            rates: List[float] = sorted(run(args.python, p, c, args.seconds) for _ in range(args.repeat))
            print(
                f"floor x{p}  {c:5d} conns: {rates[len(rates) // 2]:9.0f} req/s"
                f"  ({rates[0]:.0f}-{rates[-1]:.0f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
