"""What every phase shares: settings, outcomes, time, deploy.json, git, HTTP, secrets.

Imports no phase."""
