# The local rehearsal of the whole loop: moto in server mode as AWS, the real server,
# the real client, the real upload tool and the real Lambda handlers. No AWS account needed.
.PHONY: demo
demo: venv system-deps ## The whole event-driven rollout loop on this machine (moto + real server + real Lambdas)
	$(PY) -m demo
