"""The built-in ``synth`` generator: a procedural arranger and a numpy synthesiser.

Used by default when no model weights are present. Drums, bass, chords, a
continuous pad and a lead are rendered on the plan's beat grid, with one
arrangement preset per AIST++ genre (:mod:`d2m.synth.presets`); energy drives
density and intensity, sharpness drives staccato and hard transients.
"""

from .generator import SynthGenerator, SynthState
from .presets import DEFAULT_GENRE, PRESETS, GenrePreset, preset_for

__all__ = ["SynthGenerator", "SynthState", "GenrePreset", "PRESETS", "DEFAULT_GENRE", "preset_for"]
