# -*- test-case-name: nutshim.test.test_config -*-
"""
C{cmdvartab}: the human descriptions behind C{GET DESC} and C{GET CMDDESC}.

upsd does not get these from drivers: it reads them from this data file
(C{<DATAPATH>/cmdvartab}), whose lines are C{VARDESC <name> "<text>"} and
C{CMDDESC <name> "<text>"}.  As in NUT's C{server/desc.c}: the keywords are
case-sensitive, names are looked up case-insensitively, a later line for the
same name replaces the earlier text, other lines are ignored, and a missing
file just disables descriptions (clients then get upsd's default text, which
is the caller's business).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional

from ._errors import ConfigWarning, logical_lines, read_config_file

__all__ = ["CmdVarTab", "parse_cmdvartab", "load_cmdvartab"]


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CmdVarTab:
    """
    The descriptions.

    @ivar vardesc: variable descriptions by lower-case name.
    @ivar cmddesc: instant command descriptions by lower-case name.
    """

    vardesc: Mapping[str, str] = field(default_factory=_empty)
    cmddesc: Mapping[str, str] = field(default_factory=_empty)
    warnings: tuple[ConfigWarning, ...] = ()

    def describe_var(self, name: str) -> Optional[str]:
        """
        The description of variable C{name} (any case), or L{None}.
        """
        return self.vardesc.get(name.lower())

    def describe_cmd(self, name: str) -> Optional[str]:
        """
        The description of instant command C{name} (any case), or L{None}.
        """
        return self.cmddesc.get(name.lower())


def parse_cmdvartab(data: bytes, path: str) -> CmdVarTab:
    """
    Parse the contents of a C{cmdvartab} file.

    @param path: the file name, for warnings.
    """
    warnings: List[ConfigWarning] = []
    tables: Dict[str, Dict[str, str]] = {"VARDESC": {}, "CMDDESC": {}}
    for lineno, words in logical_lines(data, path, warnings, strict=False):
        table = tables.get(words[0])
        if table is None or len(words) < 3:
            warnings.append(
                ConfigWarning(path, lineno, "ignoring line that is not VARDESC or CMDDESC")
            )
            continue
        table[words[1].lower()] = words[2]
    return CmdVarTab(
        vardesc=MappingProxyType(tables["VARDESC"]),
        cmddesc=MappingProxyType(tables["CMDDESC"]),
        warnings=tuple(warnings),
    )


def load_cmdvartab(path: str) -> CmdVarTab:
    """
    Read and parse a C{cmdvartab} file.

    @return: no descriptions, with a warning, if the file does not exist.
    @raise ConfigError: if it exists but cannot be read.
    """
    data = read_config_file(path)
    if data is None:
        return CmdVarTab(
            warnings=(ConfigWarning(path, None, "not found - disabling descriptions"),)
        )
    return parse_cmdvartab(data, path)
