"""Machines: hypervisor drivers behind one interface, guest images, disks, lifecycle."""
