"""Write the demo clips (``python -m training.clips``): held-out sentences, fixed voices."""

from __future__ import annotations

from training import data


def main() -> None:
    for name, sentence in data.write_clips(data.DataSpec()).items():
        print(f"{data.CLIPS_DIR / name}: {sentence}")


if __name__ == "__main__":
    main()
