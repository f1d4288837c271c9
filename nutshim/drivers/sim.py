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
from typing import Any, Callable, Mapping, Optional, Protocol, Tuple, Union, cast

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from nutshim import __version__
from nutshim.drivers._simfile import (NO_DECLARATIONS, Declarations, Set, SimFile, Timer,
                                      is_status, parse)
from nutshim.drivers.base import (TRACKING_INVALID, TRACKING_SUCCESS, TRACKING_UNKNOWN,
                                  DriverBase)
from nutshim.state import Flags

__all__ = ["SimulatedUPS", "make_sim_driver", "resolve_port", "sample_path", "SAMPLES",
           "DEMO_SEQ", "MAX_FILE_SIZE"]

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


class _Call(Protocol):
    """
    What is used of L{IDelayedCall}.
    """

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class _Clock(Protocol):
    """
    What is used of L{IReactorTime}, typed for mypy without the zope plugin.
    """

    def callLater(self, delay: float, callable: Callable[..., Any], *args: object,
                  **kw: object) -> _Call: ...


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
        self._clock = cast(_Clock, clock)
        self._port = options.get("port", path)
        self.mode = self._choose_mode(options.get("mode"))
        self._call: Optional[_Call] = None
        self._running = False
        self._failing = False
        self._data: Optional[bytes] = None
        self._parsed = SimFile((), ())
        self._stamp: Optional[Tuple[int, int]] = None
        self._program: Tuple[Union[Set, Timer], ...] = ()
        self._pos = 0
        self._waited = 0
        self._device_copied = False
        self._decls = NO_DECLARATIONS

    def _choose_mode(self, mode: Optional[str]) -> str:
        if mode in ("dummy-once", "dummy-loop"):
            return mode
        if mode == "dummy":
            return "dummy-loop"
        if mode is not None:
            self.log.warn("{ups}: mode {mode!r} is not supported by nutshim-sim; "
                          "choosing from the file name", ups=self.name, mode=mode)
        if self._port.endswith(".dev"):
            return "dummy-once"
        return "dummy-loop" if self._port.endswith(".seq") else "dummy"

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
        declared = self._decls.commands.get(cmd.lower())
        if declared is None:
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
        self._declare(simfile.declarations)
        self._program = simfile.timeline
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
        if is_status(st.var):
            self.state.set_info(st.var, " ".join(st.value.split()))
        elif not st.value:
            self.state.del_info(st.var)
            return
        else:
            self.state.set_info(st.var, st.value)
        self._describe(st.var)

    def _describe(self, name: str) -> None:
        """
        Give a variable its flags, aux, enums and ranges, as C{dummy-ups}
        does after every change (only what differs is touched).
        """
        var = self.state.get(name)
        if var is None:
            return
        rw, string, aux = self._decls.type_of(name)
        flags = (Flags.RW if rw else Flags.NONE) | (Flags.STRING if string else Flags.NONE)
        if var.flags & ~Flags.IMMUTABLE != flags:
            self.state.set_flags(name, [f.name or "" for f in (Flags.RW, Flags.STRING)
                                        if flags & f])
        if string and var.aux != aux:
            self.state.set_aux(name, aux)
        for value in self._decls.enums.get(name.lower(), ()):
            self.state.add_enum(name, value)
        for low, high in self._decls.ranges.get(name.lower(), ()):
            self.state.add_range(name, low, high)

    def _declare(self, decls: Declarations) -> None:
        """
        Apply a file's declarations; variables whose declarations changed
        are described again from scratch.
        """
        old, self._decls = self._decls, decls
        for key in old.changed_variables(decls):
            var = self.state.get(key)
            if var is not None and not key.startswith("driver."):
                name, value = var.name, var.value
                self.state.del_info(name)
                self.state.set_info(name, value)
                self._describe(name)
        for key in set(old.commands) - set(decls.commands) - {"load.off"}:
            self.state.del_command(old.commands[key][0])
        for name, _ in decls.commands.values():
            self.state.add_command(name)


def resolve_port(port: str, confdir: str) -> str:
    """
    Where C{dummy-ups} looks for its file: absolute paths as they are,
    C{./} and C{../} (anything starting with a dot) from the current
    directory, anything else under NUT's configuration directory.
    """
    if os.path.isabs(port):
        return port
    if port.startswith("."):
        return os.path.join(os.getcwd(), port)
    return os.path.join(confdir, port)


def make_sim_driver(ups_name: str, section_options: Mapping[str, str], confdir: str,
                    clock: IReactorTime) -> SimulatedUPS:
    """
    Build the driver for a C{driver = nutshim-sim} section of C{ups.conf}.

    A C{port} naming a file that does not exist but has the name of a
    bundled sample (C{demo.seq}, C{lab.dev}, C{outage.seq}) plays the sample.

    @param section_options: the section's keys (C{port}, C{mode},
        C{pollinterval}...).
    @raise ValueError: without a C{port}.
    """
    port = section_options.get("port")
    if not port:
        raise ValueError(f"UPS {ups_name}: nutshim-sim needs a port (the simulation file)")
    path = resolve_port(port, confdir)
    name = os.path.basename(port)
    if not os.path.exists(path) and name in SAMPLES:
        SimulatedUPS.log.info("{ups}: {path} does not exist, playing the bundled {name}",
                              ups=ups_name, path=path, name=name)
        path = sample_path(name)
    pollinterval = 2.0
    text = section_options.get("pollinterval")
    if text is not None:
        try:
            pollinterval = float(text)
            if not 0 < pollinterval < 86400:
                raise ValueError(text)
        except ValueError:
            SimulatedUPS.log.warn("{ups}: bad pollinterval {value!r}, using 2",
                                  ups=ups_name, value=text)
            pollinterval = 2.0
    return SimulatedUPS(ups_name, path, clock, section_options, pollinterval)
