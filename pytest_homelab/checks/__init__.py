"""The landing checks, shipped with the package; a repo's own ``checks/`` wins when present."""
