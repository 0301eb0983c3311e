"""The CLI on a pseudo-terminal of a given width, and the screen a person would see.

``Terminal`` starts a command on a pty whose window (and ``COLUMNS``) has the width asked
for, and keeps everything the command writes. ``render`` draws that output as a terminal
does (text, carriage return, newline, cursor up and down, erase line; colours and other
controls are ignored), and notes each line the program ran past the last column of:
a terminal wraps such a line wherever the column falls, mid-word."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import threading
import time
from dataclasses import dataclass, field

CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")
OTHER_ESCAPE = re.compile(r"\x1b(\][^\x07]*\x07|[()][A-Za-z0-9]|.)")


@dataclass
class Screen:
    width: int
    rows: list[str]
    # rows the program wrote past the last column of, cutting a word though the row had
    # a space to break at (a single word longer than the width, a token, has none)
    cuts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.rows)


def render(output: str, width: int) -> Screen:
    rows: list[list[str]] = [[]]
    cuts: list[str] = []
    row = col = 0
    i = 0

    def at(r: int) -> list[str]:
        while len(rows) <= r:
            rows.append([])
        return rows[r]

    while i < len(output):
        ch = output[i]
        if ch == "\x1b":
            m = CSI.match(output, i)
            if m:
                arg, cmd = m.group(1), m.group(2)
                n = int(arg) if arg.isdigit() else 1
                if cmd == "A":
                    row = max(0, row - n)
                elif cmd == "B":
                    row += n
                elif cmd == "G":
                    col = n - 1
                elif cmd == "K":
                    line = at(row)
                    if arg in ("", "0"):
                        del line[col:]
                    elif arg == "1":
                        line[: col + 1] = [" "] * min(len(line), col + 1)
                    else:
                        line.clear()
                i = m.end()
                continue
            m = OTHER_ESCAPE.match(output, i)
            i = m.end() if m else i + 1
            continue
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
        elif ch == "\b":
            col = max(0, col - 1)
        elif ch == "\t":
            col = min(width - 1, (col // 8 + 1) * 8)
        elif ch >= " ":
            if col >= width:  # past the last column: the terminal wraps here
                before = "".join(at(row)[:width])
                if " " in before.strip() and before[-1:] != " " and ch != " ":
                    cuts.append(before + ch)
                row, col = row + 1, 0
            line = at(row)
            while len(line) < col:
                line.append(" ")
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    drawn = ["".join(r).rstrip() for r in rows]
    while drawn and not drawn[-1]:
        drawn.pop()
    return Screen(width, drawn, cuts)


class Terminal:
    """A command running on a pty ``width`` columns wide."""

    def __init__(self, args: list[str], env: dict[str, str], width: int) -> None:
        self.width = width
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 500, width, 0, 0))
        env = {**env, "COLUMNS": str(width), "LINES": "500", "TERM": "xterm-256color"}
        self.proc = subprocess.Popen(
            args, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
        )
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every end of the pty's other side is closed
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def output(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in render(self.output(), self.width).text:
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"never saw {text!r} in:\n{self.output()}"
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> Screen:
        """The screen once the command has ended (its exit code in ``self.proc``)."""
        self.proc.wait(timeout)
        self._reader.join(timeout)
        os.close(self._master)
        return render(self.output(), self.width)


def on_terminal(args: list[str], env: dict[str, str], width: int) -> tuple[int, Screen]:
    term = Terminal(args, env, width)
    screen = term.finish()
    return term.proc.returncode, screen
