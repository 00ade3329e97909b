# The local stand-in for python:3.11-slim where no image registry is reachable (built by
# scripts/docker-smoke): Debian bookworm made by debootstrap and `docker import`ed as ROOTFS,
# plus a venv on PATH so `pip install` installs as on python:3.11-slim (bookworm's Python is
# 3.11, the project's target). No certificate or pip setting is added here: the project's
# Dockerfile gets the host's extra CA as a build secret, never in a layer.
ARG ROOTFS=articlebot-rootfs:bookworm
FROM ${ROOTFS}
ENV LANG=C.UTF-8 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN python3 -m venv /opt/venv \
    && rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
CMD ["python3"]
