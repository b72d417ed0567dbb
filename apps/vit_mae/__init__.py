"""ViT and MAE. The names below are what the tab shows before the engine loads; the engine
(side_by_side.py) uses the same ones."""

SHIPPED = "shipped MNIST models"
UPLOAD = "your upload"
PHOTO = "photo: china.jpg (scikit-learn)"
EXAMPLE_DIGITS = {f"held-out digit {digit}": digit for digit in range(10)}
EXAMPLES = (*EXAMPLE_DIGITS, PHOTO)
