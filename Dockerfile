# VibeVoice WebUI — CPU image with the embedded offline engine; `docker compose up` starts it.
# It installs through scripts/install.sh, the same script README and CI run, so CI exercises it.
FROM python:3.11-slim

# libsndfile ships inside the soundfile wheel; only a CA bundle and curl-free health checks are needed.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# torch's CPU build (the default index would bring the multi-GB CUDA build); the GPU profile overrides it.
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG EXTRAS=""
COPY requirements*.txt pyproject.toml README.md ./
COPY scripts ./scripts
COPY vibevoice ./vibevoice
COPY ui ./ui
COPY presets ./presets
COPY app.py ./
# hadolint ignore=SC2086
RUN ./scripts/install.sh $EXTRAS && rm -rf /root/.cache/pip

ENV VIBEVOICE_HOME=/data \
    VIBEVOICE_HOST=0.0.0.0 \
    VIBEVOICE_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    PATH=/app/.venv/bin:$PATH
VOLUME ["/data"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/v1/health', timeout=4)"]
CMD ["python", "app.py"]
