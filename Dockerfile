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
# the source tree is not kept in the image.
COPY . /tmp/agentlog-src
RUN pip install /tmp/agentlog-src && rm -rf /tmp/agentlog-src

USER 10001:10001
WORKDIR /var/lib/agentlog

ENTRYPOINT ["agentlog"]
CMD ["--help"]
