#!/usr/bin/env bash
# Builds the sysward-agent, sysward-server, sysward-smart and sysward-db packages into
# target/packages/:
#
#   packaging/build.sh             # cargo build --release, then the .deb and .rpm files
#   packaging/build.sh --no-build  # package the binaries already built (target/release;
#                                  # the agent: see binary() below)
#
# Both formats are made from one staged tree per package, so they hold the same files with
# the same modes: the .deb with dpkg-deb (part of dpkg, on every Debian host), the .rpm
# with rpmbuild when it is installed (`apt-get install rpm`; skipped with a note when not).
# No cargo plugin is needed: cargo-deb and cargo-generate-rpm take minutes to install on a
# fresh CI machine, this takes seconds. Owners that are not root (the sysward group) are set
# by the maintainer scripts, since the user does not exist when the package is built.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

build=1
for arg in "$@"; do
	case "$arg" in
	--no-build) build=0 ;;
	*)
		echo "usage: $0 [--no-build]" >&2
		exit 2
		;;
	esac
done

target=${CARGO_TARGET_DIR:-$root/target}
out=$target/packages
release=$target/release

# Where each binary is built: the agent with the `agent` profile (see Cargo.toml), the
# others with `release`. The .deb's agent is linked statically with glibc (see
# scripts/build-agent) and depends on the exact glibc release it was linked with. The
# .rpm's agent links glibc dynamically: it is built here, on Debian, for hosts whose glibc
# release cannot be pinned, and glibc's NSS modules on those hosts must be able to load.
triple=$(rustc -vV | sed -n 's/^host: //p')
binary() {
	case "$1" in
	sysward-agent) echo "$target/$triple/agent/sysward-agent" ;;
	sysward-agent-rpm) echo "$target/agent/sysward-agent" ;;
	sysward-db) echo "$target/$triple/agent/sysward-db" ;;
	sysward-db-rpm) echo "$target/agent/sysward-db" ;;
	*) echo "$release/$1" ;;
	esac
}
rpm=0
command -v rpmbuild >/dev/null && rpm=1

if [ "$build" = 1 ]; then
	"${CARGO:-cargo}" build --release --locked -p sysward-server -p sysward-smart
	# The database helper runs beside the agent, so it is built as the agent is.
	scripts/build-agent >/dev/null
	scripts/build-agent --package sysward-db >/dev/null
	if [ "$rpm" = 1 ]; then
		"${CARGO:-cargo}" build --profile agent --locked -p sysward-agent
		"${CARGO:-cargo}" build --profile agent --locked -p sysward-db
	fi
fi

needed=(sysward-agent sysward-server sysward-smart sysward-db)
[ "$rpm" = 1 ] && needed+=(sysward-agent-rpm sysward-db-rpm)
for bin in "${needed[@]}"; do
	if [ ! -x "$(binary "$bin")" ]; then
		echo "$(binary "$bin") is missing: run without --no-build" >&2
		exit 1
	fi
done

# "sysward-agent 0.1.0 (0123456789ab)": the version the binary itself reports.
version=$("$(binary sysward-agent)" --version | awk '{print $2}')
deb_version=$version-1
deb_arch=$(dpkg --print-architecture)
rpm_arch=$(uname -m)
# Reproducible archives: every timestamp is the commit's (dpkg-deb and rpmbuild read it).
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

rm -rf "$out"
mkdir -p "$out"

# The Debian packages a binary needs, from the shared libraries it links: only glibc and
# libgcc_s are expected (rustls, no OpenSSL; SQLite is built in). Anything else is an
# error, so that a new native dependency is noticed here rather than on a host.
deb_depends() {
	local bin=$1 deps=() lib glibc
	if is_static "$bin"; then
		# Linked statically with glibc: NSS modules that glibc loads at run time link the
		# host's shared libc, which must be the release linked in (scripts/build-agent).
		local upstream minor
		upstream=$(glibc_version)
		upstream=${upstream%%-*}
		minor=${upstream#*.}
		printf 'libc6 (>= %s), libc6 (<< %s.%s)' "$upstream" "${upstream%%.*}" "$((${minor%%.*} + 1))"
		return
	fi
	for lib in $(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
		case "$lib" in
		libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux*) ;;
		libgcc_s.so.1) deps+=("libgcc-s1") ;;
		*)
			echo "$bin links $lib, which packaging/build.sh does not know" >&2
			exit 1
			;;
		esac
	done
	glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
	printf 'libc6 (>= %s)' "$glibc"
	for lib in "${deps[@]}"; do
		printf ', %s' "$lib"
	done
}

glibc_version() { dpkg-query -W -f='${Version}' libc6; }

# Whether BIN needs no shared library. (Not `readelf | grep -q`: under pipefail, grep
# leaving early can make readelf's SIGPIPE fail the pipeline.)
is_static() { [ -z "$(readelf -d "$1" | sed -n '/(NEEDED)/p')" ]; }

# stage PKG: the package's files under $out/stage/PKG, as they will be installed.
stage() {
	local pkg=$1 dir=$out/stage/$1
	install -d -m 0755 "$dir/usr/share/doc/$pkg"
	case "$pkg" in
	sysward-smart) install -m 0644 smart-helper/README.md "$dir/usr/share/doc/$pkg/README.md" ;;
	sysward-db) install -m 0644 db-helper/README.md "$dir/usr/share/doc/$pkg/README.md" ;;
	*) install -m 0644 README.md "$dir/usr/share/doc/$pkg/README.md" ;;
	esac
	cat >"$dir/usr/share/doc/$pkg/copyright" <<-EOF
		Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
		Upstream-Name: sysward

		Files: *
		Copyright: the Sysward authors
		License: Apache-2.0
		 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
	EOF
	chmod 0644 "$dir/usr/share/doc/$pkg/copyright"
	case "$pkg" in
	sysward-agent | sysward-server)
		install -d -m 0755 "$dir/usr/bin" "$dir/usr/lib/systemd/system" "$dir/etc/sysward"
		install -m 0755 "$(binary "$pkg")" "$dir/usr/bin/$pkg"
		install -m 0644 "systemd/$pkg.service" "$dir/usr/lib/systemd/system/$pkg.service"
		install -m 0644 "packaging/${pkg#sysward-}.toml" "$dir/etc/sysward/${pkg#sysward-}.toml"
		;;
	esac
	case "$pkg" in
	sysward-agent)
		# Empty: the operator's health checks go here.
		install -d -m 0755 "$dir/etc/sysward/checks.d"
		;;
	sysward-server)
		# The shipped alert rules, a conffile like the config; the operator's own rule
		# files go beside it.
		install -d -m 0755 "$dir/etc/sysward/rules"
		install -m 0644 packaging/rules/host.yml "$dir/etc/sysward/rules/host.yml"
		install -m 0644 packaging/rules/server.yml "$dir/etc/sysward/rules/server.yml"
		# The Grafana dashboards and provisioning files, for Grafana's own provisioning
		# (packaging/grafana/README.md); `[grafana]` uploads the copies built in.
		install -d -m 0755 "$dir/usr/share/sysward/grafana/dashboards" \
			"$dir/usr/share/sysward/grafana/provisioning/datasources" \
			"$dir/usr/share/sysward/grafana/provisioning/dashboards"
		install -m 0644 packaging/grafana/README.md "$dir/usr/share/sysward/grafana/README.md"
		install -m 0644 packaging/grafana/dashboards/*.json "$dir/usr/share/sysward/grafana/dashboards/"
		install -m 0644 packaging/grafana/provisioning/datasources/sysward.yaml \
			"$dir/usr/share/sysward/grafana/provisioning/datasources/sysward.yaml"
		install -m 0644 packaging/grafana/provisioning/dashboards/sysward.yaml \
			"$dir/usr/share/sysward/grafana/provisioning/dashboards/sysward.yaml"
		;;
	sysward-smart)
		# Where the agent's smart collector looks first. root:sysward 0750 and the file
		# capabilities are set by the postinst (deb) or %attr/%caps (rpm).
		install -d -m 0755 "$dir/usr/lib/sysward" \
			"$dir/usr/lib/systemd/system/sysward-agent.service.d"
		install -m 0755 "$release/sysward-smart" "$dir/usr/lib/sysward/sysward-smart"
		install -m 0644 systemd/sysward-agent-smart.conf \
			"$dir/usr/lib/systemd/system/sysward-agent.service.d/smart.conf"
		;;
	sysward-db)
		# Where the agent's postgres and mysql collectors look first. No privilege: the
		# agent runs it as itself, under the agent unit's hardening.
		install -d -m 0755 "$dir/usr/lib/sysward"
		install -m 0755 "$(binary sysward-db)" "$dir/usr/lib/sysward/sysward-db"
		;;
	esac
}

# The maintainer scripts with the shared user snippet in place of #SYSWARD_USER#.
maintainer_scripts() {
	local pkg=$1 dir=$2 script
	for script in postinst prerm postrm; do
		[ -f "packaging/deb/$pkg/$script" ] || continue
		sed -e "/#SYSWARD_USER#/{
r packaging/scripts/user.sh
d
}" "packaging/deb/$pkg/$script" >"$dir/DEBIAN/$script"
		chmod 0755 "$dir/DEBIAN/$script"
	done
}

# build_deb PKG DEPENDS DESCRIPTION
build_deb() {
	local pkg=$1 depends=$2 description=$3 dir=$out/stage/$1
	local file=$out/${pkg}_${deb_version}_${deb_arch}.deb
	local bin
	bin=$(binary "$pkg")
	[ "$pkg" = sysward-smart ] && bin=$dir/usr/lib/sysward/sysward-smart
	[ "$pkg" = sysward-db ] && bin=$dir/usr/lib/sysward/sysward-db
	install -d -m 0755 "$dir/DEBIAN"
	maintainer_scripts "$pkg" "$dir"
	if [ -d "$dir/etc" ]; then
		find "$dir/etc" -type f | sed "s|^$dir||" | sort >"$dir/DEBIAN/conffiles"
		chmod 0644 "$dir/DEBIAN/conffiles"
	fi
	local size
	size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
	cat >"$dir/DEBIAN/control" <<-EOF
		Package: $pkg
		Version: $deb_version
		Architecture: $deb_arch
		Maintainer: Sysward <sysward@example.invalid>
		Installed-Size: $size
		Depends: $(deb_depends "$bin"), $depends
		Section: admin
		Priority: optional
		Homepage: https://example.invalid/sysward
		Description: $description
	EOF
	if is_static "$bin"; then
		# Debian policy for a binary with a library linked in: name the source it came from.
		sed -i "/^Depends:/a Built-Using: glibc (= $(glibc_version))" "$dir/DEBIAN/control"
	fi
	chmod 0644 "$dir/DEBIAN/control"
	# --root-owner-group: every file root:root whoever builds; xz -9: the smallest.
	dpkg-deb --root-owner-group -Zxz -z9 --build "$dir" "$file" >/dev/null
	rm -rf "$dir/DEBIAN"
	echo "$file"
}

build_rpm() {
	local pkg=$1 top=$out/rpmbuild
	rpmbuild -bb --quiet \
		--define "_topdir $top" \
		--define "_rpmdir $out" \
		--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
		--define "stage $out/stage/$pkg" \
		--define "packaging $root/packaging" \
		--define "pkg_version $version" \
		--define "pkg_arch $rpm_arch" \
		--define "use_source_date_epoch_as_buildtime 1" \
		--define "clamp_mtime_to_source_date_epoch 1" \
		"packaging/rpm/$pkg.spec" >/dev/null
	echo "$out/$pkg-$version-1.$rpm_arch.rpm"
}

stage sysward-agent
stage sysward-server
stage sysward-smart
stage sysward-db
build_deb sysward-agent passwd "Sysward host agent
 Collects host metrics (node_exporter's names) and health-check results on
 tiered intervals, keeps them in a durable spool and pushes them over mutual
 TLS to a Sysward server. Runs hardened under systemd as the sysward user."
build_deb sysward-server passwd "Sysward server
 Enrolls agents with its own PKI, ingests their batches over mutual TLS,
 stores samples in a compressed tiered store and answers queries. Runs
 hardened under systemd as the sysward user."
build_deb sysward-smart "sysward-agent (= $deb_version), smartmontools, libcap2-bin" \
	"Sysward SMART helper: disk health for the agent
 Runs smartctl for the unprivileged Sysward agent, with a fixed set of argument
 templates and allow-listed devices, passing on only the capabilities smartctl
 needs (CAP_SYS_RAWIO, CAP_SYS_ADMIN, CAP_DAC_OVERRIDE). Installs a drop-in for
 sysward-agent.service that lets the agent run it; removing this package makes
 the agent fully hardened again."
build_deb sysward-db "sysward-agent (= $deb_version)" \
	"Sysward database helper: PostgreSQL and MySQL for the agent
 Runs the Sysward agent's postgres and mysql collectors in a process of their
 own, started by the agent only when one of them is configured, so that the
 agent carries no database driver. Install it on hosts with PostgreSQL,
 MariaDB or MySQL servers to watch."
if [ "$rpm" = 1 ]; then
	install -m 0755 "$(binary sysward-agent-rpm)" "$out/stage/sysward-agent/usr/bin/sysward-agent"
	install -m 0755 "$(binary sysward-db-rpm)" "$out/stage/sysward-db/usr/lib/sysward/sysward-db"
	build_rpm sysward-agent
	build_rpm sysward-server
	build_rpm sysward-smart
	build_rpm sysward-db
	rm -rf "$out/rpmbuild"
else
	echo "rpmbuild is not installed (apt-get install rpm): no .rpm made" >&2
fi
rm -rf "$out/stage"
