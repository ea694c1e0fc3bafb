# Client tokens: the Secrets Manager secret the service reads AUTH_TOKENS from.
#
#   make client-tokens ENV=dev                             list clients, limits, versions (never a token)
#   make rotate-tokens ENV=dev ADD=web [MAX_SESSIONS=8]    a new client
#   make rotate-tokens ENV=dev [CLIENT=web,batch]          new tokens (previous stay valid) + safe rollout
#   make rotate-tokens ENV=dev CLIENT=web REVOKE=1         ... and the previous one invalid at once
#   make rotate-tokens ENV=dev RETIRE=1                    drop the previous tokens
.PHONY: rotate-tokens client-tokens

comma := ,
TOKENS_CLIENTS = $(foreach client,$(subst $(comma), ,$(CLIENT)),--client "$(client)")

rotate-tokens: venv ## New client tokens on ENV (CLIENT=a,b | ADD=name [MAX_SESSIONS=n] | RETIRE=1 | REVOKE=1), rolled out like a model
	$(call require_env)
	$(PY) -m ops.tokens \
		$(if $(ADD),add --client "$(ADD)" $(if $(MAX_SESSIONS),--max-sessions $(MAX_SESSIONS)),$(if $(RETIRE),retire-previous,rotate $(if $(REVOKE),--revoke-previous))) \
		$(if $(ADD),,$(TOKENS_CLIENTS)) --env "$(ENV)" $(if $(OUT),--out "$(OUT)") $(TOKENS_ARGS)

client-tokens: venv ## List ENV's clients: names, limits, secret versions (never a token)
	$(call require_env)
	$(PY) -m ops.tokens list --env "$(ENV)"
