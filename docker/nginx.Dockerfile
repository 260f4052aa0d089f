# syntax=docker/dockerfile:1
# nginx with the site template of nginx/. The unprivileged variant runs as uid 101 and so
# listens on 8080/8443 inside the container (compose publishes them as 80/443). At start, its
# entrypoint renders /etc/nginx/templates/*.template with envsubst into /etc/nginx/conf.d/.
# Build from the repository root: docker build -f docker/nginx.Dockerfile .

FROM nginxinc/nginx-unprivileged:1.28.0-alpine
USER root
# The image's default site also listens on 8080 and would clash with ours.
RUN rm -f /etc/nginx/conf.d/default.conf \
    && install -d -o 101 -g 101 /var/www/acme /srv/static
COPY nginx/templates/ /etc/nginx/templates/
COPY nginx/snippets/ /etc/nginx/snippets/
# Sourced by the entrypoint before the templates are rendered: NGINX_SIDECAR_UPSTREAM (one
# node, or a comma-separated list of cluster nodes) becomes NGINX_SIDECAR_SERVERS.
COPY --chmod=755 docker/nginx/15-anki-sidecar-upstream.envsh /docker-entrypoint.d/
USER 101
ENV NGINX_HTTP_LISTEN=8080 \
    NGINX_HTTPS_LISTEN=8443 \
    NGINX_PUBLIC_HTTPS_PORT=443 \
    NGINX_SERVER_NAME=_ \
    NGINX_TLS_CERTIFICATE=/etc/nginx/tls/fullchain.pem \
    NGINX_TLS_CERTIFICATE_KEY=/etc/nginx/tls/server.key \
    NGINX_SIDECAR_UPSTREAM=sidecar:8080 \
    NGINX_DJANGO_UPSTREAM=django:8000 \
    NGINX_STATIC_ROOT=/srv/static \
    NGINX_ACME_ROOT=/var/www/acme \
    NGINX_SYNC_BASE_PATH= \
    NGINX_MAX_BODY_MB=100 \
    NGINX_ACCESS_LOG=/var/log/nginx/access.log
EXPOSE 8080 8443
