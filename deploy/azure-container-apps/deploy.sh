#!/usr/bin/env bash
# digestd on Azure Container Apps: deploy, the rollout flag, rollback. Needs the Azure CLI
# (az login; az extension add --name containerapp) and envsubst (gettext-base).
#
#   deploy.sh deploy                 create or update both apps from api.yaml and worker.yaml
#   deploy.sh check                  digestctl check inside the api (the gate before a stage)
#   deploy.sh flag VALUE             USE_ASYNC_DIGEST=VALUE on both apps: true, false, or N%
#   deploy.sh allow LIST             ASYNC_DIGEST_ALLOW=LIST on both apps (the internal team)
#   deploy.sh revisions              both apps' revisions, newest last
#   deploy.sh rollback [REVISION]    the api back to REVISION (default: the one before the
#                                    newest) by traffic; the worker to a copy of its previous
#
# Settings come from the environment (an .env file sourced beforehand, say):
#   AZ_RESOURCE_GROUP, AZ_LOCATION, AZ_ENVIRONMENT_ID (the Container Apps environment's
#   resource id), AZ_IDENTITY_ID (a user-assigned identity with AcrPull on AZ_REGISTRY and
#   "Key Vault Secrets User" on AZ_KEY_VAULT_URL), AZ_REGISTRY, AZ_KEY_VAULT_URL, IMAGE,
#   REDIS_HOST (<name>.redis.cache.windows.net), MICROSOFT_APP_ID, MICROSOFT_APP_TENANT_ID,
#   DIGEST_UPSTREAM_URL, USE_ASYNC_DIGEST and ASYNC_DIGEST_ALLOW (the stage to deploy with).
# The Key Vault holds digestd-microsoft-app-password, digestd-admin-token, digestd-redis-url
# (rediss://:<key>@<host>:6380/0) and digestd-redis-password (the same key, for KEDA).
set -euo pipefail
cd "$(dirname "$0")"

# Exactly the placeholders api.yaml and worker.yaml use (tests/deploy checks both ways), so
# envsubst leaves every other $ and brace alone.
VARS='AZ_LOCATION AZ_IDENTITY_ID AZ_ENVIRONMENT_ID AZ_REGISTRY AZ_KEY_VAULT_URL IMAGE REDIS_HOST
MICROSOFT_APP_ID MICROSOFT_APP_TENANT_ID DIGEST_UPSTREAM_URL USE_ASYNC_DIGEST ASYNC_DIGEST_ALLOW'
APPS='digestd-api digestd-worker'

die() { echo "deploy.sh: $*" >&2; exit 2; }
rg() { [ -n "${AZ_RESOURCE_GROUP:-}" ] || die "AZ_RESOURCE_GROUP is not set"; echo "$AZ_RESOURCE_GROUP"; }

# USE_ASYNC_DIGEST as digestd takes it (SPEC §2): true, false or 0%..100%.
flag_ok() { [[ "$1" =~ ^(true|false|([0-9]|[1-9][0-9]|100)%)$ ]]; }

render() { # FILE: prints the path of a rendered temporary copy
  local v out
  for v in $VARS; do [ -n "${!v:-}" ] || die "$v is not set"; done
  flag_ok "$USE_ASYNC_DIGEST" || die "USE_ASYNC_DIGEST: true, false or N% (0-100), not '$USE_ASYNC_DIGEST'"
  out=$(mktemp --suffix=.yaml)
  # shellcheck disable=SC2016
  envsubst "$(printf '${%s} ' $VARS)" <"$1" >"$out"
  echo "$out"
}

cmd=${1:-}
case "$cmd" in
  deploy)
    g=$(rg)
    for app in $APPS; do
      f=$(render "${app#digestd-}.yaml")
      trap 'rm -f "$f"' EXIT
      if az containerapp show -n "$app" -g "$g" -o none 2>/dev/null; then
        az containerapp update -n "$app" -g "$g" --yaml "$f" -o table
      else
        az containerapp create -n "$app" -g "$g" --yaml "$f" -o table
      fi
      rm -f "$f"
    done
    ;;
  check)
    # The api always runs (minReplicas 2) and has digestctl, REDIS_URL and DIGEST_PREFIX.
    # --scale-to-zero: no live worker is fine while nothing is unread or pending.
    az containerapp exec -n digestd-api -g "$(rg)" --command "digestctl check --scale-to-zero"
    ;;
  flag)
    v=${2:-}
    flag_ok "$v" || die "flag: true, false or N% (0-100), not '$v'"
    # The api decides each request's path; the worker reports the flag in its heartbeat
    # (digestctl procs), so both get it. Each update makes a new revision.
    for app in $APPS; do
      az containerapp update -n "$app" -g "$(rg)" --set-env-vars "USE_ASYNC_DIGEST=$v" -o none
    done
    echo "USE_ASYNC_DIGEST=$v on $APPS"
    ;;
  allow)
    [ $# -ge 2 ] || die "allow: a comma-separated list of user ids and <channelId>:<conversation.id>"
    for app in $APPS; do
      az containerapp update -n "$app" -g "$(rg)" --set-env-vars "ASYNC_DIGEST_ALLOW=$2" -o none
    done
    ;;
  revisions)
    for app in $APPS; do
      az containerapp revision list -n "$app" -g "$(rg)" --all \
        --query "sort_by(@, &properties.createdTime)[].{name:name, created:properties.createdTime, active:properties.active, traffic:properties.trafficWeight, replicas:properties.replicas}" \
        -o table
    done
    ;;
  rollback)
    g=$(rg)
    prev=${2:-$(az containerapp revision list -n digestd-api -g "$g" --all \
      --query "sort_by(@, &properties.createdTime)[-2].name" -o tsv)}
    [ -n "$prev" ] || die "rollback: no previous api revision"
    # Multiple revision mode keeps it running: all traffic back to it at once.
    az containerapp revision activate -n digestd-api -g "$g" --revision "$prev" -o none
    az containerapp ingress traffic set -n digestd-api -g "$g" --revision-weight "$prev=100" -o table
    wprev=$(az containerapp revision list -n digestd-worker -g "$g" --all \
      --query "sort_by(@, &properties.createdTime)[-2].name" -o tsv)
    [ -n "$wprev" ] || die "rollback: no previous worker revision"
    # Single revision mode: a new revision from the previous one's template replaces the newest.
    az containerapp revision copy -n digestd-worker -g "$g" --from-revision "$wprev" -o table
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
