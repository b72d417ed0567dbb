"""Diffusion (DDPM and DDIM, score SDEs). The names below are what the tab shows
before the engine loads; the engine (side_by_side.py) uses the same ones."""

SHIPPED = "shipped MNIST UNet"
SAMPLERS = ("DDIM", "DDPM")
MAX_IMAGES = 64
SDE_DATA = ("2-D mixture", "digits (the shipped DDPM as a VP score)")
SDE_KINDS = ("VE", "VP")
SDE_SAMPLERS = ("predictor-corrector", "Euler-Maruyama", "probability-flow ODE")
MAX_MIXTURE_POINTS = 2000
MAX_GUIDANCE = 5.0  # w of classifier-free guidance the guided panel accepts
DEFAULT_GUIDANCE = 0.25  # the w the conditional checkpoint's report and the panel start from (bench: the best w)
