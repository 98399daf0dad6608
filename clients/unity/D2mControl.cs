// Unity -> d2m: operator controls over OSC, with extOSC (wire these to UI buttons and sliders).
//
// Uses an extOSC OSCTransmitter (Remote Port 9000, d2m's --osc-in). Controls take effect on
// the next bar (volume on the next audio block). Not compiled by d2m's tests.

using extOSC;
using UnityEngine;

namespace D2m
{
    public class D2mControl : MonoBehaviour
    {
        public OSCTransmitter Transmitter;

        /// <summary>Genre key (house, break, pop, lock, middle_hiphop, la_hiphop, waack, krump,
        /// street_jazz, ballet_jazz), an alias, or "auto" to follow the dancer again.</summary>
        public void SetGenre(string genre) => Send("/d2m/genre", OSCValue.String(genre));

        /// <summary>Genre by index 0..9; -1 = auto.</summary>
        public void SetGenreIndex(int index) => Send("/d2m/genre", OSCValue.Int(index));

        /// <summary>MusicGen text prompt; empty clears it.</summary>
        public void SetPrompt(string text)
        {
            if (string.IsNullOrEmpty(text)) Send("/d2m/prompt");
            else Send("/d2m/prompt", OSCValue.String(text));
        }

        /// <summary>Hold the tempo at bpm (60..200); 0 or less holds the current tempo.</summary>
        public void LockTempo(float bpm)
        {
            if (bpm > 0f) Send("/d2m/tempo/lock", OSCValue.Float(bpm));
            else Send("/d2m/tempo/lock");
        }

        public void UnlockTempo() => Send("/d2m/tempo/unlock");
        public void SetVolume(float volume) => Send("/d2m/volume", OSCValue.Float(Mathf.Clamp01(volume)));
        public void StartMusic() => Send("/d2m/start");
        public void StopMusic() => Send("/d2m/stop");

        /// <summary>d2m replies /d2m/status (JSON) to the port this transmitter sends from; with
        /// extOSC, give the transmitter a fixed local port and receive on it.</summary>
        public void RequestStatus() => Send("/d2m/status");

        void Send(string address, params OSCValue[] values)
        {
            if (Transmitter == null)
            {
                Debug.LogWarning("D2mControl: set Transmitter to an extOSC OSCTransmitter aimed at d2m's --osc-in port (9000)");
                return;
            }
            var message = new OSCMessage(address);
            foreach (var v in values) message.AddValue(v);
            Transmitter.Send(message);
        }
    }
}
