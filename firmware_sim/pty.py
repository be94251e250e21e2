"""A real pseudo-terminal pair: the device side reads and writes the master, the code under test
opens the slave path with pyserial exactly as it would open /dev/ttyUSB0."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import termios
import tty


class PseudoTerminal:
    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        # Raw mode on the slave side so nothing translates CR/LF or eats control bytes before
        # the agent opens it (pyserial sets raw mode again on open).
        tty.setraw(self._slave, termios.TCSANOW)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._closed = False

    def read(self, timeout: float) -> bytes:
        """Bytes the other side wrote, waiting at most `timeout` seconds; b"" if none."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:  # EIO: nobody has the slave open right now
            return b""

    def write(self, data: bytes, timeout: float = 0.5) -> int:
        """Write to the other side; what does not fit within `timeout` is dropped, as a UART
        overruns when nobody reads it. Returns the number of bytes dropped."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                _, ready, _ = select.select([], [self.master], [], timeout)
                if not ready:
                    return len(view)
                continue
            except OSError:
                return len(view)
            view = view[written:]
        return 0

    def mark_unopened(self) -> None:
        """Set a line speed no client uses (50 baud), so `opened()` sees the client's own."""
        attrs = termios.tcgetattr(self._slave)
        attrs[4] = attrs[5] = termios.B50
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)

    def opened(self) -> bool:
        """After `mark_unopened`: whether a client has opened the port and set its line speed
        (pyserial always does, and flushes what was written before)."""
        try:
            speed: int = termios.tcgetattr(self._slave)[5]
        except termios.error:
            return False
        return speed != termios.B50

    def unread(self) -> int:
        """Bytes written to the other side that its reader has not taken yet."""
        try:
            raw = fcntl.ioctl(self._slave, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        count: int = struct.unpack("i", raw)[0]
        return count

    def close(self) -> None:
        """Close both sides once. A second call does nothing: by then the descriptor numbers may
        already belong to another file of this process (a socket, a database connection)."""
        if self._closed:
            return
        self._closed = True
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
