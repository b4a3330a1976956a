"""Training: the trainer, its configuration, checkpoints and DDP."""
