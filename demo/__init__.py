"""The local rehearsal of the whole event-driven loop (``make demo``).

moto in server mode stands in for AWS, the real Lambda handlers consume the events moto
delivers, and the real ASR server runs as the "task" with the environment of the task
definition the rollout produced. ``python -m demo`` narrates it; ``tests/demo/test_demo_e2e.py``
runs the same flow as the project's end-to-end test.
"""
