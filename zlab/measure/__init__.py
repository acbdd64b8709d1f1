"""Measurement: settings as data, evaluate, compare, diversity, baselines, the discriminator view, bench."""
