"""Typed events: frozen dataclasses read by :mod:`ezspeech_common.events.reader`.

Unknown keys are ignored, and a wrong event raises ``EventShapeError`` naming the field. Not
pydantic, for the handlers' cold start: see the reader's docstring for the measured cost.
One module per source, so a handler imports only its own.
"""
