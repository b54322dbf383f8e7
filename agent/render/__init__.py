"""Renderers of the review (``artifacts.py`` writes them) and the escaping they share."""
