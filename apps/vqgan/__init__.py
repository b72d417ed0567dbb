"""VQ-VAE and VQGAN. The names below are what the tab shows before the engine loads; the engine
(side_by_side.py) uses the same ones."""

CODECS = {"VQ-VAE": "vqvae", "VQGAN": "vqgan"}
UPLOAD = "your upload"
EXAMPLE_DIGITS = {f"held-out digit {digit}": digit for digit in range(10)}
EXAMPLES = (*EXAMPLE_DIGITS, UPLOAD)
MAX_SAMPLES = 64
