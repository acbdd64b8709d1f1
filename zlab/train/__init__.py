"""Training for the Shapes world: the tiny VAE and the tiny Z-Image teacher (flow matching).

One loop pattern on ``accelerate`` (one CPU process here, DDP/FSDP elsewhere), atomic checkpoints,
``resume``, progress bars with live loss. Configs are dataclasses read from TOML files in ``configs/``.
"""
