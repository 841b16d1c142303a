"""The ci phase: the Woodpecker pipeline of the landed commit."""
