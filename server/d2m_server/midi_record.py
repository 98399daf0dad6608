"""``d2m serve --record-midi FILE.mid``: the live show's score as a MIDI file, readable after a kill.

The file is the same as ``d2m render --midi`` writes (:class:`d2m.midi.MidiScoreWriter`):
tempo map following the planned beats, one track per part. Every
:data:`FLUSH_INTERVAL_S` the complete file so far is written to a temporary
file next to it and renamed over it (``os.replace``, atomic on POSIX), so at
every moment -- a ``kill -9`` included -- ``FILE.mid`` is a complete, valid
MIDI file holding at least everything up to the previous flush (notes still
sounding then come in the next one). The write runs on a daemon thread, never
on the event loop. Opening errors raise :class:`~d2m_server.recorder.RecorderError`;
later disk errors are counted and logged once, and the music goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from d2m.midi import MidiScoreWriter

from .recorder import RecorderError

log = logging.getLogger("d2m.recorder")

#: Seconds between rewrites of the file (at most this much is lost on a kill).
FLUSH_INTERVAL_S = 1.0


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class MidiRecorder:
    """Segments (plan + score) and accents in, ``path`` rewritten complete every second."""

    def __init__(self, path: str | os.PathLike, sample_rate: int, *,
                 flush_interval_s: float = FLUSH_INTERVAL_S, clock=time.monotonic):
        self.path = Path(path)
        self.writer = MidiScoreWriter(sample_rate)
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        self.writes = 0
        self.errors = 0
        self.last_error = ""
        self.closed = False
        directory = self.path.parent if str(self.path.parent) else Path(".")
        if self.path.is_dir():
            raise RecorderError(f"cannot write the MIDI recording to {self.path}: it is a directory; "
                                "give a file name")
        try:
            _atomic_write(self.path, self.writer.to_bytes())
        except FileNotFoundError:
            raise RecorderError(f"cannot write the MIDI recording to {self.path}: directory {directory} "
                                "does not exist; create it or choose another path") from None
        except PermissionError:
            raise RecorderError(f"cannot write the MIDI recording to {self.path}: directory {directory} "
                                "is not writable (permission denied); choose another path") from None
        except OSError as exc:
            raise RecorderError(f"cannot write the MIDI recording to {self.path}: "
                                f"{exc.strerror or exc}") from None
        self.writes = 1
        self._last = clock()
        self._lock = threading.Lock()
        self._pending: bytes | None = None
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="d2m-midi-record", daemon=True)
        self._thread.start()

    # -- input (event loop) --------------------------------------------------------------
    def add(self, plan, score) -> None:
        if self.closed:
            return
        self.writer.add(plan, score)
        self._maybe_flush()

    def add_accent(self, sample: int, note: int, velocity: float, length: int | None = None) -> None:
        if not self.closed:
            self.writer.add_accent(sample, note, velocity, length)

    def played_to(self, sample: int) -> None:
        """Accents are being added live: nothing before ``sample`` (the playback position) will come."""
        if not self.closed:
            self.writer.encode_until(sample)

    def _maybe_flush(self) -> None:
        if self._clock() - self._last >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Hand the file so far to the writer thread now."""
        if self.closed or self.errors:
            return
        data = self.writer.to_bytes()
        self._last = self._clock()
        with self._lock:
            self._pending = data
        self._wake.set()

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                data, self._pending = self._pending, None
            if data is not None:
                self._write(data)
            if self.closed:
                return

    def _write(self, data: bytes) -> None:
        try:
            _atomic_write(self.path, data)
            self.writes += 1
        except OSError as exc:
            self.errors += 1
            self.last_error = str(exc.strerror or exc)
            if self.errors == 1:
                log.error("MIDI recording to %s stopped: %s (the music goes on; the file holds what "
                          "was written before)", self.path, self.last_error)

    def close(self) -> None:
        """Write the final file (held notes closed) and stop. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._wake.set()
        self._thread.join(5.0)
        if not self.errors:
            self._write(self.writer.finish())

    def status(self) -> dict:
        return {"path": str(self.path), "writes": self.writes, "errors": self.errors,
                "last_error": self.last_error, "recording": not self.closed and not self.errors,
                **self.writer.status()}
