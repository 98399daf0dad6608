"""The output's block mixer (the dancer's accents): called with each block's first frame before
the volume, and a failing mixer is counted without stopping the music."""

from __future__ import annotations

import numpy as np

from d2m.hits import AccentTrack, Hit
from d2m.synth.accents import AccentBank
from d2m_server.audio import AudioRing, GainRamp, LockedAccents, PacedOutput, PlaybackClock

SR = 48000


def test_accents_are_mixed_into_the_played_blocks_before_the_volume():
    ring = AudioRing(SR)
    music = np.full((4800, 2), 0.1, np.float32)
    ring.write(music)
    clock = PlaybackClock(SR)
    accents = LockedAccents(AccentTrack(AccentBank(SR)))
    gain = GainRamp(0.5, sample_rate=SR)
    out = PacedOutput(ring, clock, SR, 480, gain=gain, mixer=accents)
    assert accents.add(Hit(t=0.0, move_t=0.0, strength=2.0, accent_sample=1000, genre="house"))
    played = []
    for _ in range(10):
        block = np.empty((480, 2), np.float32)
        start = out._play_into(block)
        played.append((start, block))
    assert [s for s, _ in played] == list(range(0, 4800, 480))
    audio = np.concatenate([b for _, b in played])
    assert np.allclose(audio[:1000], 0.05), "before the accent: the music at half volume"
    expected = music.copy()
    track = AccentTrack(AccentBank(SR))
    track.add(Hit(t=0.0, move_t=0.0, strength=2.0, accent_sample=1000, genre="house"))
    track.mix(expected, 0)
    assert np.allclose(audio, expected * 0.5, atol=1e-7), "accent mixed before the volume, on its sample"
    assert accents.status()["played"] == 1


def test_a_failing_mixer_is_counted_and_the_music_plays_on():
    ring = AudioRing(SR)
    ring.write(np.full((960, 2), 0.2, np.float32))

    def broken(block, start):
        raise RuntimeError("broken on purpose")

    out = PacedOutput(ring, PlaybackClock(SR), SR, 480, mixer=broken)
    for _ in range(2):
        block = np.empty((480, 2), np.float32)
        out._play_into(block)
        assert np.allclose(block, 0.2)
    assert out.mixer_errors == 2 and out.status()["mixer_errors"] == 2
