"""Pipeline stages: one thin CLI per module (`python -m jobs.<stage>`)."""
