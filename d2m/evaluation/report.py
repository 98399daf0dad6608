"""One evaluation of a music track against a dance: all metrics together.

:func:`score` is pure: it takes beat times and tempi (already detected) and
returns an :class:`EvalReport`, which prints as a table or a JSON-friendly dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .metrics import (BAS_SIGMA_S, LOCK_TOLERANCE_S, BeatHitScores, LockIn, OffsetStats,
                      TempoAgreement, beat_alignment_score, lock_in, nearest_offsets, offset_stats,
                      tempo_agreement)


@dataclass(frozen=True)
class Alignment:
    """Beat alignment seen from one side: each of ``beats`` against the nearest beat of the other side.

    Offsets are always ``music - motion`` (s): positive means the music is late.
    """

    beats: np.ndarray          #: the beats scored (session s)
    offsets_s: np.ndarray      #: signed offset of each to the nearest beat of the other side
    bas: float                 #: Beat Alignment Score over ``beats``
    stats: OffsetStats
    lock: LockIn

    def to_dict(self) -> dict:
        return {"n": int(self.beats.size), "beat_alignment_score": _clean(self.bas),
                "offsets": _clean_dict(self.stats.to_dict()), "lock_in": _clean_dict(self.lock.to_dict())}


def align(beats, others, *, sign: float, sigma_s: float, lock_tol_s: float) -> Alignment:
    """:class:`Alignment` of ``beats`` against ``others``; ``sign`` +1 if ``beats`` are motion beats, -1 if music."""
    b = np.sort(np.asarray(beats, dtype=np.float64).reshape(-1))
    offs = sign * nearest_offsets(b, others)
    return Alignment(beats=b, offsets_s=offs, bas=beat_alignment_score(b, others, sigma_s=sigma_s),
                     stats=offset_stats(offs), lock=lock_in(b, offs, tol_s=lock_tol_s))


@dataclass
class EvalReport:
    """Every metric of one run. Times are on the motion (session) timeline.

    ``motion_side`` is the literature's view (each motion beat against the
    nearest music beat: BAS as in AIST++/FACT). ``music_side`` asks the
    converse, whether each music beat lands on a dance movement: a dance has
    more movement peaks than beats (off-beat accents), which the music need
    not follow, so its offsets and lock-in are the ones that show whether the
    music follows the dancer's beat.
    """

    music_bpm: float
    dance_bpm: float
    music_start_s: float               #: session time of the music's first sample
    music_duration_s: float | None
    music_beats: np.ndarray            #: all music beat times (session s)
    motion_beats: np.ndarray           #: all motion beat times (session s)
    motion_side: Alignment             #: motion beats inside the music's span vs music beats
    music_side: Alignment              #: music beats inside the motion's span vs motion beats
    tempo: TempoAgreement
    sigma_s: float
    loris: BeatHitScores | None = None      #: BCS/BHS against the reference, 1 s bins
    tolerant: BeatHitScores | None = None   #: BCS/BHS against the reference, +-tol onsets
    onset_tol_s: float | None = None
    bin_s: float | None = None
    inputs: dict = field(default_factory=dict)   #: what was read (frames, skipped lines, ...)

    def to_dict(self) -> dict:
        """JSON-friendly dict (NaN becomes None). Top-level BAS/offsets/lock-in are the motion side."""
        m = self.motion_side
        d = {
            "music_bpm": _clean(self.music_bpm),
            "dance_bpm": _clean(self.dance_bpm),
            "music_start_s": self.music_start_s,
            "music_duration_s": _clean(self.music_duration_s),
            "n_music_beats": int(self.music_beats.size),
            "n_motion_beats": int(self.motion_beats.size),
            "n_scored_motion_beats": int(m.beats.size),
            "beat_alignment_score": _clean(m.bas),
            "bas_sigma_ms": self.sigma_s * 1000.0,
            "offsets": _clean_dict(m.stats.to_dict()),
            "lock_in": _clean_dict(m.lock.to_dict()),
            "music_side": self.music_side.to_dict(),
            "tempo": _clean_dict(self.tempo.to_dict()),
            "inputs": self.inputs,
        }
        if self.loris is not None:
            d["reference"] = {
                "loris": {**_clean_dict(self.loris.to_dict()), "bin_s": self.bin_s},
                "tolerance": {**_clean_dict(self.tolerant.to_dict()),
                              "tol_ms": (self.onset_tol_s or 0.0) * 1000.0},
            }
        return d

    def table(self) -> str:
        """A readable multi-line summary: one column per side, then tempo and BCS/BHS."""
        m, u = self.motion_side, self.music_side
        lines = [("", "per motion beat", "per music beat"),
                 ("beats scored", f"{m.beats.size} of {self.motion_beats.size}",
                  f"{u.beats.size} of {self.music_beats.size}"),
                 (f"beat alignment score (sigma {self.sigma_s * 1000:.0f} ms)", _f(m.bas, 3), _f(u.bas, 3))]
        lines.append(("offset |median| / |p90| (ms)",
                      f"{_f(m.stats.median_abs_ms, 1)} / {_f(m.stats.p90_abs_ms, 1)}",
                      f"{_f(u.stats.median_abs_ms, 1)} / {_f(u.stats.p90_abs_ms, 1)}"))
        lines.append(("offset signed median / mean (ms, + = music late)",
                      f"{_f(m.stats.median_ms, 1)} / {_f(m.stats.mean_ms, 1)}",
                      f"{_f(u.stats.median_ms, 1)} / {_f(u.stats.mean_ms, 1)}"))
        lines.append((f"lock-in (+-{m.lock.tolerance_ms:.0f} ms): beats, s", _lock(m.lock), _lock(u.lock)))
        w0 = max(len(a) for a, _, _ in lines)
        w1 = max(len(b) for _, b, _ in lines)
        out = [f"{a.ljust(w0)}  {b.ljust(w1)}  {c}" for a, b, c in lines]
        t = self.tempo
        verdict = "match" if t.match else (f"octave error x{t.octave} "
                                           f"(residual {_pct(t.octave_rel_error)})" if t.octave else "mismatch")
        rows = [("tempo music / dance", f"{_f(t.music_bpm, 1)} / {_f(t.dance_bpm, 1)} BPM"),
                ("tempo relative error", f"{_pct(t.rel_error)}  {verdict}")]
        if self.loris is not None:
            L, T = self.loris, self.tolerant
            rows.append((f"BCS / BHS / F1 ({self.bin_s:g} s bins)",
                         f"{_f(L.bcs, 3)} / {_f(L.bhs, 3)} / {_f(L.f1, 3)}"
                         f"  ({L.hits} hits, {L.generated} gen, {L.reference} ref bins)"))
            rows.append((f"BCS / BHS / F1 (+-{(self.onset_tol_s or 0) * 1000:.0f} ms onsets)",
                         f"{_f(T.bcs, 3)} / {_f(T.bhs, 3)} / {_f(T.f1, 3)}"
                         f"  ({T.hits} hits, {T.generated} gen, {T.reference} ref onsets)"))
        out += [f"{k.ljust(w0)}  {v}" for k, v in rows]
        return "\n".join(out)


def score(music_beats, music_bpm: float, motion_beats, dance_bpm: float, *,
          music_start_s: float = 0.0, music_duration_s: float | None = None,
          motion_span: tuple[float, float] | None = None,
          sigma_s: float = BAS_SIGMA_S, lock_tol_s: float = LOCK_TOLERANCE_S) -> EvalReport:
    """Score music beats (s from the music's first sample) against motion beats (session s).

    The music is placed at ``music_start_s`` on the session timeline. Motion
    beats are scored inside ``[music_start_s, music_start_s + music_duration_s]``
    (all of them without a duration); music beats inside ``motion_span``
    (session s; default: from the first to the last motion beat).
    """
    mb = np.sort(np.asarray(music_beats, dtype=np.float64).reshape(-1)) + music_start_s
    mb = mb[np.isfinite(mb)]
    mo = np.sort(np.asarray(motion_beats, dtype=np.float64).reshape(-1))
    mo = mo[np.isfinite(mo)]
    keep = mo >= music_start_s
    if music_duration_s is not None:
        keep &= mo <= music_start_s + music_duration_s
    if motion_span is None:
        motion_span = (mo[0], mo[-1]) if mo.size else (0.0, -1.0)
    in_motion = (mb >= motion_span[0]) & (mb <= motion_span[1])
    kw = dict(sigma_s=sigma_s, lock_tol_s=lock_tol_s)
    return EvalReport(
        music_bpm=float(music_bpm), dance_bpm=float(dance_bpm), music_start_s=float(music_start_s),
        music_duration_s=music_duration_s, music_beats=mb, motion_beats=mo,
        motion_side=align(mo[keep], mb, sign=1.0, **kw),
        music_side=align(mb[in_motion], mo, sign=-1.0, **kw),
        tempo=tempo_agreement(music_bpm, dance_bpm), sigma_s=sigma_s,
    )


def _lock(lk: LockIn) -> str:
    if not lk.locked:
        return "never"
    return f"{lk.beat}, {lk.after_first_beat_s:.2f} (t={lk.time_s:.2f})"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _clean_dict(d: dict) -> dict:
    return {k: _clean(v) for k, v in d.items()}


def _f(v: float | None, digits: int) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _pct(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{100 * v:.1f} %"
