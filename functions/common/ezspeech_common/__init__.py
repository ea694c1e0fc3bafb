"""Shared code of the EzSpeech automation Lambdas, deployed as one layer (``CommonLayer``).

The handlers in ``functions/<name>/app.py`` are thin: they parse the event and call the plain
functions here, which take their boto3 clients and settings as arguments and never read the
environment. Tests, the ops CLI (``python -m ops.rollout``) and the local demo call the same
functions with their own clients.
"""
