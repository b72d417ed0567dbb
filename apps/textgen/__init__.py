"""Text generation (GPT, LSTM, n-gram). The names below are what the tab shows before the engine loads;
the engine (side_by_side.py) uses the same ones."""

SHIPPED = "shipped"  # the name of the shipped GPT in the engine's model registry
MAX_NEW_TOKENS = 512
