"""Data: dataset parsers -> plain scene description (scene.py); camera conventions (conventions.py)."""
