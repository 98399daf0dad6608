"""Live MIDI out: clock, transport and (optionally) the band's notes on a MIDI port.

``d2m serve --midi-out NAME`` opens a virtual output port called ``NAME``
(or, with ``--midi-connect``, connects to the existing port -- a device,
another program's input -- whose name contains ``NAME``) through python-rtmidi (the ``midi`` extra): ALSA's sequencer where
the kernel offers it (``/dev/snd/seq``), else a running JACK server. What is
sent and when is computed in the core (:mod:`d2m.midi_clock`) from the
plans; :class:`MidiSender` sends each message from a dedicated thread that
sleeps until the message's moment **on the audio clock** (the session clock,
which is the playback position), so pulses do not jitter with the event
loop and follow the audio if it stalls. A message is due when its sample is
heard: its session time plus the output's latency plus ``--latency``.

The thread reads the audio clock as ``monotonic time + offset``, the offset
being the largest ``PlaybackClock.now() - time.monotonic()`` seen over the last
:data:`OFFSET_WINDOW_S`: a late audio block (a busy event loop under the
paced output, a late sound-card callback) only ever makes the clock read
*behind* its schedule, so the largest recent offset is the schedule itself,
and the pulses keep the audio's pace without its block-to-block jitter. A
stalled output lowers the offset within that window, and the pulses wait
for the audio.

Late messages: a clock pulse is sent late rather than dropped (receivers
count pulses for their song position), unless it is more than
:data:`MAX_LATE_PULSE_S` late (a stall: dropped, counted); a note-on more
than :data:`MAX_LATE_NOTE_S` late is dropped (counted); transport and
note-offs are always sent.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections import deque

from d2m.midi import CHANNELS
from d2m.midi_clock import CLOCK, STOP, ClockSchedule, Timed

log = logging.getLogger("d2m.midi")

#: Clock pulses later than this (s) are dropped (counted); less late ones are sent at once.
MAX_LATE_PULSE_S = 0.25
#: Note-ons later than this (s) are dropped (counted).
MAX_LATE_NOTE_S = 0.05
#: Window (s) over which the largest audio-clock offset is taken (see the module docstring).
OFFSET_WINDOW_S = 2.0
#: The sender thread never sleeps longer than this at once (s): it re-reads the clock.
MAX_SLEEP_S = 0.05
#: Within this long (s) of a message's moment the thread sleeps exactly, without re-reading.
FINAL_SLEEP_S = 0.002
#: Timing errors kept for status (sent - due, s): the most recent ones.
TIMING_WINDOW = 4096
#: Messages queued at most (a plan's pulses are ~100; notes a few hundred a bar).
MAX_QUEUED = 20000
#: Python's GIL switch interval while MIDI out runs (s; Python's default is 0.005). A waking
#: sender thread waits for the interpreter lock at most about this long, so it bounds the
#: pulses' jitter when other threads are busy in Python (process-wide; the server's CPU share
#: under live load was 17-19 % of a core with it and 16.5-19 % without, benchmarks/midi_clock.py).
SWITCH_INTERVAL_S = 0.0005
#: MIDI APIs accepted by --midi-api.
APIS = ("auto", "alsa", "jack")
#: Where the ALSA sequencer lives (absent in most containers).
ALSA_SEQ = "/dev/snd/seq"
#: Client name of d2m's MIDI ports.
CLIENT_NAME = "d2m"

INSTALL = "MIDI out needs python-rtmidi: pip install -e '.[midi]'"


class MidiUnavailable(RuntimeError):
    """No MIDI output can be opened; the message says what to install or start."""


def _rtmidi():
    try:
        import rtmidi  # noqa: PLC0415 - optional extra
    except ImportError:
        raise MidiUnavailable(INSTALL) from None
    return rtmidi


def pick_api(api: str = "auto") -> str:
    """``alsa`` or ``jack``: ALSA where ``/dev/snd/seq`` exists, else JACK (which must be running)."""
    if api not in APIS:
        raise MidiUnavailable(f"unknown MIDI API {api!r}; choose one of {', '.join(APIS)}")
    if api != "auto":
        return api
    return "alsa" if os.path.exists(ALSA_SEQ) else "jack"


def open_output(name: str, *, api: str = "auto", connect: bool = False, client: str = CLIENT_NAME):
    """An rtmidi ``MidiOut``: a virtual port ``name``, or (``connect``) the existing port containing it."""
    rtmidi = _rtmidi()
    chosen = pick_api(api)
    os.environ.setdefault("JACK_NO_START_SERVER", "1")   # never start a JACK server behind the user's back
    rtapi = rtmidi.API_LINUX_ALSA if chosen == "alsa" else rtmidi.API_UNIX_JACK
    if rtapi not in rtmidi.get_compiled_api():
        raise MidiUnavailable(f"this python-rtmidi was built without {chosen.upper()} support")
    try:
        out = rtmidi.MidiOut(rtapi=rtapi, name=client)
    except rtmidi.RtMidiError as exc:
        hint = ("no ALSA sequencer here (/dev/snd/seq is missing: `modprobe snd-seq`, or start a JACK "
                "server and use --midi-api jack)" if chosen == "alsa" else
                "no JACK server is running (start one, e.g. `jackd -d dummy` or `jackd -d alsa`; "
                f"{'ALSA needs /dev/snd/seq, which this machine lacks' if not os.path.exists(ALSA_SEQ) else 'or use --midi-api alsa'})")
        raise MidiUnavailable(f"cannot open MIDI ({chosen}): {hint}: {exc}") from None
    try:
        if connect:
            ports = out.get_ports()
            match = [i for i, p in enumerate(ports) if name.lower() in p.lower()]
            if not match:
                out.delete()
                raise MidiUnavailable(f"no MIDI port contains {name!r}; ports: "
                                      + (", ".join(ports) or "none"))
            out.open_port(match[0], name)
        else:
            out.open_virtual_port(name)
    except rtmidi.RtMidiError as exc:
        raise MidiUnavailable(f"cannot open MIDI port {name!r} ({chosen}): {exc}") from None
    return out, chosen


class MidiSender:
    """Sends timed messages at their moments on the audio clock from one daemon thread.

    ``clock`` is the :class:`~d2m_server.audio.PlaybackClock`; ``offset_s()``
    the latency from a sample's session time to hearing it (read at each
    message). ``send(message)`` is called on the thread (rtmidi's
    ``send_message``). Nothing is sent before playback starts.
    """

    def __init__(self, send, clock, sample_rate: int, *, offset_s=lambda: 0.0,
                 max_late_pulse_s: float = MAX_LATE_PULSE_S, max_late_note_s: float = MAX_LATE_NOTE_S,
                 offset_window_s: float = OFFSET_WINDOW_S, clock_mono=time.monotonic):
        self._send = send
        self.clock = clock
        self.sample_rate = int(sample_rate)
        self.offset_s = offset_s
        self.max_late_pulse_s = max_late_pulse_s
        self.max_late_note_s = max_late_note_s
        self.offset_window_s = offset_window_s
        self._mono = clock_mono
        self._offsets: deque = deque()      # (mono, offset), offsets decreasing: a sliding maximum
        self.late_pulses = 0                #: pulses sent late (after their moment, within the limit)
        self._heap: list = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        self.sent = 0
        self.dropped_late = 0
        self.dropped_full = 0
        self.errors = 0
        self.pulses = 0
        self.errors_s: deque[float] = deque(maxlen=TIMING_WINDOW)    # sent - due, clock pulses
        #: (session time due, session time sent, mono time sent, message) of recent pulses (benchmarks)
        self.recent: deque = deque(maxlen=TIMING_WINDOW)
        self._thread = threading.Thread(target=self._run, name="d2m-midi-out", daemon=True)
        self._thread.start()

    def schedule(self, items: list[Timed]) -> None:
        with self._cv:
            for it in items:
                if len(self._heap) >= MAX_QUEUED:
                    self.dropped_full += 1
                    continue
                heapq.heappush(self._heap, (it.sample, it.order, next(self._seq), it.message))
            self._cv.notify()

    def queued(self) -> int:
        return len(self._heap)

    def close(self, final: list[tuple[int, ...]] = (), timeout: float = 1.0) -> None:
        """Stop the thread, then send ``final`` messages (Stop, all-notes-off) at once."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout)
        for msg in final:
            self._emit(msg)

    def _emit(self, msg) -> bool:
        try:
            self._send(list(msg))
            self.sent += 1
            return True
        except Exception as exc:  # noqa: BLE001 - a lost port must not stop the music
            self.errors += 1
            if self.errors == 1:
                log.error("MIDI send failed (%s); counting further failures", exc)
            return False

    def _run(self) -> None:
        sr = self.sample_rate
        while True:
            with self._cv:
                while not self._closed and not self._heap:
                    self._cv.wait()
                if self._closed:
                    return
                sample, order, _, msg = self._heap[0]
                due = sample / sr + self.offset_s()
                started = self.clock.position > 0
                wait = due - self.audio_now() if started else MAX_SLEEP_S
                if wait > FINAL_SLEEP_S:
                    self._cv.wait(min(wait - FINAL_SLEEP_S, MAX_SLEEP_S))
                    continue                       # re-read: a new earlier message, or the clock moved
                heapq.heappop(self._heap)
            if wait > 0:
                time.sleep(wait)
            now = self.audio_now()
            late = now - due
            is_pulse = msg[0] == CLOCK
            limit = self.max_late_pulse_s if is_pulse else (
                self.max_late_note_s if msg[0] & 0xF0 == 0x90 else None)
            if limit is not None and late > limit:
                self.dropped_late += 1
                continue
            if self._emit(msg) and is_pulse:
                self.pulses += 1
                if late > FINAL_SLEEP_S:
                    self.late_pulses += 1
                self.errors_s.append(late)
                self.recent.append((due, now, self._mono(), msg[0]))

    def audio_now(self) -> float:
        """The audio clock (session time) as ``monotonic + the largest recent offset``."""
        mono = self._mono()
        raw = self.clock.now() - mono
        q = self._offsets
        while q and q[-1][1] <= raw:
            q.pop()
        q.append((mono, raw))
        while q[0][0] < mono - self.offset_window_s:
            q.popleft()
        return mono + q[0][1]

    def timing(self) -> dict:
        errs = sorted(abs(e) for e in list(self.errors_s))
        if not errs:
            return {"pulses_measured": 0}

        def q(p):
            return round(errs[min(len(errs) - 1, int(p * (len(errs) - 1)))] * 1000, 3)
        worst = sorted(list(self.recent), key=lambda r: abs(r[1] - r[0]))[-3:]
        return {"pulses_measured": len(errs), "abs_error_ms_median": q(0.5), "abs_error_ms_p99": q(0.99),
                "abs_error_ms_max": q(1.0),
                "worst": [{"due": round(d, 4), "late_ms": round((n - d) * 1000, 3)} for d, n, _, _ in worst]}

    def status(self) -> dict:
        return {"sent": self.sent, "pulses": self.pulses, "queued": self.queued(),
                "late_pulses": self.late_pulses, "dropped_late": self.dropped_late, "dropped_full": self.dropped_full, "errors": self.errors,
                "timing": self.timing()}


class MidiOut:
    """The live MIDI output: clock + transport always, the band's notes with ``notes=True``."""

    def __init__(self, name: str, clock, sample_rate: int, *, api: str = "auto", connect: bool = False,
                 notes: bool = False, offset_s=lambda: 0.0, port=None):
        if port is None:
            port, api = open_output(name, api=api, connect=connect)
        self.port = port
        self.name = name
        self.api = api
        self.notes = notes
        self.schedule = ClockSchedule()
        self.sender = MidiSender(port.send_message, clock, sample_rate, offset_s=offset_s)
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        self.late_scores = 0
        self.clock = clock
        self.sample_rate = int(sample_rate)

    def add_plan(self, plan) -> None:
        """A segment was planned: its clock pulses and transport."""
        self.sender.schedule(self.schedule.add_plan(plan))

    def add_score(self, plan, score) -> None:
        """A segment was rendered: its notes (with ``notes=True``)."""
        if self.notes and score is not None:
            self.sender.schedule(ClockSchedule.notes(plan, score))

    def close(self) -> None:
        final = []
        if self.schedule.playing:
            final.append((STOP,))
        if self.notes:
            final.extend((0xB0 | ch, 123, 0) for ch in sorted(set(CHANNELS.values())))   # all notes off
        self.sender.close(final)
        sys.setswitchinterval(self._switch_interval)
        try:
            self.port.close_port()
            self.port.delete()
        except Exception:  # noqa: BLE001
            pass

    def status(self) -> dict:
        return {"port": self.name, "api": self.api, "notes": self.notes, "playing": self.schedule.playing,
                **self.sender.status()}
