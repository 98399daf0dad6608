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


@dataclass
class EvalReport:
    """Every metric of one run. Times are on the motion (session) timeline."""

    music_bpm: float
    dance_bpm: float
    music_start_s: float               #: session time of the music's first sample
    music_duration_s: float | None
    music_beats: np.ndarray            #: music beat times (session s)
    motion_beats: np.ndarray           #: all motion beat times (session s)
    scored_beats: np.ndarray           #: motion beats inside the music's span, the ones scored
    offsets_s: np.ndarray              #: signed offsets (music - motion) of scored beats
    bas: float
    offsets: OffsetStats
    tempo: TempoAgreement
    lock: LockIn
    sigma_s: float
    loris: BeatHitScores | None = None      #: BCS/BHS against the reference, 1 s bins
    tolerant: BeatHitScores | None = None   #: BCS/BHS against the reference, +-tol onsets
    onset_tol_s: float | None = None
    bin_s: float | None = None
    inputs: dict = field(default_factory=dict)   #: what was read (frames, skipped lines, ...)

    def to_dict(self) -> dict:
        """JSON-friendly dict (NaN becomes None)."""
        d = {
            "music_bpm": _clean(self.music_bpm),
            "dance_bpm": _clean(self.dance_bpm),
            "music_start_s": self.music_start_s,
            "music_duration_s": _clean(self.music_duration_s),
            "n_music_beats": int(self.music_beats.size),
            "n_motion_beats": int(self.motion_beats.size),
            "n_scored_motion_beats": int(self.scored_beats.size),
            "beat_alignment_score": _clean(self.bas),
            "bas_sigma_ms": self.sigma_s * 1000.0,
            "offsets": _clean_dict(self.offsets.to_dict()),
            "tempo": _clean_dict(self.tempo.to_dict()),
            "lock_in": _clean_dict(self.lock.to_dict()),
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
        """A readable multi-line summary."""
        rows: list[tuple[str, str]] = []
        rows.append(("motion beats (scored/all)", f"{self.scored_beats.size}/{self.motion_beats.size}"))
        rows.append(("music beats", f"{self.music_beats.size}"))
        rows.append((f"beat alignment score (sigma {self.sigma_s * 1000:.0f} ms)", _f(self.bas, 3)))
        o = self.offsets
        rows.append(("offset |median| / |p90|", f"{_f(o.median_abs_ms, 1)} / {_f(o.p90_abs_ms, 1)} ms"))
        rows.append(("offset signed median / mean", f"{_f(o.median_ms, 1)} / {_f(o.mean_ms, 1)} ms"
                     "  (+ = music late)"))
        t = self.tempo
        rows.append(("tempo music / dance", f"{_f(t.music_bpm, 1)} / {_f(t.dance_bpm, 1)} BPM"))
        verdict = "match" if t.match else (f"octave error x{t.octave} "
                                           f"(residual {_pct(t.octave_rel_error)})" if t.octave else "mismatch")
        rows.append(("tempo relative error", f"{_pct(t.rel_error)}  {verdict}"))
        lk = self.lock
        if lk.locked:
            rows.append((f"lock-in (+-{lk.tolerance_ms:.0f} ms)",
                         f"after {lk.beat} beats, {lk.after_first_beat_s:.2f} s (at t={lk.time_s:.2f} s)"))
        else:
            rows.append((f"lock-in (+-{lk.tolerance_ms:.0f} ms)", "never"))
        if self.loris is not None:
            L, T = self.loris, self.tolerant
            rows.append((f"BCS / BHS / F1 ({self.bin_s:g} s bins)",
                         f"{_f(L.bcs, 3)} / {_f(L.bhs, 3)} / {_f(L.f1, 3)}"
                         f"  ({L.hits} hits, {L.generated} gen, {L.reference} ref bins)"))
            rows.append((f"BCS / BHS / F1 (+-{(self.onset_tol_s or 0) * 1000:.0f} ms onsets)",
                         f"{_f(T.bcs, 3)} / {_f(T.bhs, 3)} / {_f(T.f1, 3)}"
                         f"  ({T.hits} hits, {T.generated} gen, {T.reference} ref onsets)"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def score(music_beats, music_bpm: float, motion_beats, dance_bpm: float, *,
          music_start_s: float = 0.0, music_duration_s: float | None = None,
          sigma_s: float = BAS_SIGMA_S, lock_tol_s: float = LOCK_TOLERANCE_S) -> EvalReport:
    """Score music beats (s from the music's first sample) against motion beats (session s).

    The music is placed at ``music_start_s`` on the session timeline. Only
    motion beats inside ``[music_start_s, music_start_s + music_duration_s]``
    are scored (all of them without a duration).
    """
    mb = np.sort(np.asarray(music_beats, dtype=np.float64).reshape(-1)) + music_start_s
    mo = np.sort(np.asarray(motion_beats, dtype=np.float64).reshape(-1))
    mo = mo[np.isfinite(mo)]
    keep = mo >= music_start_s
    if music_duration_s is not None:
        keep &= mo <= music_start_s + music_duration_s
    scored = mo[keep]
    offs = nearest_offsets(scored, mb)
    return EvalReport(
        music_bpm=float(music_bpm), dance_bpm=float(dance_bpm), music_start_s=float(music_start_s),
        music_duration_s=music_duration_s, music_beats=mb, motion_beats=mo, scored_beats=scored,
        offsets_s=offs, bas=beat_alignment_score(scored, mb, sigma_s=sigma_s),
        offsets=offset_stats(offs), tempo=tempo_agreement(music_bpm, dance_bpm),
        lock=lock_in(scored, offs, tol_s=lock_tol_s), sigma_s=sigma_s,
    )


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
