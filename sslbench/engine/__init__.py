"""Engine: the training loop, evaluation, augmentation, checkpoints, devices."""
