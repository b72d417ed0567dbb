"""Diffusion (DDPM and DDIM). The names below are what the tab shows before the engine loads; the
engine (side_by_side.py) uses the same ones."""

SHIPPED = "shipped MNIST UNet"
SAMPLERS = ("DDIM", "DDPM")
MAX_IMAGES = 64
