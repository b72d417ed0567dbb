"""Boosting and forests. The names below are what the tab shows before the engine loads; the engine
(side_by_side.py) uses the same ones."""

ALGORITHMS = ("Random forest", "AdaBoost (SAMME)", "Gradient boosting", "Histogram boosting (XGBoost-style)")
