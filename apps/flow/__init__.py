"""Normalizing flows and rectified flows. The names below are what the tab shows before the engine
loads; the engine (side_by_side.py, toy.py) uses the same ones."""

FLOWS = {"NICE": "nice", "RealNVP": "realnvp", "Glow": "glow"}
RECTIFIED = {"1-rectified flow": "rectified", "2-rectified flow (after reflow)": "reflow"}
SOLVER_NAMES = {"Euler": "euler", "Heun": "heun"}
MAX_IMAGES = 64
TOY_MAX_STEPS = 200
TOY_DENSITIES = ("two moons", "rings", "checkerboard", "8 gaussians")
TOY_KINDS = ("RealNVP (exact likelihood)", "rectified flow + reflow")
