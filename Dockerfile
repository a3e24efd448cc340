# CPU image with the embedded engine; it installs through the same script as README and CI.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Outside this project's offline machines, take torch's CPU build rather than the multi-GB CUDA one.
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY . .
RUN ./scripts/install.sh
ENV VIBEVOICE_HOME=/data PATH=/app/.venv/bin:$PATH
VOLUME ["/data"]
ENTRYPOINT ["vibevoice"]
CMD ["render", "presets/scripts/podcast-en.txt", "-o", "/data/out/podcast.mp3"]
