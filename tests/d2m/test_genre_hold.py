"""A genre that holds: the motion estimate changes the music on evidence, on phrase lines only."""

from __future__ import annotations

import numpy as np

from d2m.genre_hold import GENRE_HOLD_MIN_DWELL_S, GENRE_HOLD_PERSIST_S, GenreHold
from d2m.genres import GENRES


def _probs(genre: str, p: float) -> np.ndarray:
    out = np.full(len(GENRES), (1.0 - p) / (len(GENRES) - 1))
    out[GENRES.index(genre)] = p
    return out


def test_before_music_it_follows_a_sure_estimate_and_then_holds_it():
    h = GenreHold()
    h.update(0.0, _probs("house", 0.2), in_music=False, boundary=True)
    assert h.update(1.0, _probs("krump", 0.6), in_music=False, boundary=True) == "krump"
    # music plays: a flicker to another genre changes nothing
    for t in np.arange(2.0, 10.0, 0.5):
        assert h.update(t, _probs("pop", 0.7), in_music=True, boundary=True) == "krump"
    assert h.update(10.5, _probs("krump", 0.6), in_music=True, boundary=True) == "krump"


def test_persistent_evidence_changes_the_genre_only_on_a_boundary():
    h = GenreHold()
    h.update(0.0, _probs("house", 0.6), in_music=False, boundary=True)
    t = 1.0
    while t < 1.0 + GENRE_HOLD_PERSIST_S + 2.0:
        assert h.update(t, _probs("break", 0.6), in_music=True, boundary=False) == "house"   # mid-phrase
        t += 0.5
    assert h.update(t, _probs("break", 0.6), in_music=True, boundary=True) == "break"
    assert h.changes == 1


def test_unsure_or_close_estimates_keep_what_plays_and_changes_are_at_most_one_a_minute():
    h = GenreHold()
    h.update(0.0, _probs("lock", 0.5), in_music=False, boundary=True)
    uniformish = _probs("pop", 0.15)     # top genre, but hardly sure
    for t in np.arange(1.0, 60.0, 0.5):
        assert h.update(t, uniformish, in_music=True, boundary=True) == "lock"
    # a steady, sure alternative: one change, then none for the dwell time even if the estimate flips
    seen = []
    for t in np.arange(60.0, 60.0 + 2 * GENRE_HOLD_MIN_DWELL_S, 0.5):
        genre = "pop" if t < 100.0 else "waack"
        seen.append((t, h.update(t, _probs(genre, 0.7), in_music=True, boundary=True)))
    switches = [(t, g) for (t, g), (_, g0) in zip(seen[1:], seen) if g != g0]
    assert [g for _, g in switches] == ["pop", "waack"]
    assert switches[0][0] >= 60.0 + GENRE_HOLD_PERSIST_S
    assert switches[1][0] - switches[0][0] >= GENRE_HOLD_MIN_DWELL_S


def test_bad_probabilities_are_ignored():
    h = GenreHold()
    h.update(0.0, _probs("house", 0.6), in_music=False, boundary=True)
    assert h.update(1.0, [float("nan")] * len(GENRES), in_music=True, boundary=True) == "house"
    assert h.update(2.0, [0.5, 0.5], in_music=True, boundary=True) == "house"
