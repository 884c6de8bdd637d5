"""A line editor without I/O, for ``socketeer connect`` on a terminal: the pure core that
:class:`~._terminal.Terminal` drives.

:class:`LineEditor` takes the characters typed (keys, decoded) and keeps the line, the
cursor and the history; it answers with events named for what happened
(:class:`Submitted`, :class:`EndOfInput`, :class:`Interrupted`, :class:`Candidates`,
:class:`ClearScreen`). It knows nothing of terminals beyond the escape sequences of their
keys: drawing is the driver's.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

__all__ = [
    "LineEditor",
    "Submitted",
    "EndOfInput",
    "Interrupted",
    "Candidates",
    "ClearScreen",
    "EditorEvent",
    "Completer",
    "MAX_HISTORY",
    "MAX_LINE",
]

MAX_HISTORY = 1000
"""Lines the history keeps (in memory only)."""
MAX_LINE = 1_048_576
"""The longest line: characters typed in the editor, bytes of a line of standard input
(the default ``max_size`` of a message)."""
_MAX_SEQUENCE = 32
"""The longest escape sequence read; a longer one is dropped."""


@dataclasses.dataclass(frozen=True)
class Submitted:
    """Enter was pressed: the line is complete (and the editor's line is empty again)."""

    line: str


@dataclasses.dataclass(frozen=True)
class EndOfInput:
    """Ctrl-D on an empty line."""


@dataclasses.dataclass(frozen=True)
class Interrupted:
    """Ctrl-C, when the terminal passes it on as a key rather than as SIGINT."""


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Tab found several completions and could not extend the word: show them."""

    candidates: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ClearScreen:
    """Ctrl-L."""


EditorEvent = Submitted | EndOfInput | Interrupted | Candidates | ClearScreen
"""What :meth:`LineEditor.feed` returns."""

Completer = Callable[[str], tuple[int, Sequence[str]]]
"""Completion: ``completer(text_before_cursor)`` returns where the word being completed
starts, and the words it may become."""

# Keys: the control characters, then the escape sequences of cursor keys and the like
# (xterm's, in both its modes, and the VT220 ones of other terminals); Alt+key is ESC key.
_KEYS = {
    "\r": "submit",
    "\n": "submit",
    "\x7f": "backspace",
    "\x08": "backspace",
    "\x01": "home",
    "\x05": "end",
    "\x02": "left",
    "\x06": "right",
    "\x0b": "kill_to_end",
    "\x15": "kill_to_start",
    "\x17": "kill_word",
    "\x10": "previous",
    "\x0e": "next",
    "\x04": "delete_or_end",
    "\x03": "interrupt",
    "\x0c": "clear_screen",
    "\t": "complete",
}
_SEQUENCES = {
    "\x1b[A": "previous",
    "\x1bOA": "previous",
    "\x1b[B": "next",
    "\x1bOB": "next",
    "\x1b[C": "right",
    "\x1bOC": "right",
    "\x1b[D": "left",
    "\x1bOD": "left",
    "\x1b[H": "home",
    "\x1bOH": "home",
    "\x1b[1~": "home",
    "\x1b[7~": "home",
    "\x1b[F": "end",
    "\x1bOF": "end",
    "\x1b[4~": "end",
    "\x1b[8~": "end",
    "\x1b[3~": "delete",
    "\x1b[1;5C": "word_right",
    "\x1b[1;3C": "word_right",
    "\x1bf": "word_right",
    "\x1b[1;5D": "word_left",
    "\x1b[1;3D": "word_left",
    "\x1bb": "word_left",
    "\x1b\x7f": "kill_word",
}


def _sequence_complete(sequence: str) -> bool:
    """Whether an escape sequence being read is complete (ECMA-48: a CSI sequence ends with
    a byte from 0x40 to 0x7E; SS3, ``ESC O``, takes one character; ``ESC x`` is Alt+x)."""
    if len(sequence) == 2:
        return sequence[1] not in "[O"
    if sequence[1] == "O":
        return True
    return "\x40" <= sequence[-1] <= "\x7e"


class LineEditor:
    """A line editor without I/O: feed it what is typed, draw :attr:`text` and
    :attr:`cursor`.

    Keys: the arrows (Up and Down walk the history), Home and End, Delete, Backspace, and
    Emacs's Ctrl-A, Ctrl-E, Ctrl-B, Ctrl-F, Ctrl-K, Ctrl-U, Ctrl-W, Ctrl-P, Ctrl-N,
    Ctrl-L; Ctrl-D deletes, or ends the input on an empty line; Tab completes. Other
    control characters and unknown escape sequences are ignored.

    Args:
        completer: what Tab calls; no completion if ``None``.
    """

    def __init__(self, completer: Completer | None = None) -> None:
        self.text = ""
        """The line being typed."""
        self.cursor = 0
        """Where the cursor is in :attr:`text`."""
        self.history: list[str] = []
        """The lines submitted, oldest first; at most :data:`MAX_HISTORY`."""
        self.completer = completer
        self._browsing: int | None = None  # the index in history shown, while walking it
        self._draft = ""  # the line being typed when the walk began
        self._sequence = ""  # an escape sequence being read

    def feed(self, chars: str) -> list[EditorEvent]:
        """Take the characters typed (keys decoded from the terminal's encoding); return
        what happened, in order."""
        events: list[EditorEvent] = []
        for char in chars:
            name: str | None = None
            if self._sequence:
                self._sequence += char
                if _sequence_complete(self._sequence):
                    name = _SEQUENCES.get(self._sequence)
                    self._sequence = ""
                elif len(self._sequence) > _MAX_SEQUENCE:
                    self._sequence = ""
            elif char == "\x1b":
                self._sequence = char
            elif char in _KEYS:
                name = _KEYS[char]
            elif char.isprintable():
                self.insert(char)
            if name is not None:
                event = getattr(self, f"_{name}")()
                if event is not None:
                    events.append(event)
        return events

    def insert(self, text: str) -> None:
        """Insert ``text`` at the cursor (as far as :data:`MAX_LINE` allows)."""
        text = text[: max(0, MAX_LINE - len(self.text))]
        self.text = self.text[: self.cursor] + text + self.text[self.cursor :]
        self.cursor += len(text)

    def _set(self, text: str, cursor: int | None = None) -> None:
        self.text = text
        self.cursor = len(text) if cursor is None else cursor

    # Keys: each returns an event, or None.

    def _submit(self) -> EditorEvent:
        line = self.text
        self._set("")
        self._browsing = None
        self._draft = ""
        if line.strip() and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[:-MAX_HISTORY]
        return Submitted(line)

    def _delete_or_end(self) -> EditorEvent | None:
        if not self.text:
            return EndOfInput()
        self._delete()
        return None

    def _interrupt(self) -> EditorEvent:
        return Interrupted()

    def _clear_screen(self) -> EditorEvent:
        return ClearScreen()

    def _backspace(self) -> None:
        if self.cursor > 0:
            self._set(self.text[: self.cursor - 1] + self.text[self.cursor :], self.cursor - 1)

    def _delete(self) -> None:
        self._set(self.text[: self.cursor] + self.text[self.cursor + 1 :], self.cursor)

    def _home(self) -> None:
        self.cursor = 0

    def _end(self) -> None:
        self.cursor = len(self.text)

    def _left(self) -> None:
        self.cursor = max(0, self.cursor - 1)

    def _right(self) -> None:
        self.cursor = min(len(self.text), self.cursor + 1)

    def _word_start(self) -> int:
        """Where the word before the cursor starts (words are separated by spaces)."""
        position = self.cursor
        while position > 0 and self.text[position - 1] == " ":
            position -= 1
        while position > 0 and self.text[position - 1] != " ":
            position -= 1
        return position

    def _word_left(self) -> None:
        self.cursor = self._word_start()

    def _word_right(self) -> None:
        position, text = self.cursor, self.text
        while position < len(text) and text[position] == " ":
            position += 1
        while position < len(text) and text[position] != " ":
            position += 1
        self.cursor = position

    def _kill_word(self) -> None:
        start = self._word_start()
        self._set(self.text[:start] + self.text[self.cursor :], start)

    def _kill_to_end(self) -> None:
        self._set(self.text[: self.cursor], self.cursor)

    def _kill_to_start(self) -> None:
        self._set(self.text[self.cursor :], 0)

    def _previous(self) -> None:
        if self._browsing is None:
            if not self.history:
                return
            self._draft = self.text
            self._browsing = len(self.history)
        if self._browsing > 0:
            self._browsing -= 1
            self._set(self.history[self._browsing])

    def _next(self) -> None:
        if self._browsing is None:
            return
        self._browsing += 1
        if self._browsing < len(self.history):
            self._set(self.history[self._browsing])
        else:
            self._browsing = None
            self._set(self._draft)

    def _complete(self) -> EditorEvent | None:
        if self.completer is None:
            return None
        start, words = self.completer(self.text[: self.cursor])
        word = self.text[start : self.cursor]
        matches = sorted({w for w in words if w.startswith(word)})
        if not matches:
            return None
        if len(matches) == 1:
            completion = matches[0]
            if not completion.endswith("/") and not self.text[self.cursor :].startswith(" "):
                completion += " "
        else:
            completion = os.path.commonprefix(matches)
            if completion == word:
                return Candidates(tuple(matches))
        rest = self.text[self.cursor :]
        self._set(self.text[:start] + completion + rest, start + len(completion))
        return None
