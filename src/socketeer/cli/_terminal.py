"""The terminal side of ``socketeer connect``: what it prints, how it reads what is typed.

- :func:`escape` makes received text safe to print: a server cannot drive the terminal.
- :class:`Terminal` runs the line editor of :mod:`._line_editor` on a terminal (POSIX):
  it reads the keys from the event loop, draws the prompt and the line, and prints lines
  above them.
- :class:`InputLines` reads the lines of standard input when it is not an interactive
  terminal (a pipe, a file), in a thread, so that the event loop never blocks.

Theory of operation (the terminal)
----------------------------------

Why not GNU readline in a thread (``input()``)? Printing a message while the user types
means erasing the line being typed, printing, and drawing the prompt and the line again,
with the cursor where it was. readline's ``get_line_buffer()`` gives the text but not the
cursor, ``redisplay()`` redraws only what readline believes has changed, and both race with
the thread that runs readline; on exit the thread is still inside readline, which leaves
the terminal in its raw mode (and bracketed paste on). So the line editor is ours, and it
runs in the event loop: there is one thread, which owns the terminal.

:meth:`Terminal.start` saves the terminal's settings and turns off echo and canonical mode
(``ISIG`` stays: Ctrl-C, Ctrl-Z and Ctrl-\\ still send their signals). The event loop
calls :meth:`Terminal._on_readable` when keys arrive; the editor takes them and the
terminal redraws the input area: the prompt and the line, which may wrap over several rows.
The terminal remembers on which row of the input area the cursor is (``_row``), so that it
can go back to the first row and erase the area (``ESC [ J``) before printing a line or
redrawing. :meth:`Terminal.print` erases the input area, writes the line and a newline, and
draws the input area again below it: received messages scroll up, the line being typed
stays at the bottom. :meth:`Terminal.stop` erases the input area and restores the settings,
whatever happened (it runs in a ``finally``). Everything written to the terminal goes
through :meth:`Terminal.print` while the editor runs.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import sys
import threading
import unicodedata
from collections.abc import Callable
from typing import Any, TextIO

from ._line_editor import MAX_LINE, Candidates, ClearScreen, EndOfInput, LineEditor, Submitted

__all__ = ["escape", "text_width", "write_line", "Terminal", "InputLines", "is_interactive"]


# Printing


def _escapes() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    # Characters that reorder or break lines on their own: bidirectional controls (which
    # can make text read otherwise than it is), line and paragraph separators.
    invisible = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
    table.update({code: f"\\u{code:04x}" for code in (*invisible, 0x2028, 0x2029)})
    return table


_ESCAPES = _escapes()


def escape(text: str) -> str:
    """``text`` safe to print on one line of a terminal.

    Control characters (C0, DEL, C1) become ``\\xNN`` (a newline ``\\n``, a carriage return
    ``\\r``, a tab ``\\t``), so that received text cannot move the cursor, change colors or
    send the terminal commands; bidirectional controls and line separators become ``\\uNNNN``.
    Backslashes are left as they are: the result is for reading, not for parsing.
    """
    return text.translate(_ESCAPES)


def write_line(stream: TextIO, line: str) -> None:
    """Write ``line`` and a newline to ``stream`` and flush it; characters its encoding
    cannot carry are written as escapes rather than failing."""
    try:
        stream.write(line + "\n")
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        safe = line.encode(encoding, "backslashreplace").decode(encoding, "replace")
        stream.write(safe + "\n")
    stream.flush()


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def text_width(text: str) -> int:
    """How many columns ``text`` takes on a terminal (wide East Asian characters take 2)."""
    if text.isascii():
        return len(text)
    return sum(map(_char_width, text))


# The terminal


class Terminal:
    """A :class:`LineEditor` on a terminal, run by the event loop: see the module's theory
    of operation. POSIX only (:mod:`termios`).

    Args:
        input_fd: the terminal's file descriptor to read keys from.
        output: where to draw, the same terminal.
        prompt: what the input area starts with.
        editor: the line editor.
        on_line: called with each line submitted.
        on_end: called on Ctrl-D on an empty line, or when the terminal is gone.
        on_interrupt: called on Ctrl-C, when it arrives as a key.
    """

    def __init__(
        self,
        input_fd: int,
        output: TextIO,
        prompt: str,
        editor: LineEditor,
        *,
        on_line: Callable[[str], None],
        on_end: Callable[[], None],
        on_interrupt: Callable[[], None],
    ) -> None:
        self.input_fd = input_fd
        self.output = output
        self.prompt = prompt
        self.editor = editor
        self.on_line = on_line
        self.on_end = on_end
        self.on_interrupt = on_interrupt
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._saved: list[Any] | None = None  # the terminal's settings before start()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._row = 0  # the row of the input area where the cursor is

    def start(self) -> None:
        """Put the terminal in the editor's mode, read keys, draw the prompt.

        Raises:
            OSError: if the terminal's settings cannot be read or changed.
        """
        import termios

        try:
            saved = termios.tcgetattr(self.input_fd)
            self._raw_mode(saved)
        except termios.error as exc:
            raise OSError(*exc.args) from None
        self._saved = saved
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.input_fd, self._on_readable)
        self._render()

    def stop(self) -> None:
        """Stop reading keys, erase the input area, restore the terminal's settings."""
        import termios

        if self._saved is None:
            return
        saved, self._saved = self._saved, None
        if self._loop is not None:
            self._loop.remove_reader(self.input_fd)
        try:
            self._write(self._erase())
        finally:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.input_fd, termios.TCSADRAIN, saved)

    def suspend(self) -> None:
        """Ctrl-Z: restore the terminal, stop the process; redraw when it continues."""
        import signal
        import termios

        if self._saved is None:
            os.kill(os.getpid(), signal.SIGSTOP)
            return
        self._write(self._erase())
        termios.tcsetattr(self.input_fd, termios.TCSADRAIN, self._saved)
        os.kill(os.getpid(), signal.SIGSTOP)
        # Continued (fg): the shell may have changed the settings meanwhile.
        self._raw_mode(termios.tcgetattr(self.input_fd))
        self._render()

    def _raw_mode(self, settings: list[Any]) -> None:
        import termios

        mode = list(settings)
        mode[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN)
        control = list(mode[6])
        control[termios.VMIN] = 1
        control[termios.VTIME] = 0
        mode[6] = control
        termios.tcsetattr(self.input_fd, termios.TCSADRAIN, mode)

    def print(self, line: str) -> None:
        """Print ``line`` above the input area (which is drawn again below it); or just
        print it when the editor is not running. ``line`` must be safe to print
        (:func:`escape`)."""
        if self._saved is None:
            write_line(self.output, line)
            return
        self._write(self._erase() + line + "\r\n")
        self._render()

    def _on_readable(self) -> None:
        try:
            data = os.read(self.input_fd, 4096)
            if data:
                self._keys(self._decoder.decode(data))
                return
        except OSError:  # the terminal is gone (EIO)
            pass
        with contextlib.suppress(OSError):
            self.stop()
        self.on_end()

    def _keys(self, keys: str) -> None:
        for event in self.editor.feed(keys):
            if isinstance(event, Submitted):
                self._write(self._erase() + self.prompt + event.line + "\r\n")
                self.on_line(event.line)
            elif isinstance(event, Candidates):
                self.print(escape("  ".join(event.candidates)))
            elif isinstance(event, ClearScreen):
                self._write("\x1b[H\x1b[2J")
                self._row = 0
            elif isinstance(event, EndOfInput):
                self.on_end()
            else:
                self.on_interrupt()
        if self._saved is not None:
            self._render()

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.output.fileno()).columns or 80
        except (OSError, ValueError):
            return 80

    def _erase(self) -> str:
        """The sequence that erases the input area and leaves the cursor where it began."""
        up = f"\x1b[{self._row}A" if self._row else ""
        self._row = 0
        return f"{up}\r\x1b[J"

    def _render(self) -> None:
        """Draw the input area again: the prompt, the line, the cursor where it is."""
        width = self._width()
        text, cursor = self.editor.text, self.editor.cursor
        before = text_width(self.prompt) + text_width(text[:cursor])
        total = text_width(self.prompt) + text_width(text)
        parts = [self._erase(), self.prompt, text]
        end_row, end_column = divmod(total, width)
        if end_column == 0:
            # At the right margin, the cursor waits for the next character before it wraps:
            # wrap now, so that it is where the arithmetic below expects it.
            parts.append(" \r")
        row, column = divmod(before, width)
        if (row, column) != (end_row, end_column):  # else the cursor is there already
            if end_row > row:
                parts.append(f"\x1b[{end_row - row}A")
            parts.append("\r")
            if column:
                parts.append(f"\x1b[{column}C")
        self._row = row
        self._write("".join(parts))

    def _write(self, data: str) -> None:
        try:
            self.output.write(data)
        except UnicodeEncodeError:
            encoding = getattr(self.output, "encoding", None) or "utf-8"
            self.output.write(data.encode(encoding, "replace").decode(encoding))
        self.output.flush()


def is_interactive(stdin: TextIO | None, stdout: TextIO | None) -> bool:
    """Whether to run the line editor: standard input and output are the same kind of
    terminal we can drive (POSIX, ``TERM`` not ``dumb``)."""
    if stdin is None or stdout is None or sys.platform == "win32":
        return False
    if os.environ.get("TERM", "") == "dumb":
        return False
    try:
        return stdin.isatty() and stdout.isatty()
    except (ValueError, OSError):  # closed
        return False


# Standard input, when it is not an interactive terminal


class InputLines:
    """The lines of a file descriptor (a pipe, a file, a terminal in canonical mode), as an
    async iterator of :class:`str`, without their line ending (``\\n`` or ``\\r\\n``).

    A daemon thread reads a duplicate of the descriptor (so that a read never blocks the
    event loop, whatever the descriptor is, and closing the original does not disturb the
    thread), with at most :attr:`MAX_CHUNKS` chunks of :attr:`CHUNK` bytes waiting: a
    producer faster than the connection is slowed down, memory stays bounded. A line longer
    than :data:`MAX_LINE` bytes, or that is not UTF-8, is skipped and reported to
    ``on_error``. :meth:`close` stops the thread once its read returns (a thread blocked
    reading a pipe that never ends stays so, harmlessly: it is a daemon).

    Args:
        fd: the descriptor to read; ``None`` for no input at all.
        on_error: called with a message for each line skipped.
    """

    CHUNK = 65536
    MAX_CHUNKS = 4

    def __init__(self, fd: int | None, on_error: Callable[[str], None]) -> None:
        self.on_error = on_error
        self._loop = asyncio.get_running_loop()
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._slots = threading.Semaphore(self.MAX_CHUNKS)
        self._stopped = False
        self._buffer = bytearray()
        self._eof = fd is None
        self._skipping = False
        self._number = 0  # of the last line taken
        if fd is not None:
            duplicate = os.dup(fd)
            thread = threading.Thread(
                target=self._read, args=(duplicate,), name="socketeer-stdin", daemon=True
            )
            thread.start()

    def _read(self, fd: int) -> None:
        """The thread: read chunks until the end (an empty chunk), or until closed."""
        try:
            while True:
                self._slots.acquire()
                if self._stopped:
                    return
                try:
                    data = os.read(fd, self.CHUNK)
                except OSError:
                    data = b""
                try:
                    self._loop.call_soon_threadsafe(self._chunks.put_nowait, data)
                except RuntimeError:
                    return  # the event loop is closed: nobody reads any more
                if not data:
                    return
        finally:
            os.close(fd)

    def close(self) -> None:
        """Stop reading."""
        self._stopped = True
        self._slots.release()

    def __aiter__(self) -> InputLines:
        return self

    async def __anext__(self) -> str:
        while True:
            line = self._next_line()
            if line is not None:
                return line
            if self._eof:
                raise StopAsyncIteration
            data = await self._chunks.get()
            self._slots.release()
            if data:
                self._buffer += data
            else:
                self._eof = True

    def _next_line(self) -> str | None:
        """The next complete line in the buffer (or the last one, at the end), if any."""
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:  # drop it now, and the rest up to \n
                    if not self._skipping:
                        self._too_long()
                    self._skipping = True
                    self._buffer.clear()
                if not (self._eof and self._buffer):
                    return None
                end = len(self._buffer)
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._skipping:  # the end of a line too long
                self._skipping = False
                continue
            if len(raw) > MAX_LINE:
                self._too_long()
                continue
            self._number += 1
            try:
                return raw.removesuffix(b"\r").decode()
            except UnicodeDecodeError:
                self.on_error(
                    f"line {self._number} of standard input is not UTF-8: skipped "
                    f"(/binary HEX or /send @FILE send binary data)"
                )

    def _too_long(self) -> None:
        self._number += 1
        self.on_error(
            f"line {self._number} of standard input is longer than {MAX_LINE} bytes: skipped"
        )
