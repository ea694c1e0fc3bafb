"""How a stream's audio turns into text: the decoding strategies the engine drives.

- ``results``: what decoding produces (``Segment``, ``Partial``) and what the engine hands a
  session (``StreamUpdate``); the one home of these types.
- ``strategy``: the seam between the batching engine and a strategy (``StepItem``,
  ``StreamDecoder``, ``DecodeStrategy``).
- ``streaming``: ``model.stream_step`` with carried state, for ``streaming = True`` models.
- ``chunked``: fixed windows (left context + chunk + right context), the chunk's frames kept and
  joined; bounded cost per audio second, the default for full-context models.
- ``growing_window``: re-decodes the open segment's whole window, for full-context models.
- ``selection``: ``strategy_for(model, device, full_context)``: the model's declared kind, and
  for full-context models ``FULL_CONTEXT_STRATEGY`` (``chunked`` or ``growing-window``).

This package's ``__init__`` imports nothing on purpose: ``asr_service.model.ctc`` imports
``results`` and ``streaming`` imports ``model.ctc``, which must not run the strategies' imports.
"""
