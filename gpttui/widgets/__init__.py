"""Widgets of the gpttui app, one per module."""
