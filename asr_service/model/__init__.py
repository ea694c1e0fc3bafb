"""Acoustic models, the checkpoint format and CTC decoding (no websockets, no asyncio here)."""
