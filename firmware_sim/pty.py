"""A real pseudo-terminal pair: the device side reads and writes the master, the code under test
opens the slave path with pyserial exactly as it would open /dev/ttyUSB0."""

from __future__ import annotations

import contextlib
import os
import select
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

    def close(self) -> None:
        """Close both sides once. A second call does nothing: by then the descriptor numbers may
        already belong to another file of this process (a socket, a database connection)."""
        if self._closed:
            return
        self._closed = True
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
