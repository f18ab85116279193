"""For development and the demo: the Spotify emulator, the demo and a private broker."""
