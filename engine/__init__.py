"""The Docker engine in the VM and the ways in and out of it."""
