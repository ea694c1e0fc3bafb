"""`make image-test-broken`: every broken Dockerfile under tests/infra/broken_dockerfiles/ must
make the image-test runner fail, at the step and with the message its header promises.

Header lines: ``# EXPECT: <check>`` for a defect the static pre-flight must name (no build), and
``# EXPECT-AFTER-BUILD: in-container-check`` for one that only the built image can show.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from image.podman import podman

REPO = Path(__file__).resolve().parents[1]
BROKEN_DIR = REPO / "tests" / "infra" / "broken_dockerfiles"
# What the runner prints for each after-build check when it fails.
AFTER_BUILD_MESSAGES = {
    "in-container-check": ["FAILED at step 5/8", "cannot use the image", "as root the same check passes"],
}


def expectations(dockerfile: Path) -> tuple[bool, list[str]]:
    """(needs a build, strings the runner's stderr must contain)."""
    text = dockerfile.read_text()
    static = re.search(r"^# EXPECT: ([a-z-]+)$", text, flags=re.MULTILINE)
    if static:
        return False, ["FAILED at step 1/8", f"[{static.group(1)}]", "nothing was built"]
    after = re.search(r"^# EXPECT-AFTER-BUILD: ([a-z-]+)$", text, flags=re.MULTILINE)
    if after and after.group(1) in AFTER_BUILD_MESSAGES:
        return True, AFTER_BUILD_MESSAGES[after.group(1)]
    raise SystemExit(f"{dockerfile}: no '# EXPECT: <check>' or known '# EXPECT-AFTER-BUILD: <check>' line")


def main(runner_args: list[str]) -> int:
    """runner_args go to every runner call (e.g. --model while no demo model is shipped)."""
    failures = 0
    for dockerfile in sorted(BROKEN_DIR.glob("*.Dockerfile")):
        needs_build, expected = expectations(dockerfile)
        tag = f"localhost/ezspeech-asr:broken-{dockerfile.stem.replace('_', '-')}"
        command = [sys.executable, "-m", "image.image_test", "--dockerfile", str(dockerfile), "--tag", tag]
        command += runner_args
        if not needs_build:
            command.append("--preflight-only")
        print(f"== {dockerfile.name}: expecting {expected}", flush=True)
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)  # noqa: S603
        if needs_build:
            podman("rmi", "--ignore", tag, check=False)
        missing = [text for text in expected if text not in result.stderr]
        if result.returncode == 1 and not missing:
            reason = result.stderr.strip().splitlines()[-1]
            print(f"   refused as expected: {reason[:300]}")
        else:
            failures += 1
            print(
                f"   NOT refused as expected (exit {result.returncode}, missing {missing}):", file=sys.stderr
            )
            print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)
    if failures:
        print(f"\n{failures} broken Dockerfile(s) were not refused as expected", file=sys.stderr)
        return 1
    print("\nevery broken Dockerfile was refused with its expected message")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
