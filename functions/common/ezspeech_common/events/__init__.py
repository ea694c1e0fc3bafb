"""Typed events (pydantic, parsed with the Powertools parser). Unknown keys are ignored.

One module per source, so a handler imports (and pays the cold-start cost of) only its own.
"""
