"""The simulated homelab: stand-ins for what cannot run on a laptop, faithful to the real APIs."""
