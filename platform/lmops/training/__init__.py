"""Training: one entry point (Ray Train TorchTrainer) for every preset and scale."""
