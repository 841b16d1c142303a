"""The e2e phase: the dev end-to-end run on D601, its launcher, transports and logs."""
