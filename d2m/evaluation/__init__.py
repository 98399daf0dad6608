"""How well the music follows the dance: metrics, detection and reports.

* :mod:`.metrics` — pure numpy metrics on times (BCS/BHS, BAS, offsets,
  tempo agreement, lock-in);
* :mod:`.audio` — onsets, beats and tempo of audio (librosa);
* :mod:`.motion_input` — JSONL motion lines to frames, motion beats and dance tempo;
* :mod:`.report` — all metrics of one run (:func:`score`, :class:`EvalReport`);
* :mod:`.plot` — the picture of one run (matplotlib, Agg).

Definitions and defaults: ``docs/evaluation.md``. Command: ``d2m eval``.
"""

from .metrics import (BAS_SIGMA_S, LOCK_TOLERANCE_S, LORIS_BIN_S, OCTAVE_RATIOS, ONSET_TOLERANCE_S,
                      TEMPO_TOLERANCE, BeatHitScores, LockIn, OffsetStats, TempoAgreement,
                      beat_alignment_score, beat_coverage_hit, beat_coverage_hit_tolerance, lock_in,
                      match_events, nearest_offsets, offset_stats, onset_bins, tempo_agreement)
from .report import Alignment, EvalReport, score

__all__ = [
    "BAS_SIGMA_S", "LOCK_TOLERANCE_S", "LORIS_BIN_S", "OCTAVE_RATIOS", "ONSET_TOLERANCE_S",
    "TEMPO_TOLERANCE", "BeatHitScores", "LockIn", "OffsetStats", "TempoAgreement",
    "beat_alignment_score", "beat_coverage_hit", "beat_coverage_hit_tolerance", "lock_in",
    "match_events", "nearest_offsets", "offset_stats", "onset_bins", "tempo_agreement",
    "Alignment", "EvalReport", "score",
]
