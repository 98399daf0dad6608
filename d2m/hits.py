"""The dancer's hits: sharp stops in the motion, answered by accents in the music.

A *hit* is a sudden stop: joints that were moving fast come to rest within a
couple of frames (a stomp landing, an arm snapping out to full extension, a
freeze after a fast move). On the 60 Hz motion grid, with positions divided
by the dancer's torso length (so the measure does not depend on the distance
to the camera) and not centred (a whole-body stop counts):

* a joint's *move speed* is its mean speed over :data:`MOVE_FRAMES` grid
  steps (83 ms) before the last :data:`STOP_FRAMES` steps (33 ms), its *rest
  speed* its mean speed over those last steps (both from displacements, so
  pose jitter averages out);
* a joint *stops* when its rest speed is at most :data:`STOP_RATIO` of its
  move speed; its *drop* is move speed minus rest speed (a deceleration over
  a fixed short time, in torso lengths per second);
* the frame's *hit score* is the mean drop of the :data:`HIT_JOINTS` joints
  that dropped most (an arm snap moves two or three joints, a stomp a leg);
* a hit is a score above ``threshold = scale(sensitivity) * max(MIN_HIT_DROP,
  RELATIVE_DROP * reference)``, where ``reference`` is the
  :data:`REFERENCE_PERCENTILE` th percentile of the move speed of the frames'
  two fastest joints over the last :data:`REFERENCE_WINDOW_S` (what "fast" means for this dancer
  right now: a dancer who moves fast all the time must stop harder to be
  heard), and at least :data:`REFRACTORY_S` after the previous hit.

Regular beat hits of a dancing body (direction reversals, bounces) do not
stop: the joints turn and move on, so the rest speed stays high. Sensor
jitter of a still dancer stays under :data:`MIN_HIT_DROP`.

``sensitivity`` (``--hit-sensitivity``, 0..1, default
:data:`DEFAULT_HIT_SENSITIVITY`): 0 switches hits off; higher values accept
weaker stops (the threshold falls monotonically with it).

A hit is detected :data:`STOP_FRAMES` grid frames after the stop (33-50 ms
with the resampling, the frame that shows the joints at rest). Its accent is placed on
the next 16th note of the music's beat grid (the planned bars' beats, each
beat split in four) at least :data:`ACCENT_MARGIN_S` after the detection, so
the live server can still mix it into an output block that has not been
played (:class:`AccentTrack`). Everything here is a pure function of the
stamped frames and plans: the live server and ``d2m render`` place every
accent on the same sample.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .motion import MOTION_RATE, TORSO_TIME_CONSTANT_S, MotionResampler
from .plan import MUSIC, SegmentPlan
from .skeleton import DEFAULT_TORSO, SkeletonFrame, valid_mask

#: Default ``--hit-sensitivity`` (0 = hits off, 1 = the weakest stops count).
DEFAULT_HIT_SENSITIVITY = 0.5
#: Grid steps (1/60 s each) that show the joints at rest after the stop.
STOP_FRAMES = 2
#: Grid steps before those over which the move speed is averaged (83 ms).
MOVE_FRAMES = 5
#: A joint stopped when its rest speed is at most this fraction of its move speed.
STOP_RATIO = 0.35
#: The hit score is the mean drop of this many joints (those that dropped most).
HIT_JOINTS = 2
#: Least drop (torso lengths/s) of a hit at sensitivity 0.5; pose jitter of a
#: still dancer stays well below (measured ~1 torso/s for 0.2 % image noise).
MIN_HIT_DROP = 3.0
#: ... and at least this multiple of the dancer's recent fast-joint speed.
RELATIVE_DROP = 1.0
#: Window (s) and percentile of the recent fast-joint speed the threshold scales with.
REFERENCE_WINDOW_S = 3.0
REFERENCE_PERCENTILE = 75.0
#: Arrival stamps jitter (a network or event-loop stall delays frames, which then arrive in
#: a burst), and speeds computed from them would show a jump and a stop that never happened.
#: So the detector places frames on its own smoothed timeline: each frame one usual interval
#: (the median of the last INTERVAL_HISTORY) after the previous one, pulled CATCH_UP of the
#: way towards its stamp; a stamp further than RESYNC_S from that prediction restarts the
#: timeline there, and no hit is taken from the grid steps around it.
INTERVAL_HISTORY = 31
CATCH_UP = 0.1
RESYNC_S = 0.1
#: ... a frame never moves less than this fraction of the usual interval on that timeline.
MIN_STEP = 0.25
#: Frames stamped closer than BURST_RATIO, or further apart than STALL_RATIO, times the usual
#: interval are counted as irregular (status ``hits.irregular_frames``).
BURST_RATIO = 0.35
STALL_RATIO = 2.5
#: No second hit within this long after one (s).
REFRACTORY_S = 0.25
#: Threshold scale at sensitivity 1 (most sensitive) and towards 0 (least).
SCALE_AT_MAX_SENSITIVITY = 0.5
SCALE_AT_MIN_SENSITIVITY = 2.5
#: An accent starts at least this long after the hit was detected (s): two
#: 10 ms output blocks, so live it is always mixed into a block not yet played.
ACCENT_MARGIN_S = 0.02
#: Subdivisions of a beat accents are quantised to (4 = 16th notes in 4/4).
ACCENT_SUBDIVISION = 4
#: Plans kept for quantising (the ones around the detection time).
RECENT_PLANS = 8


def threshold_scale(sensitivity: float) -> float:
    """Threshold multiplier for a sensitivity in (0, 1]: falls linearly from 2.5 to 0.5."""
    s = float(np.clip(sensitivity, 0.0, 1.0))
    return SCALE_AT_MIN_SENSITIVITY + (SCALE_AT_MAX_SENSITIVITY - SCALE_AT_MIN_SENSITIVITY) * s


def check_sensitivity(value: float) -> float:
    """``value`` as a sensitivity, or ValueError with a clear message."""
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"hit sensitivity must be between 0 (off) and 1, got {value!r}")
    return v


@dataclass(frozen=True)
class Hit:
    """A sharp stop in the motion and, when music plays, the accent that answers it."""

    t: float                      #: session time of the frame that showed the stop (detection)
    move_t: float                 #: session time of the stop itself (grid time of the last moving step)
    strength: float               #: hit score / threshold (>= 1; 2 = twice as hard as needed)
    accent_sample: int | None     #: first sample of the accent (None: no music grid, no accent)
    genre: str = ""               #: genre of the bar the accent lands in
    index: int = 0                #: running number of hits (0, 1, 2, ...)
    sample_rate: int = 48000      #: of ``accent_sample``

    @property
    def accent_time(self) -> float | None:
        """Session time (s) of the accent's first sample (None: no accent)."""
        return None if self.accent_sample is None else self.accent_sample / self.sample_rate

    def to_dict(self, sample_rate: int | None = None) -> dict:
        sample_rate = sample_rate or self.sample_rate
        return {
            "index": self.index,
            "t": round(self.t, 6),
            "move_t": round(self.move_t, 6),
            "strength": round(self.strength, 3),
            "accent": self.accent_sample is not None,
            "accent_sample": self.accent_sample if self.accent_sample is not None else -1,
            "accent_time": round(self.accent_sample / sample_rate, 6) if self.accent_sample is not None else -1.0,
            "genre": self.genre,
        }


@dataclass(frozen=True)
class HitDetected:
    """Conductor event: a hit was detected (and its accent scheduled when music plays)."""
    hit: Hit


class HitDetector:
    """Frames of one person in (stamped), hit candidates out: ``(t, move_t, strength)``.

    Keeps its own 60 Hz grid of torso-scaled joint positions (as the rhythm
    front end does) so it does not depend on the tempo tracker's internals.
    """

    def __init__(self, sensitivity: float = DEFAULT_HIT_SENSITIVITY, rate: float = MOTION_RATE):
        self.sensitivity = check_sensitivity(sensitivity)
        self.rate = rate
        self._scale = threshold_scale(self.sensitivity)
        self._ref_len = max(1, int(round(REFERENCE_WINDOW_S * rate)))
        self.reset()

    @property
    def enabled(self) -> bool:
        return self.sensitivity > 0.0

    def reset(self) -> None:
        self._grid = MotionResampler(self.rate)
        self._torso: float | None = None
        self._torso_t: float | None = None
        self._poses: deque[np.ndarray] = deque(maxlen=MOVE_FRAMES + STOP_FRAMES + 1)
        self._fast: deque[float] = deque(maxlen=self._ref_len)
        self._last_hit = -math.inf
        self.last_score = math.nan        #: the latest frame's hit score (torso lengths/s)
        self._last_frame_t: float | None = None
        self._intervals: deque[float] = deque(maxlen=INTERVAL_HISTORY)
        self._unreliable_until = -math.inf
        self._ts: float | None = None     # the smoothed timeline's latest frame time
        self.irregular_frames = 0         #: frames stamped in a burst or after a stall
        self.resyncs = 0                  #: times the smoothed timeline restarted at a stamp

    def push(self, frame: SkeletonFrame) -> list[tuple[float, float, float]]:
        """Add one frame; returns ``(t, move_t, strength)`` for every hit it shows."""
        if not self.enabled:
            return []
        j = frame.to_coco17().joints
        ok = valid_mask(j)
        tl = _torso(j, ok)
        if tl is not None:
            if self._torso is None:
                self._torso = tl
            else:
                dt = max(0.0, frame.t - (self._torso_t if self._torso_t is not None else frame.t))
                self._torso += (1.0 - math.exp(-dt / TORSO_TIME_CONSTANT_S)) * (tl - self._torso)
            self._torso_t = frame.t
        ts = self._motion_time(frame.t)
        scale = self._torso or DEFAULT_TORSO
        xy = np.where(ok[:, None], j[:, 0:2], np.nan) / scale
        out = []
        for k, pose, after_gap in self._grid.push(ts, xy):
            if after_gap:                  # no motion is measured across a gap
                self._poses.clear()
            hit = self._step(k, pose)
            if hit is not None:
                out.append((frame.t, hit[0], hit[1]))
        return out

    def _motion_time(self, t: float) -> float:
        """The frame's time on the detector's smoothed timeline (see :data:`CATCH_UP`)."""
        last, self._last_frame_t = self._last_frame_t, t
        prev = self._ts
        if last is None or prev is None or len(self._intervals) < 5:
            ts = t
        else:
            ordered = sorted(self._intervals)
            usual = ordered[len(ordered) // 2]
            dt = t - last
            if dt < BURST_RATIO * usual or dt > STALL_RATIO * usual:
                self.irregular_frames += 1
            err = t - (prev + usual)
            if abs(err) > RESYNC_S:
                ts = t
                self.resyncs += 1
                # the grid steps interpolated up to this frame and the window after it
                self._unreliable_until = t + (MOVE_FRAMES + STOP_FRAMES + 1) / self.rate
            else:
                ts = max(prev + usual + CATCH_UP * err, prev + MIN_STEP * usual)
        if last is not None and t > last:
            self._intervals.append(t - last)
        self._ts = ts
        return ts

    def _step(self, k: int, pose: np.ndarray) -> tuple[float, float] | None:
        self._poses.append(pose)
        if len(self._poses) <= MOVE_FRAMES + STOP_FRAMES:
            return None
        hist = self._poses
        # mean speeds (torso lengths/s) from displacements, so pose jitter averages out
        move = np.hypot(*(hist[MOVE_FRAMES] - hist[0]).T) * (self.rate / MOVE_FRAMES)
        rest = np.hypot(*(hist[-1] - hist[MOVE_FRAMES]).T) * (self.rate / STOP_FRAMES)
        fast = _top_mean(move, HIT_JOINTS)
        if math.isfinite(fast):
            self._fast.append(fast)
        if len(self._fast) < self.rate:
            return None
        stopped = rest <= STOP_RATIO * move
        drop = np.where(stopped, move - rest, 0.0)
        score = _top_mean(drop, HIT_JOINTS)
        if not math.isfinite(score):
            return None
        self.last_score = score
        if score < self._scale * MIN_HIT_DROP:            # below the least threshold: no need to look further
            return None
        ref = float(np.percentile(np.fromiter(self._fast, float), REFERENCE_PERCENTILE))
        threshold = self._scale * max(MIN_HIT_DROP, RELATIVE_DROP * ref)
        move_t = (k - STOP_FRAMES) / self.rate
        if k / self.rate <= self._unreliable_until:
            return None
        if score < threshold or move_t - self._last_hit < REFRACTORY_S:
            return None
        self._last_hit = move_t
        return move_t, score / threshold


def _torso(j: np.ndarray, ok: np.ndarray) -> float | None:
    """Shoulder-centre to hip-centre distance (as :func:`d2m.motion.torso_length`, without NaN means)."""
    def centre(a: int, b: int):
        if ok[a] and ok[b]:
            return (j[a, 0:2] + j[b, 0:2]) * 0.5
        if ok[a] or ok[b]:
            return j[a if ok[a] else b, 0:2]
        return None
    sh, hp = centre(5, 6), centre(11, 12)
    if sh is None or hp is None:
        return None
    d = float(math.hypot(sh[0] - hp[0], sh[1] - hp[1]))
    return d if d > 1e-3 else None


def _top_mean(x: np.ndarray, n: int) -> float:
    v = x[np.isfinite(x)]
    if len(v) < n:
        return math.nan
    return float(np.partition(v, len(v) - n)[len(v) - n:].mean())


class AccentGrid:
    """The music's 16th-note grid from the planned segments (pure; fed every plan)."""

    def __init__(self, keep: int = RECENT_PLANS):
        self._plans: deque[SegmentPlan] = deque(maxlen=keep)

    def add(self, plan: SegmentPlan) -> None:
        self._plans.append(plan)

    def next_step(self, sample: int) -> tuple[int, SegmentPlan] | None:
        """First 16th-note position at or after ``sample`` in a music bar, and its bar's plan.

        None when the music playing at ``sample`` is not a bar (idle, silence)
        or the plans do not reach that far.
        """
        for plan in self._plans:
            if plan.end_sample <= sample:
                continue
            if plan.start_sample > sample:
                # a gap after an idle segment: the next bar's first 16th
                if plan.kind != MUSIC or not plan.beat_offsets:
                    return None
                return plan.start_sample, plan
            if plan.kind != MUSIC or not plan.beat_offsets:
                return None
            for pos in sixteenths(plan):
                if pos >= sample:
                    return pos, plan
        return None


def sixteenths(plan: SegmentPlan, subdivision: int = ACCENT_SUBDIVISION) -> list[int]:
    """Sample positions of every 16th note of a music bar (beats split evenly, integer samples)."""
    beats = [plan.start_sample + o for o in plan.beat_offsets] + [plan.end_sample]
    out = []
    for a, b in zip(beats, beats[1:]):
        for i in range(subdivision):
            out.append(a + (b - a) * i // subdivision)
    return out


class HitTracker:
    """Detector + grid: what the conductor holds. ``push(frame)`` -> :class:`Hit` list."""

    def __init__(self, sensitivity: float, sample_rate: int):
        self.detector = HitDetector(sensitivity)
        self.grid = AccentGrid()
        self.sr = sample_rate
        self.count = 0
        self.accents = 0

    def add_plan(self, plan: SegmentPlan) -> None:
        self.grid.add(plan)

    def reset(self) -> None:
        self.detector.reset()

    def push(self, frame: SkeletonFrame) -> list[Hit]:
        out = []
        for t, move_t, strength in self.detector.push(frame):
            earliest = int(math.ceil((t + ACCENT_MARGIN_S) * self.sr))
            step = self.grid.next_step(earliest)
            sample, genre = (step[0], step[1].genre) if step is not None else (None, "")
            out.append(Hit(t=t, move_t=move_t, strength=strength, accent_sample=sample, genre=genre,
                           index=self.count, sample_rate=self.sr))
            self.count += 1
            if sample is not None:
                self.accents += 1
        return out

    def status(self) -> dict:
        return {"sensitivity": self.detector.sensitivity, "hits": self.count, "accents": self.accents,
                "irregular_frames": self.detector.irregular_frames, "resyncs": self.detector.resyncs}


#: Most accents waiting to play or playing at once (older ones are dropped, counted).
MAX_PENDING_ACCENTS = 64


class AccentTrack:
    """Accents scheduled on the sample timeline, mixed into audio blocks as they are played.

    ``add(hit)`` schedules the hit's accent (a one-shot from an
    :class:`~d2m.synth.accents.AccentBank`); ``mix(block, start)`` adds every
    accent overlapping ``block`` (frames x channels, first frame at sample
    ``start``) and soft-clips the samples an accent touches. Called on the
    live server's output blocks and once on the whole of ``d2m render``'s
    audio, it gives the same samples: per sample, the same accents are added
    in the same order with exactly rounded arithmetic. An accent whose first
    sample was already played when it arrived is dropped and counted in
    :attr:`late` (live only; it cannot happen offline).
    Not thread safe: the server wraps it in a lock.
    """

    def __init__(self, bank, max_pending: int = MAX_PENDING_ACCENTS):
        self.bank = bank
        self.max_pending = max_pending
        self._pending: list[tuple[int, int, np.ndarray]] = []   # (start, index, audio), sorted
        self._mixed_to = 0          # first sample not yet handed to mix()
        self.scheduled = 0
        self.played = 0
        self.late = 0
        self.dropped = 0

    def add(self, hit: Hit) -> bool:
        """Schedule ``hit``'s accent; False when it has none or it is already too late."""
        if hit.accent_sample is None:
            return False
        if hit.accent_sample < self._mixed_to:
            self.late += 1
            return False
        audio = self.bank.get(hit.genre, hit.strength)
        self._pending.append((hit.accent_sample, hit.index, audio))
        self._pending.sort(key=lambda p: (p[0], p[1]))
        if len(self._pending) > self.max_pending:
            self._pending.pop(0)
            self.dropped += 1
        self.scheduled += 1
        return True

    def mix(self, block: np.ndarray, start: int) -> np.ndarray:
        """Add the accents overlapping ``block`` (in place) and return it."""
        n = block.shape[0]
        end = start + n
        self._mixed_to = max(self._mixed_to, end)
        if not self._pending:
            return block
        from .synth.accents import soft_clip

        covered = None
        keep = []
        for a_start, index, audio in self._pending:
            a_end = a_start + len(audio)
            if a_start >= end:
                keep.append((a_start, index, audio))
                continue
            if a_end <= start:
                continue
            lo, hi = max(start, a_start), min(end, a_end)
            block[lo - start:hi - start] += audio[lo - a_start:hi - a_start]
            if covered is None:
                covered = np.zeros(n, bool)
            covered[lo - start:hi - start] = True
            if a_start >= start:
                self.played += 1
            if a_end > end:
                keep.append((a_start, index, audio))
        self._pending = keep
        if covered is not None:
            sub = block[covered]
            block[covered] = soft_clip(sub)
        return block

    def status(self) -> dict:
        return {"scheduled": self.scheduled, "played": self.played, "late": self.late,
                "dropped": self.dropped, "pending": len(self._pending)}
