"""The nightly stages and the operator commands, one thin CLI per module (`python -m jobs.<name>`);
shared code in plumbing/, data makers in datasets/, benchmarks in bench/."""
