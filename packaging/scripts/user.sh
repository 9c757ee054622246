# The `sysward` system user and group that both services run as: made once, shared by the
# agent and server packages, and kept on purge (files it owned may remain, and a reused id
# would hand them to someone else).
if ! getent group sysward >/dev/null; then
	groupadd --system sysward
fi
if ! getent passwd sysward >/dev/null; then
	useradd --system --gid sysward --home-dir /nonexistent --no-create-home \
		--shell /usr/sbin/nologin --comment "Sysward monitoring" sysward
fi
