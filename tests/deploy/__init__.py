"""Deploy tests: the systemd units, the Mosquitto config and ACL, the installer, Compose."""
