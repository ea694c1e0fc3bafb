"""make image-test: local base image, static Dockerfile checks and the podman end-to-end runner."""
