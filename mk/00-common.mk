# Shared helpers for the per-part makefiles.

# $(call not_done,ISSUE) — for a target whose issue has not landed: say so and fail.
define not_done
	@echo "make $@: not implemented yet (see issue #$(1)); nothing was done." >&2; exit 1
endef
