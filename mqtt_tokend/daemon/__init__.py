"""The running agent: the session keeper, what it publishes, request answers, the loop."""
