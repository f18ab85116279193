"""mqtt-tokend: one agent owns the Spotify session and shares its token over MQTT."""

__version__ = "0.1.0"
