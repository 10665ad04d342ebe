"""The chaos run (`make chaos`): load, faults from a seed, and an independent check of what the services hold."""
