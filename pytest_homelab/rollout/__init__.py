"""The rollout phase: every workload of deploy.json runs the landed image and rolled out."""
