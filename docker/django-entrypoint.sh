#!/bin/sh
# Runs before gunicorn in the Django container: the schema first (the sidecar reads auth_user
# and waits for this container to be healthy), then the static files into the volume nginx
# serves them from. Both are idempotent, so every start, including after an upgrade, does them.
set -eu
python manage.py migrate --noinput
python manage.py collectstatic --noinput --verbosity 0
exec "$@"
