"""Energy, sharpness, genre and segment kind audibly change the music."""

from __future__ import annotations

import itertools

import librosa
import numpy as np
import pytest

from d2m.genres import GENRES

SR = 48000
HOP = 512


def onset_count(audio: np.ndarray) -> int:
    return len(librosa.onset.onset_detect(y=audio.mean(axis=1), sr=SR, hop_length=HOP))


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio ** 2)))


@pytest.mark.parametrize("genre", ["house", "break", "krump", "ballet_jazz", "pop"])
def test_more_energy_means_more_onsets_and_more_level(builder, render, genre):
    calm, _ = render(builder(genre, energy=0.2).bars(4, 120.0).plans)
    wild, _ = render(builder(genre, energy=0.95).bars(4, 120.0).plans)
    assert onset_count(wild) > 1.2 * onset_count(calm)
    assert rms(wild) > 1.2 * rms(calm)


@pytest.mark.parametrize("genre", ["lock", "street_jazz", "la_hiphop"])
def test_sharpness_gives_shorter_harder_notes(builder, render, genre):
    legato, _ = render(builder(genre, energy=0.6, sharpness=0.0).bars(4, 110.0).plans)
    staccato, _ = render(builder(genre, energy=0.6, sharpness=1.0).bars(4, 110.0).plans)
    crest = lambda a: np.abs(a).max() / rms(a)  # noqa: E731 - short notes: more peak per energy
    assert rms(staccato) < 0.9 * rms(legato)
    assert crest(staccato) > crest(legato)


def _onset_profile(audio: np.ndarray, plans) -> np.ndarray:
    """Mean onset strength at each 16th step of the bar (the groove's fingerprint)."""
    env = librosa.onset.onset_strength(y=audio.mean(axis=1), sr=SR, hop_length=HOP)
    times = librosa.times_like(env, sr=SR, hop_length=HOP)
    prof = np.zeros(16)
    for p in plans[1:]:
        for s in range(16):
            i = np.searchsorted(times, p.start_time + s * p.duration / 16)
            prof[s] += env[max(0, i - 1): i + 3].max()
    return prof / prof.sum()


def test_genres_sound_different(builder, render):
    profiles, centroids = {}, {}
    for genre in GENRES:
        plans = builder(genre, energy=0.6).bars(4, 120.0).plans
        audio, _ = render(plans)
        profiles[genre] = _onset_profile(audio, plans)
        centroids[genre] = float(librosa.feature.spectral_centroid(y=audio.mean(axis=1), sr=SR).mean())
    for a, b in itertools.combinations(GENRES, 2):
        groove = np.abs(profiles[a] - profiles[b]).sum()
        timbre = max(centroids[a], centroids[b]) / min(centroids[a], centroids[b])
        assert groove > 0.1 or timbre > 1.2, f"{a} and {b} sound alike ({groove:.3f}, {timbre:.2f})"


@pytest.mark.parametrize("genre", GENRES)
def test_idle_is_a_soft_pad_without_beats(builder, render, genre):
    idle, _ = render(builder(genre).idle(16, bpm=120.0).plans)
    music, _ = render(builder(genre, energy=0.3).bars(4, 120.0).plans)
    steady = idle[SR:]
    assert 0.01 < rms(steady) < 0.5 * rms(music)

    def flux(a):  # onset strength on a common dB scale, so the quiet pad is not normalised up
        mel = librosa.feature.melspectrogram(y=a.mean(axis=1), sr=SR, hop_length=HOP)
        return librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=1.0, amin=1e-8, top_db=None), sr=SR)

    idle_flux, music_flux = flux(steady), flux(music)
    assert np.percentile(idle_flux, 95) < 0.4 * np.percentile(music_flux, 95)
    assert idle_flux.max() < 0.2 * music_flux.max()  # not one hit anywhere


def test_lead_phrases_add_a_voice(builder, render):
    """At medium energy the lead plays in every other 8-bar phrase: bars 8-15, not 0-7."""
    plans = builder("la_hiphop", energy=0.6).bars(16, 100.0).plans
    audio, chunks = render(plans)
    whistle_band = lambda a: np.abs(np.fft.rfft(a.mean(axis=1)))  # noqa: E731
    freqs = np.fft.rfftfreq(len(chunks[4]), 1.0 / SR)
    band = (freqs > 550) & (freqs < 1800)  # the whistle's register
    quiet = np.mean([whistle_band(c)[band].mean() for c in chunks[4:8]])
    lead = np.mean([whistle_band(c)[band].mean() for c in chunks[12:16]])
    assert lead > 1.3 * quiet
