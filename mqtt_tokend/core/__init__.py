"""The domain core: the state machine, timing and the refresh gate. Pure; takes `now`."""
