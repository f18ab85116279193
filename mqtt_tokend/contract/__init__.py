"""The MQTT contract: topics, payloads, the health record, Home Assistant discovery. Pure."""
