# Build and run the real container image here with podman. See image/image_test.py.
#
# No Docker engine runs on this machine; rootful podman with runc builds the same Dockerfile.
# The base image comes from image/build_base.sh (debootstrap of Debian bookworm + Python 3.11,
# cached under a hash of the script), because no registry image can be pulled here.
.PHONY: image-test image-test-broken image-preflight image-base
IMAGE_TEST_APT := podman runc netavark aardvark-dns iptables debootstrap
# CI builds and runs the real image: image-test is part of `make test` (measured cold here, base
# image included: 8 min on an idle machine, 12-13 min beside other work; CI's budget is 90 min).
APT_PACKAGES += $(IMAGE_TEST_APT)
TEST_PREREQS += image-test
IMAGE_APT_STAMP := $(STAMPS)/image-apt-$(shell echo $(IMAGE_TEST_APT) | sha256sum | cut -c1-16)
DOCKERFILE ?= Dockerfile
# Extra runner flags, e.g. IMAGE_TEST_ARGS="--clip tests/data/clips/x.wav --stop-timeout 60".
IMAGE_TEST_ARGS ?=
# podman reads its settings (runc, ulimits) from here; set for these targets only.
image-test image-test-broken image-base: export CONTAINERS_CONF := $(CURDIR)/image/containers.conf

$(IMAGE_APT_STAMP):
	@mkdir -p $(STAMPS)
	@missing=""; for p in $(IMAGE_TEST_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo ">> apt-get install$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@[ "$$(id -u)" = 0 ] || { echo "make image-test runs rootful podman and debootstrap: run it as root" >&2; exit 1; }
	@touch $@

image-preflight: venv ## Static checks of DOCKERFILE (default: Dockerfile), no build
	$(PY) -m image.image_test --dockerfile $(DOCKERFILE) --preflight-only

image-base: $(IMAGE_APT_STAMP) ## Create (or reuse) the local Debian bookworm + Python 3.11 base image
	nice -n 10 image/build_base.sh

image-test: venv $(IMAGE_APT_STAMP) ## Build the real Dockerfile with podman here and run it end to end
	nice -n 10 $(PY) -m image.image_test --dockerfile $(DOCKERFILE) $(IMAGE_TEST_ARGS)

image-test-broken: venv $(IMAGE_APT_STAMP) ## Every tests/infra/broken_dockerfiles/* must make image-test fail as expected
	nice -n 10 $(PY) -m image.broken_variants $(IMAGE_TEST_ARGS)
