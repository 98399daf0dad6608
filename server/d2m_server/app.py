"""The live loop: one asyncio process around the sans-I/O conductor.

Sources (OSC, WebSocket, the demo dancer, camera/video) push stamped frames
and controls into the :class:`~d2m.conductor.Conductor`; a ticker makes the
conductor's decisions when they are due; the :class:`GenerationWorker`
renders each planned segment on a worker thread into the audio ring; the
output (sound device, or the server's own clock) plays it; sinks (OSC,
WebSocket, recorders) announce and store what happens.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from d2m.conductor import Conductor, ConductorConfig
from d2m.control import Control
from d2m.events import Beat, ControlApplied, GenreChanged, InputRejected, SegmentPlanned, TempoChanged, beats_of
from d2m.generator import Generator, SegmentStream
from d2m.genres import GENRES
from d2m.hits import AccentTrack, HitDetected
from d2m.skeleton import SkeletonFrame
from d2m.synth.accents import LEVEL_STRENGTHS, AccentBank

from .audio import AudioRing, GainRamp, LockedAccents, PlaybackClock, open_output
from .generation import GenerationWorker
from .midi_sync import ShowSync, SyncOptions
from .memory import MallocTrimmer, MemoryProbe, process_usage
from .osc_in import is_loopback_host
from .pose_feed import PoseFeed
from .osc import OscReceiver, OscSender, encode_event, encode_status, encode_style, encode_telemetry
from .recorder import MotionRecorder, WavRecorder, next_run_paths
from .stats import InputStats
from .ws import WebSocketHub

log = logging.getLogger("d2m.server")

#: How often the ticker runs (s): decisions, beat announcements.
TICK_S = 0.005
#: Audio buffered ahead of playback at most (s).
RING_S = 2.0
#: Style (energy, sharpness) is announced this often (s).
STYLE_INTERVAL_S = 0.1
#: State and telemetry are announced this often (s).
TELEMETRY_INTERVAL_S = 1.0
#: A frame stamped further than this (s) ahead of the session clock is refused and counted
#: (``inputs.motion``: "from the future"): the conductor would otherwise plan that far ahead.
FRAME_AHEAD_LIMIT_S = 0.25
#: Timestamps are rounded to microseconds, as the motion recording stores them.
T_DECIMALS = 6


@dataclass
class ServeOptions:
    osc_in: tuple[str, int] | None = ("127.0.0.1", 9000)
    osc_out: list[tuple[str, int]] = field(default_factory=lambda: [("127.0.0.1", 9001)])
    ws: tuple[str, int] | None = ("127.0.0.1", 8765)
    audio_out: str | None = None           #: device name/index, "none" or None (default device)
    record: str | None = None              #: WAV path of exactly what is played
    record_motion: str | None = None       #: JSONL path of every frame and control
    duration: float | None = None          #: stop after this many seconds (None: run until stopped)
    demo_dancer: bool = False              #: drive the loop with the built-in synthetic dancer
    sources: list[str] = field(default_factory=list)   #: extra sources: camera:N, video:PATH
    loop_video: bool = False
    preview: bool = False
    conductor: ConductorConfig = field(default_factory=ConductorConfig)
    web_page: bool = True                  #: serve the browser page (clients/web) on the WebSocket port
    web_camera: bool = False               #: run pose on camera frames sent by the page
    mqtt: tuple[str, int] | None = None    #: MQTT broker for installations (see docs/protocol.md)
    mqtt_instance: str | None = None       #: topic level under d2m/ (default: the host name)
    token: str | None = None               #: WebSocket clients must send it first (docs/protocol.md)
    allow_origins: list[str] = field(default_factory=list)   #: browser origins allowed besides the same host
    osc_allow: list[str] | None = None     #: OSC accepted only from these networks (+ loopback); None:
                                           #: everyone on a loopback bind, loopback only on a public one
    sync: SyncOptions = field(default_factory=SyncOptions)   #: MIDI file/out, Ableton Link (all off by default)


class LiveSession:
    def __init__(self, options: ServeOptions, generator: Generator, fallback: Generator | None = None):
        self.options = options
        self.cfg = options.conductor
        self.sr = self.cfg.sample_rate
        self.clock = PlaybackClock(self.sr)
        self.ring = AudioRing(int(RING_S * self.sr))
        self.gain = GainRamp(sample_rate=self.sr)
        self.output = None
        self.conductor = Conductor(self.cfg)
        # the dancer's accents: mixed into each output block as it is played (d2m.hits)
        self.accents = LockedAccents(AccentTrack(AccentBank(self.sr, self.cfg.seed)))
        self.worker = GenerationWorker(SegmentStream(generator),
                                       SegmentStream(fallback) if fallback is not None else None,
                                       clock=self.now)
        self.frame_stats = InputStats("motion")
        self.osc_in: OscReceiver | None = None
        self.osc_out: OscSender | None = None
        self.ws: WebSocketHub | None = None
        self.mqtt = None                       # d2m_server.mqtt.MqttBridge when --mqtt is given
        self.wav: WavRecorder | None = None
        self.motion_rec: MotionRecorder | None = None
        self.sync: ShowSync | None = None      # MIDI file, MIDI out, Ableton Link (d2m_server.midi_sync)
        self.sources: list = []
        self._plans: asyncio.Queue[SegmentPlanned] = asyncio.Queue()
        self._beats: collections.deque[Beat] = collections.deque()
        self._playing_plans: collections.deque = collections.deque()
        self._written = 0                      # next sample index to write into the ring
        self.late_samples = 0                  # samples dropped because they were rendered late
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._loop_lag: collections.deque[float] = collections.deque(maxlen=2000)
        self.started_at = time.time()
        self.trimmer = MallocTrimmer()
        self.probe: MemoryProbe | None = None
        self.pose_feed = PoseFeed()            # throttled `pose` events of the lead person

    # -- clock ----------------------------------------------------------------
    def now(self) -> float:
        return round(self.clock.now(), T_DECIMALS)

    def _heard_latency(self) -> float:
        """From a sample's session time to hearing it: the output's latency plus ``--latency``."""
        return (self.output.latency_s if self.output is not None else 0.0) + self.cfg.output_latency_s

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        o = self.options = self._fresh_recordings(self.options)
        if o.sync.any:
            self.sync = ShowSync(o.sync, clock=self.clock, now=self.now, sample_rate=self.sr,
                                 latency_s=self._heard_latency, control=self.control,
                                 initial_bpm=self.cfg.initial_bpm)
            await self.sync.start()
        if o.record:
            self.wav = WavRecorder(o.record, self.sr, 2)
        if o.record_motion:
            self.motion_rec = MotionRecorder(o.record_motion)
        if o.osc_out:
            self.osc_out = OscSender(o.osc_out)
            await self.osc_out.start()
        if o.osc_in:
            allow = o.osc_allow
            if allow is None and not is_loopback_host(o.osc_in[0]):
                allow = []                     # bound publicly: loopback only unless --osc-allow
            self.osc_in = OscReceiver(self._on_osc, self.now, allow=allow)
            await self.osc_in.start(*o.osc_in)
        if o.ws:
            from .web import StaticSite, WebcamPose
            webcam = WebcamPose(self.now, self.push_frame) if o.web_camera else None
            self.ws = WebSocketHub(self.control, self.status, self.push_frame, clock=self.now,
                                   sample_rate=self.sr,
                                   http_handler=StaticSite(routes={"/preview.jpg": self._preview_jpeg}).process_request
                                   if o.web_page else None,
                                   on_video=webcam.submit if webcam is not None else None,
                                   token=o.token, allow_origins=o.allow_origins)
            await self.ws.start(*o.ws)
            if webcam is not None:
                await webcam.start()
                self.sources.append(webcam)
        if o.mqtt:
            from .mqtt import MqttBridge
            self.mqtt = MqttBridge(o.mqtt, instance=o.mqtt_instance, on_control=self.control)
            await self.mqtt.start()
        # the first segment is decided at once and rendered before playback starts
        self._handle(self.conductor.advance(0.0))
        await self._render_pending()
        if self.conductor.hits.detector.enabled:     # render every accent now, not on the first hit
            for genre in GENRES:
                for strength in LEVEL_STRENGTHS:
                    self.accents.track.bank.get(genre, strength)
        self.output = open_output(o.audio_out, self.ring, self.clock, sample_rate=self.sr,
                                  gain=self.gain, on_block=self._on_block, mixer=self.accents)
        await self.output.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._ticker(), name="d2m-ticker"),
                       loop.create_task(self._renderer(), name="d2m-renderer"),
                       loop.create_task(self._announcer(), name="d2m-announcer")]
        if o.demo_dancer:
            self._tasks.append(loop.create_task(self._demo_dancer(), name="d2m-demo-dancer"))
        for spec in o.sources:
            from .camera import PoseSource    # optional extra: imported only when asked for
            src = PoseSource.open(spec, loop=o.loop_video, clock=self.now, on_frame=self.push_frame,
                                  preview=o.preview)
            await src.start()
            self.sources.append(src)
        await self.trimmer.start()
        self.probe = MemoryProbe.from_environment(sizes=self.memory)
        if self.probe is not None:
            await self.probe.start()
        log.info("d2m is live: %s", self.describe())

    @staticmethod
    def _fresh_recordings(o: ServeOptions) -> ServeOptions:
        """A restarted show never overwrites what the last run recorded: ``show.wav`` -> ``show-run2.wav``."""
        midi = o.sync.record_midi
        wav, motion, mid = next_run_paths(o.record, o.record_motion, midi)
        if (wav, motion, mid) == tuple(Path(p) if p else None for p in (o.record, o.record_motion, midi)):
            return o
        log.warning("recordings from an earlier run are kept; this run records to %s",
                    ", ".join(str(p) for p in (wav, motion, mid) if p is not None))
        return replace(o, record=str(wav) if wav else None, record_motion=str(motion) if motion else None,
                       sync=replace(o.sync, record_midi=str(mid) if mid else None))

    def describe(self) -> str:
        parts = [f"audio {self.output.name if self.output else '-'}"]
        if self.osc_in:
            parts.append(f"OSC in {self.options.osc_in[0]}:{self.osc_in.port}")
        if self.osc_out:
            parts.append("OSC out " + ", ".join(f"{h}:{p}" for h, p in self.options.osc_out))
        if self.ws:
            parts.append(f"WebSocket ws://{self.options.ws[0]}:{self.ws.port}")
            if self.options.web_page:
                parts.append(f"web page http://{self.options.ws[0]}:{self.ws.port}/")
        if self.mqtt:
            parts.append(f"MQTT {self.mqtt.host}:{self.mqtt.port} ({self.mqtt.prefix})")
        if self.options.record:
            parts.append(f"recording {self.options.record}")
        if self.sync is not None:
            parts.extend(self.sync.describe())
        return "; ".join(parts)

    async def run(self) -> None:
        await self.start()
        try:
            if self.options.duration is not None:
                try:
                    await asyncio.wait_for(self._stop.wait(), self.options.duration)
                except (asyncio.TimeoutError, TimeoutError):
                    pass
            else:
                await self._stop.wait()
        finally:
            await self.close()

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self.trimmer.stop()
        if self.probe is not None:
            await self.probe.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for src in self.sources:
            try:
                await src.stop()
            except Exception:
                log.exception("stopping a source failed")
        if self.output is not None:
            await self.output.stop()
        if self.ws is not None:
            await self.ws.close()
        if self.mqtt is not None:
            await self.mqtt.close()
        if self.osc_in is not None:
            self.osc_in.close()
        if self.osc_out is not None:
            self.osc_out.close()
        if self.wav is not None:
            self.wav.close()
        if self.motion_rec is not None:
            self.motion_rec.close()
        if self.sync is not None:
            await self.sync.close()
        self.worker.close()

    # -- inputs --------------------------------------------------------------------
    def push_frame(self, frame: SkeletonFrame) -> None:
        """A stamped frame from any source."""
        ahead = frame.t - self.now()
        if ahead > FRAME_AHEAD_LIMIT_S:     # e.g. a WebSocket pose with a made-up "t"
            self.frame_stats.reject("from the future", f"t={frame.t:g} s is {ahead:.3f} s ahead of the "
                                    f"session clock (at most {FRAME_AHEAD_LIMIT_S:g} s)")
            return
        frame = frame.quantized()        # what the motion recording stores, so render == live
        self.frame_stats.ok()
        if self.motion_rec is not None:
            self.motion_rec.write_frame(frame)
        self._handle(self.conductor.push_frame(frame))
        if self.ws is not None and self.ws.clients:     # the skeleton the page draws (pose_feed)
            pose = self.pose_feed.message(frame, self.conductor.person)
            if pose is not None:
                self.ws.broadcast(pose)

    def control(self, control: Control) -> None:
        t = self.now()
        if self.motion_rec is not None:
            self.motion_rec.write_control(t, control)
        if control.volume is not None:
            self.gain.set(control.volume)
        self._handle(self.conductor.control(t, control))

    def _on_osc(self, routed, addr) -> None:
        if routed.error:
            return
        for frame in routed.frames:
            self.push_frame(frame)
        if routed.control is not None:
            self.control(routed.control)
        if routed.status_request and self.osc_in is not None:
            self.osc_in.send_to(addr, encode_status(self.status()))

    # -- conductor events --------------------------------------------------------
    def _handle(self, events: list) -> None:
        for ev in events:
            if isinstance(ev, SegmentPlanned):
                self._plans.put_nowait(ev)
                self._beats.extend(beats_of(ev.plan))
                self._playing_plans.append(ev.plan)
                if self.sync is not None:
                    self.sync.on_plan(ev.plan)
                self._send_osc(encode_event(ev))
                self._send_ws({"type": "segment", **ev.plan.to_dict()})
            elif isinstance(ev, TempoChanged):
                self._send_osc(encode_event(ev))
                if ev.locked:
                    for src in self.sources:      # the preview shows the dance tempo before the music
                        set_tempo = getattr(src, "set_tempo", None)
                        if set_tempo is not None:
                            set_tempo(ev.bpm, None)
                self._send_ws({"type": "tempo", "bpm": round(ev.bpm, 3),
                               "confidence": round(ev.confidence, 3), "locked": ev.locked,
                               "mode": ev.mode})
            elif isinstance(ev, GenreChanged):
                self._send_osc(encode_event(ev))
                self._send_ws({"type": "genre", "genre": ev.genre, "source": ev.source})
            elif isinstance(ev, HitDetected):
                self.accents.add(ev.hit)
                if self.sync is not None:
                    self.sync.add_hit(ev.hit)
                self._send_osc(encode_event(ev))
                self._send_ws({"type": "hit", **ev.hit.to_dict(self.sr)})
            elif isinstance(ev, ControlApplied):
                self._send_ws({"type": "control_applied", "t": ev.t, **ev.changes})
            elif isinstance(ev, InputRejected):
                self.frame_stats.reject("rejected", ev.reason)

    def _send_osc(self, packets: list[bytes]) -> None:
        if self.osc_out is not None and packets:
            self.osc_out.send(packets)

    def _send_ws(self, msg: dict) -> None:
        if self.ws is not None:
            self.ws.broadcast(msg)
        if self.mqtt is not None:
            self.mqtt.on_event(msg)

    # -- tasks ----------------------------------------------------------------------
    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        expected = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            now_loop = loop.time()
            self._loop_lag.append(max(0.0, now_loop - expected - TICK_S))
            expected = now_loop
            t = self.now()
            self._handle(self.conductor.advance(t))
            heard = t - (self.output.latency_s if self.output else 0.0)
            while self._beats and self._beats[0].time <= heard:
                beat = self._beats.popleft()
                self._send_osc(encode_event(beat))
                self._send_ws({"type": "beat", "bar": beat.bar, "beat": beat.beat,
                               "bpm": round(beat.bpm, 3), "time": round(beat.time, 6)})
                for src in self.sources:          # the camera preview's BPM and beat pulse
                    set_tempo = getattr(src, "set_tempo", None)
                    if set_tempo is not None:
                        set_tempo(beat.bpm, 0.0, t=beat.time)

    async def _render_pending(self) -> None:
        while not self._plans.empty():
            await self._render_one(self._plans.get_nowait().plan)

    async def _renderer(self) -> None:
        while True:
            ev = await self._plans.get()
            await self._render_one(ev.plan)

    async def _render_one(self, plan) -> None:
        seg = await self.worker.render(plan)
        if self.sync is not None:
            self.sync.on_rendered(plan, seg.score)
        audio = seg.audio
        start = plan.start_sample
        if start != self._written:
            log.error("segment %d starts at %d but the ring is at %d", plan.index, start, self._written)
        # audio rendered too late for its place is dropped so the music stays on the beat grid
        played = self.clock.position
        if self.output is not None and played > start:
            skip = min(played - start, len(audio))
            self.late_samples += skip
            audio = audio[skip:]
            if skip and len(audio):
                self.ring.clear()
        written = 0
        while written < len(audio):
            n = self.ring.write(audio[written:])
            written += n
            if written < len(audio):
                await asyncio.sleep(0.01)
        self._written = plan.end_sample

    async def _announcer(self) -> None:
        next_tel = 0.0
        while True:
            await asyncio.sleep(STYLE_INTERVAL_S)
            if self.motion_rec is not None:
                self.motion_rec.tick()         # quiet moments are on disk within the flush interval too
            st = self.conductor.style.state()
            self._send_osc(encode_style(float(st.energy), float(st.sharpness)))
            self._send_ws({"type": "style", "energy": round(float(st.energy), 4),
                           "sharpness": round(float(st.sharpness), 4)})
            if time.monotonic() >= next_tel:
                next_tel = time.monotonic() + TELEMETRY_INTERVAL_S
                tel = self.telemetry()
                self._send_osc(encode_telemetry(tel))
                self._send_ws({"type": "state", **self.status()})

    async def _demo_dancer(self) -> None:
        from d2m.dancer import dancer_for_demo

        frame_at = dancer_for_demo()
        period = 1 / 60
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        i = 0
        while True:
            i += 1
            await asyncio.sleep(max(0.0, t0 + i * period - loop.time()))
            t = self.now()
            f = frame_at(t)
            self.push_frame(f)

    def _preview_jpeg(self):
        """The newest camera/video preview (skeleton, BPM, beat pulse) for ``/preview.jpg``."""
        for src in self.sources:
            jpeg = getattr(src, "latest_preview_jpeg", lambda: None)()
            if jpeg:
                return "image/jpeg", jpeg
        return None

    # -- sinks ------------------------------------------------------------------------
    def _on_block(self, block: np.ndarray, start_frame: int) -> None:
        if self.wav is not None:
            self.wav.write(block)
        if self.sync is not None:
            self.sync.on_block(start_frame)
        # plans that have finished playing are dropped even without a WebSocket (no growth)
        while len(self._playing_plans) > 1 and self._playing_plans[1].start_sample <= start_frame:
            self._playing_plans.popleft()
        if self.ws is not None:
            plan = self._playing_plans[0] if self._playing_plans else None
            self.ws.broadcast_audio(start_frame, block,
                                    bar=plan.bar if plan is not None else -1,
                                    bpm=plan.bpm if plan is not None else 0.0)

    # -- status -------------------------------------------------------------------------
    def telemetry(self) -> dict:
        lags = sorted(self._loop_lag)

        def lag_ms(q: float) -> float:
            return round(lags[int(q * (len(lags) - 1))] * 1000, 3) if lags else 0.0

        ring = self.ring.status()
        ws = self.ws
        return {
            "underruns": float(ring.get("underruns", 0)),
            "loop_lag_ms_p50": lag_ms(0.5),
            "loop_lag_ms_p99": lag_ms(0.99),
            "loop_lag_ms_max": lag_ms(1.0),
            "ws_clients": float(ws.clients if ws else 0),
            "ws_slow_disconnects": float(ws.slow_disconnects if ws else 0),
            "ws_audio_frames_dropped": float(ws.status()["audio_frames_dropped"] if ws else 0),
            "generator_errors": float(self.worker.errors),
            "generator_restarts": float(self.worker.restarts),
            "audio_device_lost": 1.0 if getattr(self.output, "lost", False) else 0.0,
            "dropped_packets": float(self.osc_in.stats.rejected if self.osc_in else 0),
            "lookahead_s": round(self.ring.available / self.sr, 4),
            "fallback": 1.0 if self.worker.in_fallback else 0.0,
            "late_ms": round(self.late_samples / self.sr * 1000, 3),
            "accents_late": float(self.accents.track.late),
        }

    def memory(self) -> dict:
        """The process's memory, fds, threads and tasks, and the size (with its limit) of every
        buffer, queue, cache and history the session keeps (status ``memory``, docs/protocol.md)."""
        caches = {}
        for name, stream in (("primary", self.worker.primary), ("cover", self.worker.cover)):
            tones = getattr(getattr(stream, "generator", None), "tones", None) if stream else None
            if tones is not None:
                caches[name] = {"samples": tones.samples, "limit": tones.max_samples}
        mqtt = self.mqtt
        return {
            **process_usage(),
            "plans_queued": self._plans.qsize(), "beats_queued": len(self._beats),
            "plans_playing": len(self._playing_plans),
            "loop_lag_samples": len(self._loop_lag), "loop_lag_limit": self._loop_lag.maxlen,
            "ring_frames": self.ring.available, "ring_limit": self.ring.capacity,
            "tempo_history": len(getattr(self.conductor.tracker, "_history", ())),
            "tone_cache": caches,
            "websocket": self.ws.memory() if self.ws is not None else None,
            "mqtt": {"events_queued": len(mqtt._events), "event_queue_limit": mqtt.event_queue,
                     "retained_topics": len(mqtt._latest)} if mqtt is not None else None,
            "osc_sender_memo": len(self.osc_in._allowed_cache) if self.osc_in is not None else None,
            "malloc_trim": self.trimmer.status(),
        }

    def status(self) -> dict:
        st = self.conductor.status()
        st.update({
            "type_version": 1,
            "time": self.now(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "sample_rate": self.sr,
            "audio": self.output.status() if self.output is not None else None,
            "generator": self.worker.status(),
            "telemetry": self.telemetry(),
            "inputs": {"osc": self.osc_in.status() if self.osc_in else None,
                       "websocket": self.ws.stats.snapshot() if self.ws else None,
                       "motion": self.frame_stats.snapshot()},
            "clients": {"websocket": self.ws.clients if self.ws else 0,
                        **({k: v for k, v in self.ws.status().items() if k not in ("per_client", "input")}
                           if self.ws else {})},
            "sources": [s.status() for s in self.sources],
            "recording": self.wav.status() if self.wav else None,
            "mqtt": self.mqtt.status() if self.mqtt else None,
            "midi": self.sync.status() if self.sync else None,
            "accents": self.accents.status(),
            "memory": self.memory(),
        })
        return st
