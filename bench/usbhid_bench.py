#!/usr/bin/env python3
"""
What does polling USB HID UPSes cost, and does it ever block the reactor?

Runs N C{nutshim-usbhid} drivers in one process on the real reactor, each
with its own USB thread, each playing a captured device through the pyusb
replay backend (the real driver and pyusb code; only libusb is replaced),
polling every C{--interval} seconds (a full poll every C{--pollfreq}),
with the interrupt endpoint read between polls.  Meanwhile a 5 ms
heartbeat on the reactor records how late it fires: the longest lateness
is the longest reactor stall.  Prints, for each N, the CPU time per poll
per UPS and the longest stall.

Not a test: never run in CI.  Bounded (C{--seconds} per run).

Usage::

    PYTHONPATH=. python3 bench/usbhid_bench.py [--ups 1,16] [--seconds 20] [--interval 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from typing import Any, List, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

CAPTURE = os.path.join(os.path.dirname(HERE), "nutshim", "test", "usbhid", "unbranded-5131-2007.dump")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(count: int, seconds: float, interval: float, pollfreq: float) -> Any:
    """
    One run in a fresh process state (called in a child, see L{main}).
    """
    from twisted.internet import reactor, task

    from nutshim.drivers.usbhid.factory import make_usbhid_driver

    drivers = [make_usbhid_driver(f"ups{i}", {"port": "replay:" + CAPTURE, "vendorid": "5131",
                                              "pollinterval": str(interval),
                                              "pollfreq": str(pollfreq)}, HERE, reactor)
               for i in range(count)]
    stalls: List[float] = []
    last = [time.monotonic()]
    beat = 0.005

    def heartbeat() -> None:
        now = time.monotonic()
        stalls.append(now - last[0] - beat)
        last[0] = now

    loop = task.LoopingCall(heartbeat)
    result = {}

    def start() -> None:
        for d in drivers:
            d.start()

        def measure() -> None:
            # Measure only once every driver is connected and polling.
            result["cpu0"], result["t0"] = cpu(), time.monotonic()
            result["polls0"] = sum(d.polls for d in drivers)
            stalls.clear()
            last[0] = time.monotonic()
            loop.start(beat, now=False)
            reactor.callLater(seconds, finish)

        reactor.callLater(2 * interval + 0.5, measure)

    def finish() -> None:
        result["cpu"] = cpu() - result["cpu0"]
        result["wall"] = time.monotonic() - result["t0"]
        result["polls"] = sum(d.polls for d in drivers) - result["polls0"]
        result["stale"] = sum(1 for d in drivers if d.stale)
        loop.stop()
        for d in drivers:
            d.stop()
        reactor.stop()

    reactor.callWhenRunning(start)
    reactor.run()
    result["stall"] = max(stalls) if stalls else 0.0
    return result


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ups", default="1,16")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--pollfreq", type=float, default=5.0)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        r = run(args.child, min(args.seconds, 120.0), args.interval, args.pollfreq)
        print(repr(r))
        return 0
    import ast
    import subprocess

    def child(count: int) -> Any:
        out = subprocess.run([sys.executable, __file__, "--child", str(count), "--seconds",
                              str(args.seconds), "--interval", str(args.interval),
                              "--pollfreq", str(args.pollfreq)],
                             capture_output=True, text=True, timeout=args.seconds + 60)
        if out.returncode:
            raise SystemExit(out.stderr)
        return ast.literal_eval(out.stdout.strip().splitlines()[-1])

    # The heartbeat itself costs CPU: measure it alone and subtract it.
    base = child(0)
    rate = base["cpu"] / base["wall"]
    print(f"baseline (reactor + 5 ms heartbeat, no UPS): {100 * rate:.1f} % CPU, longest stall"
          f" {1000 * base['stall']:.2f} ms")
    print(f"{'UPSes':>5} {'polls':>6} {'CPU ms/poll/UPS':>16} {'CPU % (net)':>12} "
          f"{'longest reactor stall ms':>25} {'stale':>5}")
    for count in (int(x) for x in args.ups.split(",") if int(x) > 0):
        r = child(count)
        net = max(r["cpu"] - rate * r["wall"], 0.0)
        per_poll = 1000.0 * net / max(r["polls"], 1)
        print(f"{count:>5} {r['polls']:>6} {per_poll:>16.3f} {100 * net / r['wall']:>12.2f} "
              f"{1000 * r['stall']:>25.2f} {r['stale']:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
