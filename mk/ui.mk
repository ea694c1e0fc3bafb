# The browser page (issue #10): its tests drive Debian's Chromium headless through Playwright,
# so `make test` apt-installs chromium with the other system packages (never a browser download).
APT_PACKAGES += chromium

.PHONY: test-browser
test-browser: venv system-deps ## The browser page's tests only, in headless Chromium
	$(PY) -m pytest tests/asr_service/test_browser.py
