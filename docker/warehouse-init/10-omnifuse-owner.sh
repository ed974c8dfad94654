#!/usr/bin/env bash
# Runs once, when the warehouse volume is first initialised (postgres image: /docker-entrypoint-initdb.d).
# The pipeline must not run as the superuser: this creates the least-privilege role that owns the omnifuse
# database and everything the migrations create in it. It can create and manage only the roles it creates
# itself (PostgreSQL 16 CREATEROLE), which `omnifuse warehouse migrate` uses for the read-only BI role.
# psql quotes the values (:"name" as an identifier, :'password' as a literal): no value is pasted into SQL.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner="${WAREHOUSE_OWNER:-omnifuse}" -v password="$WAREHOUSE_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
create role :"owner" with login nosuperuser nocreatedb createrole noreplication nobypassrls password :'password';
alter database :"db" owner to :"owner";
revoke all on database :"db" from public;
grant connect, temporary on database :"db" to :"owner";
SQL
