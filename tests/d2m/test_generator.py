import numpy as np
import pytest

from d2m.generator import Rendered, SegmentStream, equal_power_crossfade, join_with_tail
from d2m.plan import MUSIC, SegmentPlan


def plan(i, start, n, sr=1000):
    return SegmentPlan(index=i, kind=MUSIC, start_sample=start, n_samples=n, sample_rate=sr, bar=i,
                       beat_offsets=(0, n // 4, n // 2, 3 * n // 4), bpm=120.0, genre="house")


class NoiseGenerator:
    """A cheap real generator: seeded noise per segment, with a crossfade tail."""
    name = "noise"
    sample_rate = 1000

    def initial_state(self):
        return 0

    def render(self, p, state):
        rng = np.random.default_rng(p.index)
        audio = rng.normal(0, 0.1, size=(p.n_samples + 50, 2)).astype(np.float32)
        return Rendered(audio[: p.n_samples], tail=audio[p.n_samples:]), state + 1


def test_equal_power_crossfade_keeps_uncorrelated_loudness():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 2)).astype(np.float32)
    b = rng.normal(size=(20000, 2)).astype(np.float32)
    mid = equal_power_crossfade(a, b)[9000:11000]
    assert np.std(mid) == pytest.approx(1.0, rel=0.05)


def test_stream_crossfades_with_the_previous_tail_and_checks_contiguity():
    stream = SegmentStream(NoiseGenerator())
    first = stream.render(plan(0, 0, 400))
    second = stream.render(plan(1, 400, 400))
    raw_second, _ = NoiseGenerator().render(plan(1, 400, 400), 0)
    tail = NoiseGenerator().render(plan(0, 0, 400), 0)[0].tail
    assert first.shape == (400, 2)
    np.testing.assert_allclose(second, join_with_tail(tail, raw_second.audio))
    assert not np.allclose(second[:50], raw_second.audio[:50])
    np.testing.assert_array_equal(second[50:], raw_second.audio[50:])
    assert stream.state == 2
    with pytest.raises(ValueError, match="contiguous"):
        stream.render(plan(2, 900, 400))


def test_stream_rejects_wrong_sample_rate_and_wrong_length():
    stream = SegmentStream(NoiseGenerator())
    with pytest.raises(ValueError, match="Hz"):
        stream.render(plan(0, 0, 400, sr=48000))
