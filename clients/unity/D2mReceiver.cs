// d2m -> Unity: beat, tempo, genre and plan events over OSC, with extOSC.
//
// Add this component and an extOSC OSCReceiver (Local Port 9001, d2m's --osc-out) to a
// GameObject and drag the receiver into the Receiver field. extOSC delivers messages on
// the main thread (in its Update), so the UnityEvents below can touch scene objects.
// Written against extOSC's public API (OSCReceiver.Bind, OSCMessage.Values, OSCValue);
// not compiled by d2m's tests (no Unity on CI). Addresses: docs/protocol.md, OSC section.

using System;
using extOSC;
using UnityEngine;
using UnityEngine.Events;

namespace D2m
{
    [Serializable] public class BeatEvent : UnityEvent<int, int, float> { }   // bar, beat, bpm
    [Serializable] public class FloatEvent : UnityEvent<float> { }
    [Serializable] public class StringEvent : UnityEvent<string> { }

    public class D2mReceiver : MonoBehaviour
    {
        [Header("OSC")]
        public OSCReceiver Receiver;

        [Header("Events (main thread)")]
        public BeatEvent OnBeat = new BeatEvent();          // every music beat, as it is heard
        public BeatEvent OnDownbeat = new BeatEvent();      // beat 1 of each bar
        public FloatEvent OnTempo = new FloatEvent();       // committed dance tempo changed (BPM)
        public StringEvent OnGenre = new StringEvent();     // genre key changed (e.g. "house")
        public StringEvent OnNextKind = new StringEvent();  // next segment planned: music / idle / silence

        [Header("Latest values (read-only)")]
        public int Bar = -1;            // /d2m/bar, 0-based
        public int Beat;                // /d2m/beat, 1..4 (1 = downbeat)
        public float Bpm;               // /d2m/bpm, the music's tempo
        public float DanceTempo;        // /d2m/tempo
        public float TempoConfidence;   // /d2m/tempo/confidence, 0..1
        public bool TempoLocked;        // /d2m/tempo/locked
        public string TempoMode = "idle"; // /d2m/tempo/mode: following / holding / locked / idle
        public string Genre = "";       // /d2m/genre
        public int GenreIndex = -1;     // /d2m/genre/index, 0..9
        public float Energy;            // /d2m/energy, 0..1
        public float Sharpness;         // /d2m/sharpness, 0..1
        public int NextBar = -1;        // /d2m/next/bar
        public float NextBpm;           // /d2m/next/bpm
        public string NextGenre = "";   // /d2m/next/genre
        public string NextKind = "";    // /d2m/next/kind
        public float NextTime;          // /d2m/next/time, session seconds
        public float NextEnergy;        // /d2m/next/energy
        public float Underruns;         // /d2m/telemetry/underruns
        public float LookaheadSeconds;  // /d2m/telemetry/lookahead_s
        public string StatusJson = "";  // /d2m/status (reply to a /d2m/status request)

        /// <summary>Seconds since the last beat (Time.time based), for animation curves.</summary>
        public float SinceBeat => Time.time - _beatAt;
        /// <summary>Beat phase 0..1 from the last beat and the current BPM.</summary>
        public float BeatPhase => Bpm > 0 ? Mathf.Clamp01(SinceBeat * Bpm / 60f) : 0f;

        float _beatAt = -1000f;

        void Start()
        {
            if (Receiver == null)
            {
                Debug.LogError("D2mReceiver: set Receiver to an extOSC OSCReceiver listening on d2m's --osc-out port (9001)");
                enabled = false;
                return;
            }
            // One message per beat with everything: bar (i), beat (i), bpm (f).
            Receiver.Bind("/d2m/beat/full", m =>
            {
                if (m.Values.Count < 3) return;
                Bar = m.Values[0].IntValue;
                Beat = m.Values[1].IntValue;
                Bpm = m.Values[2].FloatValue;
                _beatAt = Time.time;
                OnBeat.Invoke(Bar, Beat, Bpm);
                if (Beat == 1) OnDownbeat.Invoke(Bar, Beat, Bpm);
            });
            // The same beat split into one value per address (for tools that prefer them);
            // /d2m/downbeat is 1 on beat 1, else 0. Kept here so every address is handled.
            Receiver.Bind("/d2m/beat", m => { if (m.ToInt(out var v)) Beat = v; });
            Receiver.Bind("/d2m/bar", m => { if (m.ToInt(out var v)) Bar = v; });
            Receiver.Bind("/d2m/bpm", m => { if (m.ToFloat(out var v)) Bpm = v; });
            Receiver.Bind("/d2m/downbeat", m => { });
            Receiver.Bind("/d2m/tempo", m => { if (m.ToFloat(out var v)) { DanceTempo = v; OnTempo.Invoke(v); } });
            Receiver.Bind("/d2m/tempo/confidence", m => { if (m.ToFloat(out var v)) TempoConfidence = v; });
            Receiver.Bind("/d2m/tempo/locked", m => { if (m.ToInt(out var v)) TempoLocked = v != 0; });
            Receiver.Bind("/d2m/tempo/mode", m => { if (m.ToString(out var s)) TempoMode = s; });
            Receiver.Bind("/d2m/genre", m => { if (m.ToString(out var v)) { Genre = v; OnGenre.Invoke(v); } });
            Receiver.Bind("/d2m/genre/index", m => { if (m.ToInt(out var v)) GenreIndex = v; });
            Receiver.Bind("/d2m/next/bar", m => { if (m.ToInt(out var v)) NextBar = v; });
            Receiver.Bind("/d2m/next/bpm", m => { if (m.ToFloat(out var v)) NextBpm = v; });
            Receiver.Bind("/d2m/next/genre", m => { if (m.ToString(out var v)) NextGenre = v; });
            Receiver.Bind("/d2m/next/kind", m => { if (m.ToString(out var v)) { NextKind = v; OnNextKind.Invoke(v); } });
            Receiver.Bind("/d2m/next/time", m => { if (m.ToFloat(out var v)) NextTime = v; });
            Receiver.Bind("/d2m/next/energy", m => { if (m.ToFloat(out var v)) NextEnergy = v; });
            Receiver.Bind("/d2m/energy", m => { if (m.ToFloat(out var v)) Energy = v; });
            Receiver.Bind("/d2m/sharpness", m => { if (m.ToFloat(out var v)) Sharpness = v; });
            Receiver.Bind("/d2m/telemetry/underruns", m => { if (m.ToFloat(out var v)) Underruns = v; });
            Receiver.Bind("/d2m/telemetry/lookahead_s", m => { if (m.ToFloat(out var v)) LookaheadSeconds = v; });
            Receiver.Bind("/d2m/status", m => { if (m.ToString(out var v)) StatusJson = v; });
        }
    }
}
