"""Video files: decoding with stream timestamps, offline pose extraction, muxing music in.

* :class:`VideoReader` decodes a file frame by frame with each frame's stream
  time (``CAP_PROP_POS_MSEC``, falling back to frame index / fps), starting at 0.
* :func:`video_motion` turns a whole dance video into MediaPipe-33 skeleton
  frames for the offline ``d2m render``.
* :func:`mux` writes a copy of the video with a WAV file as its soundtrack
  (ffmpeg: the video stream is copied, the audio encoded as AAC).

Unreadable files raise :class:`VideoError`; a truncated file keeps the frames
decoded so far and logs a warning.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from d2m.skeleton import Layout, SkeletonFrame

from .pose import MODEL_COMPLEXITY, PoseEstimator, require_cv2

log = logging.getLogger("d2m.video")

#: Frame rate assumed when a file does not state a usable one (frames per second).
DEFAULT_VIDEO_FPS = 30.0
#: Highest frame rate believed from a file's header; above it DEFAULT_VIDEO_FPS is used.
MAX_PLAUSIBLE_FPS = 1000.0
#: A file is called truncated when more than this fraction of its stated frames is missing...
TRUNCATION_FRACTION = 0.02
#: ...and at least this many frames (frame counts in headers are estimates for some containers).
TRUNCATION_MIN_FRAMES = 3
#: AAC bit rate used by :func:`mux`.
MUX_AUDIO_BITRATE = "192k"
#: Longest a single ffmpeg / ffprobe run may take (s).
FFMPEG_TIMEOUT_S = 600.0


class VideoError(RuntimeError):
    """A video file cannot be read (missing, not a video, unsupported codec, no frames); the message says what to do."""


class FFmpegMissing(RuntimeError):
    """The ``ffmpeg`` / ``ffprobe`` program is not on PATH; the message says how to install it."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float              #: frames per second (DEFAULT_VIDEO_FPS when the file states none)
    frame_count: int        #: frames stated by the container (0 when unknown; an estimate for some formats)
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        """Duration from the stated frame count and rate (0 when unknown)."""
        return self.frame_count / self.fps if self.frame_count > 0 else 0.0


def _open_capture(path: str | Path):
    cv2 = require_cv2()
    p = Path(path)
    if not p.exists():
        raise VideoError(f"video file {str(p)!r} does not exist: check the path")
    if not p.is_file():
        raise VideoError(f"{str(p)!r} is not a file: give the path of a video file (e.g. dance.mp4)")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise VideoError(
            f"cannot open video {str(p)!r}: it is not a video file, it is damaged (e.g. an "
            f"incomplete download) or its format is not supported by OpenCV's FFmpeg. "
            f"Check it with `ffprobe {p}`, or convert it: `ffmpeg -i {p} -c:v libx264 fixed.mp4`"
        )
    return cv2, cap


class VideoReader:
    """Decode a video file in order, yielding ``(index, t, bgr_image)`` with ``t`` in seconds from 0.

    Opening decodes the first frame, so a file that cannot be decoded at all
    raises :class:`VideoError` here. After iteration, :attr:`decoded` is the
    number of frames read and :attr:`truncated` tells whether the file ended
    well before its stated frame count (a warning is logged once).
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        cv2, self._cap = _open_capture(path)
        self._cv2 = cv2
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (math.isfinite(fps) and 0 < fps <= MAX_PLAUSIBLE_FPS):
            log.warning("%s: no usable frame rate in the file (%r); assuming %.0f fps",
                        self.path, fps, DEFAULT_VIDEO_FPS)
            fps = DEFAULT_VIDEO_FPS
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        count = int(count) if math.isfinite(count) and count > 0 else 0
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise VideoError(
                f"cannot decode any frame of {self.path!r}: the file is damaged or truncated, or "
                f"its codec is not supported. Check it with `ffprobe {self.path}`"
            )
        self.info = VideoInfo(self.path, fps, count, int(first.shape[1]), int(first.shape[0]))
        self._first = first
        self._first_pos = self._pos_s()
        self.decoded = 0
        self.truncated = False
        self._started = False

    def _pos_s(self) -> float:
        ms = self._cap.get(self._cv2.CAP_PROP_POS_MSEC)
        return ms / 1000.0 if math.isfinite(ms) else math.nan

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield every decodable frame once: ``(index, stream time in s from 0, BGR image)``.

        Times are the stream's timestamps when they increase, else the previous
        time plus one frame period, so they are always strictly increasing.
        """
        if self._started:
            raise RuntimeError("VideoReader.frames() can be iterated only once; open a new reader")
        self._started = True
        period = 1.0 / self.info.fps
        t0 = self._first_pos if math.isfinite(self._first_pos) else 0.0
        prev = 0.0
        image, index = self._first, 0
        self._first = None
        try:
            while image is not None:
                t = 0.0 if index == 0 else self._pos_s() - t0
                if index > 0 and not (math.isfinite(t) and t > prev):
                    t = prev + period
                prev = t
                self.decoded += 1
                yield index, t, image
                ok, image = self._cap.read()
                if not ok:
                    image = None
                index += 1
            self._check_truncated()  # only when the file ran out, not when the caller stopped early
        finally:
            self.close()

    def _check_truncated(self) -> None:
        stated = self.info.frame_count
        missing = stated - self.decoded
        if stated and missing >= max(TRUNCATION_MIN_FRAMES, TRUNCATION_FRACTION * stated) and not self.truncated:
            self.truncated = True
            log.warning("%s: the video ended after %d of its %d frames (truncated or damaged file); "
                        "using the %d frames decoded", self.path, self.decoded, stated, self.decoded)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, stated frame count and size of a video; :class:`VideoError` if unreadable."""
    reader = VideoReader(path)
    reader.close()
    return reader.info


def video_motion(path: str | Path, *, progress: bool = True, include_empty: bool = False,
                 model_complexity: int = MODEL_COMPLEXITY, max_frames: int | None = None,
                 person: int = 0) -> list[SkeletonFrame]:
    """Pose of every frame of a dance video, for offline rendering.

    Returns MediaPipe-33 :class:`SkeletonFrame` s with ``t`` the frame's stream
    time in seconds from 0 (no frame is dropped: pose runs as slowly as it
    needs). Frames with no person are left out, as in the live source, unless
    ``include_empty`` (then they are frames with every joint missing).
    ``max_frames`` stops early. Shows a tqdm progress bar when ``progress``.
    Raises :class:`VideoError` if the file cannot be decoded; a truncated file
    yields the frames decoded so far and logs a warning.
    """
    reader = VideoReader(path)
    try:
        estimator = PoseEstimator(model_complexity=model_complexity)
    except BaseException:
        reader.close()
        raise
    total = reader.info.frame_count or None
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415
        bar = tqdm(total=total, unit="frame", desc=f"pose {Path(path).name}")
    out: list[SkeletonFrame] = []
    empty_joints = np.full((Layout.MEDIAPIPE33.n_joints, 4), np.nan)
    empty_joints[:, 3] = 0.0
    try:
        for index, t, image in reader.frames():
            if max_frames is not None and index >= max_frames:
                break
            frame = estimator.frame(image, t, person)
            if frame is not None:
                out.append(frame)
            elif include_empty:
                out.append(SkeletonFrame(t, person, Layout.MEDIAPIPE33, empty_joints.copy()))
            if bar is not None:
                bar.update(1)
    finally:
        estimator.close()
        reader.close()
        if bar is not None:
            bar.close()
    if not any(f.valid.any() for f in out):
        log.warning("%s: no person was detected in %d frames: the music will have no motion to follow",
                    path, reader.decoded)
    return out


def _find_tool(name: str, given: str | None) -> str:
    exe = shutil.which(given or name)
    if exe is None:
        raise FFmpegMissing(
            f"{given or name!r} was not found on PATH; it is needed to write video with sound. "
            f"Install FFmpeg (Debian/Ubuntu: sudo apt install ffmpeg; macOS: brew install ffmpeg; "
            f"Windows: winget install ffmpeg) or write only the WAV"
        )
    return exe


def mux(video_path: str | Path, wav_path: str | Path, out_path: str | Path, *,
        ffmpeg: str | None = None, audio_bitrate: str = MUX_AUDIO_BITRATE,
        timeout_s: float = FFMPEG_TIMEOUT_S) -> Path:
    """Write ``out_path``: the video stream of ``video_path`` with ``wav_path`` as its only soundtrack.

    The video is stream-copied (re-encoded with H.264 only if the output
    container cannot hold its codec); the WAV is encoded as AAC, padded with
    silence or cut to the video's length. Raises :class:`FFmpegMissing` when
    ffmpeg is not installed and :class:`VideoError` when ffmpeg fails.
    """
    exe = _find_tool("ffmpeg", ffmpeg)
    video, wav, out = Path(video_path), Path(wav_path), Path(out_path)
    if not video.is_file():
        raise VideoError(f"video file {str(video)!r} does not exist: check the path")
    if not wav.is_file():
        raise FileNotFoundError(f"audio file {str(wav)!r} does not exist: render the music first")
    if out.resolve() in (video.resolve(), wav.resolve()):
        raise ValueError(f"output {str(out)!r} would overwrite an input: choose another name")
    base = [exe, "-nostdin", "-y", "-v", "error", "-i", str(video), "-i", str(wav),
            "-map", "0:v:0", "-map", "1:a:0"]
    tail = ["-c:a", "aac", "-b:a", audio_bitrate, "-af", "apad", "-shortest"]
    if out.suffix.lower() in (".mp4", ".m4v", ".mov"):
        tail += ["-movflags", "+faststart"]
    attempts = (["-c:v", "copy"], ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20"])
    errors = []
    for video_codec in attempts:
        try:
            proc = subprocess.run(base + video_codec + tail + [str(out)], capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise VideoError(f"ffmpeg took longer than {timeout_s:.0f} s to mux {video}") from None
        if proc.returncode == 0 and out.is_file() and out.stat().st_size > 0:
            if video_codec[1] != "copy":
                log.info("%s: video re-encoded as H.264 (its codec cannot be copied into %s)", video, out.suffix)
            return out
        errors.append(proc.stderr.strip()[-800:])
    raise VideoError(f"ffmpeg could not write {str(out)!r} from {str(video)!r} and {str(wav)!r}:\n"
                     + "\n".join(errors))


def stream_types(path: str | Path, *, ffprobe: str | None = None) -> list[str]:
    """Codec types of the streams in a media file, e.g. ``['video', 'audio']`` (uses ffprobe)."""
    exe = _find_tool("ffprobe", ffprobe)
    proc = subprocess.run([exe, "-v", "error", "-show_entries", "stream=codec_type",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                          timeout=FFMPEG_TIMEOUT_S)
    if proc.returncode != 0:
        raise VideoError(f"ffprobe cannot read {str(path)!r}: {proc.stderr.strip()[-400:]}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]
