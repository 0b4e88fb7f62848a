#!/bin/sh
# Writes deploy/.env for compose.yaml: a database password and the three API keys, random,
# once (an existing file is kept: its keys are the ones stored in the database).
set -eu
env_file="$(dirname "$0")/.env"
if [ -e "$env_file" ]; then echo "$env_file exists; keeping it"; exit 0; fi
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
umask 077
{
  echo "POSTGRES_PASSWORD=$(secret)"
  echo "VERDICT_ADMIN_KEY=$(secret)"
  echo "VERDICT_SVC_ASSIGNMENT_KEY=$(secret)"
  echo "VERDICT_SVC_ANALYSIS_KEY=$(secret)"
} > "$env_file"
echo "wrote $env_file (the admin key is VERDICT_ADMIN_KEY)"
