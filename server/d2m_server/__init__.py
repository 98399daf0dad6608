"""d2m's asyncio runtime: sources (OSC, camera, WebSocket) and sinks (sound
device, WebSocket, OSC, MQTT, recorder) around the ``d2m`` core."""
