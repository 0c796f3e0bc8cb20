FROM ubuntu:24.04 AS base
RUN <<EOF
set -e
FROM not-an-instruction
apt-get update
EOF
RUN <<-'SCRIPT' bash
	echo hello
	FROM still-not-an-instruction
	SCRIPT
COPY <<CONF /etc/app.conf
FROM neither
CONF
RUN cat <<A <<B > /dev/null
FROM inside-a
A
FROM inside-b
B
FROM base AS final
