"""Audio output: the ring buffer, the session clock and the outputs that play it.

Audio is rendered ahead of playback and written into an :class:`AudioRing`.
An output (:class:`SoundDeviceOutput` with a sound card, :class:`PacedOutput`
without one) takes one block at a time out of the ring, applies the master
volume (:class:`GainRamp`), advances the :class:`PlaybackClock` and reports
the block it actually played through its ``on_block`` hook, so recorders and
streams get exactly what was heard.

The playback position *is* the session clock: motion timestamps and audio
share one timeline (``PlaybackClock.now()``), with no drift over hours.
"""

from __future__ import annotations

import abc

import asyncio
import logging
import threading
import time
from typing import Callable

import numpy as np

#: Sample rate of all generated and played audio (Hz).
SAMPLE_RATE = 48000
#: Output channels (stereo).
CHANNELS = 2
#: Frames per output block (480 = 10 ms at 48 kHz).
DEFAULT_BLOCK = 480
#: PortAudio latency hint for the sound device ("low", "high" or seconds).
DEFAULT_LATENCY = "low"
#: Length of the linear volume ramp (s); long enough that volume changes never click.
RAMP_S = 0.02
#: A paced output that falls further behind its schedule than this (s) (event loop
#: blocked) restarts its schedule from now instead of bursting to catch up.
MAX_LAG_S = 1.0
#: How often the sound-device watchdog checks that the device is still playing (s).
WATCHDOG_INTERVAL_S = 0.25
#: A sound device whose callback has not run for this long (s) is declared lost.
STALL_TIMEOUT_S = 1.0
#: Longest wait (s) for PortAudio to close a stream (a lost device may hang).
CLOSE_TIMEOUT_S = 2.0

log = logging.getLogger("d2m.audio")

#: Called on the event loop with each block actually played and its first frame.
BlockHook = Callable[[np.ndarray, int], None]
#: Called on the output's thread with each block just read from the ring (before volume)
#: and its first frame; adds low-latency sound (the dancer's accents) in place.
BlockMixer = Callable[[np.ndarray, int], None]


class AudioUnavailable(RuntimeError):
    """The requested audio output cannot be used; the message says what to do."""


# ---------------------------------------------------------------------------
# Ring buffer


class AudioRing:
    """Bounded ring of float32 frames between one writer and one reader.

    The writer (event loop) calls :meth:`write`, the reader (the audio
    callback or a paced task) calls :meth:`read_into`. Neither ever blocks
    on the other beyond a short copy under a lock. A read that finds fewer
    frames than asked is an *underrun*: the rest is filled with silence and
    counted. Reads before the first write (the output starting before any
    audio exists) are silence but not underruns.
    """

    def __init__(self, capacity_frames: int, channels: int = CHANNELS):
        if capacity_frames <= 0:
            raise ValueError("capacity_frames must be positive")
        if channels <= 0:
            raise ValueError("channels must be positive")
        self.capacity = int(capacity_frames)
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self._read = 0      # total frames read (monotonic counter)
        self._written = 0   # total frames written (monotonic counter)
        self._lock = threading.Lock()
        self.underruns = 0         #: reads that came up short (events)
        self.underrun_frames = 0   #: frames of silence inserted by those reads
        self.overflow_frames = 0   #: frames refused by :meth:`write` because the ring was full

    @property
    def available(self) -> int:
        """Frames ready to be read."""
        with self._lock:
            return self._written - self._read

    @property
    def free(self) -> int:
        """Frames that can be written without refusal."""
        return self.capacity - self.available

    @property
    def frames_written(self) -> int:
        """Total frames ever written."""
        return self._written

    @property
    def frames_read(self) -> int:
        """Total frames ever handed to a reader (silence fill not included)."""
        return self._read

    def write(self, block: np.ndarray) -> int:
        """Append as much of ``block`` (frames x channels) as fits; return frames written.

        Never blocks. Frames that do not fit are refused (counted in
        :attr:`overflow_frames`); the caller decides whether to retry later.
        """
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1 and self.channels == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"block must be (frames, {self.channels}), got {block.shape}")
        with self._lock:
            free = self.capacity - (self._written - self._read)
            n = min(free, block.shape[0])
            start = self._written % self.capacity
        if n:
            first = min(n, self.capacity - start)
            self._buf[start:start + first] = block[:first]
            if n > first:
                self._buf[:n - first] = block[first:n]
            with self._lock:
                self._written += n
        self.overflow_frames += block.shape[0] - n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` (frames x channels) from the ring; return the frames that came from it.

        If fewer frames are available the rest of ``out`` is zero-filled and
        one underrun is counted (unless nothing was ever written).
        """
        frames = out.shape[0]
        with self._lock:
            n = min(frames, self._written - self._read)
            start = self._read % self.capacity
            primed = self._written > 0
        if n:
            first = min(n, self.capacity - start)
            out[:first] = self._buf[start:start + first]
            if n > first:
                out[first:n] = self._buf[:n - first]
            with self._lock:
                self._read += n
        if n < frames:
            out[n:] = 0.0
            if primed:
                self.underruns += 1
                self.underrun_frames += frames - n
        return n

    def clear(self) -> int:
        """Drop everything queued (e.g. on a hard stop); return frames dropped."""
        with self._lock:
            dropped = self._written - self._read
            self._read = self._written
        return dropped

    def status(self) -> dict:
        return {
            "capacity_frames": self.capacity,
            "available_frames": self.available,
            "underruns": self.underruns,
            "underrun_frames": self.underrun_frames,
            "overflow_frames": self.overflow_frames,
        }


# ---------------------------------------------------------------------------
# Session clock


class PlaybackClock:
    """The session clock, driven by the audio output.

    :attr:`position` counts frames handed to the output. :meth:`now` is
    ``position / sample_rate`` plus the time elapsed since that position was
    reached, clamped to at most one block (so a stalled output freezes the
    clock instead of running ahead of the audio). Because the clock is
    derived from the frame count, it cannot drift from the audio however
    long the session runs. :meth:`now` never goes backwards.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, *, clock: Callable[[], float] = time.monotonic):
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self.sample_rate = int(sample_rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._position = 0
        self._reached_at: float | None = None
        self._block_s = 0.0
        self._last_now = 0.0

    @property
    def position(self) -> int:
        """Frames handed to the output so far."""
        return self._position

    def advance(self, frames: int) -> int:
        """Record that ``frames`` more frames were handed to the output; return the old position."""
        if frames < 0:
            raise ValueError("frames must be >= 0")
        at = self._clock()
        with self._lock:
            start = self._position
            self._position += int(frames)
            self._reached_at = at
            self._block_s = frames / self.sample_rate
        return start

    def now(self) -> float:
        """Session time in seconds (monotonic, derived from the playback position)."""
        at = self._clock()
        with self._lock:
            t = self._position / self.sample_rate
            if self._reached_at is not None:
                t += min(max(at - self._reached_at, 0.0), self._block_s)
            if t < self._last_now:
                t = self._last_now
            self._last_now = t
            return t

    def time_of(self, sample: int) -> float:
        """Session time of a sample index."""
        return sample / self.sample_rate


# ---------------------------------------------------------------------------
# Volume


class GainRamp:
    """Master volume with a short linear ramp so changes never click.

    Sans-I/O: :meth:`set` may be called from any thread; :meth:`apply`
    multiplies a block in place, moving linearly from the current gain to the
    target over :data:`RAMP_S` seconds.
    """

    def __init__(self, volume: float = 1.0, *, sample_rate: int = SAMPLE_RATE, ramp_s: float = RAMP_S):
        #: Frames one ramp lasts.
        self.ramp_frames = max(1, int(round(ramp_s * sample_rate)))
        volume = _volume(volume)
        self._current = volume
        self._target = volume
        self._step = 0.0
        self._remaining = 0
        self._lock = threading.Lock()

    @property
    def target(self) -> float:
        """The volume being moved to (0..1)."""
        return self._target

    @property
    def current(self) -> float:
        """The gain applied to the last frame processed."""
        return self._current

    def set(self, volume: float) -> None:
        """Move to ``volume`` (0..1) over one ramp, starting from the current gain."""
        volume = _volume(volume)
        with self._lock:
            self._target = volume
            if volume == self._current:
                self._remaining, self._step = 0, 0.0
            else:
                self._remaining = self.ramp_frames
                self._step = (volume - self._current) / self.ramp_frames

    def apply(self, block: np.ndarray) -> np.ndarray:
        """Scale ``block`` (frames x channels, float) in place and return it."""
        frames = block.shape[0]
        with self._lock:
            current, target, remaining = self._current, self._target, self._remaining
            gains = None
            if remaining:
                k = min(frames, remaining)
                gains = np.full(frames, target, dtype=np.float64)
                gains[:k] = current + self._step * np.arange(1, k + 1, dtype=np.float64)
                self._remaining = remaining - k
                if self._remaining == 0:
                    gains[k - 1] = target
                    self._current = target
                else:
                    self._current = float(gains[k - 1])
        if gains is not None:
            gains = gains.astype(block.dtype, copy=False)
            block *= gains[:, None] if block.ndim == 2 else gains
        elif current != 1.0:
            block *= block.dtype.type(current)
        return block


def _volume(value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"volume must be between 0 and 1, got {value:g}")
    return value


# ---------------------------------------------------------------------------
# Outputs


class AudioOutput(abc.ABC):
    """What every output does: play blocks from a ring, advance the clock, report blocks.

    Subclasses implement :meth:`start` and :meth:`stop`. ``on_block(block,
    start_frame)`` is called on the event loop with a copy of each block as
    played (after volume) and the clock position of its first frame.
    """

    name = "output"

    def __init__(self, ring: AudioRing, clock: PlaybackClock, *, sample_rate: int = SAMPLE_RATE,
                 blocksize: int = DEFAULT_BLOCK, gain: GainRamp | None = None,
                 on_block: BlockHook | None = None, mixer: BlockMixer | None = None):
        if blocksize <= 0:
            raise ValueError("blocksize must be positive")
        if clock.sample_rate != sample_rate:
            raise ValueError(f"clock runs at {clock.sample_rate} Hz but the output at {sample_rate} Hz")
        self.ring = ring
        self.clock = clock
        self.sample_rate = int(sample_rate)
        self.blocksize = int(blocksize)
        self.gain = gain if gain is not None else GainRamp(sample_rate=sample_rate)
        self.on_block = on_block
        self.mixer = mixer
        self.blocks_played = 0
        self.hook_errors = 0
        self.mixer_errors = 0

    @property
    def latency_s(self) -> float:
        """Time from handing a block over to hearing it (s)."""
        return 0.0

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin playing from the ring."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop playing and release the device."""

    def _play_into(self, out: np.ndarray) -> int:
        """Fill ``out`` from the ring (plus the mixer's sound) with volume applied; advance the
        clock; return start frame."""
        self.ring.read_into(out)
        if self.mixer is not None:
            try:
                self.mixer(out, self.clock.position)
            except Exception:  # accents must never stop the music
                self.mixer_errors += 1
                if self.mixer_errors == 1:
                    log.exception("%s: block mixer failed (counted, further errors not logged)", self.name)
        self.gain.apply(out)
        self.blocks_played += 1
        return self.clock.advance(out.shape[0])

    def _deliver(self, block: np.ndarray, start_frame: int) -> None:
        hook = self.on_block
        if hook is None:
            return
        try:
            hook(block, start_frame)
        except Exception:  # a failing recorder/stream must not stop playback
            self.hook_errors += 1
            if self.hook_errors == 1:
                log.exception("%s: on_block hook failed (counted, further errors not logged)", self.name)

    def status(self) -> dict:
        return {
            "output": self.name,
            "sample_rate": self.sample_rate,
            "blocksize": self.blocksize,
            "latency_s": round(self.latency_s, 6),
            "position": self.clock.position,
            "blocks_played": self.blocks_played,
            "volume": round(self.gain.target, 4),
            "hook_errors": self.hook_errors,
            "mixer_errors": self.mixer_errors,
            **self.ring.status(),
        }


class PacedOutput(AudioOutput):
    """No sound device: consume blocks at real-time pace from an asyncio task.

    Blocks are taken against an absolute schedule (``start + frames / rate -
    now``), so sleep jitter never accumulates into drift. If the event loop
    was blocked for more than :data:`MAX_LAG_S`, the schedule restarts from
    now (counted in :attr:`resyncs`) instead of bursting through the ring.
    """

    name = "paced"

    def __init__(self, ring: AudioRing, clock: PlaybackClock, sample_rate: int = SAMPLE_RATE,
                 blocksize: int = DEFAULT_BLOCK, *, gain: GainRamp | None = None,
                 on_block: BlockHook | None = None, max_lag_s: float = MAX_LAG_S,
                 mixer: BlockMixer | None = None):
        super().__init__(ring, clock, sample_rate=sample_rate, blocksize=blocksize,
                         gain=gain, on_block=on_block, mixer=mixer)
        self.max_lag_s = max_lag_s
        self.resyncs = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="d2m-paced-output")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        done = 0
        while True:
            block = np.empty((self.blocksize, self.ring.channels), dtype=np.float32)
            start = self._play_into(block)
            self._deliver(block, start)
            done += self.blocksize
            delay = t0 + done / self.sample_rate - loop.time()
            if delay < -self.max_lag_s:
                self.resyncs += 1
                log.warning("paced audio output fell %.2f s behind (event loop blocked); "
                            "restarting its schedule", -delay)
                t0, done, delay = loop.time(), 0, 0.0
            await asyncio.sleep(max(delay, 0.0))

    def status(self) -> dict:
        return {**super().status(), "resyncs": self.resyncs}


class SoundDeviceOutput(AudioOutput):
    """Play through a PortAudio device (``sounddevice.OutputStream``).

    The stream's callback reads the ring on PortAudio's thread and hands a
    copy of each played block to the event loop (``call_soon_threadsafe``).
    If the stream dies (device unplugged, driver error), the output is marked
    lost, says so once, and a :class:`PacedOutput` keeps the clock and the
    streams going without sound.
    """

    name = "sounddevice"

    def __init__(self, ring: AudioRing, clock: PlaybackClock, device: int | str | None = None,
                 sample_rate: int = SAMPLE_RATE, blocksize: int = DEFAULT_BLOCK,
                 latency: str | float = DEFAULT_LATENCY, *, gain: GainRamp | None = None,
                 on_block: BlockHook | None = None, stall_timeout_s: float = STALL_TIMEOUT_S,
                 watchdog_interval_s: float = WATCHDOG_INTERVAL_S, _stream_factory=None,
                 mixer: BlockMixer | None = None):
        super().__init__(ring, clock, sample_rate=sample_rate, blocksize=blocksize,
                         gain=gain, on_block=on_block, mixer=mixer)
        self.device = device
        self.latency = latency
        self.stall_timeout_s = stall_timeout_s
        self.watchdog_interval_s = watchdog_interval_s
        self._stream_factory = _stream_factory
        self._stream = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task | None = None
        self._fallback: PacedOutput | None = None
        self._stopping = False
        self._last_callback = 0.0
        self.lost = False
        self.lost_reason = ""
        self.xruns = 0
        self.callback_errors = 0
        self.device_name = str(device) if device is not None else "default"

    @property
    def latency_s(self) -> float:
        stream = self._stream
        if stream is None or self.lost:
            return 0.0
        try:
            return float(stream.latency)
        except Exception:
            return 0.0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        factory = self._stream_factory
        if factory is None:
            sd = import_sounddevice()
            factory = sd.OutputStream
            try:
                self.device_name = sd.query_devices(self.device, kind="output")["name"]
            except Exception:
                pass
        try:
            self._stream = factory(
                samplerate=self.sample_rate, blocksize=self.blocksize, channels=self.ring.channels,
                dtype="float32", latency=self.latency, device=self.device,
                callback=self._callback, finished_callback=self._finished,
            )
            self._last_callback = time.monotonic()
            self._stream.start()
        except Exception as exc:
            self._stream = None
            raise AudioUnavailable(
                f"cannot open audio output {self.device_name!r} at {self.sample_rate} Hz, "
                f"{self.ring.channels} channels: {exc}. Choose another device, or use "
                "--audio-out none to serve streams only"
            ) from exc
        self._watchdog = self._loop.create_task(self._watch(), name="d2m-audio-watchdog")

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            try:
                await self._watchdog
            except asyncio.CancelledError:
                pass
            self._watchdog = None
        if self._fallback is not None:
            await self._fallback.stop()
        await self._close_stream()

    # -- PortAudio thread ---------------------------------------------------

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        self._last_callback = time.monotonic()
        if status and getattr(status, "output_underflow", False):
            self.xruns += 1
        if self.lost:
            outdata.fill(0)
            return
        try:
            start = self._play_into(outdata)
            block = outdata.copy()
            loop = self._loop
            if loop is not None and self.on_block is not None:
                loop.call_soon_threadsafe(self._deliver, block, start)
        except RuntimeError:
            pass  # event loop closed while shutting down
        except Exception:
            self.callback_errors += 1
            outdata.fill(0)

    def _finished(self) -> None:
        if self._stopping or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._mark_lost, "the audio stream stopped")
        except RuntimeError:
            pass

    # -- event loop ---------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog_interval_s)
            if self.lost:
                return
            stream = self._stream
            if stream is not None and not getattr(stream, "active", True):
                self._mark_lost("the audio stream is no longer active")
            elif time.monotonic() - self._last_callback > self.stall_timeout_s:
                self._mark_lost(f"no audio callback for {self.stall_timeout_s:g} s")

    def _mark_lost(self, reason: str) -> None:
        if self.lost or self._stopping:
            return
        self.lost = True
        self.lost_reason = reason
        log.warning("audio device %r lost (%s); continuing without sound, paced by the server "
                    "clock", self.device_name, reason)
        self._fallback = PacedOutput(self.ring, self.clock, self.sample_rate, self.blocksize,
                                     gain=self.gain, on_block=self._deliver, mixer=self.mixer)
        loop = asyncio.get_running_loop()
        loop.create_task(self._fallback.start())
        loop.create_task(self._close_stream())

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        loop = asyncio.get_running_loop()

        def close() -> None:
            try:
                stream.abort() if self.lost else stream.stop()
            finally:
                stream.close()

        try:
            await asyncio.wait_for(loop.run_in_executor(None, close), CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("audio device %r did not close within %g s; abandoned",
                        self.device_name, CLOSE_TIMEOUT_S)
        except Exception as exc:  # a dead device may refuse to close
            log.debug("closing audio stream failed: %s", exc)

    def status(self) -> dict:
        fallback = self._fallback
        return {
            **super().status(),
            "blocks_played": self.blocks_played + (fallback.blocks_played if fallback else 0),
            "device": self.device_name,
            "lost": self.lost,
            "lost_reason": self.lost_reason,
            "xruns": self.xruns,
            "callback_errors": self.callback_errors,
        }


# ---------------------------------------------------------------------------
# Choosing an output

_PORTAUDIO_HINT = ("the PortAudio library is missing; install it with "
                   "`apt-get install libportaudio2` (Debian/Ubuntu)")
_warned_no_device = False


def import_sounddevice():
    """Import :mod:`sounddevice`; raise :class:`AudioUnavailable` if PortAudio is missing."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is not found
        raise AudioUnavailable(f"{_PORTAUDIO_HINT} ({exc})") from None
    return sounddevice


def output_devices() -> list[tuple[int, str]]:
    """``(index, name)`` of every output device PortAudio knows (empty without PortAudio)."""
    try:
        sd = import_sounddevice()
        devices = sd.query_devices()
    except Exception:
        return []
    return [(i, d["name"]) for i, d in enumerate(devices) if d["max_output_channels"] > 0]


def _device_list() -> str:
    devices = output_devices()
    if not devices:
        return "no output devices found"
    return "available outputs: " + "; ".join(f"{i}: {name}" for i, name in devices)


def _no_device(reason: str) -> None:
    global _warned_no_device
    if not _warned_no_device:
        _warned_no_device = True
        log.warning("no sound device found (%s); serving streams only, paced by the server clock",
                    reason)


def open_output(spec: str | int | None, ring: AudioRing, clock: PlaybackClock, *,
                sample_rate: int = SAMPLE_RATE, blocksize: int = DEFAULT_BLOCK,
                latency: str | float = DEFAULT_LATENCY, gain: GainRamp | None = None,
                on_block: BlockHook | None = None, mixer: BlockMixer | None = None) -> AudioOutput:
    """Choose the audio output named by ``spec`` (the ``--audio-out`` value).

    * ``"none"``: :class:`PacedOutput` (no sound, paced by the server clock).
    * ``None`` or ``"default"``: the default output device if there is one;
      otherwise a :class:`PacedOutput`, with one warning saying so.
    * a device index or (part of a) name: that device, or
      :class:`AudioUnavailable` listing the available outputs.
    """
    kwargs = dict(sample_rate=sample_rate, blocksize=blocksize, gain=gain, on_block=on_block, mixer=mixer)
    if isinstance(spec, str):
        spec = spec.strip()
        if spec.lower() == "none":
            return PacedOutput(ring, clock, **kwargs)
        if spec.lower() in ("", "default"):
            spec = None
    if spec is None:
        try:
            sd = import_sounddevice()
            sd.query_devices(kind="output")  # raises if there is no default output
        except Exception as exc:
            _no_device(str(exc))
            return PacedOutput(ring, clock, **kwargs)
        try:
            sd.check_output_settings(samplerate=sample_rate, channels=ring.channels, dtype="float32")
        except Exception as exc:
            _no_device(f"the default device cannot play {sample_rate} Hz stereo: {exc}")
            return PacedOutput(ring, clock, **kwargs)
        return SoundDeviceOutput(ring, clock, None, latency=latency, **kwargs)

    device: int | str = int(spec) if isinstance(spec, int) or spec.isdigit() else spec
    try:
        sd = import_sounddevice()
    except AudioUnavailable as exc:
        raise AudioUnavailable(f"cannot open audio output {spec!r}: {exc}; or use --audio-out none "
                               "to serve streams only") from None
    try:
        info = sd.query_devices(device, kind="output")
    except Exception:
        raise AudioUnavailable(
            f"audio output device {spec!r} not found ({_device_list()}). Give a name or index "
            "from that list, or use --audio-out none to serve streams only"
        ) from None
    if info["max_output_channels"] < ring.channels:
        raise AudioUnavailable(
            f"audio device {spec!r} ({info['name']}) has no {ring.channels}-channel output "
            f"({_device_list()}); or use --audio-out none to serve streams only"
        )
    try:
        sd.check_output_settings(device=device, samplerate=sample_rate, channels=ring.channels,
                                 dtype="float32")
    except Exception as exc:
        raise AudioUnavailable(
            f"audio device {spec!r} ({info['name']}) cannot play {sample_rate} Hz stereo: {exc}. "
            "Choose another device, or use --audio-out none to serve streams only"
        ) from None
    return SoundDeviceOutput(ring, clock, device, latency=latency, **kwargs)


# ---------------------------------------------------------------------------
# Accents


class LockedAccents:
    """A :class:`d2m.hits.AccentTrack` shared by the event loop (``add``) and the output's
    thread (``mix``, the :data:`BlockMixer`); one short lock around each call."""

    def __init__(self, track):
        self.track = track
        self._lock = threading.Lock()

    def add(self, hit) -> bool:
        with self._lock:
            return self.track.add(hit)

    def __call__(self, block: np.ndarray, start_frame: int) -> None:
        with self._lock:
            self.track.mix(block, start_frame)

    def status(self) -> dict:
        with self._lock:
            return self.track.status()
