import numpy as np

from d2m.conductor import ConductorConfig
from d2m.control import Control
from d2m.dancer import SyntheticDancer
from d2m.render import render_motion, volume_curve
from d2m.synth import SynthGenerator


def test_render_gives_music_of_the_motion_length_plus_tail_deterministically():
    frames = SyntheticDancer(tempo=120.0, seed=41, noise=0.003).frames(8.0)
    a = render_motion(frames, SynthGenerator(), ConductorConfig(genre="house"))
    b = render_motion(frames, SynthGenerator(), ConductorConfig(genre="house"))
    assert a.audio.shape == (int(round((frames[-1].t + 2.0) * 48000)), 2)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert np.abs(a.audio).max() <= 1.0
    assert any(p.kind == "music" for p in a.plans)


def test_render_applies_recorded_controls():
    frames = SyntheticDancer(tempo=120.0, seed=42, noise=0.003).frames(10.0)
    items = sorted(frames + [(6.0, Control(volume=0.0))], key=lambda x: x.t if hasattr(x, "t") else x[0])
    res = render_motion(items, SynthGenerator(), ConductorConfig(genre="house"), duration=10.0)
    loud = np.abs(res.audio[int(4.5 * 48000):int(5.9 * 48000)]).max()
    quiet = np.abs(res.audio[int(6.1 * 48000):]).max()
    assert loud > 0.05 and quiet == 0.0


def test_volume_curve_ramps_between_levels():
    g = volume_curve([(0.5, 0.0), (1.0, 1.0)], 2000, 1000, ramp_s=0.1)
    assert g[0] == 1.0 and g[700] == 0.0 and g[-1] == 1.0
    assert 0 < g[550] < 1
