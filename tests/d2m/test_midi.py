"""The MIDI file (d2m.midi) and the clock/beat schedules (d2m.midi_clock), read back with mido."""

from __future__ import annotations

import io

import numpy as np
import pytest

from d2m.conductor import ConductorConfig
from d2m.dancer import SyntheticDancer, TempoCurve
from d2m.midi import (ACCENT_NOTE, DRUM_CHANNEL, PPQ, GM_DRUMS, MidiScoreWriter, gm_drum_notes, hit_accent,
                      score_events, write_midi_file)
from d2m.midi_clock import CLOCK, CONTINUE, PPQN, SONG_POSITION, START, STOP, BeatTimeline, ClockSchedule
from d2m.plan import IDLE, MUSIC, SILENCE, SegmentPlan
from d2m.render import render_motion
from d2m.synth import SynthGenerator
from d2m.synth.drums import SOUNDS

mido = pytest.importorskip("mido", reason="reading MIDI files back needs mido: pip install -e '.[midi]'")

SR = 48000


@pytest.fixture(scope="module")
def ramp_render():
    """A dancer ramping 112 -> 128 BPM: beats of unequal length, tempo changes every bar."""
    dancer = SyntheticDancer(tempo=TempoCurve.linear(112.0, 128.0, 3.0, 13.0), seed=5, noise=0.003)
    return render_motion(dancer.frames(14.0), SynthGenerator(), ConductorConfig(genre="hiphop"))


def read(data: bytes) -> "mido.MidiFile":
    return mido.MidiFile(file=io.BytesIO(data))


def tempo_map(mf) -> list[tuple[int, int]]:
    tick, out = 0, []
    for msg in mf.tracks[0]:
        tick += msg.time
        if msg.type == "set_tempo":
            out.append((tick, msg.tempo))
    return out


def seconds_at(tmap, ticks_per_beat: int):
    """tick -> seconds through the file's tempo map (mido.tick2second per tempo span)."""
    starts = [0.0]
    for (t0, tempo), (t1, _) in zip(tmap, tmap[1:]):
        starts.append(starts[-1] + mido.tick2second(t1 - t0, ticks_per_beat, tempo))

    def at(tick: int) -> float:
        i = max(0, np.searchsorted([t for t, _ in tmap], tick, side="right") - 1)
        t0, tempo = tmap[i]
        return starts[i] + mido.tick2second(tick - t0, ticks_per_beat, tempo)
    return at


def note_ons(track):
    tick, out = 0, []
    for msg in track:
        tick += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            out.append((tick, msg))
    return out


def test_tempo_map_puts_every_planned_beat_on_its_quarter_note(ramp_render):
    r = ramp_render
    data = MidiScoreWriter(SR)
    for p, s in zip(r.plans, r.scores):
        data.add(p, s)
    mf = read(data.finish())
    assert mf.type == 1 and mf.ticks_per_beat == PPQ
    at = seconds_at(tempo_map(mf), mf.ticks_per_beat)
    # every music beat is a quarter note: find each plan's beats by counting quarters
    quarter = 0
    checked = 0
    for p in r.plans:
        if p.kind == MUSIC:
            for k, t in enumerate(p.beat_times()):
                assert abs(at((quarter + k) * PPQ) - t) < 2e-6     # within 2 us of the plan
                checked += 1
            quarter += p.beats
        else:
            beat = 60.0 / p.bpm * SR
            quarter += max(1, int(round(p.n_samples / beat)))
            assert abs(at(quarter * PPQ) - p.end_sample / SR) < 2e-6
    assert checked >= 20
    bpms = {round(p.bpm) for p in r.plans if p.kind == MUSIC}
    assert len(bpms) >= 4, "the ramp should give the tempo map several tempi"
    # the music bars are 4/4 bars in the file, the idle lead-in 1/4 bars
    sigs = [(m.numerator, m.denominator) for m in mf.tracks[0] if m.type == "time_signature"]
    assert sigs[0] == (1, 4) and (4, 4) in sigs


def test_notes_fall_on_their_planned_samples_within_a_tick(ramp_render):
    r = ramp_render
    mf = read(MidiScoreWriter_from(r).finish())
    at = seconds_at(tempo_map(mf), mf.ticks_per_beat)
    names = [t.name for t in mf.tracks]
    assert names == ["d2m tempo map", "drums", "bass", "chords", "lead", "pad"]
    expected = sorted(e.start for p, s in zip(r.plans, r.scores) if s is not None
                      for e in score_events(p, s) if e.part != "pad")
    got = []
    for track in mf.tracks[1:5]:
        for tick, msg in note_ons(track):
            got.append(at(tick))
            if track.name == "drums":
                assert msg.channel == DRUM_CHANNEL
            else:
                assert msg.channel != DRUM_CHANNEL
    assert len(got) == len(expected) > 100
    got = np.sort(np.array(got))
    exp = np.array(expected) / SR
    tick_s = 60.0 / 200.0 / PPQ          # one tick at the fastest tempo allowed
    assert np.max(np.abs(got - exp)) <= tick_s
    # kicks on the downbeat of every music bar: exactly on the bar's first tick
    kicks = {tick for tick, m in note_ons(mf.tracks[1]) if m.note == GM_DRUMS["kick"][0]}
    assert kicks and all(k % PPQ == 0 for k in kicks if k % (4 * PPQ) == 0)


def MidiScoreWriter_from(r) -> MidiScoreWriter:
    w = MidiScoreWriter(SR)
    for p, s in zip(r.plans, r.scores):
        w.add(p, s)
    return w


def test_the_file_is_complete_and_valid_after_every_segment(ramp_render):
    r = ramp_render
    w = MidiScoreWriter(SR)
    counts = []
    for p, s in zip(r.plans, r.scores):
        w.add(p, s)
        mf = read(w.to_bytes())                # mido raises on a broken file
        assert all(t[-1].type == "end_of_track" for t in mf.tracks)
        counts.append(sum(len(note_ons(t)) for t in mf.tracks[1:]))
    assert counts == sorted(counts) and counts[-1] > 0
    final = read(w.finish())
    assert sum(len(note_ons(t)) for t in final.tracks[1:]) >= counts[-1]


def test_render_command_writes_midi_next_to_the_wav(tmp_path):
    import subprocess
    import sys
    frames = SyntheticDancer(tempo=120.0, seed=3, noise=0.003).frames(9.0)
    motion = tmp_path / "m.jsonl"
    motion.write_text("".join(f.to_json() + "\n" for f in frames))
    out = subprocess.run([sys.executable, "-m", "d2m_server.cli", "render", str(motion), "-o",
                          str(tmp_path / "o.wav"), "--midi", str(tmp_path / "o.mid"), "--no-progress",
                          "--genre", "house"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "o.mid" in out.stdout and "notes" in out.stdout
    mf = mido.MidiFile(tmp_path / "o.mid")
    assert len(mf.tracks) == 6 and sum(len(note_ons(t)) for t in mf.tracks) > 50
    assert abs(mf.length - 11.0) < 3.0


def test_accents_get_their_own_track_on_channel_10():
    plans = [SegmentPlan(0, MUSIC, 0, 4 * 24000, SR, 0, (0, 24000, 48000, 72000), 120.0, "house")]
    w = MidiScoreWriter(SR)
    w.add_accent(36000, ACCENT_NOTE, 0.8)     # between beats 1 and 2: tick 1.5 * PPQ
    for p in plans:
        w.add(p, None)
    w.add_accent(10, ACCENT_NOTE, 0.5)        # given after its time was written: moved, counted
    mf = read(w.finish())
    acc = [t for t in mf.tracks if t.name == "accents"][0]
    ons = note_ons(acc)
    assert ons[0][0] == int(1.5 * PPQ) and ons[0][1].channel == DRUM_CHANNEL
    assert ons[0][1].note == ACCENT_NOTE and ons[0][1].velocity == round(127 * 0.8)
    assert w.late_accents == 1
    # without accents there is no accents track
    w2 = MidiScoreWriter(SR)
    w2.add(plans[0], None)
    assert "accents" not in [t.name for t in read(w2.finish()).tracks]


def test_live_accent_bound_keeps_events_open_until_played():
    p = SegmentPlan(0, MUSIC, 0, 96000, SR, 0, (0, 24000, 48000, 72000), 120.0, "house")
    w = MidiScoreWriter(SR)
    w.encode_until(0)                          # live: accents may still come for anything not played
    w.add(p, None)
    w.add_accent(60000, ACCENT_NOTE, 1.0)
    w.encode_until(96000)
    assert w.late_accents == 0
    ticks = [tk for tk, _ in note_ons([t for t in read(w.finish()).tracks if t.name == "accents"][0])]
    assert ticks == [int(2.5 * PPQ)]


def test_hit_accent_maps_strength_to_velocity():
    class H:
        accent_sample, strength = 480, 1.0
    assert hit_accent(H()) == (480, ACCENT_NOTE, pytest.approx(0.6))
    H.strength = 10.0
    assert hit_accent(H())[2] == pytest.approx(1.0)
    H.accent_sample = None
    assert hit_accent(H()) is None


def test_every_synth_drum_sound_has_a_general_midi_note():
    for name in SOUNDS:
        notes = gm_drum_notes(name)
        assert notes is not None, name
        assert all(27 <= n <= 87 for n in notes), (name, notes)   # the GM percussion key range
    assert gm_drum_notes("kick_808_ghost") == (36,)
    assert gm_drum_notes("gong") is None


def test_write_midi_file(tmp_path, ramp_render):
    st = write_midi_file(tmp_path / "x.mid", ramp_render.plans, ramp_render.scores, SR)
    assert st["notes"] > 100 and not st["unknown_sounds"]
    assert mido.MidiFile(tmp_path / "x.mid").type == 1


# -- clock -----------------------------------------------------------------------------------

def _bar(index, start, beats, bar, kind=MUSIC, bpm=120.0):
    offs = tuple(int(b) - start for b in beats[:-1])
    return SegmentPlan(index, kind, start, int(beats[-1]) - start, SR, bar, offs, bpm, "house")


def test_clock_pulses_divide_every_planned_beat_into_24():
    idle = SegmentPlan(0, IDLE, 0, 24000, SR, 0, (0,), 120.0, "house")
    beats = [24000, 48000, 73000, 97000, 120000]          # uneven beats (a phase correction)
    bar = _bar(1, 24000, beats, 0)
    sched = ClockSchedule()
    a = sched.add_plan(idle)
    b = sched.add_plan(bar)
    assert [m.message for m in a] == [(CLOCK,)] * PPQN and START not in [m.message[0] for m in a]
    assert b[0].message == (START,) and b[0].sample == 24000
    pulses = [m.sample for m in b if m.message == (CLOCK,)]
    assert len(pulses) == 4 * PPQN
    assert pulses[::PPQN] == beats[:-1]                    # pulse 0 of each beat on the beat
    second = np.diff(pulses[PPQN:2 * PPQN + 1])            # the 25000-sample beat
    assert abs(np.mean(second) - 25000 / PPQN) < 1 and np.ptp(second) <= 1
    assert sorted(b) == b                                  # in time order, Start before the pulse


def test_clock_stop_song_position_and_continue():
    sched = ClockSchedule()
    bar0 = _bar(0, 0, [0, 24000, 48000, 72000, 96000], 0)
    bar1 = _bar(1, 96000, [96000, 120000, 144000, 168000, 192000], 1)
    stop = SegmentPlan(2, SILENCE, 192000, 24000, SR, 2, (0,), 120.0, "house")
    bar2 = _bar(3, 216000, [216000, 240000, 264000, 288000, 312000], 2)
    sched.add_plan(bar0)
    sched.add_plan(bar1)
    s = sched.add_plan(stop)
    assert s[0].message == (STOP,) and s[0].sample == 192000
    c = sched.add_plan(bar2)
    assert c[0].message[0] == SONG_POSITION and c[1].message == (CONTINUE,)
    lsb, msb = c[0].message[1:]
    assert lsb + 128 * msb == 32          # two bars of 16 sixteenths
    assert c[2].message == (CLOCK,) and c[2].sample == 216000


def test_beat_timeline_counts_bars_in_fours():
    tl = BeatTimeline()
    tl.add(SegmentPlan(0, IDLE, 0, 24000, SR, 0, (0,), 120.0, "house"))
    tl.add(_bar(1, 24000, [24000, 48000, 73000, 97000, 120000], 0))
    tl.add(_bar(2, 120000, [120000, 144000, 168000, 192000, 216000], 1))
    assert tl.beat_at(24000) == 0.0 and tl.beat_at(73000) == 2.0 and tl.beat_at(120000) == 4.0
    assert tl.beat_at(60500) == pytest.approx(1.5)
    assert tl.tempo_at(80000, SR) == pytest.approx(60 * SR / 24000)
    assert tl.in_music(30000) and not tl.in_music(1000)
    assert tl.beat_at(216000 + 12000) == pytest.approx(8.5)    # past the end: the last tempo runs on
