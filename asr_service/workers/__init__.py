"""Several server processes in one task (``WORKERS`` / ``--workers``).

One Python process stops scaling at about one core: the event loop and the engine thread share
one interpreter lock. With ``WORKERS`` = N > 1 ``python -m asr_service`` becomes a small
supervisor (``supervisor``) and N worker processes (``worker``), each today's server with its own
engine and model copy. ``WORKERS=1`` is the single-process server itself: no supervisor, the same
code path as before workers existed.

How the workers share one WebSocket port: the supervisor accepts and hands each socket to a
worker over a Unix socket (``SCM_RIGHTS``, ``channel``), rather than every worker listening with
``SO_REUSEPORT``. Why:

- ``MAX_SESSIONS`` keeps its meaning for the whole task. The supervisor sees every connection
  and every worker's open count, so it decides at hand-off; with ``SO_REUSEPORT`` each worker
  would see only its own sessions and would need shared counters and locks between processes.
- Balance. The kernel spreads ``SO_REUSEPORT`` connections by a hash of the addresses, which is
  uneven at the tens of long streams a task holds (the busiest worker sets the task's capacity);
  the supervisor gives each new client to the worker with the fewest open connections.
- Draining and dying workers. A ``SO_REUSEPORT`` group keeps routing to a worker until it
  closes its listener, and connections queued in a dead worker's accept queue are lost; here a
  draining or restarting worker simply gets nothing new.
- One process owns the health port and the autoscaling EMF line, which must speak for the whole
  task anyway.

The cost is one ``accept`` and one ``sendmsg`` in the supervisor per connection (streams are
long, so this is nothing next to the audio), and the supervisor is one more process that must
not die (it does little: no model, no torch).
"""
