"""Swarm mode: a one-node swarm in the default machine, and local multi-VM clusters."""
