# -*- test-case-name: nutshim.test.test_state -*-
"""
The data of one UPS as a driver publishes it: variables and instant commands.

This mirrors NUT's C{common/state.c} because clients see its quirks: variable
names match case-insensitively but keep their first spelling, a new value that
differs only in letter case is ignored, LIST VAR is sorted by lower-cased
name, enum values are kept in insertion order and stored escaped.

It is the one model shared by the daemon (which reads it), nutshim's own
drivers (which write it) and both sides of NUT's driver socket protocol (which
serialize it), so it imports nothing from Twisted.
"""

from __future__ import annotations

import enum
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from nutshim.protocol._tokenizer import encode
from nutshim.protocol.replies import escape_value

__all__ = ["Flags", "Variable", "DeviceState", "Message", "Observer"]

#: A change as a driver-protocol message, e.g. C{("SETINFO", name, value)}.
Message = Tuple[str, ...]
#: Called with each L{Message} as the change happens.
Observer = Callable[[Message], None]


class Flags(enum.IntFlag):
    """
    Variable flags as the driver socket protocol names them.
    """

    NONE = 0
    RW = 1
    STRING = 2
    NUMBER = 4
    IMMUTABLE = 8


class Variable:
    """
    One variable; mutable because drivers update it in place.

    @ivar name: the first spelling the driver used.
    @ivar value: the raw value.
    @ivar escaped: the value as sent on the wire (escaped, at most 255 bytes).
    @ivar flags: L{Flags}.
    @ivar aux: maximum length of a STRING value.
    @ivar enums: allowed values, escaped, in insertion order.
    @ivar ranges: allowed C{(min, max)} ranges in insertion order.
    """

    __slots__ = ("name", "value", "escaped", "flags", "aux", "enums", "ranges")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value
        self.escaped = escape_value(value)
        self.flags = Flags.NONE
        self.aux = 0
        self.enums: List[str] = []
        self.ranges: List[Tuple[int, int]] = []

    def set(self, value: str) -> None:
        self.value = value
        self.escaped = escape_value(value)

    def type_words(self) -> List[str]:
        """
        The words GET TYPE answers, in NUT 2.8.0's order.
        """
        words = []
        if self.flags & Flags.RW:
            words.append("RW")
        if self.enums:
            words.append("ENUM")
        if self.ranges:
            words.append("RANGE")
        if self.flags & Flags.STRING:
            words.append(f"STRING:{self.aux}")
        else:
            words.append("NUMBER")
        return words


def _atoi(text: str) -> int:
    """
    C's C{atoi}: leading blanks, optional sign, digits; junk ends it.
    """
    text = text.lstrip(" \t\n\r\v\f")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for ch in text:
        if not ch.isdigit() or not ch.isascii():
            break
        digits += ch
    if not digits:
        return 0
    value = sign * int(digits)
    # atoi overflow is undefined; clamp like strtol does.
    return max(-(2**31), min(2**31 - 1, value))


class DeviceState:
    """
    Variables and instant commands of one UPS.

    @ivar generation: incremented on every change, so that readers can cache.
    """

    def __init__(self) -> None:
        self._vars: Dict[str, Variable] = {}
        self._cmds: Dict[str, str] = {}
        self._sorted_vars: Optional[List[Variable]] = None
        self._sorted_cmds: Optional[List[str]] = None
        self._observers: Tuple[Observer, ...] = ()
        self.generation = 0

    # Observing: what a NUT driver broadcasts to its socket's clients.

    def subscribe(self, observer: Observer) -> None:
        """
        Call C{observer} with a driver-protocol message (as L{dump} yields
        them, plus C{DELINFO}, C{DELENUM}, C{DELRANGE}, C{DELCMD}) for every
        change, after it is made.  Like C{drivers/dstate.c}, only real changes
        are reported: C{SETFLAGS}/C{SETAUX} only when the flags/aux differ.
        L{clear} reports a C{DELINFO}/C{DELCMD} for each item.
        """
        self._observers += (observer,)

    def unsubscribe(self, observer: Observer) -> None:
        """
        Stop calling C{observer}; unknown observers are ignored.
        """
        self._observers = tuple(o for o in self._observers if o != observer)

    def _notify(self, *message: str) -> None:
        for observer in self._observers:
            observer(message)

    # Reading.

    def get(self, name: str) -> Optional[Variable]:
        return self._vars.get(name.lower())

    def variables(self) -> List[Variable]:
        """
        All variables, in NUT's LIST VAR order (lower-cased byte order).
        """
        if self._sorted_vars is None:
            self._sorted_vars = [self._vars[k] for k in sorted(self._vars)]
        return self._sorted_vars

    def commands(self) -> List[str]:
        """
        All instant commands, sorted case-insensitively.
        """
        if self._sorted_cmds is None:
            self._sorted_cmds = [self._cmds[k] for k in sorted(self._cmds)]
        return self._sorted_cmds

    def has_command(self, name: str) -> bool:
        return name.lower() in self._cmds

    def __len__(self) -> int:
        return len(self._vars)

    # Writing: the operations of the driver socket protocol.

    def _changed(self, structure: bool) -> None:
        self.generation += 1
        if structure:
            self._sorted_vars = None

    def set_info(self, name: str, value: str) -> bool:
        """
        C{SETINFO}: create or update; an update differing only in letter case
        is ignored, as in NUT.

        @return: whether anything changed.
        """
        key = name.lower()
        var = self._vars.get(key)
        if var is None:
            self._vars[key] = Variable(name, value)
            self._changed(True)
            self._notify("SETINFO", name, value)
            return True
        if var.value.lower() == value.lower():
            return False
        var.set(value)
        self._changed(False)
        self._notify("SETINFO", var.name, value)
        return True

    def del_info(self, name: str) -> bool:
        var = self._vars.get(name.lower())
        if var is None or var.flags & Flags.IMMUTABLE:
            return False
        del self._vars[name.lower()]
        self._changed(True)
        self._notify("DELINFO", var.name)
        return True

    def set_flags(self, name: str, flags: Sequence[str]) -> bool:
        """
        C{SETFLAGS}: replace the flags; unknown flag words are ignored.
        """
        var = self._vars.get(name.lower())
        if var is None:
            return False
        new = Flags.NONE
        for word in flags:
            upper = word.upper()
            if upper in ("RW", "STRING", "NUMBER"):
                new |= Flags[upper]
        old = var.flags
        var.flags = new | (var.flags & Flags.IMMUTABLE)
        self._changed(False)
        if var.flags != old:
            self._notify("SETFLAGS", var.name, *_flag_words(var.flags))
        return True

    def set_aux(self, name: str, aux: int) -> bool:
        var = self._vars.get(name.lower())
        if var is None:
            return False
        old = var.aux
        var.aux = aux
        self._changed(False)
        if aux != old:
            self._notify("SETAUX", var.name, str(aux))
        return True

    def add_enum(self, name: str, value: str) -> bool:
        var = self._vars.get(name.lower())
        if var is None:
            return False
        enc = encode(value)
        if enc in var.enums:
            return False
        var.enums.append(enc)
        self._changed(False)
        self._notify("ADDENUM", var.name, value)
        return True

    def del_enum(self, name: str, value: str) -> bool:
        var = self._vars.get(name.lower())
        if var is None:
            return False
        enc = encode(value).lower()
        for i, existing in enumerate(var.enums):
            if existing.lower() == enc:
                del var.enums[i]
                self._changed(False)
                self._notify("DELENUM", var.name, _decode(existing))
                return True
        return False

    def add_range(self, name: str, low: int, high: int) -> bool:
        var = self._vars.get(name.lower())
        if var is None or low > high:
            return False
        for a, b in var.ranges:
            if a == low or b == high:
                return False
        var.ranges.append((low, high))
        self._changed(False)
        self._notify("ADDRANGE", var.name, str(low), str(high))
        return True

    def del_range(self, name: str, low: int, high: int) -> bool:
        var = self._vars.get(name.lower())
        if var is None:
            return False
        try:
            var.ranges.remove((low, high))
        except ValueError:
            return False
        self._changed(False)
        self._notify("DELRANGE", var.name, str(low), str(high))
        return True

    def add_command(self, name: str) -> bool:
        key = name.lower()
        if key in self._cmds:
            return False
        self._cmds[key] = name
        self._sorted_cmds = None
        self.generation += 1
        self._notify("ADDCMD", name)
        return True

    def del_command(self, name: str) -> bool:
        stored = self._cmds.pop(name.lower(), None)
        if stored is None:
            return False
        self._sorted_cmds = None
        self.generation += 1
        self._notify("DELCMD", stored)
        return True

    def clear(self) -> None:
        """
        Forget everything, as upsd does when a driver goes away.
        """
        gone: List[Tuple[str, str]] = []
        if self._observers:
            gone = [("DELINFO", v.name) for v in self.variables()]
            gone += [("DELCMD", c) for c in self.commands()]
        self._vars.clear()
        self._cmds.clear()
        self._sorted_vars = None
        self._sorted_cmds = None
        self.generation += 1
        for message in gone:
            self._notify(*message)

    def dump(self) -> Iterator[Tuple[str, ...]]:
        """
        The tree as driver-protocol messages, in the order a NUT driver
        answers DUMPALL (without DATAOK/DUMPDONE).
        """
        for var in self.variables():
            yield ("SETINFO", var.name, var.value)
            for enc in var.enums:
                yield ("ADDENUM", var.name, _decode(enc))
            for low, high in var.ranges:
                yield ("ADDRANGE", var.name, str(low), str(high))
            if var.aux:
                yield ("SETAUX", var.name, str(var.aux))
            flags = _flag_words(var.flags)
            if flags:
                yield ("SETFLAGS", var.name, *flags)
        for cmd in self.commands():
            yield ("ADDCMD", cmd)


def _flag_words(flags: Flags) -> List[str]:
    """
    The flag words of the driver protocol, in NUT's order.
    """
    return [f for f in ("RW", "STRING", "NUMBER") if flags & Flags[f]]


def _decode(enc: str) -> str:
    """
    Undo L{encode}.
    """
    out = []
    it = iter(enc)
    for ch in it:
        if ch == "\\":
            ch = next(it, "")
        out.append(ch)
    return "".join(out)


atoi = _atoi
