"""gpttui: a terminal training monitor for nanoGPT-style GPT models."""
