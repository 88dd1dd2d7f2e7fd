"""Guest OS images: a kernel, an initrd and a read-only root, described by a manifest."""
