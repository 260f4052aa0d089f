# syntax=docker/dockerfile:1
# Django under gunicorn. The first stage installs the pinned requirements into a virtualenv;
# the second copies only that and the project, so no pip cache or build tools ship.
# Build from the repository root: docker build -f docker/django.Dockerfile .

FROM python:3.12.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY django_app/requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-virtualenv -r /tmp/requirements.txt

FROM python:3.12.11-slim-bookworm
RUN groupadd --system --gid 10002 django \
    && useradd --system --uid 10002 --gid django --home-dir /app --shell /usr/sbin/nologin django
COPY --from=build /opt/venv /opt/venv
COPY django_app/ /app/
COPY docker/django-entrypoint.sh /usr/local/bin/django-entrypoint
# STATIC_ROOT is /app/staticfiles; it is a volume shared with nginx, created owned by django.
# Uploaded note media (DJANGO_MEDIA_ROOT) lives in its own volume at /app/media.
RUN install -d -o django -g django /app/staticfiles /app/media
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_DEBUG=0
USER django
WORKDIR /app
EXPOSE 8000
ENTRYPOINT ["django-entrypoint"]
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--forwarded-allow-ips", "*"]
