"""AIST++-style dance/music data for training the encoders (numpy; no torch).

Layout (see docs/training.md)::

    DATA/
      keypoints2d/<sequence>.pkl   official AIST++ 2D keypoints: dict with 'keypoints2d'
                                   (views, frames, 17, 3) at 60 fps, COCO-17, pixels
      keypoints2d/<sequence>.npy   or (frames, 17, 2|3) / (views, frames, 17, 2|3) arrays
      keypoints2d/<sequence>.npz   with a 'keypoints2d' array (same shapes)
      music/<music id>.wav         the sequence's music (.wav/.mp3/.flac/.ogg), starting at frame 0
      ignore_list.txt              optional: sequence names to skip (AIST++ ships one)

Sequence names follow AIST++ (``gBR_sBM_cAll_d04_mBR0_ch01``): ``gBR`` gives
the genre (:data:`d2m.genres.AIST_CODES`), ``mBR0`` the music file. Each
sequence is cut into windows of ``window_s`` seconds every ``hop_s``
seconds; a clip is (rhythm window from the keypoints, genre, audio).
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..genres import AIST_CODES, GENRES
from .rhythm import (DEFAULT_WINDOW_S, MOTION_RATE, keypoint_features, rhythm_window,
                     window_frames)

#: Audio file extensions looked for in ``music/``.
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
#: Keypoints below this confidence count as missing.
MIN_KEYPOINT_CONFIDENCE = 0.1

_GENRE_RE = re.compile(r"(?:^|_)(g[A-Z]{2})(?:_|$)")
_MUSIC_RE = re.compile(r"(?:^|_)(m[A-Z]{2}\d+)(?:_|$)")


class DatasetError(ValueError):
    """The data directory does not follow the documented layout (the message says what is wrong)."""


@dataclass(frozen=True)
class Sequence:
    name: str
    genre: int                 #: index in GENRES
    music: Path
    envelope: np.ndarray       #: (T,) kinetic onset envelope at 60 Hz
    peaks: np.ndarray          #: (T,) binary motion beats

    @property
    def seconds(self) -> float:
        return len(self.envelope) / MOTION_RATE


@dataclass(frozen=True)
class Clip:
    sequence: int              #: index into DanceMusicDataset.sequences
    start_s: float             #: clip start within the sequence (s)
    genre: int


def parse_name(name: str) -> tuple[int, str]:
    """``(genre index, music id)`` of an AIST++ sequence name; DatasetError if not one."""
    g, m = _GENRE_RE.search(name), _MUSIC_RE.search(name)
    if not g or g.group(1) not in AIST_CODES or not m:
        raise DatasetError(
            f"{name!r} is not an AIST++ sequence name (expected e.g. gBR_sBM_cAll_d04_mBR0_ch01 "
            f"with a genre code among {', '.join(AIST_CODES)} and a music id like mBR0)")
    return GENRES.index(AIST_CODES[g.group(1)]), m.group(1)


def load_keypoints(path: Path, view: int = 0) -> np.ndarray:
    """``(T, 17, 2)`` float64 keypoints (NaN where missing or below the confidence floor)."""
    if path.suffix == ".pkl":
        with open(path, "rb") as fh:
            data = pickle.load(fh)  # AIST++ annotations are plain pickled dicts of arrays
        arr = data["keypoints2d"] if isinstance(data, dict) else data
    elif path.suffix == ".npz":
        with np.load(path) as z:
            arr = z["keypoints2d"] if "keypoints2d" in z else z[z.files[0]]
    else:
        arr = np.load(path)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 4:
        if not 0 <= view < arr.shape[0]:
            raise DatasetError(f"{path}: view {view} out of range (it has {arr.shape[0]} views)")
        arr = arr[view]
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
        raise DatasetError(f"{path}: keypoints must be (frames, joints, 2|3), got {arr.shape}")
    xy = arr[..., :2].copy()
    if arr.shape[-1] == 3:
        xy[arr[..., 2] < MIN_KEYPOINT_CONFIDENCE] = np.nan
    xy[~np.isfinite(xy).all(axis=-1)] = np.nan
    return xy


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 audio at ``sample_rate``."""
    import librosa

    audio, _ = librosa.load(str(path), sr=sample_rate, mono=True)
    return audio.astype(np.float32)


class DanceMusicDataset:
    """Clips of an AIST++-style directory: rhythm windows, genres and the matching music."""

    def __init__(self, root, *, sample_rate: int, window_s: float = DEFAULT_WINDOW_S,
                 hop_s: float | None = None, view: int = 0, split=None):
        self.root = Path(root)
        self.sample_rate = int(sample_rate)
        self.window_s = float(window_s)
        self.hop_s = float(hop_s) if hop_s else self.window_s / 2
        self.frames = window_frames(self.window_s)
        kp_dir, music_dir = self.root / "keypoints2d", self.root / "music"
        for d in (kp_dir, music_dir):
            if not d.is_dir():
                raise DatasetError(f"{d} is missing; expected the layout of docs/training.md "
                                   f"(DATA/keypoints2d/*.pkl and DATA/music/*.wav)")
        ignore = set()
        if (self.root / "ignore_list.txt").is_file():
            ignore = set((self.root / "ignore_list.txt").read_text().split())
        wanted = None
        if split is not None:
            wanted = set(Path(split).read_text().split())
        music = {p.stem: p for p in sorted(music_dir.iterdir()) if p.suffix.lower() in AUDIO_EXTENSIONS}
        self.sequences: list[Sequence] = []
        self.skipped: dict[str, str] = {}
        for path in sorted(kp_dir.iterdir()):
            if path.suffix not in (".pkl", ".npy", ".npz"):
                continue
            name = path.stem
            if name in ignore or (wanted is not None and name not in wanted):
                continue
            genre, music_id = parse_name(name)
            if music_id not in music:
                self.skipped[name] = f"no music/{music_id}.* file"
                continue
            env, peaks = keypoint_features(load_keypoints(path, view))
            self.sequences.append(Sequence(name, genre, music[music_id], env, peaks))
        if not self.sequences:
            raise DatasetError(f"no usable sequences under {self.root} (skipped: {self.skipped or 'none'})")
        self._audio: dict[Path, np.ndarray] = {}
        self.clips: list[Clip] = []
        for i, seq in enumerate(self.sequences):
            audio_s = len(self._load(seq.music)) / self.sample_rate
            usable = min(seq.seconds, audio_s)
            start = 0.0
            while start + self.window_s <= usable + 1e-9:
                self.clips.append(Clip(i, round(start, 6), seq.genre))
                start += self.hop_s
        if not self.clips:
            raise DatasetError(f"every sequence under {self.root} is shorter than the {self.window_s} s window")

    def _load(self, path: Path) -> np.ndarray:
        if path not in self._audio:
            self._audio[path] = load_audio(path, self.sample_rate)
        return self._audio[path]

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def audio_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    def window(self, i: int) -> np.ndarray:
        """Rhythm window ``(2, frames)`` of clip ``i`` (the motion over the clip's own span)."""
        clip = self.clips[i]
        seq = self.sequences[clip.sequence]
        lo = int(round(clip.start_s * MOTION_RATE))
        hi = lo + self.frames
        return rhythm_window(seq.envelope[lo:hi], seq.peaks[lo:hi], self.frames)

    def audio(self, i: int) -> np.ndarray:
        """Mono audio of clip ``i`` at the model rate, exactly ``audio_samples`` long."""
        clip = self.clips[i]
        wav = self._load(self.sequences[clip.sequence].music)
        lo = int(round(clip.start_s * self.sample_rate))
        out = np.zeros(self.audio_samples, dtype=np.float32)
        piece = wav[lo:lo + self.audio_samples]
        out[:len(piece)] = piece
        return out

    def genre_counts(self) -> dict[str, int]:
        counts = {g: 0 for g in GENRES}
        for c in self.clips:
            counts[GENRES[c.genre]] += 1
        return counts


def make_synthetic_dataset(root, *, genres=("house", "break"), sequences_per_genre: int = 2,
                           seconds: float = 6.0, audio_rate: int = 44100, seed: int = 0) -> Path:
    """Write a small AIST++-style dataset: periodic dancers and matching click tracks.

    Each genre gets its own tempo and timbre; the dancer's limbs swing at the
    music's beat. For tests and for trying ``d2m train`` without AIST++.
    Alternates .pkl (official format, 9 views) and .npy keypoints.
    """
    import soundfile as sf

    from ..genres import parse_genre

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "keypoints2d").mkdir(parents=True, exist_ok=True)
    (root / "music").mkdir(parents=True, exist_ok=True)
    code_of = {v: k for k, v in AIST_CODES.items()}
    n = 0
    for gi, genre in enumerate(genres):
        key = parse_genre(genre)
        code = code_of[key][1:]
        bpm = 90.0 + 30.0 * gi
        for s in range(sequences_per_genre):
            music_id = f"m{code}{s}"
            name = f"g{code}_sBM_cAll_d0{s + 1}_{music_id}_ch0{s + 1}"
            t = np.arange(int(seconds * MOTION_RATE)) / MOTION_RATE
            phase = (t * bpm / 60.0) % 1.0          # a fast hit on each beat, a slow return
            hit = np.where(phase < 0.1, phase / 0.1, 1.0 - (phase - 0.1) / 0.9)
            base = rng.uniform(300, 700, size=(17, 2))
            swing = hit[:, None, None] * rng.uniform(20, 60, size=(17, 2))
            xy = base[None] + swing + rng.normal(0, 0.5, size=(len(t), 17, 2))
            conf = np.ones((len(t), 17, 1))
            kp = np.concatenate([xy, conf], axis=-1)
            if n % 2 == 0:
                with open(root / "keypoints2d" / f"{name}.pkl", "wb") as fh:
                    pickle.dump({"keypoints2d": np.repeat(kp[None], 9, axis=0).astype(np.float32)}, fh)
            else:
                np.save(root / "keypoints2d" / f"{name}.npy", kp.astype(np.float32))
            ta = np.arange(int(seconds * audio_rate)) / audio_rate
            beat_phase = (ta * bpm / 60.0) % 1.0
            click = np.exp(-beat_phase * 40.0) * np.sin(2 * np.pi * (200 + 400 * gi) * ta)
            audio = 0.5 * click + 0.05 * np.sin(2 * np.pi * (110 * (gi + 1)) * ta)
            sf.write(root / "music" / f"{music_id}.wav", audio.astype(np.float32), audio_rate)
            n += 1
    return root
