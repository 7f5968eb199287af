#!/bin/sh
# The images' entrypoint (deploy/Dockerfile): one role per process, every role from the same
# code and the same settings (deploy/env.example). The first argument picks the role:
#
#   web         gunicorn api.wsgi on :8000 (WEB_CONCURRENCY workers, 4 by default; GUNICORN_CMD_ARGS adds flags)
#   worker-cpu  celery -A workers worker -Q cpu (CELERY_CONCURRENCY processes, default half the cores)
#   worker-gpu  celery -A workers worker -Q gpu --concurrency 1 (one per GPU; GPU_WORKERS=true routes to it)
#   beat        celery -A workers beat (exactly one; django-celery-beat's DatabaseScheduler, api/settings.py)
#   migrate     python manage.py migrate --noinput (a one-shot before web, workers and beat start)
#
# Anything else runs as given: `python manage.py create_tenant acme`, `sh`.
# Arguments after the role are appended to its command.
set -eu

role="${1:-web}"
[ "$#" -gt 0 ] && shift

half_the_cores() {
    n="$(nproc)"
    echo $(( (n + 1) / 2 ))
}

case "$role" in
    web)
        exec gunicorn api.wsgi --bind "0.0.0.0:8000" --workers "${WEB_CONCURRENCY:-4}" --timeout 600 \
            --access-logfile - "$@"
        ;;
    worker-cpu)
        exec celery -A workers worker -Q cpu --hostname "cpu@%h" \
            --concurrency "${CELERY_CONCURRENCY:-$(half_the_cores)}" --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    worker-gpu)
        exec celery -A workers worker -Q gpu --hostname "gpu@%h" --concurrency 1 --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    beat)
        exec celery -A workers beat --loglevel "${LOG_LEVEL:-INFO}" "$@"
        ;;
    migrate)
        exec python manage.py migrate --noinput "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
