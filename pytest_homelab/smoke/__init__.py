"""The smoke phase: each service with a probe answers HTTP with the landed commit."""
