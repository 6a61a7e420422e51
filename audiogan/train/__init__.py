"""Training: data, the adversarial loop, checkpoints and export."""
