//! One agent config collects a host's services into the server: nginx's status page and
//! its access log, a local exporter (Debian's node_exporter) read through `scrape`, a
//! PostgreSQL server and a MariaDB server, all pushed by the real agent to the real server over TLS and read
//! back with the query API, beside the agent's host collectors. Each program is the real
//! one, started by the test on loopback (the databases as their own users, which needs
//! root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use sysward_tests::{Agent, Server, can_run, free_port, not_root, poll};

/// A program in a process group of its own, stopped with everything it started.
struct Running(Child);

impl Running {
    fn start(mut command: Command, log: &Path) -> Self {
        let out = fs::File::create(log).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        Self(command.spawn().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// The program, or a failure under `CI` and a skip elsewhere, saying which package.
fn have(program: &str, package: &str) -> bool {
    if Path::new(program).exists() {
        return true;
    }
    let why = format!("{program} is missing: apt-get install {package}");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("NOT RUN: {why}");
    false
}

fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// nginx with its status page, `/` and a 404, logging with `$request_time`.
fn nginx(dir: &Path) -> (Running, u16) {
    let port = free_port();
    let d = dir.display();
    fs::write(
        dir.join("nginx.conf"),
        format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             log_format timed '$remote_addr - $remote_user [$time_local] \"$request\" $status '\n\
             '$body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time';\n\
             access_log {d}/access.log timed;\n\
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port};\n\
             location = /stub_status {{ stub_status; access_log off; }}\n\
             location = /missing {{ return 404; }}\n\
             location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let mut command = Command::new("/usr/sbin/nginx");
    command
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    let running = Running::start(command, &dir.join("nginx.out"));
    poll(Duration::from_secs(20), "nginx to listen", || {
        listening(port).then_some(())
    });
    (running, port)
}

/// node_exporter with only its textfile collector over a file of fixed values.
fn node_exporter(dir: &Path) -> (Running, u16) {
    let port = free_port();
    let textfiles = dir.join("textfile");
    fs::create_dir_all(&textfiles).unwrap();
    fs::write(
        textfiles.join("fixed.prom"),
        "# TYPE services_e2e_fixed gauge\nservices_e2e_fixed{kind=\"answer\"} 42\n",
    )
    .unwrap();
    let mut command = Command::new("/usr/bin/prometheus-node-exporter");
    command
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .arg("--collector.textfile")
        .arg(format!(
            "--collector.textfile.directory={}",
            textfiles.display()
        ));
    let running = Running::start(command, &dir.join("node_exporter.out"));
    poll(Duration::from_secs(20), "node_exporter to listen", || {
        listening(port).then_some(())
    });
    (running, port)
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A command run as the `postgres` user (PostgreSQL refuses root).
fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--clear-groups",
        "--",
        program,
    ]);
    command
}

/// A fresh PostgreSQL 15 cluster in `dir/pg`, its socket in `dir/pg-sock`; its port.
fn postgres(dir: &Path) -> (Running, u16) {
    let (data, sock) = (dir.join("pg"), dir.join("pg-sock"));
    fs::create_dir_all(&sock).unwrap();
    let owned = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(owned.success());
    let init = as_postgres(&format!("{PG_BIN}/initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth-local=trust", "--no-sync"])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let port = free_port();
    let mut command = as_postgres(&format!("{PG_BIN}/postgres"));
    command
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&sock)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "fsync=off"]);
    let running = Running::start(command, &dir.join("postgres.out"));
    poll(Duration::from_secs(60), "postgres to accept", || {
        Command::new(format!("{PG_BIN}/pg_isready"))
            .arg("-h")
            .arg(&sock)
            .args(["-p", &port.to_string(), "-q"])
            .status()
            .is_ok_and(|s| s.success())
            .then_some(())
    });
    (running, port)
}

/// A fresh MariaDB in `dir`, run as the `mysql` user; its socket.
fn mariadb(dir: &Path) -> (Running, std::path::PathBuf) {
    fs::create_dir_all(dir).unwrap();
    let owned = Command::new("chown")
        .args(["-R", "mysql:mysql"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(owned.success());
    let data = dir.join("data");
    let install = Command::new("/usr/bin/mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--user=mysql", "--skip-test-db"])
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let sock = dir.join("mysqld.sock");
    let mut command = Command::new("/usr/sbin/mariadbd");
    command
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .args([
            "--skip-networking",
            "--user=mysql",
            "--innodb-buffer-pool-size=16M",
        ]);
    let running = Running::start(command, &dir.join("mariadbd.out"));
    poll(Duration::from_secs(60), "mariadbd to accept", || {
        std::os::unix::net::UnixStream::connect(&sock)
            .ok()
            .map(|_| ())
    });
    (running, sock)
}

/// The access log's format: nginx's combined one with `$request_time` at the end.
const TIMED: &str = r#"^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+)?[^"]*" (?P<status>\d{3}) \S+ "[^"]*" "[^"]*" (?P<request_time>[\d.]+)$"#;

#[test]
fn one_agent_config_collects_the_hosts_services_into_the_server() {
    if !have("/usr/sbin/nginx", "nginx-light")
        || !have(
            "/usr/bin/prometheus-node-exporter",
            "prometheus-node-exporter",
        )
        || !have(&format!("{PG_BIN}/initdb"), "postgresql-15")
        || !have("/usr/sbin/mariadbd", "mariadb-server")
        || !can_run(not_root("run PostgreSQL as the postgres user"))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_nginx, web) = nginx(dir.path());
    let (_exporter, exporter) = node_exporter(dir.path());
    let pg_dir = dir.path().join("postgresql");
    let (_postgres, pg_port) = postgres(&pg_dir);
    let (_mariadb, my_sock) = mariadb(&dir.path().join("mariadb"));
    let server = Server::start(dir.path(), "");
    let config = format!(
        "[intervals]\ncritical = \"1s\"\nstandard = \"1s\"\n\
         [collectors.scrape]\nenabled = true\n\
         [[collectors.scrape.targets]]\nname = \"node\"\nurl = \"http://127.0.0.1:{exporter}/metrics\"\n\
         [collectors.nginx]\nenabled = true\nurl = \"http://127.0.0.1:{web}/stub_status\"\n\
         [collectors.access_log]\nenabled = true\n\
         [[collectors.access_log.files]]\nname = \"web\"\npath = \"{}\"\nformat = '{TIMED}'\n\
         [collectors.postgres]\nenabled = true\n\
         [[collectors.postgres.servers]]\nname = \"main\"\nsocket_dir = \"{}\"\nport = {pg_port}\n\
         [collectors.mysql]\nenabled = true\n\
         [[collectors.mysql.servers]]\nname = \"main\"\nsocket = \"{}\"\n",
        dir.path().join("access.log").display(),
        pg_dir.join("pg-sock").display(),
        my_sock.display()
    );
    let mut agent = Agent::configure(dir.path(), "services-host", &server.url(), &config);
    let out = agent.cmd(&["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.enroll(&server.token(&[]));
    agent.start();
    // The access log is followed from its end: requests made once the agent read it.
    poll(Duration::from_secs(30), "the access log followed", || {
        server
            .latest("sysward_access_log_unparsed_lines_total{log=\"web\"}")
            .map(|_| ())
    });
    for _ in 0..5 {
        assert!(get(web, "/").starts_with("HTTP/1.1 200"));
    }
    for _ in 0..3 {
        assert!(get(web, "/missing").starts_with("HTTP/1.1 404"));
    }

    let value = |selector: &str| server.latest(selector);
    poll(Duration::from_secs(30), "the requests counted", || {
        (value("sysward_access_log_requests_total{log=\"web\",status=\"2xx\",method=\"GET\"}")
            == Some(5.0)
            && value(
                "sysward_access_log_requests_total{log=\"web\",status=\"4xx\",method=\"GET\"}",
            ) == Some(3.0))
        .then_some(())
    });
    assert_eq!(
        value("sysward_access_log_request_duration_seconds_count{log=\"web\"}"),
        Some(8.0)
    );
    assert_eq!(
        value("sysward_access_log_unparsed_lines_total{log=\"web\"}"),
        Some(0.0)
    );
    // nginx's own counters saw at least those requests.
    poll(Duration::from_secs(30), "nginx's status", || {
        (value("nginx_up") == Some(1.0)
            && value("nginx_http_requests_total").is_some_and(|v| v >= 8.0))
        .then_some(())
    });
    // The exporter's series, with the target as job, and the read's own health.
    poll(Duration::from_secs(30), "the exporter's series", || {
        (value("services_e2e_fixed{kind=\"answer\",job=\"node\"}") == Some(42.0)
            && value("sysward_scrape_up{job=\"node\"}") == Some(1.0))
        .then_some(())
    });
    // The database: up, its settings and its own statistics.
    poll(Duration::from_secs(30), "PostgreSQL's statistics", || {
        (value("pg_up{server=\"main\"}") == Some(1.0)
            && value("pg_settings_max_connections{server=\"main\"}").is_some_and(|v| v > 0.0)
            && value("pg_database_size_bytes{server=\"main\",datname=\"postgres\"}")
                .is_some_and(|v| v > 0.0))
        .then_some(())
    });
    poll(Duration::from_secs(30), "MariaDB's status", || {
        (value("mysql_up{server=\"main\"}") == Some(1.0)
            && value("mysql_global_variables_max_connections{server=\"main\"}")
                .is_some_and(|v| v > 0.0)
            && value("mysql_global_status_queries{server=\"main\"}").is_some_and(|v| v > 0.0))
        .then_some(())
    });
    // Beside the host's own collectors, from the same agent.
    assert!(value("node_load1").is_some());
    // The database collectors ran in helpers of the agent's, one per collector, which
    // end with it.
    let agent_pid = agent.pid().expect("the agent runs");
    let helpers = children_named(agent_pid, "sysward-db");
    assert_eq!(
        helpers.len(),
        2,
        "sysward-db children of the agent: {helpers:?}"
    );
    agent.stop();
    poll(Duration::from_secs(10), "the helpers to end", || {
        helpers.iter().all(|pid| !alive(*pid)).then_some(())
    });
}

/// The processes whose parent is `parent` and whose command name is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces, so split after its `)`.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map_or("", |(_, comm)| comm);
            let ppid = rest.split_whitespace().nth(1);
            comm == name && ppid == Some(parent.to_string().as_str())
        })
        .collect()
}

/// Whether `pid` is a process that has not exited (a zombie has).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}
