//! A stand-in for Grafana's HTTP API, which cannot be installed here: it keeps
//! datasources, folders and dashboards as Grafana does and answers the calls the server's
//! sync makes with the status codes and bodies Grafana's documentation gives
//! (`docs/sources/developers/http_api/{data_source,folder,dashboard}.md`, and `/api/health`
//! of `other.md`). Every request is recorded for the tests to check field by field.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use serde_json::{Value, json};

use crate::recorder::Recorded;

/// What the fake Grafana holds.
#[derive(Debug, Default)]
pub struct Store {
    pub datasources: Vec<Value>,
    pub folders: Vec<Value>,
    /// `(dashboard, folderUid)` by upload order; one per uid.
    pub dashboards: Vec<(Value, String)>,
    next_id: i64,
}

struct Shared {
    version: String,
    key: String,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Answer 401 to every authenticated call, as Grafana does for a revoked key.
    refuse_key: AtomicBool,
    stopped: AtomicBool,
    store: Mutex<Store>,
    requests: Mutex<Vec<Recorded>>,
}

/// A fake Grafana on 127.0.0.1.
pub struct FakeGrafana {
    pub port: u16,
    /// With TLS: the PEM of its certificate, which is its own CA.
    pub ca_pem: Option<String>,
    shared: Arc<Shared>,
}

impl FakeGrafana {
    /// Starts on a free port; `key` is the only service account token it accepts.
    pub fn start(version: &str, key: &str) -> FakeGrafana {
        Self::start_on(0, version, key)
    }

    /// Starts on `port` (0: any free one), empty.
    pub fn start_on(port: u16, version: &str, key: &str) -> FakeGrafana {
        Self::launch(port, version, key, None)
    }

    /// Starts on a free port serving HTTPS with a certificate for 127.0.0.1 of its own.
    pub fn start_tls(version: &str, key: &str) -> FakeGrafana {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .expect("a certificate");
        let chain = vec![cert.cert.der().clone()];
        let private = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .expect("the key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .expect("a TLS config");
        let mut fake = Self::launch(0, version, key, Some(Arc::new(config)));
        fake.ca_pem = Some(cert.cert.pem());
        fake
    }

    fn launch(
        port: u16,
        version: &str,
        key: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> FakeGrafana {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the fake Grafana");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Shared {
            version: version.to_string(),
            key: key.to_string(),
            tls,
            refuse_key: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let s = s.clone();
                    thread::spawn(move || accept(stream, &s));
                }
            }
        });
        FakeGrafana {
            port,
            ca_pem: None,
            shared,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Closes the port: new connections are refused and open ones get no answer.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }

    pub fn refuse_key(&self, refuse: bool) {
        self.shared.refuse_key.store(refuse, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// Runs `f` on what the fake holds.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut self.shared.store.lock().expect("lock"))
    }
}

impl Drop for FakeGrafana {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept(stream: TcpStream, shared: &Shared) {
    match &shared.tls {
        None => serve(stream, shared),
        Some(config) => {
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            serve(rustls::StreamOwned::new(conn, stream), shared);
        }
    }
}

fn serve<S: Read + Write>(stream: S, shared: &Shared) {
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        shared.requests.lock().expect("lock").push(req.clone());
        let (status, body) = answer(shared, &req);
        let body = body.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let out = reader.get_mut();
        if out.write_all(head.as_bytes()).is_err()
            || out.write_all(body.as_bytes()).is_err()
            || out.flush().is_err()
        {
            return;
        }
    }
}

fn answer(shared: &Shared, req: &Recorded) -> (u16, Value) {
    let path = req.target.split('?').next().unwrap_or_default();
    if (req.method.as_str(), path) == ("GET", "/api/health") {
        return (
            200,
            json!({"commit": "0123abc", "database": "ok", "version": shared.version}),
        );
    }
    let bearer = format!("Bearer {}", shared.key);
    if req.header("authorization") != Some(bearer.as_str())
        || shared.refuse_key.load(Ordering::SeqCst)
    {
        return (401, json!({"message": "invalid API key"}));
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let mut store = shared.store.lock().expect("lock");
    match (req.method.as_str(), path) {
        ("GET", p) if p.starts_with("/api/datasources/name/") => {
            let name = unescape(&p["/api/datasources/name/".len()..]);
            match store
                .datasources
                .iter()
                .find(|d| d["name"] == name.as_str())
            {
                Some(d) => (200, public_datasource(d)),
                None => (404, json!({"message": "Data source not found"})),
            }
        }
        ("POST", "/api/datasources") => create_datasource(&mut store, body),
        ("PUT", p) if p.starts_with("/api/datasources/uid/") => {
            let uid = unescape(&p["/api/datasources/uid/".len()..]);
            let Some(at) = store
                .datasources
                .iter()
                .position(|d| d["uid"] == uid.as_str())
            else {
                return (404, json!({"message": "Data source not found"}));
            };
            let id = store.datasources[at]["id"].clone();
            let mut updated = body;
            updated["id"] = id.clone();
            updated["uid"] = json!(uid);
            store.datasources[at] = updated.clone();
            (
                200,
                json!({"datasource": public_datasource(&updated), "id": id,
                       "message": "Datasource updated", "name": updated["name"]}),
            )
        }
        ("GET", "/api/folders") => {
            let list: Vec<Value> = store
                .folders
                .iter()
                .map(|f| json!({"id": f["id"], "uid": f["uid"], "title": f["title"]}))
                .collect();
            (200, Value::Array(list))
        }
        ("POST", "/api/folders") => create_folder(&mut store, &body),
        ("POST", "/api/dashboards/db") => save_dashboard(&mut store, &body),
        _ => (404, json!({"message": "Not found"})),
    }
}

fn create_datasource(store: &mut Store, body: Value) -> (u16, Value) {
    if store
        .datasources
        .iter()
        .any(|d| d["name"] == body["name"] || (!body["uid"].is_null() && d["uid"] == body["uid"]))
    {
        return (
            409,
            json!({"message": "data source with the same name already exists"}),
        );
    }
    store.next_id += 1;
    let mut ds = body;
    ds["id"] = json!(store.next_id);
    if ds["uid"].as_str().is_none_or(str::is_empty) {
        ds["uid"] = json!(format!("gen{}", store.next_id));
    }
    store.datasources.push(ds.clone());
    (
        200,
        json!({"datasource": public_datasource(&ds), "id": ds["id"],
               "message": "Datasource added", "name": ds["name"]}),
    )
}

/// A datasource as Grafana shows it: secrets only as `secureJsonFields`.
fn public_datasource(d: &Value) -> Value {
    let mut shown = d.clone();
    let mut fields = serde_json::Map::new();
    if let Some(secure) = shown["secureJsonData"].as_object() {
        for k in secure.keys() {
            fields.insert(k.clone(), json!(true));
        }
    }
    if let Some(o) = shown.as_object_mut() {
        o.remove("secureJsonData");
        o.insert("secureJsonFields".into(), Value::Object(fields));
        o.insert("orgId".into(), json!(1));
        o.insert("version".into(), json!(1));
        o.insert("readOnly".into(), json!(false));
    }
    shown
}

fn create_folder(store: &mut Store, body: &Value) -> (u16, Value) {
    let Some(title) = body["title"].as_str().filter(|t| !t.is_empty()) else {
        return (400, json!({"message": "folder title cannot be empty"}));
    };
    if store.folders.iter().any(|f| f["title"] == title) {
        return (
            409,
            json!({"message": "a folder with the same name already exists"}),
        );
    }
    store.next_id += 1;
    let uid = body["uid"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map_or_else(|| format!("f{}", store.next_id), str::to_string);
    let folder = json!({"id": store.next_id, "uid": uid, "title": title,
                        "url": format!("/dashboards/f/{uid}/"), "version": 1});
    store.folders.push(folder.clone());
    (200, folder)
}

fn save_dashboard(store: &mut Store, body: &Value) -> (u16, Value) {
    let dashboard = &body["dashboard"];
    let (Some(uid), Some(_title)) = (dashboard["uid"].as_str(), dashboard["title"].as_str()) else {
        return (400, json!({"message": "Dashboard title cannot be empty"}));
    };
    let folder = body["folderUid"].as_str().unwrap_or_default().to_string();
    if !folder.is_empty() && !store.folders.iter().any(|f| f["uid"] == folder.as_str()) {
        return (400, json!({"message": "folder not found"}));
    }
    let existing = store.dashboards.iter().position(|(d, _)| d["uid"] == uid);
    if existing.is_some() && body["overwrite"] != true {
        return (
            412,
            json!({"message": "A dashboard with the same uid already exists", "status": "name-exists"}),
        );
    }
    if let Some(at) = existing {
        store.dashboards.remove(at);
    }
    store.dashboards.push((dashboard.clone(), folder));
    store.next_id += 1;
    (
        200,
        json!({"id": store.next_id, "uid": uid, "url": format!("/d/{uid}/x"),
               "status": "success", "version": 1, "slug": "x"}),
    )
}

fn unescape(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_request<S: Read>(reader: &mut BufReader<S>) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        target,
        headers,
        body,
        at: std::time::Instant::now(),
    })
}
