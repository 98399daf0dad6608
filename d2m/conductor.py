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
from .follow import MIN_FOLLOW_CONFIDENCE, STILL_ENDS_MUSIC_S, BeatKeeper, Observation
from .form import OUTRO_AFTER_S, PHRASE_BARS, SectionInfo, SongForm
from .genre_hold import GenreHold
from .genres import GENRES
from .hits import DEFAULT_HIT_SENSITIVITY, HitDetected, HitTracker, check_sensitivity
from .motion import MOTION_RATE, MotionResampler, RhythmFrontEnd, TempoTracker, beat_vector
from .plan import IDLE, MUSIC, SILENCE, SegmentPlan
from .skeleton import SkeletonFrame, normalise
from .smoothing import PoseSmoother
from .style import StyleTracker

#: Another person takes over the lead after the current one sent nothing for this long (s).
PERSON_TIMEOUT_S = 1.0
#: What the music is doing (status ``tempo.mode``, OSC ``/d2m/tempo/mode``):
FOLLOWING = "following"   # music plays on the dancer's beat, steered by a confident observation
HOLDING = "holding"       # music plays on its own grid: no clear beat at the moment
LOCKED = "locked"         # the operator holds the tempo
IDLE_MODE = "idle"        # no dancer (or a still one): the idle pad, or silence when stopped
MODES = (FOLLOWING, HOLDING, LOCKED, IDLE_MODE)
#: Music that starts before the tracker has a beat grid takes the window's tempo only when its
#: rhythm strength (d2m.motion.rhythm_estimate) is at least this; else ConductorConfig.initial_bpm.
START_RHYTHM_STRENGTH = 0.12
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
    hit_sensitivity: float = DEFAULT_HIT_SENSITIVITY  #: the dancer's hits (d2m.hits): 0 = off .. 1

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if not MIN_BPM <= self.initial_bpm <= MAX_BPM:
            raise ValueError(f"initial_bpm must be within {MIN_BPM:g}-{MAX_BPM:g}")
        if self.plan_lead_s < 0 or self.output_latency_s < 0:
            raise ValueError("plan_lead_s and output_latency_s must be >= 0")
        if self.genre is not None:
            object.__setattr__(self, "genre", Control(genre=self.genre).genre)
        object.__setattr__(self, "hit_sensitivity", check_sensitivity(self.hit_sensitivity))


class Conductor:
    def __init__(self, config: ConductorConfig = ConductorConfig()):
        self.config = config
        self.sr = config.sample_rate
        self.front = RhythmFrontEnd(MOTION_RATE)
        self.tracker = TempoTracker(initial_bpm=config.initial_bpm)
        self.style = StyleTracker()
        self.form = SongForm()            # song form: the section of every music bar
        self.genre_hold = GenreHold()     # the motion genre changes only on phrase lines, on evidence
        self._style_smoother = PoseSmoother()
        self._style_grid = MotionResampler(MOTION_RATE)
        self.hits = HitTracker(config.hit_sensitivity, self.sr)   # the dancer's hits -> accents
        self.person: int | None = None
        self._person_seen = -math.inf
        self.now = 0.0
        # music timeline
        self.next_sample = 0
        self.index = 0
        self.bar = 0
        self.in_music = False
        self.freerun: BarClock | None = None
        self.keeper: BeatKeeper | None = None
        self._keeper_adopted = False      # the keeper took the tracker's first confident tempo
        self.mode = IDLE_MODE
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
        self._announced_mode: str | None = None
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
                self.hits.reset()
            self.person = frame.person
        if frame.person != self.person:
            self.frames_ignored += 1
            return events
        self._person_seen = frame.t
        self.frames_accepted += 1
        for k, onset, moving, bounce in self.front.push_rhythm(frame):
            self.tracker.push(k, onset, moving, bounce)
        for k, pose, _gap in self._style_grid.push(frame.t, normalise(frame)):
            self.style.update(k / MOTION_RATE, self._style_smoother(k / MOTION_RATE, pose))
        events.extend(HitDetected(hit) for hit in self.hits.push(frame))
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
            self.hits.add_plan(plan)
            self.next_sample = plan.end_sample
            self.index += 1
            if plan.kind == MUSIC:
                self.bar += 1
            events.append(SegmentPlanned(plan))
        return events

    # -- decisions -------------------------------------------------------------
    def _current_bpm(self) -> float:
        """The music's tempo (the dance's estimate before the music starts)."""
        if self.tempo_lock and self.locked_bpm:
            return self.locked_bpm
        if self.in_music and self.keeper is not None:
            return self.keeper.bpm
        return self.tracker.estimate.bpm

    def _observation(self, heard: float) -> Observation | None:
        """The dancer's beat grid around ``heard`` as the tracker sees it now (None: no fit)."""
        est = self.tracker.estimate
        if est.still:
            return None
        if est.locked and est.confidence >= MIN_FOLLOW_CONFIDENCE:
            return Observation(est.period_at(heard), est.nearest_beat(heard), est.confidence, est.drift)
        return self.tracker.observation

    def effective_genre(self) -> tuple[str, str]:
        if self.genre_override is not None:
            return self.genre_override, "operator"
        return self.genre_hold.genre or self.style.state().genre, "motion"

    def _plan(self, decided_at: float) -> SegmentPlan:
        est = self.tracker.estimate
        S = self.next_sample
        if not self.playing:
            self.in_music = False
            self.freerun = None
            self.keeper = None
            self.mode = IDLE_MODE
            return self._segment(SILENCE, S, self._beat_len(self._current_bpm()), (0,), decided_at)
        if self.tempo_lock:
            self.mode = LOCKED
            bpm = self.locked_bpm or est.bpm
            self.keeper = BeatKeeper(60.0 / bpm, self.config.beats_per_bar)   # unlocking goes on from here
            self._keeper_adopted = True
            return self._freerun_bar(S, bpm, decided_at)
        self.freerun = None
        latency = self.config.output_latency_s
        heard = S / self.sr + latency
        movement = self.front.movement
        if not self.in_music:
            # music starts once somebody dances, whether or not the beat is clear yet
            if not (movement.sustained() and movement.active(decided_at)):
                self.mode = IDLE_MODE
                return self._segment(IDLE, S, self._beat_len(self.config.initial_bpm), (0,), decided_at)
            obs = self._observation(heard)
            if obs is not None and obs.confidence >= MIN_FOLLOW_CONFIDENCE:
                period = obs.period
            else:
                # no beat grid yet: the window's tempo if its rhythm is at least faintly there,
                # else the operator's starting tempo (a weak autocorrelation drifts to the range's ends)
                obs = None
                coarse = self.tracker.coarse_bpm if self.tracker.strength >= START_RHYTHM_STRENGTH else None
                period = 60.0 / (coarse or self.config.initial_bpm)
            self.keeper = BeatKeeper(period, self.config.beats_per_bar)
            self._keeper_adopted = est.locked
            self.in_music = True
            if obs is not None:
                # bar 1 starts on the dancer's next beat
                first = obs.nearest_beat(heard + self.config.min_idle_gap_s)
                if first < heard + self.config.min_idle_gap_s:
                    first += obs.period
                start = int(round((first - latency) * self.sr))
                if start > S:
                    self.mode = FOLLOWING
                    return self._segment(IDLE, S, start - S, (0,), decided_at, bpm=60.0 / period)
        elif movement.still_for(decided_at) >= STILL_ENDS_MUSIC_S:
            # the dance has ended: back to the idle pad until somebody dances again
            self.in_music = False
            self.keeper = None
            self.mode = IDLE_MODE
            return self._segment(IDLE, S, self._beat_len(self.config.initial_bpm), (0,), decided_at)
        keeper = self.keeper
        obs = self._observation(heard)
        if est.locked and not self._keeper_adopted:
            # the first confident tempo is taken outright (the start may have been a guess)
            keeper.adopt(obs.period if est.confidence >= MIN_FOLLOW_CONFIDENCE else est.period)
            self._keeper_adopted = True
        peaks, heights = self.tracker.recent_peaks()
        times = keeper.bar(heard, obs, peaks, heights)
        self.mode = FOLLOWING if keeper.following else HOLDING
        beats = [int(round((t - latency) * self.sr)) for t in times]
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
        form = self._form_bar(kind, style.energy, decided_at, n)
        plan = SegmentPlan(
            index=self.index, kind=kind, start_sample=start, n_samples=int(n),
            sample_rate=self.sr, bar=self.bar, beat_offsets=offsets, bpm=float(bpm),
            genre=genre, prompt=self.prompt, energy=float(style.energy),
            sharpness=float(style.sharpness), seed=self.config.seed,
            beats_per_bar=self.config.beats_per_bar, genre_probs=probs,
            motion_envelope=env_norm, motion_peaks=beat_vector(env_norm),
            decided_at=decided_at, **self._form_fields(form),
        )
        boundary = form is None or form.bars_to_next_section == 1 or form.phrase_bar == PHRASE_BARS - 1
        self.genre_hold.update(decided_at, style.genre_probs, in_music=kind == MUSIC, boundary=boundary)
        return plan

    def _form_bar(self, kind: str, energy: float, decided_at: float, n: int) -> SectionInfo | None:
        """The song form's section for a music bar (the form starts over after idle or silence)."""
        if kind != MUSIC:
            return None
        if self.last_plan is None or self.last_plan.kind != MUSIC:
            self.form.reset()
        return self.form.bar(float(energy), still=self.tracker.estimate.still, ending=self._form_ending(decided_at, n),
                             can_end=not self.tempo_lock)      # under a tempo lock the operator runs the show

    def _form_ending(self, decided_at: float, n: int) -> int | None:
        """Bars of music left (this one included) once the dancer has stopped for OUTRO_AFTER_S, else None."""
        if self.tempo_lock or n <= 0:
            return None
        still_s = self.front.movement.still_for(decided_at)
        if not math.isfinite(still_s) or still_s < OUTRO_AFTER_S:
            return None
        return max(1, math.ceil((STILL_ENDS_MUSIC_S - still_s) / (n / self.sr)))

    @staticmethod
    def _form_fields(form: SectionInfo | None) -> dict:
        if form is None:
            return {}
        return {"section": form.section, "section_bar": form.section_bar, "section_bars": form.section_bars,
                "bars_to_next_section": form.bars_to_next_section, "next_section": form.next_section,
                "section_index": form.section_index}

    def _announce(self, t: float) -> list:
        events: list = []
        est = self.tracker.estimate
        bpm = self._current_bpm()
        if (self._announced_bpm is None or abs(bpm - self._announced_bpm) >= ANNOUNCE_BPM_STEP
                or est.locked != self._announced_locked or self.mode != self._announced_mode):
            self._announced_bpm, self._announced_locked = bpm, est.locked
            self._announced_mode = self.mode
            events.append(TempoChanged(t, bpm, est.confidence, est.locked, self.mode))
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
                      "still": est.still, "tempo_lock": self.tempo_lock, "mode": self.mode,
                      "moving": self.front.movement.active(self.now),
                      "movement": round(self.front.movement.extent, 4)},
            "genre": genre, "genre_source": source,
            "genre_probs": {g: round(float(p), 4) for g, p in zip(GENRES, style.genre_probs)},
            "energy": round(float(style.energy), 4), "sharpness": round(float(style.sharpness), 4),
            "prompt": self.prompt, "playing": self.playing, "volume": self.volume,
            "bar": self.bar, "segment": self.index,
            "next": self.last_plan.to_dict() if self.last_plan is not None else None,
            "motion": {"person": self.person, "frames": self.frames_accepted,
                       "other_people_frames": self.frames_ignored,
                       "rejected": self.frames_rejected},
            "hits": self.hits.status(),
        }
