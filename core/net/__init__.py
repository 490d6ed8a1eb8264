"""Twisted adapters for peer connections."""
