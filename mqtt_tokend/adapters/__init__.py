"""One outside system each: MQTT, Spotify, the state files, the key, the log."""
