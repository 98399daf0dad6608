"""The conductor: frames and controls in, segment plans and events out.

It owns the motion trackers and decides, a fixed lead time before each
segment plays, what that segment is: a full bar locked to the dancer's beat
grid, a short idle segment while waiting for a dancer, or silence when the
operator stopped the music. Tempo, genre and prompt changes therefore take
effect on the next bar.

Deterministic: a decision for the segment starting at sample ``S`` is made at
session time ``S / rate - plan_lead_s`` from exactly the frames and controls
stamped before that time, so a live run and an offline render of its motion
recording give the same plans (and, with a deterministic generator, the same
music).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .clock import BarClock
from .control import AUTO, MAX_BPM, MIN_BPM, Control
from .events import ControlApplied, GenreChanged, InputRejected, SegmentPlanned, TempoChanged
from .genres import GENRES
from .motion import MOTION_RATE, MotionResampler, RhythmFrontEnd, TempoTracker, beat_vector
from .plan import IDLE, MUSIC, SILENCE, SegmentPlan
from .skeleton import SkeletonFrame, normalise
from .smoothing import PoseSmoother
from .style import StyleTracker

#: Another person takes over the lead after the current one sent nothing for this long (s).
PERSON_TIMEOUT_S = 1.0
#: Fraction of the remaining phase error corrected per beat at the start of a bar:
#: the first two beats each take half of it (a beat is at most 25 % shorter or longer).
CORRECTION_BEATS = 1
#: Tempo changes smaller than this are not announced (BPM).
ANNOUNCE_BPM_STEP = 0.1


@dataclass(frozen=True)
class ConductorConfig:
    sample_rate: int = 48000        #: samples per second of the music timeline
    plan_lead_s: float = 0.5        #: a segment is decided this long before it starts
    output_latency_s: float = 0.0   #: sound leaves the speakers this long after its sample is played
    initial_bpm: float = 120.0      #: tempo before the dancer is found
    beats_per_bar: int = 4
    genre: str | None = None        #: operator's genre at start (None: follow the motion estimate)
    prompt: str = ""                #: operator's prompt at start
    seed: int = 0                   #: seed for the generators' randomness
    rhythm_window_s: float = 5.12   #: motion window handed to model backends (the paper's 5.12 s)
    min_idle_gap_s: float = 0.08    #: shortest idle segment before the first bar

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if not MIN_BPM <= self.initial_bpm <= MAX_BPM:
            raise ValueError(f"initial_bpm must be within {MIN_BPM:g}-{MAX_BPM:g}")
        if self.plan_lead_s < 0 or self.output_latency_s < 0:
            raise ValueError("plan_lead_s and output_latency_s must be >= 0")
        if self.genre is not None:
            object.__setattr__(self, "genre", Control(genre=self.genre).genre)


class Conductor:
    def __init__(self, config: ConductorConfig = ConductorConfig()):
        self.config = config
        self.sr = config.sample_rate
        self.front = RhythmFrontEnd(MOTION_RATE)
        self.tracker = TempoTracker(initial_bpm=config.initial_bpm)
        self.style = StyleTracker()
        self._style_smoother = PoseSmoother()
        self._style_grid = MotionResampler(MOTION_RATE)
        self.person: int | None = None
        self._person_seen = -math.inf
        self.now = 0.0
        # music timeline
        self.next_sample = 0
        self.index = 0
        self.bar = 0
        self.in_music = False
        self.freerun: BarClock | None = None
        self._freerun_beat = 0
        self.last_plan: SegmentPlan | None = None
        # operator state
        self.genre_override: str | None = config.genre if config.genre != AUTO else None
        self.prompt = config.prompt
        self.tempo_lock = False
        self.locked_bpm: float | None = None
        self.volume = 1.0
        self.playing = True
        # announced state
        self._announced_bpm: float | None = None
        self._announced_locked = False
        self._announced_genre: tuple[str, str] | None = None
        self.frames_accepted = 0
        self.frames_ignored = 0
        self.frames_rejected = 0

    # -- input -------------------------------------------------------------
    def push_frame(self, frame: SkeletonFrame) -> list:
        """Take one skeleton frame stamped with its session time."""
        events = self.advance(frame.t)
        if not math.isfinite(frame.t):
            self.frames_rejected += 1
            return events + [InputRejected(self.now, "frame timestamp is not finite")]
        if self.person is None or (frame.person != self.person
                                   and frame.t - self._person_seen > PERSON_TIMEOUT_S):
            if self.person is not None:
                self.front = RhythmFrontEnd(MOTION_RATE)
                self._style_grid = MotionResampler(MOTION_RATE)
                self._style_smoother.reset()
                self.style.reset()
            self.person = frame.person
        if frame.person != self.person:
            self.frames_ignored += 1
            return events
        self._person_seen = frame.t
        self.frames_accepted += 1
        for k, onset in self.front.push(frame):
            self.tracker.push(k, onset)
        for k, pose, _gap in self._style_grid.push(frame.t, normalise(frame)):
            self.style.update(k / MOTION_RATE, self._style_smoother(k / MOTION_RATE, pose))
        return events

    def control(self, t: float, control: Control) -> list:
        """Apply an operator control stamped with session time ``t``."""
        events = self.advance(t)
        changes = control.changes()
        if control.genre is not None:
            self.genre_override = None if control.genre == AUTO else control.genre
        if control.prompt is not None:
            self.prompt = control.prompt
        if control.tempo_lock is not None:
            self.tempo_lock = control.tempo_lock
            if control.tempo_lock:
                self.locked_bpm = control.bpm or self._current_bpm()
            else:
                self.locked_bpm = None
                self.freerun = None
        elif control.bpm is not None:
            self.tempo_lock, self.locked_bpm = True, control.bpm
        if control.volume is not None:
            self.volume = control.volume
        if control.playing is not None:
            self.playing = control.playing
        events.append(ControlApplied(t, changes))
        return events

    def advance(self, t: float) -> list:
        """Make every decision due by session time ``t``; returns the events."""
        events: list = []
        if t < self.now:
            return events
        self.now = t
        lead = self.config.plan_lead_s
        while self.next_sample / self.sr - lead <= t:
            decided_at = self.next_sample / self.sr - lead
            events.extend(self._announce(decided_at))
            plan = self._plan(decided_at)
            self.last_plan = plan
            self.next_sample = plan.end_sample
            self.index += 1
            if plan.kind == MUSIC:
                self.bar += 1
            events.append(SegmentPlanned(plan))
        return events

    # -- decisions -------------------------------------------------------------
    def _current_bpm(self) -> float:
        if self.tempo_lock and self.locked_bpm:
            return self.locked_bpm
        return self.tracker.estimate.bpm

    def effective_genre(self) -> tuple[str, str]:
        if self.genre_override is not None:
            return self.genre_override, "operator"
        return self.style.state().genre, "motion"

    def _plan(self, decided_at: float) -> SegmentPlan:
        est = self.tracker.estimate
        S = self.next_sample
        if not self.playing:
            self.in_music = False
            self.freerun = None
            return self._segment(SILENCE, S, self._beat_len(self._current_bpm()), (0,), decided_at)
        if self.tempo_lock:
            return self._freerun_bar(S, self.locked_bpm or est.bpm, decided_at)
        if not est.locked:
            return self._segment(IDLE, S, self._beat_len(self.config.initial_bpm), (0,), decided_at)
        self.freerun = None
        latency = self.config.output_latency_s
        heard = S / self.sr + latency
        if not self.in_music:
            # wait in an idle segment until the next dance beat, then start bar 1 on it
            first = est.next_beat(heard + self.config.min_idle_gap_s)
            start = int(round((first - latency) * self.sr))
            self.in_music = True
            if start > S:
                return self._segment(IDLE, S, start - S, (0,), decided_at, bpm=est.bpm)
        # the dance's predicted beats from the one nearest this bar line on
        n0 = est._index_near(heard)
        n0 = min((n0 - 1, n0, n0 + 1), key=lambda n: abs(est.beat_time(n) - heard))
        err = heard - est.beat_time(n0)
        beats = []
        for k in range(self.config.beats_per_bar + 1):
            fade = max(0.0, 1.0 - k / CORRECTION_BEATS)
            target = est.beat_time(n0 + k) + err * fade
            beats.append(int(round((target - latency) * self.sr)))
        beats[0] = S
        T = (beats[-1] - beats[0]) / self.sr / self.config.beats_per_bar
        offsets = tuple(b - S for b in beats[:-1])
        return self._segment(MUSIC, S, beats[-1] - S, offsets, decided_at, bpm=60.0 / T)

    def _freerun_bar(self, S: int, bpm: float, decided_at: float) -> SegmentPlan:
        clock = self.freerun
        if clock is None or float(clock.bpm) != round(bpm * 1000) / 1000:
            clock = self.freerun = BarClock.start(S, bpm, self.sr, self.config.beats_per_bar)
            self._freerun_beat = 0
        n0 = clock.beat_at_or_after(S)
        if clock.beat_sample(n0) != S:          # keep the clock on our own bar line
            clock = self.freerun = BarClock.start(S, bpm, self.sr, self.config.beats_per_bar)
            n0 = 0
        samples = clock.bar_beats(n0)
        self.in_music = True
        offsets = tuple(s - S for s in samples[:-1])
        return self._segment(MUSIC, S, samples[-1] - S, offsets, decided_at, bpm=float(clock.bpm))

    def _beat_len(self, bpm: float) -> int:
        return int(round(60.0 / bpm * self.sr))

    def _segment(self, kind: str, start: int, n: int, offsets: tuple[int, ...], decided_at: float,
                 bpm: float | None = None) -> SegmentPlan:
        style = self.style.state()
        genre, _source = self.effective_genre()
        if bpm is None:
            bpm = 60.0 * len(offsets) * self.sr / n if kind == MUSIC else self._current_bpm()
        window = int(round(self.config.rhythm_window_s * MOTION_RATE))
        env = self.tracker.envelope(window)
        if len(env) < window:
            env = np.concatenate([np.zeros(window - len(env)), env])
        peak = env.max()
        env_norm = (env / peak).astype(np.float32) if peak > 0 else env.astype(np.float32)
        if self.genre_override is not None:
            probs = tuple(1.0 if g == genre else 0.0 for g in GENRES)
        else:
            probs = tuple(float(p) for p in style.genre_probs)
        return SegmentPlan(
            index=self.index, kind=kind, start_sample=start, n_samples=int(n),
            sample_rate=self.sr, bar=self.bar, beat_offsets=offsets, bpm=float(bpm),
            genre=genre, prompt=self.prompt, energy=float(style.energy),
            sharpness=float(style.sharpness), seed=self.config.seed,
            beats_per_bar=self.config.beats_per_bar, genre_probs=probs,
            motion_envelope=env_norm, motion_peaks=beat_vector(env_norm),
            decided_at=decided_at,
        )

    def _announce(self, t: float) -> list:
        events: list = []
        est = self.tracker.estimate
        bpm = self._current_bpm()
        if (self._announced_bpm is None or abs(bpm - self._announced_bpm) >= ANNOUNCE_BPM_STEP
                or est.locked != self._announced_locked):
            self._announced_bpm, self._announced_locked = bpm, est.locked
            events.append(TempoChanged(t, bpm, est.confidence, est.locked))
        genre, source = self.effective_genre()
        if (genre, source) != self._announced_genre:       # the operator taking over counts too
            self._announced_genre = (genre, source)
            events.append(GenreChanged(t, genre, source))
        return events

    # -- status ----------------------------------------------------------------
    def status(self) -> dict:
        est = self.tracker.estimate
        genre, source = self.effective_genre()
        style = self.style.state()
        return {
            "tempo": {"bpm": round(self._current_bpm(), 3), "dance_bpm": round(est.bpm, 3),
                      "confidence": round(est.confidence, 3), "locked": est.locked,
                      "still": est.still, "tempo_lock": self.tempo_lock},
            "genre": genre, "genre_source": source,
            "genre_probs": {g: round(float(p), 4) for g, p in zip(GENRES, style.genre_probs)},
            "energy": round(float(style.energy), 4), "sharpness": round(float(style.sharpness), 4),
            "prompt": self.prompt, "playing": self.playing, "volume": self.volume,
            "bar": self.bar, "segment": self.index,
            "next": self.last_plan.to_dict() if self.last_plan is not None else None,
            "motion": {"person": self.person, "frames": self.frames_accepted,
                       "other_people_frames": self.frames_ignored,
                       "rejected": self.frames_rejected},
        }
