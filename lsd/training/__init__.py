"""Training LSD with accelerate: config files, the loop, checkpoints and resume."""
