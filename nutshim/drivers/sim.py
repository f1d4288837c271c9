# -*- test-case-name: nutshim.test.test_sim -*-
"""
C{nutshim-sim}: a simulated UPS that plays a NUT C{dummy-ups} file in-process.

A simulation needs no hardware, no driver process and no socket, so a demo,
a lab and every test can have a UPS that goes on battery on cue.  Because
people already own C{dummy-ups} files, this driver reads them with the same
meaning (see L{nutshim.drivers._simfile}) and publishes the same variables
with the same flags; only time is different: it comes from an injected clock,
so tests step through a whole outage with L{twisted.internet.task.Clock}.

Where C{dummy-ups} would exit (a missing or unreadable file) this driver
logs, reports stale data and tries again at the next poll.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from twisted.internet.interfaces, import IDelayedCall, IReactorTime
from twisted.logger import Logger

from nutshim import __version__
from nutshim.drivers._simfile import (CommandDecl, EnumDecl, RangeDecl, Set, SimFile,
                                      Timer, TypeDecl, is_status, parse)
from nutshim.drivers.base import (TRACKING_INVALID, TRACKING_SUCCESS, TRACKING_UNKNOWN,
                                  DriverBase)

__all__ = ["SimulatedUPS", "make_sim_driver", "sample_path", "SAMPLES", "DEMO_SEQ",
           "MAX_FILE_SIZE"]

#: Files above this size are refused (a simulation file is a few kB).
MAX_FILE_SIZE = 1 << 20

#: The sample files shipped in C{nutshim/drivers/samples}.
SAMPLES = ("demo.seq", "lab.dev", "outage.seq")
_SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")


def sample_path(name: str) -> str:
    """
    The path of a bundled sample file.

    @param name: one of L{SAMPLES}.
    @raise LookupError: if no such sample ships with nutshim.
    """
    if name not in SAMPLES:
        raise LookupError(f"no bundled sample {name!r}")
    return os.path.join(_SAMPLE_DIR, name)


#: The demo UPS (C{OL CHRG} → C{OB DISCHRG} → C{OB LB}, with commands).
DEMO_SEQ = sample_path("demo.seq")

# dummy-ups.h nut_data[] of NUT 2.8.0: known variables and their STRING aux
# (0: RW only).  Unknown variables get RW STRING aux 32.
_KNOWN: Dict[str, int] = {
    "ups.mfr": 32, "ups.model": 32, "ups.status": 32, "ups.serial": 32,
    "ups.load": 0, "ups.alarm": 32, "ups.time": 16, "ups.date": 16,
    "ups.mfr.date": 16, "ups.firmware": 16, "ups.firmware.aux": 16,
    "ups.temperature": 0, "ups.id": 16, "ups.delay.start": 0,
    "ups.delay.reboot": 0, "ups.delay.shutdown": 0, "ups.test.interval": 0,
    "ups.test.result": 16, "input.voltage": 0, "input.voltage.maximum": 0,
    "input.voltage.minimum": 0, "input.voltage.nominal": 0,
    "input.transfer.reason": 1, "input.transfer.low": 0, "input.transfer.high": 0,
    "input.sensitivity": 1, "input.quality": 6, "input.frequency": 0,
    "input.transfer.boost.low": 0, "input.transfer.boost.high": 0,
    "input.transfer.trim.low": 0, "input.transfer.trim.high": 0,
    "output.voltage": 0, "output.frequency": 0, "output.current": 0,
    "battery.charge": 0, "battery.charge.low": 0, "battery.voltage": 0,
    "battery.current": 0, "battery.runtime": 0, "battery.runtime.low": 0,
    "battery.charge.restart": 0, "battery.temperature": 0,
    "battery.voltage.nominal": 0, "ambient.temperature": 0,
    "ambient.temperature.alarm": 0, "ambient.temperature.high": 0,
    "ambient.temperature.low": 0, "ambient.humidity": 0,
    "ambient.humidity.alarm": 0, "ambient.humidity.high": 0,
    "ambient.humidity.low": 0,
}

_Decls = Tuple[Dict[str, TypeDecl], Dict[str, Tuple[str, ...]],
               Dict[str, Tuple[Tuple[int, int], ...]], Dict[str, Tuple[str, Tuple[Set, ...]]]]


def _declarations(simfile: SimFile) -> _Decls:
    """
    Collect the declarations of a file, keyed by lower-cased name.
    """
    types: Dict[str, TypeDecl] = {}
    enums: Dict[str, Tuple[str, ...]] = {}
    ranges: Dict[str, Tuple[Tuple[int, int], ...]] = {}
    cmds: Dict[str, Tuple[str, Tuple[Set, ...]]] = {"load.off": ("load.off", ())}
    for st in simfile.statements:
        if isinstance(st, TypeDecl):
            types[st.var.lower()] = st
        elif isinstance(st, EnumDecl):
            enums[st.var.lower()] = enums.get(st.var.lower(), ()) + st.values
        elif isinstance(st, RangeDecl):
            ranges[st.var.lower()] = ranges.get(st.var.lower(), ()) + ((st.low, st.high),)
        elif isinstance(st, CommandDecl):
            name, effects = cmds.get(st.name.lower(), (st.name, ()))
            effect = () if st.effect is None else (st.effect,)
            cmds[st.name.lower()] = (name, effects + effect)
    return types, enums, ranges, cmds


class SimulatedUPS(DriverBase):
    """
    A UPS whose data come from a C{dummy-ups} file, driven by a clock.

    In C{dummy-once} mode (C{.dev}) the file is played once to its end and
    played again from the top whenever its modification time changes
    (checked every C{pollinterval}).  In C{dummy-loop} mode (C{.seq} and
    anything else) it is re-read and played again from the top each time
    the end is reached.  C{TIMER} lines pause in both modes.

    @ivar name: the UPS name.
    @ivar path: the file played.
    @ivar mode: C{"dummy-once"}, C{"dummy-loop"} or C{"dummy"} (looping).
    @ivar pollinterval: seconds between file checks and retries.
    """

    log = Logger()

    def __init__(self, name: str, path: str, clock: IReactorTime,
                 options: Mapping[str, str] = {}, pollinterval: float = 2.0) -> None:
        super().__init__()
        self.name = name
        self.path = path
        self.pollinterval = pollinterval
        self._clock = clock
        self._port = options.get("port", path)
        self.mode = self._choose_mode(options.get("mode"))
        self._call: Optional[IDelayedCall] = None
        self._running = False
        self._failing = False
        self._data: Optional[bytes] = None
        self._parsed = SimFile((), ())
        self._stamp: Optional[Tuple[int, int]] = None
        self._program: List[Statement] = []
        self._pos = 0
        self._waited = 0
        self._device_copied = False
        self._decls: _Decls = ({}, {}, {}, {})

    def _choose_mode(self, mode: Optional[str]) -> str:
        if mode in ("dummy-once", "dummy-loop"):
            return mode
        if mode == "dummy":
            return "dummy-loop"
        if mode is not None:
            self.log.warn("{ups}: mode {mode!r} is not supported by nutshim-sim; "
                          "choosing from the file name", ups=self.name, mode=mode)
        if self.path.endswith(".dev"):
            return "dummy-once"
        return "dummy-loop" if self.path.endswith(".seq") else "dummy"

    # IDriver

    def start(self) -> None:
        """
        Publish the driver's variables and play the file up to its first
        C{TIMER}; a file that cannot be read makes the data stale.
        """
        if self._running:
            return
        self._running = True
        self.connected = True
        poll = self.pollinterval
        for var, value in (
            ("driver.name", "nutshim-sim"),
            ("driver.version", __version__),
            ("driver.version.internal", __version__),
            ("driver.parameter.port", self._port),
            ("driver.parameter.mode", self.mode),
            ("driver.parameter.pollinterval", str(int(poll)) if poll == int(poll) else str(poll)),
            ("device.type", "ups"),
        ):
            self.state.set_info(var, value)
        for var, value in (("ups.mfr", "Dummy Manufacturer"), ("ups.model", "Dummy UPS"),
                           ("ups.status", "OL")):
            self._set(Set(var, value))
        self.state.add_command("load.off")
        self._begin_pass()

    def stop(self) -> None:
        """
        Cancel all timers; the driver is gone for the daemon.
        """
        self._running = False
        self.connected = False
        self._cancel()

    def setvar(self, name: str, value: str, tracking_id: Optional[str]) -> bool:
        """
        Store a value as C{dummy-ups} does: C{ups.status} is rebuilt from its
        words, an empty value deletes the variable.  Unknown variables and
        C{driver.*} are reported C{INVALID}.
        """
        if not self._running:
            return False
        var = self.state.get(name)
        if var is None or var.name.lower().startswith("driver."):
            self.report(tracking_id, TRACKING_INVALID)
            return True
        self._set(Set(var.name, value))
        self.report(tracking_id, TRACKING_SUCCESS)
        return True

    def instcmd(self, cmd: str, param: Optional[str], tracking_id: Optional[str]) -> bool:
        """
        Run a declared command's effects; anything else (including the
        undeclared C{load.off}) is C{UNKNOWN}, as in C{dummy-ups}.
        """
        if not self._running:
            return False
        declared = self._decls[3].get(cmd.lower())
        if declared is None or (not declared[1] and cmd.lower() == "load.off"
                                and "load.off" not in self._declared_commands()):
            self.log.info("{ups}: instcmd: unknown command [{cmd}] [{param}]",
                          ups=self.name, cmd=cmd, param=param)
            self.report(tracking_id, TRACKING_UNKNOWN)
            return True
        for effect in declared[1]:
            self._set(effect)
        self.report(tracking_id, TRACKING_SUCCESS)
        return True

    # Reading the file.

    def _stat(self) -> Optional[Tuple[int, int]]:
        try:
            st = os.stat(self.path)
        except (OSError, ValueError):
            return None
        return (st.st_mtime_ns, st.st_size)

    def _fail(self, reason: str) -> None:
        if not self._failing:
            self.log.error("{ups}: cannot use {path}: {reason}; data are stale, "
                           "retrying every {poll} s", ups=self.name, path=self.path,
                           reason=reason, poll=self.pollinterval)
        self._failing = True
        self._stamp = None
        self.stale = True

    def _load(self) -> Optional[SimFile]:
        """
        Read and parse the file (parsing and logging problems only when the
        content changed), or mark the data stale.
        """
        stamp = self._stat()
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_FILE_SIZE + 1)
        except (OSError, ValueError) as e:
            self._fail(getattr(e, "strerror", None) or str(e))
            return None
        if len(data) > MAX_FILE_SIZE:
            self._fail(f"larger than {MAX_FILE_SIZE} bytes")
            return None
        if self._failing:
            self.log.info("{ups}: reading {path} again", ups=self.name, path=self.path)
        self._failing = False
        self._stamp = stamp
        self.stale = False
        if data != self._data:
            self._data = data
            self._parsed = parse(data)
            for problem in self._parsed.problems:
                self.log.warn("{path}:{lineno}: {problem}; line skipped", path=self.path,
                              lineno=problem.lineno, problem=problem.message)
        return self._parsed

    # Playing the file.

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _later(self, delay: float, what: Callable[[], None]) -> None:
        def fire() -> None:
            self._call = None
            what()

        self._cancel()
        self._call = self._clock.callLater(delay, fire)

    def _begin_pass(self) -> None:
        simfile = self._load()
        if simfile is None:
            self._later(self.pollinterval, self._begin_pass)
            return
        self._declare(_declarations(simfile))
        self._program = [s for s in simfile.statements if isinstance(s, (Set, Timer))]
        self._pos = 0
        self._waited = 0
        self._run()

    def _run(self) -> None:
        """
        Execute statements up to the next C{TIMER} or the end of the file.
        """
        resumed = self._pos > 0
        executed = False
        while self._pos < len(self._program):
            st = self._program[self._pos]
            self._pos += 1
            if isinstance(st, Timer):
                self._copy_device()
                self._waited += st.seconds
                self._later(st.seconds, self._run)
                return
            self._set(st)
            executed = True
        self._copy_device()
        if self.mode == "dummy-once":
            self._later(self.pollinterval, self._check)
        elif resumed and not executed and self._waited > 0:
            # The file ends with a TIMER: its wait is over, start again.
            self._begin_pass()
        else:
            # Like dummy-ups, show the last values until the next poll.
            self._later(self.pollinterval, self._begin_pass)

    def _check(self) -> None:
        """
        C{dummy-once}: play the file again only if it changed.
        """
        if self._stat() != self._stamp:
            self._begin_pass()
        else:
            self._later(self.pollinterval, self._check)

    def _copy_device(self) -> None:
        """
        As NUT's driver core, copy C{ups.mfr/model/serial} to C{device.*}
        once the first data are in.
        """
        if self._device_copied:
            return
        self._device_copied = True
        for what in ("mfr", "model", "serial"):
            var = self.state.get("ups." + what)
            if var is not None:
                self.state.set_info("device." + what, var.value)

    # Changing the data.

    def _set(self, st: Set) -> None:
        state = self.state
        if is_status(st.var):
            created = state.get(st.var) is None
            state.set_info(st.var, " ".join(st.value.split()))
        elif not st.value:
            state.del_info(st.var)
            return
        else:
            created = state.get(st.var) is None
            state.set_info(st.var, st.value)
        if created:
            self._describe(st.var)

    def _describe(self, name: str) -> None:
        """
        Give a new variable its flags, aux, enums and ranges.
        """
        key = name.lower()
        types, enums, ranges, _ = self._decls
        decl = types.get(key)
        if decl is not None:
            rw, string, aux = decl.rw, decl.string, decl.aux
        else:
            aux = _KNOWN.get(key, 32)
            rw, string = True, aux > 0
        self.state.set_flags(name, (["RW"] if rw else []) + (["STRING"] if string else []))
        if string:
            self.state.set_aux(name, aux)
        for value in enums.get(key, ()):
            self.state.add_enum(name, value)
        for low, high in ranges.get(key, ()):
            self.state.add_range(name, low, high)

    def _declare(self, decls: _Decls) -> None:
        """
        Apply a file's declarations; variables whose declarations changed
        are described again from scratch.
        """
        old = self._decls
        self._decls = decls
        changed = set()
        for before, after in zip(old[:3], decls[:3]):
            for key in set(before) | set(after):
                if before.get(key) != after.get(key):
                    changed.add(key)
        for key in sorted(changed):
            var = self.state.get(key)
            if var is not None and not key.startswith("driver."):
                name, value = var.name, var.value
                self.state.del_info(name)
                self.state.set_info(name, value)
                self._describe(name)
        for key in set(old[3]) - set(decls[3]):
            self.state.del_command(old[3][key][0])
        for name, _ in decls[3].values():
            self.state.add_command(name)
