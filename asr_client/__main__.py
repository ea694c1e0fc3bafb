"""``python -m asr_client``: the streaming client (``asr_client.stream``)."""

import sys

from asr_client.stream import main

sys.exit(main())
