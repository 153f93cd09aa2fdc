# syntax=docker/dockerfile:1
# dealdesk production image: one image for `dealdesk migrate`, `dealdesk worker` and
# `dealdesk web` (the default command). Built by docker-compose.yml.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# If a dependency ever needs a compiler, install build-essential here (build stage only).
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM ${PYTHON_IMAGE}
# What running dealdesk needs from Debian: the runtime set of scripts/bootstrap.sh, package
# for package (tests/test_tools.py checks both against dealdesk/tools.py). LibreOffice
# headless (DOCX -> PDF) kept warm by unoserver, which needs Debian's python3 with `uno` (its
# own venv with the system site-packages); poppler-utils for anchors and page images; fonts
# with Word's metrics (Carlito, Caladea; Liberation for Times New Roman, Arial and Courier
# New, without which pages break elsewhere) and DejaVu for names in any script.
ARG UNOSERVER_VERSION=3.7
RUN apt-get update \
    && apt-get install -y --no-install-recommends libreoffice-writer-nogui python3-uno \
       python3-venv poppler-utils fonts-crosextra-carlito fonts-crosextra-caladea \
       fonts-liberation2 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && /usr/bin/python3 -m venv --system-site-packages /opt/uno-venv \
    && /opt/uno-venv/bin/pip install --no-cache-dir "unoserver==${UNOSERVER_VERSION}"
RUN groupadd --system --gid 10001 dealdesk \
    && useradd --system --uid 10001 --gid dealdesk --home-dir /var/lib/dealdesk \
       --shell /usr/sbin/nologin dealdesk \
    && mkdir -p /var/lib/dealdesk \
    && chown dealdesk:dealdesk /var/lib/dealdesk
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEALDESK_ENVIRONMENT=production \
    DEALDESK_VAR_DIR=/var/lib/dealdesk \
    DEALDESK_UNO_VENV=/opt/uno-venv \
    DEALDESK_WEB_HOST=0.0.0.0 \
    DEALDESK_WEB_PORT=8000
# DEALDESK_VAR_DIR (blobs, pki) must be a volume (compose mounts one); the directory is created
# above owned by dealdesk so a new named volume mounted there inherits that ownership.
WORKDIR /var/lib/dealdesk
USER dealdesk
EXPOSE 8000
CMD ["dealdesk", "web"]
