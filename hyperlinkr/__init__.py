"""Hyperlinkr: a self-hosted URL shortener built for speed and durability."""

__version__ = "0.1.0"
