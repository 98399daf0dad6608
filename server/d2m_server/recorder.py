"""Recorders: the audio as played (WAV) and the motion and controls as received (JSONL).

Both stay readable if the process is killed: the WAV header's sizes are
rewritten every :data:`FLUSH_INTERVAL_S`, and the JSONL file is flushed at
the same interval. Opening errors raise :class:`RecorderError` with a message
naming the directory; errors after opening (disk full, disk removed) never
reach the caller: they are counted, logged once, and recording stops.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import time
from pathlib import Path
from typing import Callable

import numpy as np

from d2m.control import Control
from d2m.skeleton import SkeletonFrame

#: Seconds between header/size updates (WAV) and flushes (JSONL); at most this much
#: recording is lost if the process is killed.
FLUSH_INTERVAL_S = 1.0
#: Sample formats :class:`WavRecorder` writes: 16-bit integer PCM or 32-bit float.
PCM_16 = "PCM_16"
FLOAT = "FLOAT"
#: Largest data chunk a RIFF/WAV file can describe (bytes); a longer recording
#: continues in a numbered file next to the first (``take-002.wav``, ...).
MAX_WAV_DATA_BYTES = 0xFFFFFFFF - 64
#: Write buffer of the recorders' files (bytes).
WRITE_BUFFER_BYTES = 1 << 16

log = logging.getLogger("d2m.recorder")


class RecorderError(OSError):
    """A recording file cannot be created; the message says which path and why."""


def _open_for_writing(path: Path, mode: str, what: str, buffering: int = WRITE_BUFFER_BYTES):
    directory = path.parent if str(path.parent) else Path(".")
    try:
        return open(path, mode, buffering=buffering)
    except FileNotFoundError:
        raise RecorderError(f"cannot write the {what} to {path}: directory {directory} does not "
                            "exist; create it or choose another path") from None
    except PermissionError:
        raise RecorderError(f"cannot write the {what} to {path}: directory {directory} is not "
                            "writable (permission denied); choose another path") from None
    except IsADirectoryError:
        raise RecorderError(f"cannot write the {what} to {path}: it is a directory; give a file "
                            "name") from None
    except OSError as exc:
        raise RecorderError(f"cannot write the {what} to {path} (directory {directory}): "
                            f"{exc.strerror or exc}") from None


def next_run_paths(*paths: str | os.PathLike | None) -> list[Path | None]:
    """Paths for a new run's recordings that overwrite nothing already recorded.

    If none of ``paths`` exists yet they are returned as they are. Otherwise
    (a server restarted after a crash, with the same ``--record`` options)
    every one gets the first run number ``N`` (from 2) for which no
    ``<stem>-runN<suffix>`` exists for any of them, so a run's WAV, motion and
    MIDI files keep matching names: ``show.wav`` -> ``show-run2.wav``. ``None``
    entries stay ``None``.
    """
    given = [Path(p) if p is not None else None for p in paths]
    if not any(p is not None and p.exists() for p in given):
        return given
    n = 2
    while True:
        cand = [p.with_name(f"{p.stem}-run{n}{p.suffix}") if p is not None else None for p in given]
        if not any(c is not None and c.exists() for c in cand):
            return cand
        n += 1


class WavRecorder:
    """Write float stereo blocks to a WAV file that is valid at every moment.

    The header is written first with the sizes known so far and rewritten
    every ``flush_interval_s`` and on :meth:`close`; a reader (or a crash)
    sees a valid file holding at least everything written up to the last
    update. Writes are a conversion plus a buffered ``write`` (microseconds
    for a 10 ms block), cheap enough for the event loop.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int = 48000, channels: int = 2, *,
                 subtype: str = PCM_16, flush_interval_s: float = FLUSH_INTERVAL_S,
                 max_data_bytes: int = MAX_WAV_DATA_BYTES,
                 clock: Callable[[], float] = time.monotonic):
        if subtype not in (PCM_16, FLOAT):
            raise ValueError(f"subtype must be {PCM_16!r} or {FLOAT!r}, got {subtype!r}")
        if sample_rate <= 0 or channels <= 0:
            raise ValueError("sample_rate and channels must be positive")
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.subtype = subtype
        self.flush_interval_s = flush_interval_s
        self._sample_bytes = 2 if subtype == PCM_16 else 4
        self._frame_bytes = self._sample_bytes * self.channels
        self._max_data = max_data_bytes - max_data_bytes % self._frame_bytes
        self._clock = clock
        self.paths: list[Path] = []      #: every file written (more than one past 4 GiB)
        self.frames_written = 0          #: frames written over all files
        self.frames_dropped = 0          #: frames not written because of a disk error
        self.errors = 0                  #: disk errors after opening
        self.closed = False
        self._file = None
        self._data_bytes = 0             # data bytes in the current file
        self._open(self.path)

    # -- header -----------------------------------------------------------------

    def _header(self, data_bytes: int) -> bytes:
        sr, ch = self.sample_rate, self.channels
        byte_rate, align = sr * self._frame_bytes, self._frame_bytes
        if self.subtype == PCM_16:
            fmt = struct.pack("<HHIIHH", 1, ch, sr, byte_rate, align, 16)
            chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
        else:  # IEEE float needs cbSize and a fact chunk with the frame count
            fmt = struct.pack("<HHIIHHH", 3, ch, sr, byte_rate, align, 32, 0)
            chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt
                      + b"fact" + struct.pack("<II", 4, data_bytes // self._frame_bytes))
        body = b"WAVE" + chunks + b"data" + struct.pack("<I", data_bytes)
        return b"RIFF" + struct.pack("<I", len(body) + data_bytes) + body

    def _open(self, path: Path) -> None:
        self._file = _open_for_writing(path, "wb", "audio recording")
        self.paths.append(path)
        self._data_bytes = 0
        self._file.write(self._header(0))
        self._file.flush()
        self._last_update = self._clock()

    def _update_header(self) -> None:
        f = self._file
        end = f.tell()
        f.seek(0)
        f.write(self._header(self._data_bytes))
        f.seek(end)
        f.flush()
        self._last_update = self._clock()

    def _next_path(self) -> Path:
        n = len(self.paths) + 1
        return self.path.with_name(f"{self.path.stem}-{n:03d}{self.path.suffix}")

    # -- writing ----------------------------------------------------------------

    def write(self, block: np.ndarray) -> None:
        """Append a (frames x channels) float block in -1..1 (clipped). Never raises on disk errors."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"block must be (frames, {self.channels}), got {block.shape}")
        if self.closed:
            raise ValueError("write to a closed WavRecorder")
        if self._file is None:  # failed earlier
            self.frames_dropped += block.shape[0]
            return
        if self.subtype == PCM_16:
            data = np.rint(np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        else:
            data = np.ascontiguousarray(block, dtype="<f4").tobytes()
        try:
            if self._data_bytes + len(data) > self._max_data:
                room = self._max_data - self._data_bytes
                self._file.write(data[:room])
                self._data_bytes += room
                self._finish_file()
                rest = data[room:]
                self._open(self._next_path())
                log.info("audio recording continues in %s (WAV size limit)", self.paths[-1])
                data = rest
            self._file.write(data)
            self._data_bytes += len(data)
        except OSError as exc:
            self._fail(exc, block.shape[0])
            return
        self.frames_written += block.shape[0]
        if self._clock() - self._last_update >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Rewrite the header and flush now (normally done every ``flush_interval_s``)."""
        if self._file is not None and not self.closed:
            try:
                self._update_header()
            except OSError as exc:
                self._fail(exc, 0)

    def _finish_file(self) -> None:
        self._update_header()
        self._file.close()
        self._file = None

    def _fail(self, exc: OSError, frames: int) -> None:
        self.errors += 1
        self.frames_dropped += frames
        if self.errors == 1:
            log.error("audio recording to %s stopped: %s (the music goes on; the file holds what "
                      "was written before)", self.paths[-1] if self.paths else self.path,
                      exc.strerror or exc)
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass

    def close(self) -> None:
        """Write the final header and close. Safe to call twice; never raises on disk errors."""
        if self.closed:
            return
        if self._file is not None:
            try:
                self._finish_file()
            except OSError as exc:
                self._fail(exc, 0)
        self.closed = True

    @property
    def duration_s(self) -> float:
        return self.frames_written / self.sample_rate

    def status(self) -> dict:
        return {"path": str(self.paths[-1] if self.paths else self.path),
                "files": len(self.paths), "frames": self.frames_written,
                "seconds": round(self.duration_s, 3), "errors": self.errors,
                "frames_dropped": self.frames_dropped, "recording": self._file is not None}

    def __enter__(self) -> "WavRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MotionRecorder:
    """Append skeleton frames and controls to a JSON-lines file, as received.

    One line per frame (:meth:`SkeletonFrame.to_json`) and one per control
    (``{"t": t, "control": {...changes}}``). Lines are collected and written,
    whole lines only, every ``flush_interval_s`` (on a write or a
    :meth:`tick`), when :data:`WRITE_BUFFER_BYTES` are pending, and on
    :meth:`close`; so a killed process leaves a file of complete lines
    holding everything up to the last flush. After opening, a disk error is
    counted and logged once; further lines are dropped (counted).
    """

    def __init__(self, path: str | os.PathLike, *, append: bool = False,
                 flush_interval_s: float = FLUSH_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        self._file = _open_for_writing(self.path, "ab" if append else "wb", "motion recording",
                                       buffering=0)
        self._last_flush = clock()
        self._pending: list[str] = []      # whole lines not yet written
        self._pending_chars = 0
        self.lines = 0           #: lines written
        self.dropped = 0         #: lines lost to disk errors
        self.errors = 0          #: disk errors after opening
        self.closed = False

    def write_frame(self, frame: SkeletonFrame) -> None:
        """Record one skeleton frame."""
        self._write(frame.to_json())

    def write_control(self, t: float, control: Control) -> None:
        """Record one operator control at session time ``t``."""
        t = round(float(t), 6) if math.isfinite(t) else None
        self._write(json.dumps({"t": t, "control": control.changes()}, separators=(",", ":")))

    def _write(self, line: str) -> None:
        if self.closed:
            raise ValueError("write to a closed MotionRecorder")
        if self._file is None:
            self.dropped += 1
            return
        self._pending.append(line + "\n")
        self._pending_chars += len(line) + 1
        self.lines += 1
        if (self._pending_chars >= WRITE_BUFFER_BYTES
                or self._clock() - self._last_flush >= self.flush_interval_s):
            self.flush()

    def tick(self) -> None:
        """Flush if ``flush_interval_s`` has passed (the live loop calls this when no lines come)."""
        if self._pending and self._clock() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def _flush(self) -> None:
        self._last_flush = self._clock()
        if not self._pending:
            return
        data = memoryview("".join(self._pending).encode("utf-8"))
        n = len(self._pending)
        self._pending.clear()
        self._pending_chars = 0
        try:
            while data:
                written = self._file.write(data)
                data = data[written:]
        except OSError as exc:
            self._fail(exc, n)

    def flush(self) -> None:
        """Write the pending lines now (normally done every ``flush_interval_s``)."""
        if self._file is not None:
            self._flush()

    def _fail(self, exc: OSError, lines: int) -> None:
        self.errors += 1
        self.dropped += lines
        if self.errors == 1:
            log.error("motion recording to %s stopped: %s (the music goes on)", self.path,
                      exc.strerror or exc)
        f, self._file = self._file, None
        self._pending.clear()
        self._pending_chars = 0
        try:
            f.close()
        except OSError:
            pass  # lines that could not be written are lost with the disk

    def close(self) -> None:
        """Flush and close. Safe to call twice; never raises on disk errors."""
        if self.closed:
            return
        if self._file is not None:
            self._flush()
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._fail(exc, 0)
            self._file = None
        self.closed = True

    def status(self) -> dict:
        return {"path": str(self.path), "lines": self.lines, "dropped": self.dropped,
                "errors": self.errors, "recording": self._file is not None}

    def __enter__(self) -> "MotionRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
