# agentlog services (see compose.yaml). Build: docker build -t agentlog:0.1.0 .
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user; its home is the working directory, so the default
# data directory (.agentlog) is writable.
RUN groupadd --system --gid 10001 agentlog \
    && useradd --system --uid 10001 --gid agentlog \
        --home-dir /var/lib/agentlog --create-home --shell /usr/sbin/nologin agentlog

# Install the project and its runtime dependencies only (no test/dev extras);
# the source tree is not kept in the image. gcc builds the compiled Avro codec
# (streams/_avro_fast.pyx; without it agentlog falls back to a slower pure-Python
# codec) and is removed again in the same layer.
COPY . /tmp/agentlog-src
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install /tmp/agentlog-src \
    && python -c "import agentlog.streams.codec as c; assert c.COMPILED, 'no compiled codec'" \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* /tmp/agentlog-src

USER 10001:10001
WORKDIR /var/lib/agentlog

ENTRYPOINT ["agentlog"]
CMD ["--help"]
