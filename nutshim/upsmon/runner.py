# -*- test-case-name: nutshim.test.test_upsmon -*-
"""
Running C{NOTIFYCMD}, C{SHUTDOWNCMD} and C{wall} through the reactor.

NUT's upsmon forks and calls C{system()}; a Twisted daemon must not block,
so commands go through C{IReactorProcess.spawnProcess} and their end comes
back as a L{Deferred}.  Everything that runs a command takes an
L{IRunner}, so that tests substitute a fake and never start a process.

Commands are shell command lines in NUT's configuration, so they run under
C{/bin/sh -c}, as C{system()} would run them.  A notification message is
passed as C{"$1"} instead of being pasted into the command line (NUT
builds C{NOTIFYCMD "message"}): the script gets the same single argument,
and a message can never be read as shell syntax.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["IRunner", "ProcessRunner", "shell", "SHELL"]

#: The shell that runs configured command lines.
SHELL = "/bin/sh"


class IRunner(Protocol):
    """
    Something that runs a command and tells how it ended.
    """

    def run(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
            stdin: Optional[bytes] = None) -> Deferred[int]:
        """
        Start C{argv[0]} with C{argv}.

        @param env: the whole environment (L{None}: the daemon's own).
        @param stdin: bytes for its standard input, which is then closed.
        @return: fires with the exit status (128 + signal number when
            killed); never fails, a command that cannot start gives 127.
        """


def shell(command: str, *args: str) -> List[str]:
    """
    The argv that runs a configured command line, with C{args} as C{$1}...
    """
    if args:
        command = command + " " + " ".join('"$%d"' % (i + 1) for i in range(len(args)))
    return [SHELL, "-c", command, "sh", *args]


class _Collect(ProcessProtocol):
    """
    Log what a command prints, fire with its exit status.
    """

    log = Logger()

    def __init__(self, name: str, stdin: Optional[bytes]) -> None:
        self.name = name
        self.stdin = stdin
        self.done: Deferred[int] = Deferred()

    def connectionMade(self) -> None:
        transport: Any = self.transport
        if self.stdin is not None:
            transport.write(self.stdin)
        transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            self.log.info("{command}: {line}", command=self.name, line=line)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        if isinstance(value, ProcessDone):
            status = 0
        elif isinstance(value, ProcessTerminated):
            status = value.exitCode if value.exitCode is not None else 128 + (value.signal or 0)
        else:
            status = 127
        self.done.callback(status)


class ProcessRunner:
    """
    L{IRunner} on C{IReactorProcess.spawnProcess}.
    """

    log = Logger()

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def run(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
            stdin: Optional[bytes] = None) -> Deferred[int]:
        protocol = _Collect(os.path.basename(argv[0]), stdin)
        environment: Dict[str, str] = dict(os.environ if env is None else env)
        try:
            self._reactor.spawnProcess(protocol, argv[0], list(argv), env=environment)
        except OSError as e:
            self.log.error("Cannot run {argv[0]}: {error}", argv=list(argv), error=e)
            protocol.done.callback(127)
        return protocol.done
