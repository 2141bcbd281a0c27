"""Training: transcript import, example store, fine-tuning, calibration, evaluation, model registry."""
