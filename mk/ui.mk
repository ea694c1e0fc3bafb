# The browser page: its tests drive Debian's Chromium headless through Playwright,
# so `make test` apt-installs chromium with the other system packages (never a browser download).
APT_PACKAGES += chromium

.PHONY: test-browser
test-browser: venv system-deps ## The browser page's tests only, in headless Chromium
	$(PY) -m pytest tests/asr_service/test_browser.py

.PHONY: ui-screenshot
ui-screenshot: venv system-deps ## Re-take docs/browser.png: the page transcribing a demo clip with the shipped model
	UI_SCREENSHOT=docs/browser.png $(PY) -m pytest tests/asr_service/test_browser.py -k "file_picker_shows_what_the_server_says" -p no:cacheprovider
