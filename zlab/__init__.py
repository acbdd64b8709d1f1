"""zlab: Z-Image and LADD, taught by running real diffusers/transformers code (see README.md)."""

__version__ = "0.1.0"
