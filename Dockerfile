# syntax=docker/dockerfile:1
# mqtt-tokend in a container. Build stage: a wheel of this repository and of its dependencies.
# Runtime stage: python:3.11-slim with only the installed package, run as an unprivileged user.
#   docker build -t mqtt-tokend .        (docker-compose.yml builds it for you)

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# .dockerignore lets in only what the wheel is built from.
COPY . .
RUN pip wheel --wheel-dir /wheels .


FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# The same layout as a native install: config and key in /etc/mqtt-tokend, state in
# /var/lib/mqtt-tokend (0700). Both belong to the agent's user so that fresh named volumes
# inherit the ownership and `keygen` can write the key.
RUN groupadd --system --gid 10001 mqtt-tokend \
    && useradd --system --uid 10001 --gid mqtt-tokend --home-dir /var/lib/mqtt-tokend \
        --no-create-home --shell /usr/sbin/nologin mqtt-tokend \
    && install -d -m 0700 -o mqtt-tokend -g mqtt-tokend /var/lib/mqtt-tokend \
    && install -d -m 0750 -o mqtt-tokend -g mqtt-tokend /etc/mqtt-tokend
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels mqtt-tokend
USER mqtt-tokend
WORKDIR /var/lib/mqtt-tokend
VOLUME ["/var/lib/mqtt-tokend"]
ENTRYPOINT ["mqtt-tokend"]
CMD ["run"]
