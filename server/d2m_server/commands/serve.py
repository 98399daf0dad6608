"""``d2m serve`` and ``d2m demo``: the live loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from d2m.conductor import ConductorConfig
from d2m.control import InvalidControl

log = logging.getLogger("d2m")

#: Default plan lead (s): how long before it plays a segment is decided.
SYNTH_LEAD_S = 0.5
#: MusicGen generates ahead: a bar must be ready before it plays (the synth covers when it is not).
MUSICGEN_LEAD_S = 2.5

#: Environment variable holding the access token (safer than --token, which `ps` shows).
TOKEN_ENV = "D2M_TOKEN"
#: Shortest token accepted.
MIN_TOKEN_CHARS = 8


def _hostport(default_host: str):
    def parse(text: str):
        from ..osc import parse_hostport
        try:
            return parse_hostport(text, default_host)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _broker(text: str):
    from ..mqtt import parse_broker
    try:
        return parse_broker(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instance(text: str):
    from ..mqtt import check_instance
    try:
        return check_instance(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _network(text: str):
    from ..osc_in import parse_networks
    try:
        return str(parse_networks([text])[0])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _genre(text: str) -> str:
    from d2m.genres import UnknownGenre, parse_genre
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return parse_genre(text)
    except UnknownGenre as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or auto") from None


def add_live_arguments(p: argparse.ArgumentParser, *, demo: bool) -> None:
    # Every flag here is also a key of the --config file (d2m_server.config derives the keys).
    p.add_argument("--config", metavar="FILE.toml", default=None,
                   help="read the settings from a TOML file (keys: the flags, --osc-in is osc_in; "
                        "write a starting file with `d2m config --dump FILE.toml`); flags given "
                        "here override the file")
    p.add_argument("--osc-in", type=_hostport("127.0.0.1"), default=("127.0.0.1", 9000), metavar="HOST:PORT",
                   help="where motion and control OSC arrives (default 127.0.0.1:9000)")
    p.add_argument("--osc-out", type=_hostport("127.0.0.1"), action="append", metavar="HOST:PORT",
                   help="where beat/tempo/genre events are sent; repeatable (default 127.0.0.1:9001)")
    p.add_argument("--no-osc", action="store_true", help="no OSC in or out")
    p.add_argument("--ws", type=_hostport("127.0.0.1"), default=("127.0.0.1", 8765), metavar="HOST:PORT",
                   help="WebSocket for control, state and the audio stream (default 127.0.0.1:8765)")
    p.add_argument("--no-ws", action="store_true", help="no WebSocket server")
    p.add_argument("--no-web", action="store_true",
                   help="do not serve the browser page (clients/web) on the WebSocket port")
    p.add_argument("--web-camera", action="store_true",
                   help="accept camera frames from the browser page and run pose on them "
                        "(needs the camera extra; costs CPU)")
    p.add_argument("--mqtt", type=_broker, default=None, metavar="HOST[:PORT]",
                   help="publish state and take controls over MQTT (port default 1883; needs aiomqtt)")
    p.add_argument("--mqtt-instance", type=_instance, default=None, metavar="NAME",
                   help="MQTT topics go under d2m/NAME/ (default: this machine's host name)")
    p.add_argument("--token", default=None, metavar="SECRET",
                   help=f"access token WebSocket clients must send first; required to bind --ws or "
                        f"--osc-in to anything but loopback (or set {TOKEN_ENV}, which `ps` does not show)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="browser origin (scheme://host[:port], or *) allowed to connect besides the "
                        "server's own host; repeatable")
    p.add_argument("--osc-allow", action="append", type=_network, default=None, metavar="CIDR",
                   help="accept OSC only from these addresses/networks (and loopback); repeatable. "
                        "On a non-loopback --osc-in the default is loopback only")
    p.add_argument("--audio-out", default=None, metavar="DEVICE|none",
                   help="sound device name or index; 'none' serves streams only (default: the "
                        "default device, or none when there is no sound card)")
    p.add_argument("--backend", default="synth", choices=("synth", "musicgen"),
                   help="music generator (default synth; musicgen needs --model)")
    p.add_argument("--model", default=None, help="MusicGen directory or hub id (musicgen backend)")
    p.add_argument("--encoders", default=None, help="trained rhythm/genre encoders (.safetensors)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--genre", type=_genre, default="house" if demo else None,
                   help="fix the genre; 'auto' follows the dancer's motion"
                        + (" (default house)" if demo else " (default auto)"))
    p.add_argument("--prompt", default="", help="text prompt (MusicGen)")
    p.add_argument("--bpm", type=float, default=120.0, help="tempo before a dancer is found (default 120)")
    p.add_argument("--lead", type=float, default=None,
                   help="seconds a segment is decided before it plays (default 0.5 synth, 2.5 musicgen)")
    p.add_argument("--latency", type=float, default=0.0,
                   help="extra output latency to compensate (s), e.g. a PA system's delay")
    p.add_argument("--seed", type=int, default=0)
    add_voice_arguments(p)
    p.add_argument("--record", metavar="FILE.wav", help="write exactly what is played")
    p.add_argument("--record-motion", metavar="FILE.jsonl", help="write every frame and control")
    p.add_argument("--record-midi", metavar="FILE.mid", default=None,
                   help="write the band's score as a MIDI file (tempo map on the dancer's beats, one "
                        "track per part; rewritten whole every second, so readable after a kill)")
    p.add_argument("--midi-out", metavar="NAME", default=None,
                   help="send MIDI clock (24 ppqn on the music's beats), Start/Stop/Song Position on a "
                        "virtual MIDI port NAME (needs the midi extra; ALSA sequencer or a JACK server)")
    p.add_argument("--midi-api", choices=("auto", "alsa", "jack"), default="auto",
                   help="MIDI system for --midi-out (default auto: ALSA if /dev/snd/seq exists, else JACK)")
    p.add_argument("--midi-connect", action="store_true",
                   help="--midi-out NAME connects to the existing MIDI port (a device, a program) "
                        "whose name contains NAME instead of opening a virtual port")
    p.add_argument("--midi-notes", action="store_true",
                   help="--midi-out also sends the band's notes (drums on channel 10, GM drum map)")
    p.add_argument("--link", action="store_true",
                   help="lead an Ableton Link session: tempo and bar phase (quantum 4) to every peer "
                        "(needs the GPL link extra)")
    p.add_argument("--link-follow", action="store_true",
                   help="join an Ableton Link session and hold its tempo (tempo lock) when a peer "
                        "changes it (needs the GPL link extra)")
    p.add_argument("--source", action="append", default=[], metavar="SPEC",
                   help="extra motion source: camera:N or video:PATH (needs the camera extra)")
    p.add_argument("--loop", action="store_true", help="loop a video source")
    p.add_argument("--preview", action="store_true", help="show the pose preview (camera/video)")
    p.add_argument("--duration", type=float, default=30.0 if demo else None,
                   help="stop after this many seconds" + (" (default 30)" if demo else " (default: run until Ctrl-C)"))


def voice_options(args) -> dict:
    """``voices``/``soundfont`` for make_generator when ``--voices`` was given."""
    voices = getattr(args, "voices", None) or "synth"
    return {} if voices == "synth" else {"voices": voices, "soundfont": getattr(args, "soundfont", None)}


def hit_options(args) -> dict:
    """``hit_sensitivity`` for ConductorConfig when ``--hit-sensitivity`` was given."""
    value = getattr(args, "hit_sensitivity", None)
    return {} if value is None else {"hit_sensitivity": value}


def sync_options(args):
    """MIDI file, MIDI out and Ableton Link options (d2m_server.midi_sync)."""
    from ..midi_sync import SyncOptions

    return SyncOptions(record_midi=getattr(args, "record_midi", None), midi_out=getattr(args, "midi_out", None),
                       midi_api=getattr(args, "midi_api", "auto"), midi_connect=getattr(args, "midi_connect", False),
                       midi_notes=getattr(args, "midi_notes", False), link=getattr(args, "link", False),
                       link_follow=getattr(args, "link_follow", False))



def add_voice_arguments(p: argparse.ArgumentParser, *, reproduce: bool = False) -> None:
    """``--voices``, ``--soundfont`` and ``--hit-sensitivity``: the same for serve, demo and render."""
    p.add_argument("--voices", default="synth", choices=("synth", "soundfont"),
                   help="instruments of the synth backend: the numpy band (default) or General MIDI "
                        "SoundFont instruments per genre (extra soundfont + fluid-soundfont-gm)")
    p.add_argument("--soundfont", default=None, metavar="FILE.sf2",
                   help="SoundFont for --voices soundfont (default: $D2M_SOUNDFONT, else Debian's FluidR3_GM)")
    p.add_argument("--hit-sensitivity", type=float, default=None, metavar="0..1",
                   help="how readily a sharp stop in the motion (stomp, arm snap) is answered by an "
                        "accent on the next 16th note: 0 = off, 1 = the weakest stops (default 0.5)"
                        + ("; must match the live run to reproduce it" if reproduce else ""))

def register(sub) -> None:
    p = sub.add_parser("serve", help="run the live server (OSC/WebSocket/camera in, music out)",
                       description="Run d2m live: motion in over OSC (and optionally camera/video "
                                   "and WebSocket), beat-locked music out.")
    add_live_arguments(p, demo=False)
    p.set_defaults(func=lambda a: run_live(a, demo=False))
    d = sub.add_parser("demo", help="hear d2m now: a built-in synthetic dancer drives the live loop",
                       description="A synthetic dancer (118 BPM, a ramp to 128, a jump to 100) drives "
                                   "the live loop, so you hear d2m with no rig.")
    add_live_arguments(d, demo=True)
    d.set_defaults(func=lambda a: run_live(a, demo=True))


def build_options(args, *, demo: bool):
    from ..app import ServeOptions

    lead = args.lead if args.lead is not None else (MUSICGEN_LEAD_S if args.backend == "musicgen" else SYNTH_LEAD_S)
    try:
        genre = None if args.genre in (None, "auto") else args.genre
        cfg = ConductorConfig(plan_lead_s=lead, output_latency_s=args.latency, initial_bpm=args.bpm,
                              genre=genre, prompt=args.prompt, seed=args.seed,
                              **hit_options(args))
    except (ValueError, InvalidControl) as exc:
        raise SystemExit(f"d2m: {exc}")
    return ServeOptions(
        osc_in=None if args.no_osc else args.osc_in,
        osc_out=[] if args.no_osc else (args.osc_out or [("127.0.0.1", 9001)]),
        ws=None if args.no_ws else args.ws,
        audio_out=args.audio_out, record=args.record, record_motion=args.record_motion,
        duration=args.duration, demo_dancer=demo, sources=list(args.source), loop_video=args.loop,
        preview=args.preview, conductor=cfg,
        web_page=not args.no_web, web_camera=args.web_camera,
        mqtt=args.mqtt, mqtt_instance=args.mqtt_instance,
        sync=sync_options(args),
        **access_options(args),
    )


def access_options(args) -> dict:
    """Token, origins and OSC allowlist; refuses a non-loopback bind without a token."""
    from ..osc_in import is_loopback_host

    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV) or None
    public = [f"{name} {host}:{port}" for name, bound in
              (("--ws", None if args.no_ws else args.ws), ("--osc-in", None if args.no_osc else args.osc_in))
              if bound is not None for host, port in [bound] if not is_loopback_host(host)]
    if public and token is None:
        raise SystemExit(
            f"d2m: refusing to listen on {', '.join(public)} without an access token: anyone on "
            f"that network could control the show. Set {TOKEN_ENV}=<secret> (or --token <secret>) "
            "and give the same token to your clients, or bind 127.0.0.1 instead")
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise SystemExit(f"d2m: the access token must be at least {MIN_TOKEN_CHARS} characters")
    return {"token": token, "allow_origins": list(getattr(args, "allow_origin", []) or []),
            "osc_allow": getattr(args, "osc_allow", None)}


def run_live(args, *, demo: bool) -> int:
    from ..app import LiveSession
    from ..audio import AudioUnavailable
    from ..link import LinkUnavailable
    from ..midi_out import MidiUnavailable
    from ..backends import BackendUnavailable, make_generator

    options = build_options(args, demo=demo)
    from ..memory import configure_malloc
    configure_malloc()           # before any worker thread: no slow RSS creep (d2m_server.memory)
    from ..optional import check_serve_extras
    check_serve_extras(args)       # a missing extra: one line naming it, before the warm-up
    try:
        generator = make_generator(args.backend, sample_rate=options.conductor.sample_rate, seed=args.seed,
                                   model=args.model, device=args.device, encoders=args.encoders,
                                   **voice_options(args))
        fallback = (make_generator("synth", sample_rate=options.conductor.sample_rate, seed=args.seed)
                    if args.backend != "synth" else None)
    except BackendUnavailable as exc:
        print(f"d2m: {exc}", file=sys.stderr)
        return 2
    _warm_up()
    session = LiveSession(options, generator, fallback)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, session.stop)
            except (NotImplementedError, RuntimeError):
                pass
        await session.run()

    try:
        asyncio.run(main())
    except (AudioUnavailable, OSError, ValueError, MidiUnavailable, LinkUnavailable) as exc:
        print(f"d2m: {exc}", file=sys.stderr)
        return 2
    if demo:
        st = session.status()
        print(f"demo finished: {st['bar']} bars, tempo {st['tempo']['bpm']:.1f} BPM, genre {st['genre']}"
              + (f"; recorded {args.record}" if args.record else ""))
    return 0


def _warm_up() -> None:
    """librosa compiles with numba on first use (~30 s): do it before the show, not in the audio path."""
    import numpy as np

    from d2m.motion import coarse_tempo

    log.info("warming up the tempo tracker (first run compiles librosa, up to ~30 s)...")
    env = np.zeros(240)
    env[::30] = 1.0
    coarse_tempo(env)
